//! Which ships need rapier this tick, and how the others move.
//!
//! Most ships are far from everything: nothing can touch them within the tick, so rapier
//! would only integrate `position += velocity * dt` for them, at the cost of a body in its
//! broad phase and solver (about half a microsecond a ship). Such a ship flies *free*: the
//! physics stage moves it with exactly rapier's arithmetic for a body without contacts
//! ([`fly_free`]), and only ships *near something* have a body.
//!
//! A ship is near something when its hull could come within [`slack`] of another hull or an
//! asteroid during the tick, each moving at most its own speed times `dt`. The test reads only
//! the sector's own ships and asteroids, so it is the same on one shard or many; and it reads
//! only simulated state, so a world restored from a checkpoint makes the same choices.

use crate::sectors::Asteroid;
use crate::space::Vec2;

/// A ship as the physics stage moves it: where it is and the velocity movement chose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Motion {
    pub local: Vec2,
    pub velocity: Vec2,
}

/// Room kept beyond the hulls' reach. A collision inside rapier can change a ship's velocity
/// during the tick, so its reach (from the velocity before the step) is not a bound on where
/// it ends up; one hull radius of slack keeps the ships it could reach near enough to be in
/// rapier too.
pub(crate) fn slack(ship_radius: f32) -> f32 {
    ship_radius
}

/// Where a free ship is after one tick: rapier's integration of a body with no contacts, no
/// forces and no damping (`translation += linvel * dt`), so a ship flies the same whether
/// rapier or this moves it.
pub(crate) fn fly_free(motion: Motion, dt: f32) -> Vec2 {
    motion.local + motion.velocity * dt
}

/// For each ship (same order as `ships`), whether it is near something this tick: another
/// ship of the sector or one of its asteroids.
pub(crate) fn near_something(
    ships: &[Motion],
    asteroids: &[Asteroid],
    ship_radius: f32,
    dt: f32,
) -> Vec<bool> {
    let slack = slack(ship_radius);
    let reach: Vec<f32> = ships.iter().map(|s| s.velocity.length() * dt).collect();
    let mut near: Vec<bool> = ships
        .iter()
        .zip(&reach)
        .map(|(ship, &reach)| {
            asteroids.iter().any(|a| {
                let limit = ship_radius + a.radius + reach + slack;
                (a.local - ship.local).length_squared() < limit * limit
            })
        })
        .collect();

    // Ship pairs: sweep along x. Two ships can only be near if their x distance is under the
    // widest limit any pair of this sector can have.
    let widest_reach = reach.iter().copied().fold(0.0f32, f32::max);
    let window = 2.0 * ship_radius + 2.0 * widest_reach + slack;
    // Sorted by (x, position in `ships`) as one integer each: the order, and so the sweep,
    // is fully determined, and sorting integers is cheaper than comparing through `ships`.
    let mut by_x: Vec<u64> = ships
        .iter()
        .enumerate()
        .map(|(i, s)| (u64::from(ordered_bits(s.local.x)) << 32) | i as u64)
        .collect();
    by_x.sort_unstable();
    let by_x: Vec<usize> = by_x
        .iter()
        .map(|key| (key & 0xffff_ffff) as usize)
        .collect();
    for (k, &a) in by_x.iter().enumerate() {
        for &b in &by_x[k + 1..] {
            if ships[b].local.x - ships[a].local.x >= window {
                break;
            }
            let limit = 2.0 * ship_radius + reach[a] + reach[b] + slack;
            if (ships[b].local - ships[a].local).length_squared() < limit * limit {
                near[a] = true;
                near[b] = true;
            }
        }
    }
    near
}

