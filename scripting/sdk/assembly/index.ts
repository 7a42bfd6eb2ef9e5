// AstroBoids ship-script SDK (ABI v1), the module scripts import as "astroboids".
//
//   import { ship, nearestAsteroid, thrust, turn, steerTowards, log } from "astroboids";
//   export function tick(): void { ... }
//
// Everything here reads the sensor block and writes the command block that the host shares
// with the script (docs/scripting-abi.md), straight from fixed addresses: no parsing, no
// allocation, a few wasm instructions per field. The other exports the ABI requires
// (astroboids_abi, sensor_ptr, command_ptr) are in ./exports.ts, which build.mjs compiles in as
// a second entry file, so a script only exports `tick`. README.md is the reference.
//
// Units: distances in world units, speeds in units/s, angles in radians (0 = +x,
// counter-clockwise positive), time in ticks (10 per second in the standard universe).

// ---------------------------------------------------------------------------------------------
// Host functions (the only imports a script may have, with env.abort)

// @ts-ignore: decorator
@external("astroboids", "log")
declare function hostLog(ptr: usize, len: i32): void;

// @ts-ignore: decorator
@external("astroboids", "random")
declare function hostRandom(): u32;

// @ts-ignore: decorator
@external("env", "abort")
declare function hostAbort(message: usize, file: usize, line: u32, column: u32): void;

// ---------------------------------------------------------------------------------------------
// Shared blocks: static buffers; the host learns their addresses from sensor_ptr/command_ptr.

/** Bytes in the sensor block (64-byte header + 32 contacts of 40 bytes). */
export const SENSOR_BLOCK_BYTES: i32 = 1344;
/** Bytes in the command block. */
export const COMMAND_BLOCK_BYTES: i32 = 16;
/** Contacts the sensor block holds at most. */
export const MAX_CONTACTS: i32 = 32;

// @ts-ignore: decorator
@inline const SENSOR_HEADER_BYTES: usize = 64;
// @ts-ignore: decorator
@inline const CONTACT_BYTES: usize = 40;

/** Address of the sensor block (host -> script, rewritten before every tick). */
export const SENSOR_PTR: usize = memory.data(1344, 8);
/** Address of the command block (script -> host, zeroed before every tick). */
export const COMMAND_PTR: usize = memory.data(16, 8);

// ---------------------------------------------------------------------------------------------
// Game constants of the standard universe (assets/universe.toml). A server may run other
// values; these are what the public universe uses.

/** Ticks per second. */
export const TICKS_PER_SECOND: f32 = 10;
/** Seconds per tick. */
export const TICK_SECONDS: f32 = 0.1;
/** Side of a square sector, in units; positions are (sector x, y) + an offset in 0..SECTOR_SIZE. */
export const SECTOR_SIZE: f32 = 1000;
/** Radius of every ship's hull. */
export const SHIP_RADIUS: f32 = 2;
/** Top speed, units/s. */
export const MAX_SPEED: f32 = 30;
/** Acceleration at full thrust, units/s^2. */
export const ACCELERATION: f32 = 15;
/** Turn rate at turn = +-1, radians/s. */
export const TURN_RATE: f32 = 2.5;
/** Radians turned in one tick at turn = +-1. */
export const TURN_PER_TICK: f32 = 0.25;
/** Energy of a full battery. */
export const ENERGY_MAX: f32 = 100;
/** Ore the hold takes. */
export const CARGO_CAPACITY: u32 = 400;
/** Gap between hulls (distance - asteroid radius - SHIP_RADIUS) within which mining works. */
export const MINING_REACH: f32 = 8;
/** Ore mined per tick. */
export const ORE_PER_TICK: u32 = 4;
/** Sensor range outside nebulae (0.4 of it inside one). */
export const SENSOR_RANGE: f32 = 200;
/** Log lines the host keeps per tick, and bytes per line. */
export const LOG_LINES_PER_TICK: i32 = 16;
export const LOG_LINE_BYTES: i32 = 256;

// ---------------------------------------------------------------------------------------------
// Own ship

