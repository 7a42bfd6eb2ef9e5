//! Fog-of-war delta snapshots: what one client may see of the world, sent each tick as
//! datagrams that each decode on their own, as a delta against the newest snapshot the client
//! acknowledged.
//!
//! The server keeps, per client, a [`SnapshotEncoder`]: the snapshots it sent (what the client
//! has if all of a snapshot's datagrams arrive) and the newest one acknowledged. Each tick it
//! carries that baseline forward (dead reckoning: every entity keeps moving as it moved between
//! the last two snapshots it was sent in, in integer steps both ends compute alike) and diffs
//! the client's filtered view against the prediction: entities where the prediction holds
//! (still asteroids, cruising ships) are omitted, the rest carry only residuals, vanished ones
//! an explicit removal. Without a usable baseline (nothing acked yet, or the acked one has left
//! the history) it sends everything: a resync. A byte budget per tick takes entities in
//! priority order (the caller's: own ships, then near contacts); what does not fit is left at
//! its predicted state and goes out in a later tick.
//!
//! The client's [`SnapshotDecoder`] rebuilds each snapshot on its baseline the same way,
//! acknowledges it once all its datagrams arrived, and shows the newest complete one.
//!
//! Wire format of a datagram: `[FORMAT u8][seq varint][tick varint][baseline varint: 0 = none,
//! else seq + 1][part u8][parts u8]` then records, each `varint(id_gap << 4 | flags)` (in 128
//! bits: ids use all 64) with the id gap from the previous record's (last) id in this datagram.
//! flags 0 = removal; 8 = a whole entity follows (motion reset); 9 = a run: `varint(n)` then n
//! entries of 12 bits (4-bit residuals x, y, heading) for this entity and the next n - 1 moving
//! entities of the baseline, in id order; else bit 0 = position residual (two zigzag varints),
//! bit 1 = heading residual (u8), bit 2 = hull (u8). A ship steering smoothly costs 1.5 bytes,
//! one moving as predicted nothing.
//!
//! Code map: `conveyed` is the state both ends hold and predict alike, `wire` the record and
//! datagram bytes, `encoder` the server's side, `decoder` the client's.

mod conveyed;
mod decoder;
mod encoder;
mod wire;

pub use decoder::SnapshotDecoder;
pub use encoder::{EncodedSnapshot, SnapshotEncoder};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The snapshot datagram format this build speaks.
pub const SNAPSHOT_FORMAT: u8 = 3;

/// Positions are quantized to 1/16 m inside a sector (u16: sectors up to 4,096 m).
pub const POSITION_STEPS_PER_METRE: f32 = 16.0;

/// Entity kinds in a view (what [`ViewEntity::kind`] holds).
pub const KIND_OWN_SHIP: u8 = 0;
/// Another ship with no owner (another player's carries its owner's colour: [`owned_ship_kind`]).
pub const KIND_SHIP: u8 = 1;
/// An asteroid's `hull` byte carries its radius in metres.
pub const KIND_ASTEROID: u8 = 2;
/// A nebula (sensors reach less far inside): its `hull` byte carries its radius in steps of
/// [`AREA_RADIUS_STEP_METRES`].
pub const KIND_NEBULA: u8 = 3;
/// A hazard (it damages hulls inside): radius as a nebula's.
pub const KIND_HAZARD: u8 = 4;
/// Nebula and hazard radii go up to a quarter of a sector (1,024 m at most): 4 m steps fit a byte.
pub const AREA_RADIUS_STEP_METRES: f32 = 4.0;
/// Other players' ships are `KIND_OWNED_SHIP_FIRST + slot`, the slot one of [`OWNER_SLOTS`]
/// picked from the owner's name, so a client colours each owner's ships alike (and owners
/// apart, as far as the palette goes) without learning anyone's name.
pub const KIND_OWNED_SHIP_FIRST: u8 = 16;
pub const OWNER_SLOTS: u8 = 6;

/// Asteroid ids have the top bit set (ship ids never do); below it the sector's y and x (the
/// low 23 bits of each) and the asteroid's index there. Asteroids of one sector thus get
/// neighbouring ids and neighbouring sectors near ones, which keeps the id gaps in snapshots
/// small (a hashed id cost up to 10 bytes per record). Sectors 2^23 apart share ids; no view
/// spans more than a few sectors, so no client can see both. The live views and the replay
/// viewer name asteroids alike with it.
pub const ASTEROID_ID_BIT: u64 = 1 << 63;

