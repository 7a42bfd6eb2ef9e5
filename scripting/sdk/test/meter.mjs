// Fuel metering for tests: rewrites a wasm module so that it counts the instructions it runs,
// the way the server's wasmer Metering middleware charges fuel (one unit per operator).
//
//   import { meter } from "./meter.mjs";
//   const metered = meter(wasmBytes);          // same module + an exported i64 global "__fuel"
//   ... instantiate, call tick ..., instance.exports.__fuel.value is the count so far (BigInt)
//
// Like wasmer's middleware, the cost of a straight run of operators is added just before the
// operator that ends it (loop, end, if, else, br, br_if, br_table, call, call_indirect,
// return), including that operator, so the count equals the fuel the host would charge for the
// same calls (host functions charge extra themselves: astroboids.log takes 1000 + 1 per byte).
// Handles what AssemblyScript emits: MVP, sign-extension, non-trapping float-to-int, bulk memory,
// multi-value, reference types' table ops. Throws on anything else (e.g. SIMD).

const SECTION = { type: 1, import: 2, func: 3, table: 4, memory: 5, global: 6, export: 7, start: 8, elem: 9, code: 10, data: 11, datacount: 12, tag: 13 };
// The order sections must appear in a module (by id).
const SECTION_ORDER = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];

class Reader {
  constructor(bytes, pos = 0) { this.b = bytes; this.pos = pos; }
  byte() { return this.b[this.pos++]; }
  u32() {
    let result = 0, shift = 0, byte;
    do {
      byte = this.b[this.pos++];
      result |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80);
    return result >>> 0;
  }
  skipLeb() { while (this.b[this.pos++] & 0x80); }
  name() { const n = this.u32(); const s = Buffer.from(this.b.subarray(this.pos, this.pos + n)).toString("utf8"); this.pos += n; return s; }
}