/**
 * This ship as sensed at the start of the tick. A view over the sensor block: every getter is
 * one memory load, nothing is copied. Use the `ship` constant.
 */
@final @unmanaged
export class Ship {
  /** The tick number (counts from 0 for the universe, not for this script). */
  get tick(): u64 { return load<u64>(SENSOR_PTR, 0); }
  /** This ship's id. */
  get id(): u64 { return load<u64>(SENSOR_PTR, 8); }
  /** Sector coordinates. */
  get sectorX(): i32 { return load<i32>(SENSOR_PTR, 16); }
  get sectorY(): i32 { return load<i32>(SENSOR_PTR, 20); }
  /** Position inside the sector, 0 .. SECTOR_SIZE. */
  get x(): f32 { return load<f32>(SENSOR_PTR, 24); }
  get y(): f32 { return load<f32>(SENSOR_PTR, 28); }
  /** Velocity, units/s. */
  get vx(): f32 { return load<f32>(SENSOR_PTR, 32); }
  get vy(): f32 { return load<f32>(SENSOR_PTR, 36); }
  /** Heading in radians, -pi .. pi; 0 points along +x, counter-clockwise is positive. */
  get heading(): f32 { return load<f32>(SENSOR_PTR, 40); }
  /** Hull points left (100 when new; 0 destroys the ship). */
  get hull(): f32 { return load<f32>(SENSOR_PTR, 44); }
  /** Energy, 0 .. ENERGY_MAX: thrust and mining spend it, it regenerates every tick. */
  get energy(): f32 { return load<f32>(SENSOR_PTR, 48); }
  /** Ore in the hold, 0 .. CARGO_CAPACITY. */
  get cargo(): u32 { return load<u32>(SENSOR_PTR, 52); }
  /** Sensor range this tick (shorter inside a nebula). */
  get sensorRange(): f32 { return load<f32>(SENSOR_PTR, 56); }
  /** Contacts sensed this tick, 0 .. MAX_CONTACTS (nearest first: see contact(i)). */
  get contactCount(): i32 {
    let n = load<u32>(SENSOR_PTR, 60);
    return <i32>(n < <u32>MAX_CONTACTS ? n : <u32>MAX_CONTACTS);
  }

  /** Speed, units/s. */
  get speed(): f32 {
    let vx = this.vx, vy = this.vy;
    return Mathf.sqrt(vx * vx + vy * vy);
  }
  /** True when the hold is full. */
  get cargoFull(): bool { return this.cargo >= CARGO_CAPACITY; }
  /** Position in the whole universe (sector * SECTOR_SIZE + offset), as f64 to keep precision. */
  get globalX(): f64 { return <f64>this.sectorX * <f64>SECTOR_SIZE + <f64>this.x; }
  get globalY(): f64 { return <f64>this.sectorY * <f64>SECTOR_SIZE + <f64>this.y; }
}

/** This ship. */
export const ship = changetype<Ship>(SENSOR_PTR);

// ---------------------------------------------------------------------------------------------
// Contacts

/** Contact kinds. */
export const SHIP: u32 = 1;
export const ASTEROID: u32 = 2;

/**
 * One sensed thing, relative to this ship. A view over its slot in the sensor block (nothing
 * is copied or allocated), valid for the current tick only: next tick the slot holds whatever
 * is then at that rank. Keep `id` (and `index`), not the Contact, to recognise a thing later.
 */
@final @unmanaged
export class Contact {
  /** SHIP (1) or ASTEROID (2). */
  get kind(): u32 { return load<u32>(changetype<usize>(this), 0); }
  /** The asteroid's index inside its sector (0 for ships). */
  get index(): u32 { return load<u32>(changetype<usize>(this), 4); }
  /** Ship id, or for an asteroid its sector packed as sectorKey(x, y). */
  get id(): u64 { return load<u64>(changetype<usize>(this), 8); }
  /** Offset from this ship to the thing's centre. */
  get dx(): f32 { return load<f32>(changetype<usize>(this), 16); }
  get dy(): f32 { return load<f32>(changetype<usize>(this), 20); }
  /** The thing's own velocity (units/s; 0 for asteroids). */
  get vx(): f32 { return load<f32>(changetype<usize>(this), 24); }
  get vy(): f32 { return load<f32>(changetype<usize>(this), 28); }
  /** Distance between centres. */
  get distance(): f32 { return load<f32>(changetype<usize>(this), 32); }
  /** The thing's radius. */
  get radius(): f32 { return load<f32>(changetype<usize>(this), 36); }

