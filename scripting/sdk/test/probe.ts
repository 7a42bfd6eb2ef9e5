// SDK probe for test/harness.mjs: each tick it exercises one part of the SDK and reports
// through the log (or the command block) so the harness can compare with what it wrote into the
// sensor block. The harness picks the part with the sensor block's energy field.

import {
  ship, contact, nearest, nearestAsteroid, nearestShip, countContacts, SHIP, ASTEROID,
  thrust, turn, mine, stop, idle, steerTowards, steerAway, wrapAngle, sectorKey,
  random, randomInt, randomBits, log, commandedThrust, commandedTurn, commandedMine,
  commandedStop,
} from "astroboids";

const MODE_FIELDS = 1;
const MODE_COMMANDS = 2;
const MODE_RANDOM = 3;
const MODE_LOG = 4;
const MODE_ABORT = 5;
const MODE_DEEP_FAULT = 6;
const MODE_CHURN = 7;
const MODE_STEER = 8;
const MODE_NEAREST = 9;
const MODE_THROW = 10;

// Persistent state that the churn mode grows and prunes.
const notes = new Map<u32, string>();
let churnTicks: u32 = 0;
const small: i32[] = [1, 2, 3];

export function tick(): void {
  const mode = <i32>ship.energy;
  if (mode == MODE_FIELDS) fields();
  else if (mode == MODE_COMMANDS) commands();
  else if (mode == MODE_RANDOM) randoms();
  else if (mode == MODE_LOG) logs();
  else if (mode == MODE_ABORT) outOfRange();
  else if (mode == MODE_DEEP_FAULT) deepFault(40, "frame");
  else if (mode == MODE_CHURN) churn();
  else if (mode == MODE_STEER) steering();
  else if (mode == MODE_NEAREST) nearestOnes();
  else if (mode == MODE_THROW) throw new Error("thrown on purpose");
}

function fields(): void {
  log(
    "tick=" + ship.tick.toString() + " id=" + ship.id.toString() +
    " sector=" + ship.sectorX.toString() + "," + ship.sectorY.toString() +
    " pos=" + ship.x.toString() + "," + ship.y.toString() +
    " vel=" + ship.vx.toString() + "," + ship.vy.toString() +
    " heading=" + ship.heading.toString() + " hull=" + ship.hull.toString() +
    " cargo=" + ship.cargo.toString() + " range=" + ship.sensorRange.toString() +
    " contacts=" + ship.contactCount.toString() +
    " gx=" + ship.globalX.toString() + " gy=" + ship.globalY.toString() +
    " speed=" + ship.speed.toString(),
  );
  for (let i = 0; i < ship.contactCount; i++) {
    const c = contact(i);
    log(
      "contact " + i.toString() + " kind=" + c.kind.toString() + " index=" + c.index.toString() +
      " id=" + c.id.toString() + " d=" + c.dx.toString() + "," + c.dy.toString() +
      " v=" + c.vx.toString() + "," + c.vy.toString() + " dist=" + c.distance.toString() +
      " r=" + c.radius.toString() + " gap=" + c.gap.toString() +
      " reach=" + (c.inMiningReach ? "yes" : "no") +
      " sector=" + c.sectorX.toString() + "," + c.sectorY.toString(),
    );
  }
}

function commands(): void {
  thrust(0.5);
  turn(-0.25);
  mine();
  stop();
  stop(false);
  // Read back through the SDK, then leave thrust 0.5, turn -0.25, flags = mine.
  log(
    commandedThrust().toString() + " " + commandedTurn().toString() + " " +
    (commandedMine() ? "mine" : "-") + " " + (commandedStop() ? "stop" : "-"),
  );
  if (ship.tick == 1) {
    idle(); // the harness checks that idle() clears the block
  }
}

function randoms(): void {
  // Three draws: raw bits, a float in [0, 1), an integer below 10.
  const a = randomBits();
  const b = random();
  const c = randomInt(10);
  log(a.toString() + " " + b.toString() + " " + c.toString());
}

function logs(): void {
  log("h\u00e9llo \u2713 \u{1F680}");
  log("x".repeat(300)); // cut to 256 bytes
  log("y".repeat(255) + "\u00e9"); // a 2-byte character that would straddle byte 256: dropped
  for (let i = 0; i < 20; i++) log("line " + i.toString()); // the SDK stops at 16 lines a tick
}

function outOfRange(): void {
  const i = <i32>ship.tick + 10;
  log(small[i].toString()); // out of range (reading; writing past the end would grow the array)
}

/** Recursion holding managed strings in every frame, then a trap at the bottom. */
function deepFault(depth: i32, s: string): string {
  if (depth == 0) unreachable();
  const t = deepFault(depth - 1, s + "!");
  return t + s;
}

function churn(): void {
  // Short-lived garbage: strings and a small array every tick, and a map that keeps 200 entries.
  churnTicks++;
  const parts: string[] = [];
  for (let i = 0; i < 8; i++) parts.push("part" + i.toString());
  const line = parts.join(",");
  notes.set(churnTicks % 200, line + " #" + churnTicks.toString());
  if (churnTicks % 100 == 0) log("churn " + churnTicks.toString() + " " + notes.size.toString());
}

function steering(): void {
  // One contact: report the turns that face it and flee it, and wrapAngle on a few values.
  const c = contact(0);
  log(
    steerTowards(c.dx, c.dy).toString() + " " + steerAway(c.dx, c.dy).toString() + " " +
    wrapAngle(4.0).toString() + " " + wrapAngle(-4.0).toString() + " " +
    wrapAngle(1.0).toString() + " " + sectorKey(-1, 2).toString(),
  );
}

function nearestOnes(): void {
  const a = nearestAsteroid(), s = nearestShip();
  const aIndex = a === null ? -1 : <i32>(changetype<usize>(a) - changetype<usize>(contact(0))) / 40;
  const sIndex = s === null ? -1 : <i32>(changetype<usize>(s) - changetype<usize>(contact(0))) / 40;
  log(
    aIndex.toString() + " " + sIndex.toString() + " " +
    countContacts(ASTEROID).toString() + " " + countContacts(SHIP).toString() + " " +
    (nearest(3) === null ? "none" : "some"),
  );
}
