// A host like the server's (scripting/src/instance.rs) and a small model of the world's rules,
// for test/harness.mjs and test/figures.mjs. The host: astroboids.log (1000 fuel + 1 per byte,
// 16 lines a tick, 256 bytes a line), astroboids.random (SplitMix64, reseeded every tick),
// env.abort (ends the tick with a fault). Sensor blocks are written exactly as
// docs/scripting-abi.md lays them out, and the module is metered the way the server charges
// fuel (test/meter.mjs).

import { meter } from "./meter.mjs";

// --- ABI v1 (docs/scripting-abi.md) ---------------------------------------------------------

export const SENSOR_BLOCK_BYTES = 1344;
export const COMMAND_BLOCK_BYTES = 16;
export const MAX_CONTACTS = 32;
export const LOG_LINES = 16, LOG_BYTES = 256, LOG_FUEL = 1000;
export const SHIP = 1, ASTEROID = 2;

/** The sector key asteroid contact ids use: (x as u32) << 32 | (y as u32). */
export const sectorKey = (x, y) => (BigInt(x >>> 0) << 32n) | BigInt(y >>> 0);

/** Encodes a sensor block; every field defaults to 0, contact distance to |(dx, dy)|. */
export function encodeSensors(s) {
  const dv = new DataView(new ArrayBuffer(SENSOR_BLOCK_BYTES));
  dv.setBigUint64(0, BigInt(s.tick ?? 0), true);
  dv.setBigUint64(8, BigInt(s.id ?? 0), true);
  dv.setInt32(16, s.sectorX ?? 0, true);
  dv.setInt32(20, s.sectorY ?? 0, true);
  const f = ["x", "y", "vx", "vy", "heading", "hull", "energy"];
  f.forEach((k, i) => dv.setFloat32(24 + 4 * i, s[k] ?? 0, true));
  dv.setUint32(52, s.cargo ?? 0, true);
  dv.setFloat32(56, s.sensorRange ?? 200, true);
  const contacts = (s.contacts ?? []).slice(0, MAX_CONTACTS);
  dv.setUint32(60, contacts.length, true);
  contacts.forEach((c, i) => {
    const o = 64 + 40 * i;
    dv.setUint32(o, c.kind, true);
    dv.setUint32(o + 4, c.index ?? 0, true);
    dv.setBigUint64(o + 8, BigInt(c.id ?? 0), true);
    dv.setFloat32(o + 16, c.dx, true);
    dv.setFloat32(o + 20, c.dy, true);
    dv.setFloat32(o + 24, c.vx ?? 0, true);
    dv.setFloat32(o + 28, c.vy ?? 0, true);
    dv.setFloat32(o + 32, c.distance ?? Math.hypot(c.dx, c.dy), true);
    dv.setFloat32(o + 36, c.radius ?? 2, true);
  });
  return new Uint8Array(dv.buffer);
}

/** The command block as the host reads it: NaN -> 0, clamped, flag bits. */
export function decodeCommand(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, COMMAND_BLOCK_BYTES);
  const clean = (v, lo, hi) => (Number.isNaN(v) ? 0 : Math.min(hi, Math.max(lo, v)));
  const flags = dv.getUint32(8, true);
  return {
    thrust: clean(dv.getFloat32(0, true), 0, 1),
    turn: clean(dv.getFloat32(4, true), -1, 1),
    mine: (flags & 1) !== 0,
    stop: (flags & 2) !== 0,
    raw: Array.from(bytes),
  };
}