  get isShip(): bool { return this.kind == SHIP; }
  get isAsteroid(): bool { return this.kind == ASTEROID; }
  /** Space between the two hulls (distance - radius - SHIP_RADIUS); <= 0 means touching. */
  get gap(): f32 { return this.distance - this.radius - SHIP_RADIUS; }
  /** For an asteroid: true when close enough to mine. */
  get inMiningReach(): bool { return this.gap <= MINING_REACH; }
  /** For an asteroid: its sector (decoded from id). */
  get sectorX(): i32 { return <i32>(this.id >> 32); }
  get sectorY(): i32 { return <i32>this.id; }
}

/** The contact at rank `i` (0 = nearest). Unchecked: call with 0 <= i < ship.contactCount. */
// @ts-ignore: decorator
@inline
export function contact(i: i32): Contact {
  return changetype<Contact>(SENSOR_PTR + SENSOR_HEADER_BYTES + <usize>i * CONTACT_BYTES);
}

/** The nearest contact of `kind` (SHIP or ASTEROID), or null when none is in range. */
export function nearest(kind: u32): Contact | null {
  let n = ship.contactCount;
  let p = SENSOR_PTR + SENSOR_HEADER_BYTES;
  for (let i = 0; i < n; i++, p += CONTACT_BYTES) {
    if (load<u32>(p) == kind) return changetype<Contact>(p);
  }
  return null;
}

/** The nearest asteroid, or null. */
export function nearestAsteroid(): Contact | null { return nearest(ASTEROID); }

/** The nearest other ship, or null. */
export function nearestShip(): Contact | null { return nearest(SHIP); }

/** How many contacts of `kind` are in range. */
export function countContacts(kind: u32): i32 {
  let n = ship.contactCount;
  let count = 0;
  let p = SENSOR_PTR + SENSOR_HEADER_BYTES;
  for (let i = 0; i < n; i++, p += CONTACT_BYTES) {
    if (load<u32>(p) == kind) count++;
  }
  return count;
}

// ---------------------------------------------------------------------------------------------
// Commands: what the ship does this tick. The host zeroes the block before every tick, so a
// tick that sets nothing idles (no thrust, no turn, no mining, no brake).

// @ts-ignore: decorator
@inline const FLAG_MINE: u32 = 1;
// @ts-ignore: decorator
@inline const FLAG_STOP: u32 = 2;

/** Engine power, 0 .. 1 of ACCELERATION along the heading (full thrust costs 3 energy/s). */
export function thrust(power: f32): void {
  store<f32>(COMMAND_PTR, power, 0);
}

/** Turn this tick, -1 .. 1 of TURN_RATE; positive is counter-clockwise. */
export function turn(rate: f32): void {
  store<f32>(COMMAND_PTR, rate, 4);
}

/** Mine the nearest asteroid within MINING_REACH (4 ore/tick for 0.5 energy). */
export function mine(on: bool = true): void {
  setFlag(FLAG_MINE, on);
}

/** Brake hard (keeps 5% of the speed per second; comes to a dead stop when slow). */
export function stop(on: bool = true): void {
  setFlag(FLAG_STOP, on);
}

/** Back to idle: no thrust, no turn, no mining, no brake. */
export function idle(): void {
  store<u64>(COMMAND_PTR, 0, 0);
  store<u64>(COMMAND_PTR, 0, 8);
}

// @ts-ignore: decorator
@inline
function setFlag(flag: u32, on: bool): void {
  let flags = load<u32>(COMMAND_PTR, 8);
  store<u32>(COMMAND_PTR, on ? flags | flag : flags & ~flag, 8);
}

