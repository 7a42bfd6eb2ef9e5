// Fuel metering for tests: rewrites a wasm module so that it counts the fuel it uses, priced
// and charged exactly like the server's metering (scripting/src/metering.rs).
//
//   import { meter } from "./meter.mjs";
//   const metered = meter(wasmBytes);          // same module + an exported i64 global "__fuel"
//   ... instantiate, call tick ..., instance.exports.__fuel.value is the count so far (BigInt)
//
// Like the server, it cuts each function into segments, each ending at an accounting operator
// (loop, end, if, else, br, br_if, br_table, call, call_indirect, return: `is_accounting`), and
// adds a segment's whole cost before the segment runs: SEGMENT_COST plus each operator's price
// (`operator_cost`: stack shuffling, constants and block markers free, loads and stores, calls,
// host calls, divisions, square roots and runtime calls dearer, everything else 1), plus, in a
// function's first segment, one unit per LOCALS_PER_FUEL locals it declares. Right before
// memory.fill/copy/init, table.copy/init and memory.grow it adds their length price, read from
// the operand, as the server does. So after a call that completes, the count equals the fuel
// the host would charge for it, host functions' own charges aside (astroboids.log takes 1000 +
// 1 per byte inside the host; harness.mjs adds that). A call that traps has paid for its whole
// last segment, as on the server; the meter never stops a run for want of fuel.
// Handles what AssemblyScript emits: MVP, sign-extension, non-trapping float-to-int, bulk memory,
// multi-value, reference types' table ops. Throws on anything else (e.g. SIMD).

// --- Prices: copied from scripting/src/metering.rs ----------------------------------------------
// harness.mjs ("meter.mjs prices match scripting/src/metering.rs") parses that file and fails,
// naming the difference, when any of this no longer matches it.

/** The `pub const`s of scripting/src/metering.rs. */
export const METERING = {
  COST_TABLE_VERSION: 5,
  SEGMENT_COST: 2,
  HOST_CALL_COST: 40,
  CALL_COST: 16,
  CALL_INDIRECT_COST: 24,
  BULK_BYTES_PER_FUEL_LOG2: 3,
  TABLE_ELEMENT_COST: 8,
  RUNTIME_CALL_COST: 40,
  MEMORY_ACCESS_COST: 4,
  LOCALS_PER_FUEL: 4,
  GROW_PAGE_COST: 65536,
};
/** `ScriptLimits::max_memory_pages` (scripting/src/limits.rs): memory.grow is priced for at most this many pages. */
export const MAX_MEMORY_PAGES = 16;

const M = METERING;
/** Price of an operator `operator_cost` does not list. */
export const DEFAULT_PRICE = 1;
/**
 * `operator_cost`, by wasmparser's operator names. "Call(import)" is a call of an imported
 * (host) function, "Call" of one the module defines.
 */
export const OPERATOR_PRICES = {
  LocalGet: 0, LocalSet: 0, LocalTee: 0, I32Const: 0, I64Const: 0, F32Const: 0, F64Const: 0,
  Drop: 0, Nop: 0, Block: 0, Loop: 0, Else: 0, End: 0,
  "Call(import)": M.HOST_CALL_COST,
  Call: M.CALL_COST,
  CallIndirect: M.CALL_INDIRECT_COST,
  I32DivS: 8, I32DivU: 8, I32RemS: 8, I32RemU: 8, I64DivS: 8, I64DivU: 8, I64RemS: 8, I64RemU: 8,
  F32Div: 4, F64Div: 4, F32Sqrt: 4, F64Sqrt: 4,
  ...Object.fromEntries([
    "I32Load", "I64Load", "F32Load", "F64Load", "I32Load8S", "I32Load8U", "I32Load16S", "I32Load16U",
    "I64Load8S", "I64Load8U", "I64Load16S", "I64Load16U", "I64Load32S", "I64Load32U",
    "I32Store", "I64Store", "F32Store", "F64Store", "I32Store8", "I32Store16", "I64Store8", "I64Store16", "I64Store32",
  ].map((n) => [n, M.MEMORY_ACCESS_COST])),
  ...Object.fromEntries(["MemoryFill", "MemoryCopy", "MemoryInit", "TableCopy", "TableInit", "DataDrop", "ElemDrop", "MemorySize"]
    .map((n) => [n, M.RUNTIME_CALL_COST])),
  MemoryGrow: 64,
};
/** `length_price`: what is charged for the length operand, right before the operator runs. */
export const LENGTH_PRICES = {
  MemoryFill: { per: "bytesShift", by: "BULK_BYTES_PER_FUEL_LOG2" },
  MemoryCopy: { per: "bytesShift", by: "BULK_BYTES_PER_FUEL_LOG2" },
  MemoryInit: { per: "bytesShift", by: "BULK_BYTES_PER_FUEL_LOG2" },
  TableCopy: { per: "element", by: "TABLE_ELEMENT_COST" },
  TableInit: { per: "element", by: "TABLE_ELEMENT_COST" },
  MemoryGrow: { per: "page", by: "GROW_PAGE_COST" },
};
/** `is_accounting`: the operators that end a segment (those this meter decodes). */
export const ACCOUNTING = new Set(["Loop", "End", "If", "Else", "Br", "BrTable", "BrIf", "Call", "CallIndirect", "Return"]);
/** Operators `is_accounting` or `operator_cost` may name that this meter does not decode (it throws on them). */
export const NOT_DECODED = new Set(["ReturnCall", "ReturnCallIndirect", "Throw", "ThrowRef", "Rethrow", "Delegate", "Catch",
  "CallRef", "ReturnCallRef", "BrOnNull", "BrOnNonNull", "BrOnCast", "BrOnCastFail", "Try", "TryTable", "CatchAll"]);

