// explorer.ts: visit sectors nobody (on this ship) has seen yet, and report what is in them.
//
// The universe is an endless grid of 1000 x 1000 sectors. The explorer keeps a set of the
// sectors it has been in. Each time it crosses into a sector it picks the next destination:
// one of the eight neighbouring sectors it has not visited, chosen at random so that a fleet
// of explorers fans out instead of flying in formation. When every neighbour has been seen, it
// picks a random heading and flies a few sectors that way to get out of the explored patch.
//
// On the way it keeps clear of anything that gets too close (ships and asteroids both damage
// the hull on impact), and on entering a new sector it logs what its sensors see there, but
// only when there is something worth reporting: logs cost fuel and the log keeps 16 lines a
// tick at most.
//
// This script shows persistent state (a Set that grows over the whole run), randomness from
// the server (random(): the same numbers on every replay) and logging.
//
// Build: astroboids script build assets/scripts/explorer.ts
// Run:   astroboids sim --script assets/scripts/explorer.ts

import {
  ship, contact, countContacts, ASTEROID, SHIP, SECTOR_SIZE, MAX_SPEED,
  thrust, turn, stop, steerTowards, steerAway, random, randomInt, sectorKey, log,
} from "astroboids";

// --- Persistent state -----------------------------------------------------------------------

/** Sectors visited, keyed by sectorKey(x, y). Grows by one entry per new sector. */
const visited = new Set<u64>();
/** Where we are heading: a point in universe coordinates (f64: sector * 1000 + offset). */
let targetX: f64 = 0;
let targetY: f64 = 0;
/** The sector we were in last tick; crossing into another one triggers a new decision. */
let lastKey: u64 = 0;
let started = false;
/** Neighbours as (dx, dy) offsets, to try in random order. */
const NEIGHBOURS: StaticArray<i32> = [1, 0, 1, 1, 0, 1, -1, 1, -1, 0, -1, -1, 0, -1, 1, -1];

// --- Tuning ----------------------------------------------------------------------------------

/** Keep at least this much space between our hull and anything else. */
const CLEARANCE: f32 = 20;
/** Cruise a little below top speed: thrust costs energy, coasting is free. */
const CRUISE_SPEED: f32 = MAX_SPEED * 0.9;
/** Below this energy, coast instead of thrusting (it regenerates 0.4 a tick). */
const ENERGY_RESERVE: f32 = 20;

export function tick(): void {
  const sx = ship.sectorX, sy = ship.sectorY;
  const key = sectorKey(sx, sy);
  if (!started || key != lastKey) {
    started = true;
    lastKey = key;
    if (!visited.has(key)) {
      visited.add(key); // the only allocation: one Set entry per new sector
      report(sx, sy);
    }
    chooseDestination(sx, sy);
  }

  // Something in the way? Contacts come nearest first, so the first one tells.
  if (ship.contactCount > 0) {
    const c = contact(0);
    if (c.gap < CLEARANCE && closing(c.dx, c.dy, c.vx, c.vy)) {
      turn(steerAway(c.dx, c.dy));
      if (c.gap < CLEARANCE / 2) stop(); // very close: brake as well
      return;
    }
  }

  // Fly to the destination: turn towards it, thrust when facing it and below cruise speed.
  const dx = <f32>(targetX - ship.globalX);
  const dy = <f32>(targetY - ship.globalY);
  const steer = steerTowards(dx, dy);
  turn(steer);
  if (Mathf.abs(steer) < 0.5 && ship.speed < CRUISE_SPEED && ship.energy > ENERGY_RESERVE) {
    thrust(1);
  }
}

/** True when the thing at offset (dx, dy), moving at (vx, vy), is getting closer to us. */
function closing(dx: f32, dy: f32, vx: f32, vy: f32): bool {
  // Its velocity relative to us, projected on the line between us: negative means closing.
  return dx * (vx - ship.vx) + dy * (vy - ship.vy) < 0;
}

/** Picks the centre of a random unvisited neighbour, or a point far off in a random direction. */
function chooseDestination(sx: i32, sy: i32): void {
  // Start at a random neighbour and go round: a random choice among the unvisited ones.
  const first = randomInt(8);
  for (let k = 0; k < 8; k++) {
    const i = ((first + k) & 7) << 1;
    const nx = sx + NEIGHBOURS[i], ny = sy + NEIGHBOURS[i + 1];
    if (!visited.has(sectorKey(nx, ny))) {
      targetX = (<f64>nx + 0.5) * <f64>SECTOR_SIZE;
      targetY = (<f64>ny + 0.5) * <f64>SECTOR_SIZE;
      return;
    }
  }
  // All eight seen: head off three sectors in a random direction.
  const angle = random() * 2 * Math.PI;
  targetX = ship.globalX + Math.cos(angle) * 3 * <f64>SECTOR_SIZE;
  targetY = ship.globalY + Math.sin(angle) * 3 * <f64>SECTOR_SIZE;
}

/** Logs a new sector if the sensors see anything in it (and every tenth sector anyway). */
function report(sx: i32, sy: i32): void {
  const rocks = countContacts(ASTEROID);
  const ships = countContacts(SHIP);
  const n = visited.size;
  if (rocks == 0 && ships == 0 && n % 10 != 0) return;
  // Building a string allocates; that is fine here, it happens once per sector.
  log(
    "sector " + sx.toString() + "," + sy.toString() +
    ": " + rocks.toString() + " asteroids, " + ships.toString() + " ships in sight (" +
    n.toString() + " sectors explored)",
  );
}