function uleb(n) {
  const out = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb64(n) {
  let v = BigInt(n);
  const out = [];
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    const done = (v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function section(id, content) {
  return [id, ...uleb(content.length), ...content];
}

// Operators after which wasmer's Metering charges what it accumulated (charged before them,
// including themselves).
const ACCOUNTING = new Set([0x03 /* loop */, 0x0b /* end */, 0x04 /* if */, 0x05 /* else */, 0x0c /* br */,
  0x0d /* br_if */, 0x0e /* br_table */, 0x10 /* call */, 0x11 /* call_indirect */, 0x0f /* return */]);

/** Skips one operator's immediates; returns nothing. `r.pos` is just after the opcode. */
function skipImmediates(op, r) {
  if (op === 0x02 || op === 0x03 || op === 0x04) {
    const t = r.b[r.pos];
    if (t === 0x40 || (t >= 0x6f && t <= 0x7f)) r.pos++;
    else r.skipLeb(); // type index (s33)
    return;
  }
  if (op === 0x0c || op === 0x0d || op === 0x10) return r.skipLeb();
  if (op === 0x0e) { const n = r.u32(); for (let i = 0; i <= n; i++) r.skipLeb(); return; }
  if (op === 0x11) { r.skipLeb(); r.skipLeb(); return; }
  if (op === 0x1c) { const n = r.u32(); for (let i = 0; i < n; i++) r.pos++; return; }
  if (op >= 0x20 && op <= 0x26) return r.skipLeb();
  if (op >= 0x28 && op <= 0x3e) { r.skipLeb(); r.skipLeb(); return; }
  if (op === 0x3f || op === 0x40) { r.pos++; return; }
  if (op === 0x41 || op === 0x42) return r.skipLeb();
  if (op === 0x43) { r.pos += 4; return; }
  if (op === 0x44) { r.pos += 8; return; }
  if (op === 0xd0) { r.pos++; return; }
  if (op === 0xd1) return;
  if (op === 0xd2) return r.skipLeb();
  if (op === 0xfc) {
    const sub = r.u32();
    if (sub <= 7) return;
    if (sub === 8) { r.skipLeb(); r.pos++; return; }
    if (sub === 9 || sub === 13) return r.skipLeb();
    if (sub === 10) { r.pos += 2; return; }
    if (sub === 11) { r.pos++; return; }
    if (sub === 12 || sub === 14) { r.skipLeb(); r.skipLeb(); return; }
    if (sub >= 15 && sub <= 17) return r.skipLeb();
    throw new Error(`meter: unknown 0xfc operator ${sub}`);
  }
  if (op === 0x00 || op === 0x01 || op === 0x05 || op === 0x0b || op === 0x0f || op === 0x1a || op === 0x1b) return;
  if (op >= 0x45 && op <= 0xc4) return;
  throw new Error(`meter: unsupported opcode 0x${op.toString(16)}`);
}

/** Rewrites one function body (locals + code) to count into global `g` (and `own`, if set). */
function meterBody(body, g, own) {
  const r = new Reader(body);
  const groups = r.u32();
  for (let i = 0; i < groups; i++) { r.skipLeb(); r.pos++; }
  const out = Array.from(body.subarray(0, r.pos));
  const add = (global, n) => out.push(0x23, ...uleb(global), 0x42, ...sleb64(n), 0x7c, 0x24, ...uleb(global));
  const charge = (n) => { add(g, n); if (own !== undefined) add(own, n); };
  let acc = 0;
  while (r.pos < body.length) {
    const start = r.pos;
    const op = r.byte();
    skipImmediates(op, r);
    acc++;
    if (ACCOUNTING.has(op)) {
      charge(acc);
      acc = 0;
    }
    for (let i = start; i < r.pos; i++) out.push(body[i]);
  }
  return out;
}

/**
 * Returns a copy of `bytes` that counts executed operators into an exported i64 "__fuel".
 * With `{ perFunction: true }` it also exports "__fuel_N" for each defined function N (0 = the
 * first function after the imports), counting the operators run inside that function itself.
 */
export function meter(bytes, { perFunction = false } = {}) {
  bytes = new Uint8Array(bytes);
  if (bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[4] !== 1) throw new Error("meter: not a wasm v1 module");
  const sections = [];
  for (let r = new Reader(bytes, 8); r.pos < bytes.length;) {
    const id = r.byte();
    const size = r.u32();
    sections.push({ id, content: bytes.subarray(r.pos, r.pos + size) });
    r.pos += size;
  }
  // Imported globals come first in the global index space.
  let importedGlobals = 0;
  const imports = sections.find((s) => s.id === SECTION.import);
  if (imports) {
    const r = new Reader(imports.content);
    for (let n = r.u32(); n > 0; n--) {
      r.name(); r.name();
      const kind = r.byte();
      if (kind === 0) r.skipLeb();
      else if (kind === 1) { r.pos++; const f = r.byte(); r.skipLeb(); if (f & 1) r.skipLeb(); }
      else if (kind === 2) { const f = r.byte(); r.skipLeb(); if (f & 1) r.skipLeb(); }
      else if (kind === 3) { r.pos += 2; importedGlobals++; }
      else throw new Error(`meter: unknown import kind ${kind}`);
    }
  }
  // Append the counter global: (mut i64) = 0.
  let globals = sections.find((s) => s.id === SECTION.global);
  let definedGlobals = 0;
  let globalEntries = [];
  if (globals) {
    const r = new Reader(globals.content);
    definedGlobals = r.u32();
    globalEntries = Array.from(globals.content.subarray(r.pos));
  } else {
    globals = { id: SECTION.global };
    sections.push(globals);
  }
  const g = importedGlobals + definedGlobals;
  const code = sections.find((s) => s.id === SECTION.code);
  const functions = code ? new Reader(code.content).u32() : 0;
  const added = 1 + (perFunction ? functions : 0);
  const counter = [0x7e, 0x01, 0x42, 0x00, 0x0b]; // (mut i64) (i64.const 0)
  globals.content = Uint8Array.from([...uleb(definedGlobals + added), ...globalEntries, ...Array(added).fill(counter).flat()]);
  // Export it as "__fuel".
  let exports = sections.find((s) => s.id === SECTION.export);
  let exportCount = 0;
  let exportEntries = [];
  if (exports) {
    const r = new Reader(exports.content);
    exportCount = r.u32();
    exportEntries = Array.from(exports.content.subarray(r.pos));
  } else {
    exports = { id: SECTION.export };
    sections.push(exports);
  }
  const exportGlobal = (text, index) => {
    const name = Array.from(Buffer.from(text));
    return [...uleb(name.length), ...name, 0x03, ...uleb(index)];
  };
  const newExports = [exportGlobal("__fuel", g)];
  for (let i = 0; perFunction && i < functions; i++) newExports.push(exportGlobal(`__fuel_${i}`, g + 1 + i));
  exports.content = Uint8Array.from([...uleb(exportCount + added), ...exportEntries, ...newExports.flat()]);
  // Meter every function body.
  if (code) {
    const r = new Reader(code.content);
    const n = r.u32();
    const out = [...uleb(n)];
    for (let i = 0; i < n; i++) {
      const size = r.u32();
      const body = meterBody(code.content.subarray(r.pos, r.pos + size), g, perFunction ? g + 1 + i : undefined);
      r.pos += size;
      out.push(...uleb(body.length), ...body);
    }
    code.content = Uint8Array.from(out);
  }
  // Custom sections (names, source maps) are dropped; the others are written in module order.
  const known = sections.filter((s) => s.id !== 0).sort((a, b) => SECTION_ORDER.indexOf(a.id) - SECTION_ORDER.indexOf(b.id));
  const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  for (const s of known) out.push(...section(s.id, s.content));
  return Uint8Array.from(out);
}

const VALTYPE = { 0x7f: "i32", 0x7e: "i64", 0x7d: "f32", 0x7c: "f64", 0x7b: "v128", 0x70: "funcref", 0x6f: "externref" };

/**
 * What the server's validation looks at: function signatures of imports and exports, memories,
 * tables, and the post-MVP features the code uses (decoding every instruction; unknown ones,
 * e.g. SIMD, throw).
 */
export function wasmInfo(bytes) {
  bytes = new Uint8Array(bytes);
  const sections = new Map();
  for (let r = new Reader(bytes, 8); r.pos < bytes.length;) {
    const id = r.byte();
    const size = r.u32();
    if (id !== 0) sections.set(id, bytes.subarray(r.pos, r.pos + size));
    r.pos += size;
  }
  const features = new Set();
  const types = [];
  if (sections.has(SECTION.type)) {
    const r = new Reader(sections.get(SECTION.type));
    for (let n = r.u32(); n > 0; n--) {
      if (r.byte() !== 0x60) throw new Error("wasmInfo: unknown type form");
      const params = Array.from({ length: r.u32() }, () => VALTYPE[r.byte()]);
      const results = Array.from({ length: r.u32() }, () => VALTYPE[r.byte()]);
      if (results.length > 1) features.add("multi-value");
      types.push(`(${params.join(", ")}) -> (${results.join(", ")})`);
    }
  }
  const funcTypes = []; // type of every function, imports first
  const importSignatures = {};
  const memories = [];
  const tables = [];
  const limits = (r) => { const f = r.byte(); const initial = r.u32(); return { initial, maximum: f & 1 ? r.u32() : null }; };
  if (sections.has(SECTION.import)) {
    const r = new Reader(sections.get(SECTION.import));
    for (let n = r.u32(); n > 0; n--) {
      const name = `${r.name()}.${r.name()}`;
      const kind = r.byte();
      if (kind === 0) { const t = r.u32(); funcTypes.push(t); importSignatures[name] = types[t]; }
      else if (kind === 1) { r.pos++; tables.push(limits(r)); }
      else if (kind === 2) memories.push(limits(r));
      else { r.pos += 2; importSignatures[name] = "global"; }
    }
  }
  if (sections.has(SECTION.func)) {
    const r = new Reader(sections.get(SECTION.func));
    for (let n = r.u32(); n > 0; n--) funcTypes.push(r.u32());
  }
  if (sections.has(SECTION.table)) {
    const r = new Reader(sections.get(SECTION.table));
    for (let n = r.u32(); n > 0; n--) { r.pos++; tables.push(limits(r)); }
  }
  if (sections.has(SECTION.memory)) {
    const r = new Reader(sections.get(SECTION.memory));
    for (let n = r.u32(); n > 0; n--) memories.push(limits(r));
  }
  const exportSignatures = {};
  if (sections.has(SECTION.export)) {
    const r = new Reader(sections.get(SECTION.export));
    for (let n = r.u32(); n > 0; n--) {
      const name = r.name();
      const kind = r.byte();
      const index = r.u32();
      exportSignatures[name] = kind === 0 ? types[funcTypes[index]] : ["function", "table", "memory", "global"][kind];
    }
  }
  if (tables.length > 1) features.add("reference-types");
  if (sections.has(SECTION.code)) {
    const r = new Reader(sections.get(SECTION.code));
    for (let n = r.u32(); n > 0; n--) {
      const size = r.u32();
      const end = r.pos + size;
      for (let g = r.u32(); g > 0; g--) { r.skipLeb(); r.pos++; }
      while (r.pos < end) {
        const op = r.byte();
        if ((op === 0x02 || op === 0x03 || op === 0x04) && !(r.b[r.pos] === 0x40 || VALTYPE[r.b[r.pos]])) features.add("multi-value");
        if (op >= 0xc0 && op <= 0xc4) features.add("sign-extension");
        if (op === 0x1c || op === 0x25 || op === 0x26 || (op >= 0xd0 && op <= 0xd2)) features.add("reference-types");
        if (op === 0xfc) {
          const sub = r.b[r.pos];
          features.add(sub <= 7 ? "nontrapping-f2i" : sub <= 14 ? "bulk-memory" : "reference-types");
        }
        skipImmediates(op, r);
      }
    }
  }
  return { importSignatures, exportSignatures, memories, tables, features: [...features].sort() };
}