/** wasmparser's names of the opcodes that are priced, end a segment, or are priced by length. */
const OPCODE_NAMES = {
  0x00: "Unreachable", 0x01: "Nop", 0x02: "Block", 0x03: "Loop", 0x04: "If", 0x05: "Else", 0x0b: "End",
  0x0c: "Br", 0x0d: "BrIf", 0x0e: "BrTable", 0x0f: "Return", 0x10: "Call", 0x11: "CallIndirect",
  0x1a: "Drop", 0x1b: "Select", 0x1c: "TypedSelect", 0x20: "LocalGet", 0x21: "LocalSet", 0x22: "LocalTee",
  0x23: "GlobalGet", 0x24: "GlobalSet", 0x25: "TableGet", 0x26: "TableSet",
  0x28: "I32Load", 0x29: "I64Load", 0x2a: "F32Load", 0x2b: "F64Load", 0x2c: "I32Load8S", 0x2d: "I32Load8U",
  0x2e: "I32Load16S", 0x2f: "I32Load16U", 0x30: "I64Load8S", 0x31: "I64Load8U", 0x32: "I64Load16S",
  0x33: "I64Load16U", 0x34: "I64Load32S", 0x35: "I64Load32U", 0x36: "I32Store", 0x37: "I64Store",
  0x38: "F32Store", 0x39: "F64Store", 0x3a: "I32Store8", 0x3b: "I32Store16", 0x3c: "I64Store8",
  0x3d: "I64Store16", 0x3e: "I64Store32", 0x3f: "MemorySize", 0x40: "MemoryGrow",
  0x41: "I32Const", 0x42: "I64Const", 0x43: "F32Const", 0x44: "F64Const",
  0x6d: "I32DivS", 0x6e: "I32DivU", 0x6f: "I32RemS", 0x70: "I32RemU",
  0x7f: "I64DivS", 0x80: "I64DivU", 0x81: "I64RemS", 0x82: "I64RemU",
  0x91: "F32Sqrt", 0x95: "F32Div", 0x9f: "F64Sqrt", 0xa3: "F64Div",
};
/** The same for the 0xfc prefix, by sub-opcode. */
const FC_NAMES = {
  8: "MemoryInit", 9: "DataDrop", 10: "MemoryCopy", 11: "MemoryFill", 12: "TableInit", 13: "ElemDrop",
  14: "TableCopy", 15: "TableGrow", 16: "TableSize", 17: "TableFill",
};
/** Every operator name the meter knows (for harness.mjs's check against the server's tables). */
export const DECODED_NAMES = new Set([...Object.values(OPCODE_NAMES), ...Object.values(FC_NAMES)]);

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

/** Emits `counter += n` for each counter global. */
function addConst(counters, n) {
  const out = [];
  for (const c of counters) out.push(0x23, ...uleb(c), 0x42, ...sleb64(n), 0x7c, 0x24, ...uleb(c));
  return out;
}

/**
 * Emits, right before an operator priced by its length (an i32 on top of the stack): take the
 * length into `scratch`, add its price to each counter, push it back. Stack-neutral.
 */
