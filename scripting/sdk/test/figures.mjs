// Measures the fuel figures scripting/sdk/README.md quotes, with test/meter.mjs (which charges
// like the server: scripting/src/metering.rs).
//
//   node scripting/sdk/test/figures.mjs          # the "## Fuel" table (~20 s)
//   node scripting/sdk/test/figures.mjs --gc     # the runtime comparison in "## Memory and the
//                                                # garbage collector" (a few minutes)
//
// Each figure is the fuel of a tick doing the thing minus that of an empty tick, from scripts
// built with build.mjs; figures that include GC work are averages over many ticks. --gc builds
// three allocating scripts (A, B, C below) and the example miner with each runtime and tuning,
// runs each script for 50,000 ticks and reports its worst tick.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ScriptHost, World, ASTEROID, SHIP, CAPACITY, sectorKey } from "./host.mjs";

const SDK_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const REPO = path.resolve(SDK_DIR, "../..");
const MINER = path.join(REPO, "assets", "scripts", "miner.ts");
const MAX_FUEL_PER_TICK = 500_000;
const OUT = fs.mkdtempSync(path.join(os.tmpdir(), "astroboids-sdk-figures-"));
process.on("exit", () => fs.rmSync(OUT, { recursive: true, force: true }));

/**
 * Builds `scripts` ({ name: source text or path of a .ts file }) with build.mjs, or with
 * `options` in place of its asc options (with a copy of build.mjs that differs only in those and
 * in where it finds the SDK); returns { name: wasm bytes }.
 */
function build(scripts, options = null) {
  let builder = path.join(SDK_DIR, "build.mjs");
  if (options) {
    // Next to node_modules/assemblyscript, so that the copy finds the compiler.
    const dir = path.join(SDK_DIR, "node_modules", `.astroboids-figures-${process.pid}`);
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir);
      process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
    }
    let text = fs.readFileSync(builder, "utf8");
    const replace = (from, to) => {
      if (!from.test(text)) throw new Error(`figures.mjs: build.mjs no longer has ${from}`);
      text = text.replace(from, to);
    };
    replace(/const SDK_DIR = .*;/, `const SDK_DIR = ${JSON.stringify(SDK_DIR)};`);
    replace(/export const ASC_OPTIONS = \[[^\]]*\];/, `export const ASC_OPTIONS = ${JSON.stringify([...options, "--noColors"])};`);
    builder = path.join(dir, "build.mjs");
    fs.writeFileSync(builder, text);
  }
  const sources = Object.entries(scripts).map(([name, source]) => {
    const file = path.join(OUT, `${name}.ts`);
    if (source.endsWith(".ts")) fs.copyFileSync(source, file);
    else fs.writeFileSync(file, source);
    return file;
  });
  const dir = fs.mkdtempSync(path.join(OUT, "out-"));
  const r = spawnSync(process.execPath, [builder, ...sources, "--out-dir", dir], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`build failed:\n${r.stderr}`);
  return Object.fromEntries(Object.keys(scripts).map((name) => [name, fs.readFileSync(path.join(dir, `${name}.wasm`))]));
}

/** A ship at rest in the middle of sector (0, 0). */
const scene = (extra = {}) => ({ tick: 100, id: 1, x: 500, y: 500, hull: 100, energy: 100, cargo: 0, ...extra });
const rock = (dx, dy, radius = 8) => ({ kind: ASTEROID, id: sectorKey(0, 0), index: 0, dx, dy, radius });
/** 32 contacts, ships and asteroids alternating, 10 to 320 units away. */
const crowd = Array.from({ length: 32 }, (_, i) => (i % 2
  ? rock(10 * (i + 1), 3)
  : { kind: SHIP, id: BigInt(i + 2), dx: 3, dy: 10 * (i + 1) }));

/**
 * Fuel a tick (script and host) over `ticks` ticks of `sensors(t)`: the average, the worst clean
 * tick, how many ticks faulted and when the first did.
 */