/** What this tick's commands are so far (e.g. for logging). */
export function commandedThrust(): f32 { return load<f32>(COMMAND_PTR, 0); }
export function commandedTurn(): f32 { return load<f32>(COMMAND_PTR, 4); }
export function commandedMine(): bool { return (load<u32>(COMMAND_PTR, 8) & FLAG_MINE) != 0; }
export function commandedStop(): bool { return (load<u32>(COMMAND_PTR, 8) & FLAG_STOP) != 0; }

// ---------------------------------------------------------------------------------------------
// Steering helpers

/** `angle` wrapped into -pi .. pi. */
export function wrapAngle(angle: f32): f32 {
  const PI: f32 = 3.14159265358979;
  const TWO_PI: f32 = 6.28318530717959;
  if (angle > PI || angle < -PI) {
    angle -= TWO_PI * Mathf.floor((angle + PI) / TWO_PI);
  }
  return angle;
}

/** Direction of the offset (dx, dy), radians (0 = +x, counter-clockwise positive). */
export function angleOf(dx: f32, dy: f32): f32 {
  return Mathf.atan2(dy, dx);
}

/** How far to turn from the current heading to face `angle`, -pi .. pi (positive: CCW). */
export function angleTo(angle: f32): f32 {
  return wrapAngle(angle - ship.heading);
}

/**
 * The turn command (-1 .. 1) that faces the offset (dx, dy) without overshooting: full rate
 * while far off, proportional when less than one tick's turn away.
 */
export function steerTowards(dx: f32, dy: f32): f32 {
  return turnFor(angleTo(Mathf.atan2(dy, dx)));
}

/** The turn command that faces directly away from the offset (dx, dy). */
export function steerAway(dx: f32, dy: f32): f32 {
  return turnFor(angleTo(Mathf.atan2(-dy, -dx)));
}

/** The turn command (-1 .. 1) that turns by `delta` radians, as far as one tick allows. */
export function turnFor(delta: f32): f32 {
  let t = delta / TURN_PER_TICK;
  return t > 1 ? 1 : t < -1 ? -1 : t;
}

/** Clamp `v` into lo .. hi. */
export function clampf(v: f32, lo: f32, hi: f32): f32 {
  return v < lo ? lo : v > hi ? hi : v;
}

/** Sectors packed in one u64, the same way asteroid contact ids are (handy as a Set/Map key). */
export function sectorKey(x: i32, y: i32): u64 {
  return (<u64><u32>x << 32) | <u64><u32>y;
}

// ---------------------------------------------------------------------------------------------
// Randomness: the host's stream, seeded by (universe seed, ship, tick), so a replay draws the
// same numbers. Math.random is not available (it would need a seed from outside the sim).

/** 32 random bits. */
export function randomBits(): u32 {
  return hostRandom();
}

/** A random number in [0, 1). */
export function random(): f64 {
  return <f64>hostRandom() / 4294967296.0;
}

/** A random integer in [0, n) (0 when n <= 0). */
export function randomInt(n: i32): i32 {
  if (n <= 0) return 0;
  return <i32>((<u64>hostRandom() * <u64>n) >> 32);
}

/** A random number in [lo, hi). */
export function randomRange(lo: f64, hi: f64): f64 {
  return lo + (hi - lo) * random();
}

// ---------------------------------------------------------------------------------------------
// Logging

// One static line buffer: logging allocates nothing. Lines are cut at LOG_LINE_BYTES (on a
// character boundary); after LOG_LINES_PER_TICK lines with the same ship.tick the SDK drops
// further lines itself, so they cost no fuel (the host would charge 1000 fuel each and drop
// them anyway).
const LINE: usize = memory.data(256, 8);
let lineLen: i32 = 0;
let linesTick: u64 = 0;
let linesSent: i32 = 0;

/**
 * Writes a line to this ship's log (UTF-8, at most 256 bytes, 16 lines per tick). Costs 1000
 * fuel + 1 per byte. Returns false when the line was dropped because of the per-tick limit.
 */
export function log(message: string): bool {
  lineLen = 0;
  appendString(message);
  return flushLine();
}

