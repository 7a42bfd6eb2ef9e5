// hunter.ts: chase other ships and ram them; run away when our own hull gets low.
//
// Collisions damage both hulls, so ramming is a trade: the hunter picks a target, flies at
// where the target is going to be (not where it is: a ship moving across our path would be
// gone by the time we got there), and keeps the same target while it stays in sensor range
// rather than switching to whatever is nearest each tick. Once its own hull drops below a
// threshold it stops hunting and flees from the nearest ship for the rest of its life (hulls
// do not repair yet).
//
// This script shows: finding a contact again by id from tick to tick, leading a moving target
// with its velocity, steering away from something, and a mode change logged once.
//
// Build: astroboids script build assets/scripts/hunter.ts
// Run:   astroboids sim --script assets/scripts/hunter.ts

import {
  ship, contact, Contact, nearestShip, SHIP, MAX_SPEED,
  thrust, turn, steerTowards, steerAway, randomBits, log,
} from "astroboids";

// --- Persistent state -----------------------------------------------------------------------

/** The ship we are after (valid when hunting is true). */
let targetId: u64 = 0;
let hunting = false;
/** Set once the hull is too damaged to keep fighting. */
let fleeing = false;
/** Patrol (nothing in sight): current turn and how long to hold it. */
let patrolTurn: f32 = 0;
let patrolTicks = 0;

// --- Tuning ----------------------------------------------------------------------------------

/** Below this hull we stop hunting and flee. A new hull has 100. */
const FLEE_HULL: f32 = 40;
/** Never lead a target by more than this many seconds: far predictions are guesses. */
const MAX_LEAD_S: f32 = 4;

export function tick(): void {
  if (!fleeing && ship.hull < FLEE_HULL) {
    fleeing = true;
    log("hull low: breaking off and fleeing");
  }
  if (fleeing) {
    flee();
    return;
  }

  const target = findTarget();
  if (target === null) {
    if (hunting) {
      hunting = false;
      log("lost the target");
    }
    patrol();
    return;
  }
  if (!hunting || target.id != targetId) {
    hunting = true;
    targetId = target.id;
    log("hunting ship " + targetId.toString()); // allocates, but only when the target changes
  }

  // Lead the target: where will it be when we get there? Time to get there ~ distance over
  // our top speed; in that time it moves by its velocity relative to ours.
  let lead = target.distance / MAX_SPEED;
  if (lead > MAX_LEAD_S) lead = MAX_LEAD_S;
  const aimX = target.dx + (target.vx - ship.vx) * lead;
  const aimY = target.dy + (target.vy - ship.vy) * lead;
  const steer = steerTowards(aimX, aimY);
  turn(steer);
  // Full thrust when roughly facing the aim point; ramming wants speed, so never brake.
  if (Mathf.abs(steer) < 0.6) thrust(1);
}

/** The ship we were hunting if it is still in sensor range, else the nearest ship, or null. */
function findTarget(): Contact | null {
  if (hunting) {
    const n = ship.contactCount;
    for (let i = 0; i < n; i++) {
      const c = contact(i);
      if (c.kind == SHIP && c.id == targetId) return c;
    }
  }
  return nearestShip();
}

/** Full thrust directly away from the nearest ship; cruise on when none is in sight. */
function flee(): void {
  const threat = nearestShip();
  if (threat === null) {
    thrust(0.3);
    return;
  }
  turn(steerAway(threat.dx, threat.dy));
  thrust(1);
}

/** Nothing to chase: sweep the area in long gentle curves. */
function patrol(): void {
  if (patrolTicks <= 0) {
    const bits = randomBits();
    patrolTurn = (<f32>(bits & 0xff) / 255.0 - 0.5) * 0.4;
    patrolTicks = 30 + <i32>((bits >>> 8) & 63);
  }
  patrolTicks--;
  turn(patrolTurn);
  thrust(0.7);
}