/// The id of asteroid `index` of `sector` (see [`ASTEROID_ID_BIT`]).
pub fn asteroid_id(sector: (i32, i32), index: u16) -> u64 {
    const COORD_MASK: u64 = (1 << 23) - 1;
    let x = u64::from(sector.0 as u32) & COORD_MASK;
    let y = u64::from(sector.1 as u32) & COORD_MASK;
    ASTEROID_ID_BIT | y << 39 | x << 16 | u64::from(index)
}

/// The kind of a ship of `owner` as another player sees it.
pub fn owned_ship_kind(owner: &str) -> u8 {
    // FNV-1a: stable across builds and platforms, which a std hasher does not promise.
    let hash = owner.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    KIND_OWNED_SHIP_FIRST + (hash % u64::from(OWNER_SLOTS)) as u8
}

/// The owner's colour slot of another player's ship, if `kind` is one.
pub fn owner_slot(kind: u8) -> Option<u8> {
    (KIND_OWNED_SHIP_FIRST..KIND_OWNED_SHIP_FIRST + OWNER_SLOTS)
        .contains(&kind)
        .then(|| kind - KIND_OWNED_SHIP_FIRST)
}

/// Whether `kind` is a ship (the player's own, or anyone else's).
pub fn is_ship(kind: u8) -> bool {
    kind == KIND_OWN_SHIP || kind == KIND_SHIP || owner_slot(kind).is_some()
}

/// Whether `kind` is another player's or an unowned ship.
pub fn is_other_ship(kind: u8) -> bool {
    kind == KIND_SHIP || owner_slot(kind).is_some()
}

/// Whether `kind` is an area (nebula or hazard).
pub fn is_area(kind: u8) -> bool {
    kind == KIND_NEBULA || kind == KIND_HAZARD
}

/// What a client sees of one entity, quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewEntity {
    /// What it is (ship, own ship, asteroid...), as the caller numbers them.
    pub kind: u8,
    pub sector: (i32, i32),
    /// Position in the sector, in 1/16 m.
    pub x: u16,
    pub y: u16,
    /// Heading in 1/256 turns.
    pub heading: u8,
    pub hull: u8,
}

impl ViewEntity {
    /// Quantizes a position in a sector (metres), a heading (radians) and a hull (0-255).
    pub fn quantize(
        kind: u8,
        sector: (i32, i32),
        local: (f32, f32),
        heading: f32,
        hull: f32,
    ) -> Self {
        let q = |v: f32| (v * POSITION_STEPS_PER_METRE).round().clamp(0.0, 65_535.0) as u16;
        let turns = heading / std::f32::consts::TAU;
        Self {
            kind,
            sector,
            x: q(local.0),
            y: q(local.1),
            heading: ((turns - turns.floor()) * 256.0).round() as u32 as u8,
            hull: hull.round().clamp(0.0, 255.0) as u8,
        }
    }

    /// A nebula or hazard of `radius` metres centred at `local` in `sector`.
    pub fn area(kind: u8, sector: (i32, i32), local: (f32, f32), radius: f32) -> Self {
        debug_assert!(is_area(kind));
        Self::quantize(
            kind,
            sector,
            local,
            0.0,
            (radius / AREA_RADIUS_STEP_METRES).ceil(),
        )
    }

    /// An area's radius in metres (rounded up to the step, so the disc drawn covers it).
    pub fn area_radius(&self) -> f32 {
        f32::from(self.hull) * AREA_RADIUS_STEP_METRES
    }

    /// The position in the sector, in metres.
    pub fn local(&self) -> (f32, f32) {
        (
            f32::from(self.x) / POSITION_STEPS_PER_METRE,
            f32::from(self.y) / POSITION_STEPS_PER_METRE,
        )
    }
}

/// Everything one client sees, by entity id.
pub type View = BTreeMap<u64, ViewEntity>;

/// Bounds on one client's snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotLimits {
    /// Largest datagram (quinn's `max_datagram_size()`, about 1,200 bytes).
    pub max_datagram_bytes: usize,
    /// Record bytes per snapshot (the bandwidth budget; 800 B at 10 Hz = 8 KB/s).
    pub budget_bytes: usize,
    /// Snapshots kept as possible baselines, both ends.
    pub history: usize,
    /// Datagrams one snapshot may take.
    pub max_parts: u8,
}