function run(bytes, ticks, sensors) {
  const host = new ScriptHost(bytes);
  let total = 0, max = 0, faults = 0, firstFault = null;
  for (let t = 0; t < ticks; t++) {
    const r = host.tick(sensors(t));
    total += r.fuel;
    if (r.fault) { faults++; firstFault ??= t; } else max = Math.max(max, r.fuel);
  }
  return { avg: total / ticks, max, faults, firstFault, pages: host.pages, startFuel: host.startFuel };
}

function fuelTable() {
  const header = `import { ship, contact, thrust, mine, steerTowards, log } from "astroboids";
class Point { constructor(public x: f32, public y: f32) {} }
let sinkF: f32 = 0;
let sinkI: i32 = 0;
let kept: Point | null = null;
`;
  const items = {
    empty: "",
    field: "sinkF = ship.x;",
    thrust: "thrust(0.5);",
    mine: "mine();",
    loop: "for (let i = 0; i < ship.contactCount; i++) { const c = contact(i); if (c.isShip && c.distance < 30) sinkI++; }",
    steer: "sinkF = steerTowards(ship.vx, ship.vy);",
    log: 'log("hold full");',
    intString: 'sinkI += ("n=" + ship.cargo.toString()).length;',
    floatString: 'sinkI += ("x=" + ship.x.toString()).length;',
    object: "kept = new Point(ship.x, ship.y);",
  };
  const modules = build(Object.fromEntries(Object.entries(items).map(([k, body]) =>
    [k, `${header}export function tick(): void { ${body} }\n`])));
  const sensors = (t) => scene({ tick: t, x: 100 + (t % 800) + (t % 7) / 8, y: 500, vx: 3, vy: 4, cargo: t % 400, contacts: crowd });
  const TICKS = 20_000;
  const base = run(modules.empty, 100, sensors).avg;
  const fig = (name, ticks = 100) => run(modules[name], ticks, sensors).avg - base;
  const logged = new ScriptHost(modules.log);
  const logTick = logged.tick(sensors(0));
  const logScript = logTick.fuel - logged.hostFuel - base;
  const rows = [
    ["reading a sensor field", fig("field")],
    ["writing a command: thrust(0.5) / mine()", `${fig("thrust")} / ${fig("mine")}`],
    ["the loop over 32 contacts (README)", fig("loop")],
    ["steerTowards", fig("steer")],
    ['log("hold full"), script side', `${logScript} (+ host ${logged.hostFuel})`],
    ['"n=" + n.toString(), with its share of GC', fig("intString", TICKS)],
    ['"x=" + x.toString() (f32), with its share of GC', fig("floatString", TICKS)],
    ["a small object's life (allocate, collect)", fig("object", TICKS)],
  ];
  // The miner on single scenes, and over the harness's mining run.
  const miner = build({ miner: MINER }).miner;
  const first = (s) => new ScriptHost(miner).tick(s).fuel;
  rows.push(["miner: idle / mining / approaching (one tick)",
    `${first(scene())} / ${first(scene({ contacts: [rock(15, 0)] }))} / ${first(scene({ contacts: [rock(100, 30)] }))}`]);
  rows.push(["miner: average over the mining run", miningRun(miner).avg]);
  rows.push(["empty tick (subtracted above)", base]);
  for (const [what, fuel] of rows) console.log(`${what.padEnd(52)} ${typeof fuel === "number" ? fuel.toFixed(1) : fuel}`);
}

/** harness.mjs's miner test: fuel a tick until the hold is full. */
function miningRun(bytes) {
  const world = new World();
  const ship = world.addShip({ x: 500, y: 500, heading: 2, host: new ScriptHost(bytes) });
  world.addAsteroid({ x: 540, y: 560, radius: 6, ore: 60 });
  world.addAsteroid({ x: 380, y: 460, radius: 12, ore: 1000 });
  let fuel = 0, ticks = 0;
  while (ship.cargo < CAPACITY && ticks < 3000) {
    world.step();
    ticks++;
    fuel += ship.last.fuel;
  }
  return { avg: fuel / ticks, ticks };
}