/** SplitMix64, as the host's astroboids.random. */
export function splitmix(state) {
  let s = (state + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
  let z = s;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
  z ^= z >> 31n;
  return { state: s, bits: Number(z >> 32n) >>> 0 };
}

export class ScriptHost {
  /** Instantiates `bytes` metered (test/meter.mjs), running its start function. */
  constructor(bytes, { seed = 1n } = {}) {
    this.bytes = bytes;
    this.seed = BigInt(seed);
    this.random = 0n;
    this.logs = [];
    this.dropped = 0;
    this.hostFuel = 0;
    this.abort = null;
    const self = this;
    const imports = {
      astroboids: {
        log(ptr, len) {
          self.hostFuel += LOG_FUEL + Math.max(len, 0);
          if (self.logs.length >= LOG_LINES) { self.dropped++; return; }
          const keep = Math.min(len, LOG_BYTES);
          const bytes = new Uint8Array(self.memory.buffer, ptr >>> 0, keep);
          self.logs.push(new TextDecoder().decode(bytes));
        },
        random() {
          const r = splitmix(self.random);
          self.random = r.state;
          return r.bits | 0;
        },
      },
      env: {
        abort(message, file, line, column) {
          self.abort = { line, column };
          throw new WebAssembly.RuntimeError(`abort() called at line ${line}, column ${column}`);
        },
      },
    };
    this.instance = new WebAssembly.Instance(new WebAssembly.Module(meter(this.bytes)), imports);
    this.exports = this.instance.exports;
    this.startFuel = Number(this.exports.__fuel.value); // the start function's (top-level code's)
    this.memory = this.exports.memory;
    if (this.exports.astroboids_abi() !== 1) throw new Error("astroboids_abi() must return 1");
    this.sensorPtr = this.exports.sensor_ptr() >>> 0;
    this.commandPtr = this.exports.command_ptr() >>> 0;
  }

  /** Runs one tick on `sensors`; returns { command, fuel, logs, dropped, fault }. */
  tick(sensors) {
    const mem = new Uint8Array(this.memory.buffer);
    mem.set(encodeSensors(sensors), this.sensorPtr);
    mem.fill(0, this.commandPtr, this.commandPtr + COMMAND_BLOCK_BYTES);
    // Reseeded every tick from (seed, ship, tick), like the server.
    this.random = splitmix(this.seed ^ (BigInt(sensors.id ?? 0) << 20n) ^ BigInt(sensors.tick ?? 0)).state;
    this.logs = [];
    this.dropped = 0;
    this.hostFuel = 0;
    this.abort = null;
    const before = this.exports.__fuel.value;
    let fault = null;
    try {
      this.exports.tick();
    } catch (e) {
      if (!(e instanceof WebAssembly.RuntimeError)) throw e;
      fault = { message: e.message, abort: this.abort };
    }
    const fuel = Number(this.exports.__fuel.value - before) + this.hostFuel;
    const block = new Uint8Array(this.memory.buffer).slice(this.commandPtr, this.commandPtr + COMMAND_BLOCK_BYTES);
    return { command: fault ? null : decodeCommand(block), fuel, logs: this.logs, dropped: this.dropped, fault };
  }

  /** Memory outside the two shared blocks (what a script's state looks like to the host). */
  state() {
    const mem = new Uint8Array(this.memory.buffer).slice();
    mem.fill(0, this.sensorPtr, this.sensorPtr + SENSOR_BLOCK_BYTES);
    mem.fill(0, this.commandPtr, this.commandPtr + COMMAND_BLOCK_BYTES);
    return mem;
  }

  get pages() {
    return this.memory.buffer.byteLength / 65536;
  }
}

// --- A small model of the world's rules ---------------------------------------------------------
// Movement as sim/src/ships.rs, mining as sim/src/mining.rs, sensors nearest first (ties by
// id), 32 contacts, range 200. No collisions: tests read distances instead.

export const DT = 0.1, TURN_RATE = 2.5, ACCEL = 15, MAX_SPEED = 30, BRAKE_KEEP = Math.pow(0.05, DT);
export const ENERGY_MAX = 100, REGEN = 4, THRUST_ENERGY = 3, CAPACITY = 400, REACH = 8, ORE_PER_TICK = 4;
export const MINE_ENERGY = 0.5, SHIP_RADIUS = 2, RANGE = 200, SECTOR = 1000;

const wrap = (a) => { while (a > Math.PI) a -= 2 * Math.PI; while (a < -Math.PI) a += 2 * Math.PI; return a; };

export class World {
  constructor() {
    this.tick = 0;
    this.ships = [];
    this.asteroids = [];
  }
  addShip(s) {
    const ship = { id: this.ships.length + 1, vx: 0, vy: 0, heading: 0, hull: 100, energy: ENERGY_MAX, cargo: 0, ...s };
    this.ships.push(ship);
    return ship;
  }
  addAsteroid(a) {
    const sx = Math.floor(a.x / SECTOR), sy = Math.floor(a.y / SECTOR);
    const index = this.asteroids.filter((o) => o.sx === sx && o.sy === sy).length;
    const rock = { radius: 8, ore: 1000, ...a, sx, sy, index };
    this.asteroids.push(rock);
    return rock;
  }
  contactsOf(ship) {
    const out = [];
    for (const o of this.ships) {
      if (o === ship) continue;
      const dx = o.x - ship.x, dy = o.y - ship.y, d = Math.hypot(dx, dy);
      if (d <= RANGE) out.push({ kind: SHIP, id: o.id, index: 0, dx, dy, vx: o.vx, vy: o.vy, distance: d, radius: SHIP_RADIUS, order: [0, o.id], ref: o });
    }
    for (const a of this.asteroids) {
      const dx = a.x - ship.x, dy = a.y - ship.y, d = Math.hypot(dx, dy);
      if (d <= RANGE) out.push({ kind: ASTEROID, id: sectorKey(a.sx, a.sy), index: a.index, dx, dy, distance: d, radius: a.radius, order: [1, a.index], ref: a });
    }
    out.sort((p, q) => p.distance - q.distance || p.order[0] - q.order[0] || p.order[1] - q.order[1]);
    return out.slice(0, MAX_CONTACTS);
  }
  sensorsOf(ship) {
    const sectorX = Math.floor(ship.x / SECTOR), sectorY = Math.floor(ship.y / SECTOR);
    return {
      tick: this.tick, id: ship.id, sectorX, sectorY, x: ship.x - sectorX * SECTOR, y: ship.y - sectorY * SECTOR,
      vx: ship.vx, vy: ship.vy, heading: ship.heading, hull: ship.hull, energy: ship.energy, cargo: ship.cargo,
      sensorRange: RANGE, contacts: this.contactsOf(ship),
    };
  }
  /** One tick: every ship decides from the same snapshot, then movement and mining apply. */
  step() {
    const decided = [];
    for (const ship of this.ships) {
      const sensors = this.sensorsOf(ship);
      let command = { thrust: 0, turn: 0, mine: false, stop: false };
      if (ship.host) {
        const r = ship.host.tick(sensors);
        ship.last = r;
        if (r.fault) ship.faults = (ship.faults ?? 0) + 1;
        else command = r.command;
      } else if (ship.pilot) {
        command = ship.pilot(ship, this.tick);
      }
      decided.push([ship, command, sensors.contacts]);
    }
    for (const [ship, cmd] of decided) {
      ship.heading = wrap(ship.heading + cmd.turn * TURN_RATE * DT);
      let thrust = cmd.thrust;
      const cost = thrust * THRUST_ENERGY * DT;
      if (cost > ship.energy) thrust *= ship.energy / cost;
      ship.energy = Math.max(0, ship.energy - thrust * THRUST_ENERGY * DT);
      let vx = ship.vx + Math.cos(ship.heading) * thrust * ACCEL * DT;
      let vy = ship.vy + Math.sin(ship.heading) * thrust * ACCEL * DT;
      if (cmd.stop) {
        vx *= BRAKE_KEEP; vy *= BRAKE_KEEP;
        if (vx * vx + vy * vy < 0.05 * 0.05) vx = vy = 0;
      }
      const speed = Math.hypot(vx, vy);
      if (speed > MAX_SPEED) { vx *= MAX_SPEED / speed; vy *= MAX_SPEED / speed; }
      ship.vx = vx; ship.vy = vy;
      ship.energy = Math.min(ENERGY_MAX, ship.energy + REGEN * DT);
    }
    for (const [ship, cmd, contacts] of decided) {
      if (!cmd.mine) continue;
      const space = Math.min(CAPACITY - ship.cargo, ORE_PER_TICK);
      if (space <= 0 || ship.energy < MINE_ENERGY) continue;
      for (const c of contacts) {
        if (c.kind !== ASTEROID) continue;
        if (c.distance - c.radius - SHIP_RADIUS > REACH) break;
        const taken = Math.min(space, c.ref.ore);
        if (taken === 0) continue;
        c.ref.ore -= taken;
        ship.cargo += taken;
        ship.energy -= MINE_ENERGY;
        break;
      }
    }
    for (const ship of this.ships) {
      ship.x += ship.vx * DT;
      ship.y += ship.vy * DT;
    }
    this.tick++;
  }
}
