// SDK and example-script tests: `npm test` in scripting/sdk (or `node test/harness.mjs`).
//
// Builds assets/scripts/*.ts and test/probe.ts with build.mjs (one node process), then runs the
// modules under Node's WebAssembly with host functions that behave like the server's
// (scripting/src/instance.rs): astroboids.log (1000 fuel + 1 per byte, 16 lines a tick, 256
// bytes a line), astroboids.random (SplitMix64, reseeded every tick), env.abort (ends the tick
// with a fault). Sensor blocks are written exactly as docs/scripting-abi.md lays them out, and
// every module is metered the way wasmer's Metering middleware charges fuel (test/meter.mjs).
// Behaviour is checked both on single hand-made scenes and in a small model of the world's
// rules (sim/src/ships.rs, sim/src/mining.rs) run for thousands of ticks.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { meter, wasmInfo } from "./meter.mjs";

const SDK_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const REPO = path.resolve(SDK_DIR, "../..");
const SCRIPTS = path.join(REPO, "assets", "scripts");
const EXAMPLES = ["miner", "explorer", "hunter"];
const OUT = fs.mkdtempSync(path.join(os.tmpdir(), "astroboids-sdk-test-"));
after(() => fs.rmSync(OUT, { recursive: true, force: true }));

// --- ABI v1 (docs/scripting-abi.md) ---------------------------------------------------------

const SENSOR_BLOCK_BYTES = 1344;
const COMMAND_BLOCK_BYTES = 16;
const MAX_CONTACTS = 32;
const ALLOWED_IMPORTS = ["astroboids.log", "astroboids.random", "env.abort"];
const REQUIRED_EXPORTS = { memory: "memory", astroboids_abi: "function", tick: "function", sensor_ptr: "function", command_ptr: "function" };
const LOG_LINES = 16, LOG_BYTES = 256, LOG_FUEL = 1000;
const MAX_FUEL_PER_TICK = 500_000;
const SHIP = 1, ASTEROID = 2;

/** The sector key asteroid contact ids use: (x as u32) << 32 | (y as u32). */
const sectorKey = (x, y) => (BigInt(x >>> 0) << 32n) | BigInt(y >>> 0);