// The allocating scripts of the GC comparison. `//COLLECT` becomes `__collect();` for the
// minimal runtime, which frees only when asked.
const GC_SCRIPTS = {
  // A: formats a log line every tick; a Set grows by one entry every 64 ticks (781 by the end).
  A: `import { ship, log } from "astroboids";
const seen = new Set<u64>();
export function tick(): void {
  //COLLECT
  seen.add(ship.tick / 64);
  log("tick " + ship.tick.toString() + " at " + ship.x.toString() + "," + ship.y.toString() + ", " + seen.size.toString() + " seen");
}
`,
  // B: makes 30 small objects a tick and keeps a 2,000-entry Map, replacing one entry a tick.
  B: `import { ship } from "astroboids";
class P { constructor(public x: f32, public y: f32) {} }
const kept = new Map<u32, P>();
let sink: f32 = 0;
export function tick(): void {
  //COLLECT
  let s: f32 = 0;
  for (let i = 0; i < 30; i++) { const p = new P(<f32>i, ship.x); s += p.x * p.y; }
  kept.set(<u32>(ship.tick % 2000), new P(s, ship.y));
  sink = s;
}
`,
  // C: keeps 3,000 live strings of ~50 characters (~100 bytes each in UTF-16; ~300 KB with
  // headers), replacing one a tick: every replaced string and the pieces it is built from are
  // garbage.
  C: `import { ship } from "astroboids";
const live = new Array<string>(3000);
export function tick(): void {
  //COLLECT
  live[<i32>(ship.tick % 3000)] = "entry " + ship.tick.toString() + " " + "x".repeat(40);
}
`,
};

function gcTable() {
  const base = ["-O3", "--noAssert", "--initialMemory", "1", "--maximumMemory", "16", "--use", "abort=~lib/astroboids/index/abortWithLog"];
  const tuning = ["--use", "ASC_GC_SWEEPCOST=100", "--use", "ASC_GC_MARKCOST=4"];
  const variants = [
    ["stub", [...base, "--runtime", "stub"], false],
    ["minimal", [...base, "--runtime", "minimal"], true],
    ["incremental, default tuning", [...base, "--runtime", "incremental"], false],
    ["incremental, as built here", null, false],
  ];
  const TICKS = 50_000;
  const sensors = (t) => scene({ tick: t, x: 100 + (t % 800) + (t % 7) / 8, y: 250 + (t % 500) });
  for (const [name, options, collect] of variants) {
    const sources = Object.fromEntries(Object.entries(GC_SCRIPTS).map(([k, src]) => [k, src.replace("//COLLECT", collect ? "__collect();" : "")]));
    const modules = build({ ...sources, miner: MINER }, options);
    const mining = miningRun(modules.miner);
    console.log(`${name}: miner ${mining.avg.toFixed(1)} fuel a tick, ${modules.miner.length} bytes`);
    for (const k of Object.keys(GC_SCRIPTS)) {
      const r = run(modules[k], TICKS, sensors);
      const over = r.max > MAX_FUEL_PER_TICK ? " (over the 500,000 a tick may spend)" : "";
      console.log(`  ${k}: worst clean tick ${r.max}${over}, average ${Math.round(r.avg)}, ${r.pages} pages, start ${r.startFuel}` +
        (r.faults ? `; ${r.faults} ticks fault, the first at tick ${r.firstFault}` : ""));
    }
  }
  // -O3 against -Oz, on the miner.
  for (const [name, options] of [["-O3", null], ["-Oz", ["-Oz", ...base.slice(1), "--runtime", "incremental", ...tuning]]]) {
    const miner = build({ miner: MINER }, options).miner;
    const first = (s) => new ScriptHost(miner).tick(s).fuel;
    console.log(`miner ${name}: ${miner.length} bytes; mining run ${miningRun(miner).avg.toFixed(1)} fuel a tick; ` +
      `idle / mining / approaching ${first(scene())} / ${first(scene({ contacts: [rock(15, 0)] }))} / ${first(scene({ contacts: [rock(100, 30)] }))}`);
  }
}

if (process.argv.includes("--gc")) gcTable();
else fuelTable();