function addLength(counters, scratch, price) {
  const length = [0x23, ...uleb(scratch), 0xad]; // global.get scratch; i64.extend_i32_u
  let cost;
  if (price.per === "bytesShift") cost = [...length, 0x42, ...sleb64(M[price.by]), 0x88]; // i64.shr_u
  else if (price.per === "element") cost = [...length, 0x42, ...sleb64(M[price.by]), 0x7e]; // i64.mul
  else {
    // select(cap, pages, pages > cap) * cost: the pages asked for, at most the memory limit.
    const cap = [0x42, ...sleb64(MAX_MEMORY_PAGES)];
    cost = [...cap, ...length, ...length, ...cap, 0x56 /* i64.gt_u */, 0x1b /* select */, 0x42, ...sleb64(M[price.by]), 0x7e];
  }
  const out = [0x24, ...uleb(scratch)];
  for (const c of counters) out.push(0x23, ...uleb(c), ...cost, 0x7c, 0x24, ...uleb(c));
  out.push(0x23, ...uleb(scratch));
  return out;
}

/** The name `operator_cost` and `is_accounting` know the operator at `pos` (its opcode) by. */
function nameAt(bytes, pos) {
  const op = bytes[pos];
  return op === 0xfc ? FC_NAMES[new Reader(bytes, pos + 1).u32()] : OPCODE_NAMES[op];
}

/**
 * Rewrites one function body (locals + code) so that it adds the fuel it uses to every global
 * in `counters`; `scratch` is an i32 global for length operands.
 */
function meterBody(body, counters, scratch, importedFunctions) {
  const r = new Reader(body);
  let locals = 0;
  const groups = r.u32();
  for (let i = 0; i < groups; i++) { locals += r.u32(); r.pos++; }
  const out = Array.from(body.subarray(0, r.pos));
  // Declared locals (not parameters) are charged with the first segment, which every call runs.
  let cost = Math.floor(locals / M.LOCALS_PER_FUEL);
  let segment = [];
  while (r.pos < body.length) {
    const start = r.pos;
    const name = nameAt(body, start);
    const op = r.byte();
    skipImmediates(op, r);
    if (name === "Call" && new Reader(body, start + 1).u32() < importedFunctions) cost += OPERATOR_PRICES["Call(import)"];
    else cost += OPERATOR_PRICES[name] ?? DEFAULT_PRICE;
    if (LENGTH_PRICES[name]) segment.push(...addLength(counters, scratch, LENGTH_PRICES[name]));
    for (let i = start; i < r.pos; i++) segment.push(body[i]);
    if (ACCOUNTING.has(name)) {
      // The whole segment is paid for before any of it runs.
      out.push(...addConst(counters, cost + M.SEGMENT_COST), ...segment);
      segment = [];
      cost = 0;
    }
  }
  if (segment.length) throw new Error("meter: a function body does not end with `end`");
  return out;
}

/**
 * Returns a copy of `bytes` that counts the fuel it uses into an exported i64 "__fuel".
 * With `{ perFunction: true }` it also exports "__fuel_N" for each defined function N (0 = the
 * first function after the imports), counting the fuel of the code inside that function itself
 * (callees not included; a call's own price is the caller's).
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
  // Imported globals come first in the global index space; imported functions in the
  // function index space (calls of them are host calls).
  let importedGlobals = 0;
  let importedFunctions = 0;
  const imports = sections.find((s) => s.id === SECTION.import);
  if (imports) {
    const r = new Reader(imports.content);
    for (let n = r.u32(); n > 0; n--) {
      r.name(); r.name();
      const kind = r.byte();
      if (kind === 0) { r.skipLeb(); importedFunctions++; }
      else if (kind === 1) { r.pos++; const f = r.byte(); r.skipLeb(); if (f & 1) r.skipLeb(); }
      else if (kind === 2) { const f = r.byte(); r.skipLeb(); if (f & 1) r.skipLeb(); }
      else if (kind === 3) { r.pos += 2; importedGlobals++; }
      else throw new Error(`meter: unknown import kind ${kind}`);
    }
  }
  // Append the globals: the counter "__fuel", one counter per function if asked, the scratch.
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
  const counters = 1 + (perFunction ? functions : 0);
  const scratch = g + counters;
  const counter = [0x7e, 0x01, 0x42, 0x00, 0x0b]; // (mut i64) (i64.const 0)
  const scratchGlobal = [0x7f, 0x01, 0x41, 0x00, 0x0b]; // (mut i32) (i32.const 0)
  globals.content = Uint8Array.from([...uleb(definedGlobals + counters + 1), ...globalEntries,
    ...Array(counters).fill(counter).flat(), ...scratchGlobal]);
  // Export the counters.
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
  exports.content = Uint8Array.from([...uleb(exportCount + counters), ...exportEntries, ...newExports.flat()]);
  // Meter every function body.
  if (code) {
    const r = new Reader(code.content);
    const n = r.u32();
    const out = [...uleb(n)];
    for (let i = 0; i < n; i++) {
      const size = r.u32();
      const body = meterBody(code.content.subarray(r.pos, r.pos + size), perFunction ? [g, g + 1 + i] : [g], scratch, importedFunctions);
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