function flushLine(): bool {
  let now = ship.tick;
  if (now != linesTick) {
    linesTick = now;
    linesSent = 0;
  }
  if (linesSent >= LOG_LINES_PER_TICK) return false;
  linesSent++;
  hostLog(LINE, lineLen);
  return true;
}

/**
 * Appends a string's UTF-16 code units at `ptr` to the line buffer as UTF-8, stopping at a
 * character boundary when full. Takes a raw pointer so that no caller keeps a managed
 * reference across the call (nothing to spill to the GC's shadow stack, which matters in abort).
 */
function appendUtf16(ptr: usize, units: i32): void {
  let out = LINE + <usize>lineLen;
  let end = LINE + <usize>LOG_LINE_BYTES;
  for (let i = 0; i < units; i++) {
    let c = <u32>load<u16>(ptr + (<usize>i << 1));
    if (c < 0x80) {
      if (out + 1 > end) break;
      store<u8>(out++, c);
    } else if (c < 0x800) {
      if (out + 2 > end) break;
      store<u8>(out++, 0xc0 | (c >> 6));
      store<u8>(out++, 0x80 | (c & 0x3f));
    } else {
      // A surrogate pair is one 4-byte character; a lone surrogate becomes U+FFFD.
      if (c >= 0xd800 && c < 0xdc00 && i + 1 < units) {
        let d = <u32>load<u16>(ptr + (<usize>(i + 1) << 1));
        if (d >= 0xdc00 && d < 0xe000) {
          if (out + 4 > end) break;
          let cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          store<u8>(out++, 0xf0 | (cp >> 18));
          store<u8>(out++, 0x80 | ((cp >> 12) & 0x3f));
          store<u8>(out++, 0x80 | ((cp >> 6) & 0x3f));
          store<u8>(out++, 0x80 | (cp & 0x3f));
          i++;
          continue;
        }
      }
      if (c >= 0xd800 && c < 0xe000) c = 0xfffd;
      if (out + 3 > end) break;
      store<u8>(out++, 0xe0 | (c >> 12));
      store<u8>(out++, 0x80 | ((c >> 6) & 0x3f));
      store<u8>(out++, 0x80 | (c & 0x3f));
    }
  }
  lineLen = <i32>(out - LINE);
}

// @ts-ignore: decorator
@inline
function appendString(s: string): void {
  appendUtf16(changetype<usize>(s), s.length);
}

/** Appends a string literal's or other string's text at `ptr` (0: nothing). */
function appendStringAt(ptr: usize): void {
  if (ptr != 0) appendUtf16(ptr, <i32>(load<u32>(ptr - 4) >> 1));
}

/** Appends `v` in decimal (nothing if it does not fit). No allocation, unlike toString(). */
function appendU32(v: u32): void {
  let digits: usize = 0;
  let t = v;
  do { digits++; t /= 10; } while (t != 0);
  let room = <usize>(LOG_LINE_BYTES - lineLen);
  if (digits > room) return;
  let p = LINE + <usize>lineLen + digits;
  do { store<u8>(--p, 0x30 + v % 10); v /= 10; } while (v != 0);
  lineLen += <i32>digits;
}

// ---------------------------------------------------------------------------------------------
// Faults

/**
 * AssemblyScript's abort (a failed bounds check, `throw`, running out of memory), installed by
 * build.mjs with `--use abort=...`; not for calling directly. Logs "abort: MESSAGE at
 * FILE:LINE:COL" so the reason shows in the ship's log, then calls the host's env.abort, which
 * ends the tick with a fault.
 */
export function abortWithLog(message: usize, fileName: usize, lineNumber: u32, columnNumber: u32): void {
  // Raw pointers on purpose: this must work with a broken heap or an exhausted shadow stack.
  lineLen = 0;
  appendStringAt(changetype<usize>("abort: "));
  appendStringAt(message);
  if (fileName != 0) {
    appendStringAt(changetype<usize>(" at "));
    appendStringAt(fileName);
    appendStringAt(changetype<usize>(":"));
    appendU32(lineNumber);
    appendStringAt(changetype<usize>(":"));
    appendU32(columnNumber);
  }
  flushLine();
  hostAbort(message, fileName, lineNumber, columnNumber);
  unreachable();
}