impl Default for SnapshotLimits {
    fn default() -> Self {
        Self {
            max_datagram_bytes: 1_150,
            budget_bytes: 800,
            history: 32,
            max_parts: 16,
        }
    }
}

/// First byte of a client's acknowledgement datagram: `[ACK_TAG][seq u32 LE]`.
pub const ACK_TAG: u8 = 0xA1;

/// The datagram acknowledging snapshot `seq`.
pub fn encode_ack(seq: u32) -> [u8; 5] {
    let s = seq.to_le_bytes();
    [ACK_TAG, s[0], s[1], s[2], s[3]]
}

/// The snapshot an acknowledgement datagram names (`None` for anything else).
pub fn decode_ack(datagram: &[u8]) -> Option<u32> {
    match datagram {
        [ACK_TAG, a, b, c, d] => Some(u32::from_le_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// Most datagrams one snapshot may take (the client tracks parts in a 32-bit set).
pub const MAX_PARTS: u8 = 32;

/// Why a datagram was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot format {0} is not supported (this build reads {SNAPSHOT_FORMAT})")]
    Format(u8),
    #[error("truncated or malformed snapshot datagram")]
    Malformed,
    #[error("snapshot {seq} is based on snapshot {baseline}, which this client does not have")]
    UnknownBaseline { seq: u32, baseline: u32 },
    #[error("snapshot datagram part {part} of {parts} is out of range")]
    BadPart { part: u8, parts: u8 },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client colours every ship of one owner alike, across builds and platforms, and the
    /// slots spread owners over the palette.
    #[test]
    fn owners_get_stable_colour_slots_that_spread() {
        assert_eq!(owned_ship_kind("ada"), owned_ship_kind("ada"));
        // Pinned (FNV-1a of "ada" is 0xe70b_c019_0530_e13b): a change of hash would recolour everyone.
        assert_eq!(owned_ship_kind("ada"), KIND_OWNED_SHIP_FIRST + 1);
        let mut used = std::collections::BTreeSet::new();
        for i in 0..60 {
            let kind = owned_ship_kind(&format!("player{i}"));
            let slot = owner_slot(kind).expect("an owned ship's kind has a slot");
            assert!(slot < OWNER_SLOTS);
            assert!(is_ship(kind) && is_other_ship(kind) && !is_area(kind));
            used.insert(slot);
        }
        assert_eq!(
            used.len(),
            usize::from(OWNER_SLOTS),
            "60 names use every slot"
        );
        for kind in [KIND_OWN_SHIP, KIND_ASTEROID, KIND_NEBULA, KIND_HAZARD] {
            assert_eq!(owner_slot(kind), None);
        }
        assert!(is_ship(KIND_OWN_SHIP) && !is_other_ship(KIND_OWN_SHIP));
        assert!(is_other_ship(KIND_SHIP));
    }

    #[test]
    fn areas_keep_their_radius_to_the_step_above() {
        let nebula = ViewEntity::area(KIND_NEBULA, (3, -2), (500.0, 20.0), 101.0);
        assert_eq!(nebula.area_radius(), 104.0);
        assert_eq!(nebula.local(), (500.0, 20.0));
        let largest = ViewEntity::area(KIND_HAZARD, (0, 0), (0.0, 0.0), 1_020.0);
        assert_eq!(largest.area_radius(), 1_020.0);
    }

    #[test]
    fn quantization_wraps_headings_and_clamps_positions_and_hull() {
        let e = ViewEntity::quantize(
            2,
            (1, -1),
            (999.97, -5.0),
            -std::f32::consts::FRAC_PI_2,
            300.0,
        );
        assert_eq!(e.x, 16_000); // 999.97 m in 1/16 m
        assert_eq!(e.y, 0);
        assert_eq!(e.heading, 192); // -90 degrees = 3/4 turn
        assert_eq!(e.hull, 255);
        assert_eq!(e.local(), (1000.0, 0.0));
        let full_turn = ViewEntity::quantize(0, (0, 0), (0.0, 0.0), std::f32::consts::TAU, 0.0);
        assert_eq!(full_turn.heading, 0);
    }
}
