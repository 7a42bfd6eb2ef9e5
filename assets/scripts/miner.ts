// miner.ts: find the nearest asteroid, fly to it, brake, and mine until the hold is full; then
// wander off to look around.
//
// The strategy is a small state machine that re-decides every tick from what the sensors show,
// so it copes with anything the world does to it (being bumped, an asteroid running dry, a
// nebula shrinking the sensor range):
//
//   * hold full                 -> wander (there is no base to unload at yet)
//   * asteroid within reach     -> brake and mine
//   * asteroid in sensor range  -> turn towards it, thrust when facing it, brake when arriving
//   * nothing in range          -> wander: cruise straight, now and then a random turn
//
// An asteroid can run out of ore while we sit on it. The miner notices (the hold stops
// filling) and remembers that asteroid as dry, so it moves on to the next one.
//
// This script is written to be cheap: tens of thousands of ships may run it every tick. It
// reads the sensor block in place (no copies), allocates nothing after start-up, and computes
// an angle (atan2) only while approaching. A tick costs about 100 fuel while mining and 300
// while approaching, out of the 100,000 a ship earns per tick.
//
// Build: astroboids script build assets/scripts/miner.ts
// Run:   astroboids sim --script assets/scripts/miner.ts

import {
  ship, contact, Contact, ASTEROID, CARGO_CAPACITY, MINING_REACH, MAX_SPEED,
  thrust, turn, mine, stop, steerTowards, randomBits, log,
} from "astroboids";

// --- Persistent state -----------------------------------------------------------------------
// Globals keep their values from tick to tick for as long as the script runs on this ship.

/** Asteroids found dry, as (sector id, index) pairs in a small ring. Allocated once, at start. */
const DRY_SLOTS = 8;
const dryIds = new StaticArray<u64>(DRY_SLOTS);
const dryIndexes = new StaticArray<u32>(DRY_SLOTS);
let dryCount = 0; // how many slots are in use (up to DRY_SLOTS)
let dryNext = 0; // the slot to overwrite next

/** Ticks spent mining without the hold filling. */
let stalledTicks = 0;
let lastCargo: u32 = 0;

/** Wandering: the turn we are holding and for how many more ticks. */
let wanderTurn: f32 = 0;
let wanderTicks = 0;

/** So that "hold full" is logged once per trip, not every tick. */
let reportedFull = false;

// --- Tuning ----------------------------------------------------------------------------------

/** Approach speed per unit of gap: 0.5 means "arrive in about two seconds". */
const APPROACH_RATE: f32 = 0.5;
/** Only thrust when roughly facing the target (|turn| below this): thrusting sideways wastes energy. */
const FACING: f32 = 0.5;

export function tick(): void {
  const cargo = ship.cargo;

  // 1. A full hold: nothing more to do here. Wander until a base exists to unload at.
  if (cargo >= CARGO_CAPACITY) {
    if (!reportedFull) {
      reportedFull = true;
      log("hold full"); // a string literal: logging it allocates nothing
    }
    wander();
    return;
  }
  reportedFull = false;

  // 2. The nearest asteroid we have not found dry.
  const rock = nearestMinable();
  if (rock === null) {
    stalledTicks = 0;
    wander();
    return;
  }

  const gap = rock.gap; // distance between the hulls
  if (gap <= MINING_REACH) {
    // 3. Within reach: brake (mining does not need us to be still, but drifting out of reach
    // would end it) and mine. No need to turn: the host mines whatever is nearest in reach.
    // If the hold has not grown for a few ticks, the rock is dry: remember it and move on.
    stop();
    mine();
    if (cargo > lastCargo || ship.energy < 1) {
      // Filling (or too low on energy to mine, which is no fault of the rock).
      stalledTicks = 0;
    } else if (++stalledTicks > 5) {
      markDry(rock);
      stalledTicks = 0;
    }
  } else {
    // 4. Approach: turn towards the rock. The closer we get, the slower we want to go, so we
    // arrive without overshooting: thrust when slower than that and facing the rock; brake
    // when faster.
    stalledTicks = 0;
    const steer = steerTowards(rock.dx, rock.dy);
    turn(steer);
    let wanted = gap * APPROACH_RATE;
    if (wanted > MAX_SPEED) wanted = MAX_SPEED;
    const vx = ship.vx, vy = ship.vy;
    const speed2 = vx * vx + vy * vy; // squared: no sqrt needed to compare
    if (speed2 > wanted * wanted) {
      stop();
    } else if (Mathf.abs(steer) < FACING) {
      thrust(1);
    }
  }
  lastCargo = cargo;
}

/** The nearest asteroid that is not on the dry list, or null. Reads contacts in place. */
function nearestMinable(): Contact | null {
  const n = ship.contactCount;
  for (let i = 0; i < n; i++) {
    const c = contact(i); // contacts come nearest first, so the first match is the nearest
    if (c.kind == ASTEROID && !isDry(c)) return c;
  }
  return null;
}

function isDry(c: Contact): bool {
  if (dryCount == 0) return false; // the common case: one comparison
  const id = c.id, index = c.index;
  for (let i = 0; i < dryCount; i++) {
    if (unchecked(dryIds[i]) == id && unchecked(dryIndexes[i]) == index) return true;
  }
  return false;
}

function markDry(c: Contact): void {
  unchecked(dryIds[dryNext] = c.id);
  unchecked(dryIndexes[dryNext] = c.index);
  dryNext = (dryNext + 1) % DRY_SLOTS;
  if (dryCount < DRY_SLOTS) dryCount++;
}

/** Cruise at moderate thrust, holding a random turn for a random while. */
function wander(): void {
  if (wanderTicks <= 0) {
    // One call gives 32 random bits: use some for the turn and some for the duration.
    const bits = randomBits();
    // Mostly straight ahead (half the time no turn at all), sometimes a gentle curve.
    wanderTurn = (bits & 1) == 0 ? 0 : (<f32>((bits >>> 1) & 0xff) / 255.0 - 0.5) * 0.6;
    wanderTicks = 20 + <i32>((bits >>> 9) & 63); // 2 to 8 seconds
  }
  wanderTicks--;
  turn(wanderTurn);
  thrust(0.6);
}
