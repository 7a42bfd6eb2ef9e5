// The nearest-asteroid bot of `benches/benches/script_stage.rs` in isolated-vm 5.0.4: the same
// dense scene (32 contacts per ship, half of them asteroids), the same sensor block layout
// (1,344 bytes: contact count at byte 60, 40-byte contacts from byte 64, kind at +0, dx/dy at
// +16/+20, distance at +32) and the same command (thrust 1, turn by/(|bx|+1)).
//
// Two ways to drive it, one thread, per ship-tick:
// - batched: every ship's sensor block copied into the isolate in one buffer, one call runs the
//   bot for all of them, the commands copied back (isolated-vm's best case);
// - per ship: one call per ship with its own block (what one sandboxed script per ship costs).
//
//   cd benches/isolated-vm && npm install
//   (cd node_modules/isolated-vm && npx --yes node-gyp rebuild --release --nodedir="$(dirname "$(dirname "$(readlink -f "$(which node)")")")")
//   node bench.mjs
//
// The second line builds the native addon against the installed node's own headers: npm skips
// install scripts unless allowed, and without network node-gyp cannot fetch headers.
//
// Prints the median over the timed ticks, in microseconds per ship-tick.
import ivm from "isolated-vm";

const BLOCK = 1344;
const CONTACTS = 32;
const TICKS = 30;

function denseBlocks(ships) {
  const buf = new ArrayBuffer(BLOCK * ships);
  const f = new Float32Array(buf);
  const u = new Uint32Array(buf);
  for (let s = 0; s < ships; s++) {
    const ship = s + 1;
    const base = (s * BLOCK) / 4;
    u[base + 15] = CONTACTS;
    for (let i = 0; i < CONTACTS; i++) {
      const at = base + 16 + i * 10;
      const distance = 5 + ((ship * 7 + i * 13) % 97);
      u[at] = i % 2 === 0 ? 1 : 2;
      u[at + 1] = i;
      f[at + 4] = distance * 0.6;
      f[at + 5] = distance * 0.8;
      f[at + 6] = 1;
      f[at + 7] = -1;
      f[at + 8] = distance;
      f[at + 9] = 4;
    }
  }
  return buf;
}

const BOT = `
function steer(f, u, base, cmd, c) {
  const count = u[base + 15];
  let best = Infinity, bx = 0, by = 0, found = false;
  for (let i = 0; i < count; i++) {
    const at = base + 16 + i * 10;
    if (u[at] === 2 && f[at + 8] < best) { best = f[at + 8]; bx = f[at + 4]; by = f[at + 5]; found = true; }
  }
  cmd[c] = found ? 1 : 0;
  cmd[c + 1] = found ? by / (Math.abs(bx) + 1) : 0;
}
function tickAll(buf, ships) {
  const f = new Float32Array(buf), u = new Uint32Array(buf);
  const cmd = new Float32Array(ships * 4);
  for (let s = 0; s < ships; s++) steer(f, u, s * ${BLOCK / 4}, cmd, s * 4);
  return cmd.buffer;
}
function tickOne(buf) {
  const cmd = new Float32Array(4);
  steer(new Float32Array(buf), new Uint32Array(buf), 0, cmd, 0);
  return cmd.buffer;
}
`;

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const isolate = new ivm.Isolate({ memoryLimit: 512 });
const context = isolate.createContextSync();
isolate.compileScriptSync(BOT).runSync(context);
const tickAll = context.global.getSync("tickAll", { reference: true });
const tickOne = context.global.getSync("tickOne", { reference: true });

for (const ships of [1000, 10000]) {
  const blocks = denseBlocks(ships);
  const batched = [];
  for (let t = 0; t < TICKS + 5; t++) {
    const start = process.hrtime.bigint();
    const out = tickAll.applySync(undefined, [new ivm.ExternalCopy(blocks).copyInto({ release: true }), ships], {
      result: { copy: true },
    });
    const took = Number(process.hrtime.bigint() - start) / 1e3;
    if (new Float32Array(out)[0] !== 1) throw new Error("the bot found no asteroid");
    if (t >= 5) batched.push(took / ships);
  }
  const perShip = [];
  for (let t = 0; t < Math.max(3, TICKS / 10) + 1; t++) {
    const start = process.hrtime.bigint();
    for (let s = 0; s < ships; s++) {
      const block = blocks.slice(s * BLOCK, (s + 1) * BLOCK);
      tickOne.applySync(undefined, [new ivm.ExternalCopy(block).copyInto({ release: true })], {
        result: { copy: true },
      });
    }
    const took = Number(process.hrtime.bigint() - start) / 1e3;
    if (t >= 1) perShip.push(took / ships);
  }
  console.log(
    `isolated-vm ${ships} ships: batched ${median(batched).toFixed(2)} us/ship-tick, ` +
      `one call per ship ${median(perShip).toFixed(2)} us/ship-tick`,
  );
}