/// The bits of `x` as an integer that orders like `x` does (for finite values; -0 before +0).
fn ordered_bits(x: f32) -> u32 {
    let bits = x.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RADIUS: f32 = 2.0;
    const DT: f32 = 0.1;

    fn ship(x: f32, y: f32, vx: f32, vy: f32) -> Motion {
        Motion {
            local: Vec2::new(x, y),
            velocity: Vec2::new(vx, vy),
        }
    }

    fn asteroid(x: f32, y: f32, radius: f32) -> Asteroid {
        Asteroid {
            index: 0,
            local: Vec2::new(x, y),
            radius,
            ore: 100,
        }
    }

    /// The reference: every pair checked.
    fn near_by_all_pairs(ships: &[Motion], asteroids: &[Asteroid]) -> Vec<bool> {
        let reach = |s: &Motion| s.velocity.length() * DT;
        let slack = slack(RADIUS);
        (0..ships.len())
            .map(|i| {
                let s = &ships[i];
                let within =
                    |other: Vec2, limit: f32| (other - s.local).length_squared() < limit * limit;
                asteroids
                    .iter()
                    .any(|a| within(a.local, RADIUS + a.radius + reach(s) + slack))
                    || (0..ships.len()).any(|j| {
                        j != i
                            && within(
                                ships[j].local,
                                2.0 * RADIUS + reach(s) + reach(&ships[j]) + slack,
                            )
                    })
            })
            .collect()
    }

    #[test]
    fn ordered_bits_order_like_the_floats() {
        let xs = [-1.0e9f32, -3.5, -0.0, 0.0, 1.0e-30, 2.0, 999.99, 1.0e9];
        for pair in xs.windows(2) {
            assert!(
                ordered_bits(pair[0]) < ordered_bits(pair[1]),
                "{} < {}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn a_ship_alone_in_open_space_flies_free() {
        assert_eq!(
            near_something(&[ship(500.0, 500.0, 30.0, 0.0)], &[], RADIUS, DT),
            [false]
        );
    }

    #[test]
    fn reach_counts_the_speed_of_both_ships() {
        // 14 apart: hulls 4, slack 2, so 8 of reach is needed between them.
        let resting = ship(0.0, 0.0, 0.0, 0.0);
        let slow = ship(14.0, 0.0, -70.0, 0.0); // 7 this tick
        let fast = ship(14.0, 0.0, -90.0, 0.0); // 9 this tick
        assert_eq!(
            near_something(&[resting, slow], &[], RADIUS, DT),
            [false, false]
        );
        assert_eq!(
            near_something(&[resting, fast], &[], RADIUS, DT),
            [true, true]
        );
        // The resting ship's own speed counts the same as the other's.
        let moving = ship(0.0, 0.0, 20.0, 0.0);
        assert_eq!(
            near_something(&[moving, slow], &[], RADIUS, DT),
            [true, true]
        );
    }

    #[test]
    fn a_ship_parked_beside_an_asteroid_is_free_until_it_moves_towards_it() {
        // Gap of 5 between hulls, more than the slack: nothing can touch while it rests.
        let rock = asteroid(0.0, 0.0, 10.0);
        let parked = ship(17.0, 0.0, 0.0, 0.0);
        assert_eq!(
            near_something(&[parked], std::slice::from_ref(&rock), RADIUS, DT),
            [false]
        );
        let closing = ship(17.0, 0.0, -40.0, 0.0);
        assert_eq!(near_something(&[closing], &[rock], RADIUS, DT), [true]);
    }

    #[test]
    fn the_sweep_finds_exactly_the_pairs_a_full_check_finds() {
        // A crowded sector: a lattice with jitter, at mixed speeds, some on equal x.
        let mut ships = Vec::new();
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32
        };
        for i in 0..400 {
            let x = (i % 20) as f32 * 9.0 + if i % 3 == 0 { 0.0 } else { next() * 6.0 };
            let y = (i / 20) as f32 * 9.0 + next() * 6.0;
            let v = next() * 30.0;
            ships.push(ship(x, y, v * (next() - 0.5), v * (next() - 0.5)));
        }
        let asteroids = [asteroid(40.0, 40.0, 12.0), asteroid(150.0, 90.0, 5.0)];
        let near = near_something(&ships, &asteroids, RADIUS, DT);
        assert_eq!(near, near_by_all_pairs(&ships, &asteroids));
        let free = near.iter().filter(|n| !**n).count();
        assert!(
            free > 0 && free < ships.len(),
            "the scene has both kinds: {free} free"
        );
    }
}