/** Encodes a sensor block; every field defaults to 0, contact distance to |(dx, dy)|. */
function encodeSensors(s) {
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
function decodeCommand(bytes) {
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
function splitmix(state) {
  let s = (state + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
  let z = s;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
  z ^= z >> 31n;
  return { state: s, bits: Number(z >> 32n) >>> 0 };
}

// --- A host like the server's -----------------------------------------------------------------

const modules = new Map(); // name -> wasm bytes, filled by the build

class Host {
  constructor(name, { seed = 1n } = {}) {
    this.name = name;
    this.bytes = modules.get(name);
    assert.ok(this.bytes, `${name} was not built`);
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
    this.memory = this.exports.memory;
    assert.equal(this.exports.astroboids_abi(), 1, "astroboids_abi() must return 1");
    this.sensorPtr = this.exports.sensor_ptr() >>> 0;
    this.commandPtr = this.exports.command_ptr() >>> 0;
    this.startFuel = Number(this.exports.__fuel.value);
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

const DT = 0.1, TURN_RATE = 2.5, ACCEL = 15, MAX_SPEED = 30, BRAKE_KEEP = Math.pow(0.05, DT);
const ENERGY_MAX = 100, REGEN = 4, THRUST_ENERGY = 3, CAPACITY = 400, REACH = 8, ORE_PER_TICK = 4;
const MINE_ENERGY = 0.5, SHIP_RADIUS = 2, RANGE = 200, SECTOR = 1000;

const wrap = (a) => { while (a > Math.PI) a -= 2 * Math.PI; while (a < -Math.PI) a += 2 * Math.PI; return a; };

class World {
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

// --- Build ------------------------------------------------------------------------------------

const BAD = {
  "no_tick.ts": 'import { thrust } from "astroboids";\nexport function tock(): void { thrust(1); }\n',
  "math_random.ts": 'import { thrust } from "astroboids";\nexport function tick(): void { thrust(<f32>Math.random()); }\n',
  "type_error.ts": 'import { ship, thrust } from "astroboids";\nexport function tick(): void {\n  thrust(ship.x + nowhere);\n}\n',
};

let build;
const buildStats = {};

before(() => {
  for (const [name, text] of Object.entries(BAD)) fs.writeFileSync(path.join(OUT, name), text);
  const sources = [
    ...EXAMPLES.map((n) => path.join(SCRIPTS, `${n}.ts`)),
    path.join(SDK_DIR, "test", "probe.ts"),
    ...Object.keys(BAD).map((n) => path.join(OUT, n)),
  ];
  const started = Date.now();
  const r = spawnSync(process.execPath, [path.join(SDK_DIR, "build.mjs"), ...sources, "--out-dir", OUT], { encoding: "utf8" });
  build = { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - started };
  for (const name of [...EXAMPLES, "probe"]) {
    const file = path.join(OUT, `${name}.wasm`);
    if (fs.existsSync(file)) modules.set(name, fs.readFileSync(file));
  }
});

describe("build.mjs", () => {
  test("builds the examples and the probe, one line per module with its size", () => {
    for (const name of [...EXAMPLES, "probe"]) {
      const size = modules.get(name)?.length;
      assert.ok(size, `${name}.wasm missing; stderr:\n${build.stderr}`);
      assert.match(build.stdout, new RegExp(`${name}\\.ts -> .*${name}\\.wasm \\(${size} bytes\\)`));
      buildStats[name] = size;
    }
  });

  test("reports bad scripts and exits 1", () => {
    assert.equal(build.status, 1);
    assert.match(build.stderr, /no_tick\.ts: error: the script does not export a tick function/);
    assert.match(build.stderr, /math_random\.ts: error: the module imports env\.seed .*use random\(\) from "astroboids"/);
    assert.match(build.stderr, /type_error\.ts:3:19: error TS2304: Cannot find name 'nowhere'\./);
    assert.match(build.stderr, /3 of 7 script\(s\) failed/);
    for (const name of Object.keys(BAD)) {
      assert.ok(!fs.existsSync(path.join(OUT, name.replace(/\.ts$/, ".wasm"))), `${name}: no module should be written`);
    }
  });

  test("without the assemblyscript package it says how to install it and exits 2", () => {
    const lonely = path.join(OUT, "lonely");
    fs.mkdirSync(lonely, { recursive: true });
    fs.copyFileSync(path.join(SDK_DIR, "build.mjs"), path.join(lonely, "build.mjs"));
    fs.writeFileSync(path.join(lonely, "package.json"), '{"type":"module"}');
    const r = spawnSync(process.execPath, [path.join(lonely, "build.mjs"), path.join(SCRIPTS, "miner.ts")], { encoding: "utf8", cwd: os.tmpdir() });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /npm ci --prefix /);
  });

  test("bad command lines exit 64", () => {
    const r = spawnSync(process.execPath, [path.join(SDK_DIR, "build.mjs"), "a.ts", "b.ts", "-o", "x.wasm"], { encoding: "utf8" });
    assert.equal(r.status, 64);
    assert.match(r.stderr, /-o takes a single script/);
  });

  for (const name of [...EXAMPLES, "probe"]) {
    test(`${name}.wasm keeps to ABI v1: imports, exports, memory, features, size`, () => {
      const bytes = modules.get(name);
      const mod = new WebAssembly.Module(bytes);
      const imports = WebAssembly.Module.imports(mod);
      for (const i of imports) {
        assert.equal(i.kind, "function", `${i.module}.${i.name} must be a function`);
        assert.ok(ALLOWED_IMPORTS.includes(`${i.module}.${i.name}`), `forbidden import ${i.module}.${i.name}`);
      }
      const exports = Object.fromEntries(WebAssembly.Module.exports(mod).map((e) => [e.name, e.kind]));
      for (const [n, kind] of Object.entries(REQUIRED_EXPORTS)) assert.equal(exports[n], kind, `export ${n}`);
      assert.ok(!Object.keys(exports).some((n) => n.startsWith("wasmer_")));
      const info = wasmInfo(bytes); // also decodes every instruction: throws on SIMD etc.
      assert.equal(info.memories.length, 1);
      assert.equal(info.memories[0].initial, 1);
      assert.equal(info.memories[0].maximum, 16);
      assert.deepEqual(info.features.filter((f) => f !== "bulk-memory" && f !== "sign-extension" && f !== "nontrapping-f2i"), [],
        "only features the server enables");
      assert.equal(info.tables.every((t) => t.initial <= 10_000), true);
      assert.ok(bytes.length < 256 * 1024);
      // Signatures, as the server checks them.
      assert.deepEqual(info.exportSignatures.astroboids_abi, "() -> (i32)");
      assert.deepEqual(info.exportSignatures.tick, "() -> ()");
      assert.deepEqual(info.exportSignatures.sensor_ptr, "() -> (i32)");
      assert.deepEqual(info.exportSignatures.command_ptr, "() -> (i32)");
      for (const i of imports) {
        const want = { "astroboids.log": "(i32, i32) -> ()", "astroboids.random": "() -> (i32)", "env.abort": "(i32, i32, i32, i32) -> ()" };
        assert.equal(info.importSignatures[`${i.module}.${i.name}`], want[`${i.module}.${i.name}`]);
      }
      // The blocks: inside the initial memory, apart, aligned.
      const host = new Host(name);
      const s = host.sensorPtr, c = host.commandPtr;
      assert.ok(s + SENSOR_BLOCK_BYTES <= 65536 && c + COMMAND_BLOCK_BYTES <= 65536);
      assert.ok(s + SENSOR_BLOCK_BYTES <= c || c + COMMAND_BLOCK_BYTES <= s, "blocks overlap");
      assert.equal(s % 8, 0);
      assert.equal(c % 8, 0);
      assert.ok(host.startFuel < 5_000_000, "start function within its fuel");
    });
  }
});

// --- The SDK, through the probe -----------------------------------------------------------------

const MODE = { fields: 1, commands: 2, random: 3, log: 4, abort: 5, deepFault: 6, churn: 7, steer: 8, nearest: 9, throw: 10 };

describe("SDK", () => {
  test("reads every sensor field where the ABI puts it", () => {
    const host = new Host("probe");
    const r = host.tick({
      tick: 2n ** 40n + 7n, id: 9_007_199_254_740_993n, sectorX: -3, sectorY: 1_000_000, x: 1.5, y: 999.25,
      vx: -1, vy: 0.25, heading: 3, hull: 99.5, energy: MODE.fields, cargo: 7, sensorRange: 80,
      contacts: [
        { kind: SHIP, id: 42n, dx: 3, dy: 4, vx: 0.5, vy: -0.5, radius: 2 },
        { kind: ASTEROID, index: 5, id: sectorKey(-2, 7), dx: -6, dy: 8, radius: 4.5 },
      ],
    });
    assert.equal(r.fault, null);
    assert.equal(r.logs[0],
      "tick=1099511627783 id=9007199254740993 sector=-3,1000000 pos=1.5,999.25 vel=-1.0,0.25 heading=3.0 " +
      "hull=99.5 cargo=7 range=80.0 contacts=2 gx=-2998.5 gy=1000000999.25 speed=1.0307764");
    assert.equal(r.logs[1], "contact 0 kind=1 index=0 id=42 d=3.0,4.0 v=0.5,-0.5 dist=5.0 r=2.0 gap=1.0 reach=yes sector=0,42");
    assert.equal(r.logs[2], `contact 1 kind=2 index=5 id=${sectorKey(-2, 7)} d=-6.0,8.0 v=0.0,0.0 dist=10.0 r=4.5 gap=3.5 reach=yes sector=-2,7`);
    assert.equal(r.logs.length, 3);
  });

  test("writes commands where the ABI puts them; idle() clears them", () => {
    const host = new Host("probe");
    const r = host.tick({ tick: 0, energy: MODE.commands });
    assert.equal(r.logs[0], "0.5 -0.25 mine -");
    assert.deepEqual(r.command.raw.slice(0, 12), [...new Uint8Array(new Float32Array([0.5, -0.25]).buffer), 1, 0, 0, 0]);
    assert.deepEqual({ ...r.command, raw: undefined }, { thrust: 0.5, turn: -0.25, mine: true, stop: false, raw: undefined });
    const cleared = host.tick({ tick: 1, energy: MODE.commands });
    assert.deepEqual(cleared.command.raw, new Array(16).fill(0));
  });

  test("random() turns the host's 32 bits into [0, 1); the stream is the host's", () => {
    const host = new Host("probe", { seed: 77n });
    const sensors = { tick: 5, id: 3, energy: MODE.random };
    const r = host.tick(sensors);
    let state = splitmix(77n ^ (3n << 20n) ^ 5n).state;
    const draws = [];
    for (let i = 0; i < 3; i++) { const d = splitmix(state); state = d.state; draws.push(d.bits); }
    const [a, b, c] = r.logs[0].split(" ");
    assert.equal(Number(a), draws[0]);
    assert.equal(Number(b), draws[1] / 4294967296);
    assert.equal(Number(c), Math.floor((draws[2] * 10) / 4294967296));
    // Same tick, same seed: same numbers (replays draw what the original run drew).
    assert.equal(host.tick(sensors).logs[0], r.logs[0]);
  });

  test("log() writes UTF-8, cuts at 256 bytes on a character boundary, stops at 16 lines", () => {
    const host = new Host("probe");
    const r = host.tick({ tick: 0, energy: MODE.log });
    assert.equal(r.logs[0], "h\u00e9llo \u2713 \u{1F680}");
    assert.equal(r.logs[1], "x".repeat(256));
    assert.equal(r.logs[2], "y".repeat(255), "the 2-byte character that does not fit is left out whole");
    assert.equal(r.logs.length, 16);
    assert.equal(r.dropped, 0, "the SDK drops lines past 16 itself, so they cost no fuel");
    assert.equal(r.logs[15], "line 12");
  });

  test("a failed bounds check faults the tick and logs why and where", () => {
    const host = new Host("probe");
    const r = host.tick({ tick: 0, energy: MODE.abort });
    assert.ok(r.fault, "the tick faults");
    assert.ok(r.fault.abort, "through env.abort, which gives the host line and column");
    assert.match(r.logs[0], /^abort: Index out of range at ~lib\/array\.ts:\d+:\d+$/);
    const t = host.tick({ tick: 1, energy: MODE.throw });
    assert.match(t.logs[0], /^abort: thrown on purpose at .*probe\.ts:\d+:\d+$/);
    assert.equal(t.fault.abort.line > 0, true);
    // The script keeps working after faults.
    assert.equal(host.tick({ tick: 2, energy: MODE.commands }).fault, null);
  });

  test("faults deep inside calls leak no shadow stack: 3000 of them, then normal ticks", () => {
    const host = new Host("probe");
    for (let t = 0; t < 3000; t++) {
      const r = host.tick({ tick: t, energy: MODE.deepFault });
      assert.ok(r.fault, `tick ${t} should fault`);
      assert.equal(r.fault.abort, null, "unreachable, not an abort (a shadow stack overflow would abort)");
    }
    for (let t = 3000; t < 3200; t++) assert.equal(host.tick({ tick: t, energy: MODE.churn }).fault, null, `tick ${t}`);
  });

  test("allocating every tick stays healthy for 20,000 ticks (the GC reclaims garbage)", () => {
    const host = new Host("probe");
    let max = 0, total = 0, lines = 0;
    for (let t = 0; t < 20_000; t++) {
      const r = host.tick({ tick: t, energy: MODE.churn });
      assert.equal(r.fault, null, `tick ${t}: ${r.fault?.message}`);
      max = Math.max(max, r.fuel);
      total += r.fuel;
      lines += r.logs.length;
    }
    assert.equal(lines, 200);
    assert.ok(host.pages <= 4, `memory grew to ${host.pages} pages`);
    assert.ok(max < MAX_FUEL_PER_TICK, `a tick took ${max} fuel`);
    buildStats.churn = { avg: Math.round(total / 20_000), max, pages: host.pages };
  });

  test("steering helpers: positive turns counter-clockwise; wrapAngle; sectorKey", () => {
    const host = new Host("probe");
    const steer = (heading, dx, dy) => host.tick({ tick: 0, energy: MODE.steer, heading, contacts: [{ kind: SHIP, dx, dy }] })
      .logs[0].split(" ").map((v, i) => (i === 5 ? BigInt(v) : Number(v)));
    let [to, away, w1, w2, w3, key] = steer(0, 0, 100); // straight to the left
    assert.equal(to, 1);
    assert.equal(away, -1);
    assert.ok(Math.abs(w1 - (4 - 2 * Math.PI)) < 1e-5 && Math.abs(w2 + (4 - 2 * Math.PI)) < 1e-5 && w3 === 1);
    assert.equal(key, sectorKey(-1, 2));
    [to, away] = steer(0, 100, -1); // nearly ahead, a little to the right: a small turn
    assert.ok(to < 0 && to > -0.1, `${to}`);
    [to] = steer(Math.PI / 2, -1, -100); // facing +y, target behind: turn fully, either way
    assert.equal(Math.abs(to), 1);
    [to] = steer(3, -100, -5); // heading 3 rad, target at about -3.09 rad: turn CCW across +-pi
    assert.ok(to > 0 && to < 1, `${to}`);
  });

  test("nearest helpers find the first contact of each kind", () => {
    const host = new Host("probe");
    const r = host.tick({ tick: 0, energy: MODE.nearest, contacts: [
      { kind: SHIP, dx: 1, dy: 0 }, { kind: SHIP, dx: 2, dy: 0 }, { kind: ASTEROID, dx: 3, dy: 0 }, { kind: ASTEROID, dx: 4, dy: 0 }] });
    assert.equal(r.logs[0], "2 0 2 2 none");
    const none = host.tick({ tick: 1, energy: MODE.nearest });
    assert.equal(none.logs[0], "-1 -1 0 0 none");
  });
});

// --- Example scripts ----------------------------------------------------------------------------

/** A ship at rest in the middle of sector (0, 0), heading +x. */
const scene = (extra = {}) => ({ tick: 100, id: 1, x: 500, y: 500, hull: 100, energy: 100, cargo: 0, ...extra });
const rock = (dx, dy, radius = 8, extra = {}) => ({ kind: ASTEROID, id: sectorKey(0, 0), index: 0, dx, dy, radius, ...extra });

describe("miner", () => {
  test("mines and brakes when an asteroid is within reach", () => {
    const r = new Host("miner").tick(scene({ contacts: [rock(15, 0)] })); // gap 15 - 8 - 2 = 5
    assert.equal(r.command.mine, true);
    assert.equal(r.command.stop, true);
    assert.equal(r.command.thrust, 0);
  });

  test("flies at an asteroid out of reach: thrust when facing it, turn towards it", () => {
    const host = new Host("miner");
    const ahead = host.tick(scene({ contacts: [rock(100, 0)] })).command;
    assert.equal(ahead.mine, false);
    assert.equal(ahead.thrust, 1);
    assert.ok(Math.abs(ahead.turn) < 0.01);
    const left = host.tick(scene({ contacts: [rock(0, 100)] })).command;
    assert.equal(left.turn, 1, "counter-clockwise towards +y");
    assert.equal(left.thrust, 0, "no thrust while facing away");
    const right = host.tick(scene({ heading: Math.PI / 2, contacts: [rock(100, 0)] })).command;
    assert.equal(right.turn, -1);
  });

  test("brakes when arriving too fast", () => {
    const r = new Host("miner").tick(scene({ vx: 25, contacts: [rock(30, 0)] })); // gap 20: wants 10 u/s
    assert.equal(r.command.stop, true);
    assert.equal(r.command.thrust, 0);
  });

  test("skips ships in the contact list", () => {
    const r = new Host("miner").tick(scene({ contacts: [{ kind: SHIP, id: 5n, dx: 5, dy: 0 }, rock(0, 100)] }));
    assert.equal(r.command.turn, 1);
  });

  test("with a full hold it stops mining, wanders off, and says so once", () => {
    const host = new Host("miner");
    const first = host.tick(scene({ cargo: 400, contacts: [rock(15, 0)] }));
    assert.equal(first.command.mine, false);
    assert.ok(first.command.thrust > 0);
    assert.deepEqual(first.logs, ["hold full"]);
    assert.deepEqual(host.tick(scene({ tick: 101, cargo: 400, contacts: [rock(15, 0)] })).logs, []);
  });

  test("with nothing in range it cruises", () => {
    const r = new Host("miner").tick(scene());
    assert.ok(r.command.thrust > 0);
    assert.equal(r.command.mine, false);
  });

  test("allocates nothing per tick: its memory is unchanged after 1000 more ticks", () => {
    for (const contacts of [[rock(100, 30)], [rock(15, 0)], []]) {
      const host = new Host("miner");
      for (let t = 0; t < 10; t++) host.tick(scene({ tick: t, contacts }));
      const before = host.state();
      for (let t = 10; t < 1010; t++) host.tick(scene({ tick: t, contacts }));
      assert.deepEqual(host.state(), before);
      assert.equal(host.pages, 1);
    }
  });

  test("in the world model: reaches an asteroid, fills the hold, moves on from a dry one", () => {
    const world = new World();
    const ship = world.addShip({ x: 500, y: 500, heading: 2, host: new Host("miner") });
    const small = world.addAsteroid({ x: 540, y: 560, radius: 6, ore: 60 }); // nearest, runs dry early
    const big = world.addAsteroid({ x: 380, y: 460, radius: 12, ore: 1000 });
    let fuel = 0, max = 0, ticks = 0;
    while (ship.cargo < CAPACITY && ticks < 3000) {
      world.step();
      ticks++;
      fuel += ship.last.fuel;
      max = Math.max(max, ship.last.fuel);
      assert.equal(ship.last.fault, null);
    }
    assert.equal(small.ore, 0, "the small asteroid was mined out");
    assert.equal(ship.cargo, CAPACITY, `hold ${ship.cargo} after ${ticks} ticks`);
    assert.equal(big.ore, 1000 - (CAPACITY - 60));
    assert.ok(ticks < 600, `${ticks} ticks to fill the hold`);
    // Then it leaves.
    for (let t = 0; t < 100; t++) world.step();
    assert.ok(Math.hypot(ship.x - big.x, ship.y - big.y) > 60, "wandered off");
    buildStats.minerFuel = { avg: Math.round(fuel / ticks), max };
    assert.ok(fuel / ticks < 600, `the miner averages ${fuel / ticks} fuel a tick`);
  });
});

describe("explorer", () => {
  test("visits new sectors, logging sparingly, without faults", () => {
    const world = new World();
    const ship = world.addShip({ x: 500, y: 500, host: new Host("explorer", { seed: 5n }) });
    const sectors = new Set();
    let logs = 0, fuel = 0, max = 0;
    for (let t = 0; t < 4000; t++) {
      world.step();
      assert.equal(ship.last.fault, null);
      sectors.add(`${Math.floor(ship.x / SECTOR)},${Math.floor(ship.y / SECTOR)}`);
      logs += ship.last.logs.length;
      fuel += ship.last.fuel;
      max = Math.max(max, ship.last.fuel);
    }
    assert.ok(sectors.size >= 8, `visited ${sectors.size} sectors in 400 s`);
    assert.ok(logs <= sectors.size, `${logs} log lines for ${sectors.size} sectors`);
    buildStats.explorerFuel = { avg: Math.round(fuel / 4000), max, sectors: sectors.size };
  });

  test("different seeds fly different routes (randomness comes from the host)", () => {
    const route = (seed) => {
      const world = new World();
      const ship = world.addShip({ x: 500, y: 500, host: new Host("explorer", { seed }) });
      for (let t = 0; t < 600; t++) world.step();
      return `${Math.round(ship.x)},${Math.round(ship.y)}`;
    };
    assert.equal(route(1n), route(1n));
    const routes = new Set([1n, 2n, 3n, 4n, 5n].map(route));
    assert.ok(routes.size >= 2);
  });

  test("turns away from an asteroid it is closing on", () => {
    const r = new Host("explorer").tick(scene({ vx: 20, contacts: [rock(20, 3)] })); // gap 10, closing
    assert.ok(r.command.turn < 0, `turn ${r.command.turn}`);
  });
});

describe("hunter", () => {
  test("turns towards a ship and thrusts when facing it", () => {
    const host = new Host("hunter");
    const left = host.tick(scene({ contacts: [{ kind: SHIP, id: 7n, dx: 0, dy: 80 }] }));
    assert.equal(left.command.turn, 1);
    assert.deepEqual(left.logs, ["hunting ship 7"]);
    const ahead = host.tick(scene({ contacts: [{ kind: SHIP, id: 7n, dx: 80, dy: 0 }] }));
    assert.equal(ahead.command.thrust, 1);
    assert.deepEqual(ahead.logs, [], "same target: no new log line");
  });

  test("keeps its target when another ship comes closer", () => {
    const host = new Host("hunter");
    host.tick(scene({ contacts: [{ kind: SHIP, id: 7n, dx: 0, dy: 80 }] }));
    const r = host.tick(scene({ contacts: [{ kind: SHIP, id: 8n, dx: 0, dy: -20 }, { kind: SHIP, id: 7n, dx: 0, dy: 80 }] }));
    assert.equal(r.command.turn, 1, "still after ship 7");
  });

  test("with a low hull it turns away from ships instead", () => {
    const r = new Host("hunter").tick(scene({ hull: 30, contacts: [{ kind: SHIP, id: 7n, dx: 0, dy: 80 }] }));
    assert.equal(r.command.turn, -1);
    assert.equal(r.command.thrust, 1);
    assert.deepEqual(r.logs, ["hull low: breaking off and fleeing"]);
  });

  test("in the world model: catches a ship crossing its path", () => {
    const world = new World();
    const hunter = world.addShip({ x: 500, y: 400, heading: 0, host: new Host("hunter") });
    // The prey crosses 150 units ahead at 12 u/s.
    const prey = world.addShip({ x: 600, y: 550, vx: 12, vy: 0, pilot: () => ({ thrust: 0, turn: 0, mine: false, stop: false }) });
    let closest = Infinity, fuel = 0, max = 0, ticks = 0;
    for (; ticks < 600 && closest > 2 * SHIP_RADIUS; ticks++) {
      world.step();
      closest = Math.min(closest, Math.hypot(hunter.x - prey.x, hunter.y - prey.y));
      fuel += hunter.last.fuel;
      max = Math.max(max, hunter.last.fuel);
    }
    assert.ok(closest <= 2 * SHIP_RADIUS, `closest approach ${closest.toFixed(1)}`);
    buildStats.hunterFuel = { avg: Math.round(fuel / ticks), max, ticksToRam: ticks };
  });
});

after(() => {
  if (build) {
    const lines = [
      `build: ${build.ms} ms for ${EXAMPLES.length + 1 + Object.keys(BAD).length} scripts in one process`,
      `sizes: ${JSON.stringify(Object.fromEntries([...EXAMPLES, "probe"].map((n) => [n, buildStats[n]])))}`,
      `fuel per tick: miner ${JSON.stringify(buildStats.minerFuel)}, explorer ${JSON.stringify(buildStats.explorerFuel)}, ` +
        `hunter ${JSON.stringify(buildStats.hunterFuel)}, allocating probe ${JSON.stringify(buildStats.churn)}`,
    ];
    process.stdout.write(lines.map((l) => `# ${l}\n`).join(""));
  }
});
