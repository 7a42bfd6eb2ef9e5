#!/usr/bin/env node
// Builds AstroBoids ship scripts (AssemblyScript) into ABI v1 WebAssembly modules.
//
// Usage (a stable interface: `astroboids script build FILE.ts` runs
// `node <sdk>/build.mjs FILE.ts -o OUT.wasm`):
//
//   node build.mjs FILE.ts [FILE2.ts ...] [--out-dir DIR | -o OUT.wasm] [--wat]
//
//   FILE.ts        a script: `import { ... } from "astroboids"` and `export function tick(): void`
//   -o OUT.wasm    where to write the module (only with a single FILE)
//   --out-dir DIR  write DIR/<name>.wasm for each FILE (created if missing)
//                  default: <name>.wasm next to each FILE
//   --wat          also write the text format next to each .wasm (<name>.wat), for reading
//
// Output: one line per built module on stdout, `SOURCE -> OUT (N bytes)`. Compile errors are
// printed to stderr as `file:line:col: error TSxxxx: message` with the source line; every file
// is attempted before exiting.
//
// Exit status: 0 all built; 1 a script did not compile or breaks the ABI (forbidden import,
// missing tick, too large); 2 the assemblyscript package is not installed (run
// `npm ci --prefix <this directory>`); 64 bad command line.
//
// All files compile in this one node process with asc's programmatic API (asc.main), with:
//   -O3 --noAssert --runtime incremental --initialMemory 1 --maximumMemory 16
//   --use abort=~lib/astroboids/index/abortWithLog
//   --use ASC_GC_SWEEPCOST=100 --use ASC_GC_MARKCOST=4
// plus the SDK's assembly/exports.ts as a second entry file (it supplies the astroboids_abi,
// sensor_ptr and command_ptr exports). README.md explains each choice.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const SDK_DIR = path.dirname(fileURLToPath(import.meta.url));
const SDK_ASSEMBLY = path.join(SDK_DIR, "assembly");
const EXPORTS_FILE = path.join(SDK_ASSEMBLY, "exports.ts");

/** Module size the server accepts. */
const MAX_MODULE_BYTES = 256 * 1024;

/** The imports ABI v1 allows, "module.name" -> signature. */
const ALLOWED_IMPORTS = new Set(["astroboids.log", "astroboids.random", "env.abort"]);
const REQUIRED_EXPORTS = ["memory", "astroboids_abi", "tick", "sensor_ptr", "command_ptr"];

/** What to use instead of an import the server refuses. */
const IMPORT_HINTS = {
  "env.seed": "Math.random is not available to scripts (it needs entropy from outside the simulation): use random() from \"astroboids\"",
  "env.Date.now": "scripts have no clock (Date.now): time is ship.tick",
  "env.performance.now": "scripts have no clock (performance.now): time is ship.tick",
  "env.trace": "trace() is not available: use log() from \"astroboids\"",
};
const hintFor = (name) =>
  IMPORT_HINTS[name] ??
  (name.startsWith("env.console.") ? "console is not available: use log() from \"astroboids\"" :
  name.startsWith("wasi") ? "WASI is not available to scripts" :
  "only astroboids.log, astroboids.random and env.abort may be imported (docs/scripting-abi.md)");

/** asc options for every script; see README.md ("Build options"). */
export const ASC_OPTIONS = [
  "-O3",
  "--noAssert",
  "--runtime", "incremental",
  "--initialMemory", "1",
  "--maximumMemory", "16",
  "--use", "abort=~lib/astroboids/index/abortWithLog",
  "--use", "ASC_GC_SWEEPCOST=100",
  "--use", "ASC_GC_MARKCOST=4",
  "--noColors",
];

function usage(message) {
  if (message) process.stderr.write(`build.mjs: ${message}\n`);
  process.stderr.write("usage: node build.mjs FILE.ts [FILE2.ts ...] [--out-dir DIR | -o OUT.wasm] [--wat]\n");
  process.exit(64);
}

function parseArgs(argv) {
  const files = [];
  let outFile = null, outDir = null, wat = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-o" || a === "--out" || a === "--outFile") {
      if (i + 1 >= argv.length) usage(`${a} needs a file name`);
      outFile = argv[++i];
    } else if (a === "--out-dir") {
      if (i + 1 >= argv.length) usage("--out-dir needs a directory");
      outDir = argv[++i];
    } else if (a === "--wat") {
      wat = true;
    } else if (a === "-h" || a === "--help") {
      process.stdout.write("usage: node build.mjs FILE.ts [FILE2.ts ...] [--out-dir DIR | -o OUT.wasm] [--wat]\n");
      process.exit(0);
    } else if (a.startsWith("-")) {
      usage(`unknown option ${a}`);
    } else {
      files.push(a);
    }
  }
  if (files.length === 0) usage("no script given");
  if (outFile && outDir) usage("-o and --out-dir exclude each other");
  if (outFile && files.length > 1) usage("-o takes a single script; use --out-dir for several");
  for (const f of files) {
    if (!f.endsWith(".ts")) usage(`${f}: scripts are .ts files`);
  }
  return { files, outFile, outDir, wat };
}

/** Loads asc, or exits 2 telling how to install it. */
async function loadAsc() {
  try {
    return (await import("assemblyscript/asc")).default;
  } catch (e) {
    if (e && (e.code === "ERR_MODULE_NOT_FOUND" || e.code === "MODULE_NOT_FOUND")) {
      const rel = path.relative(process.cwd(), SDK_DIR) || ".";
      process.stderr.write(
        `build.mjs: the AssemblyScript compiler is not installed.\n` +
        `  run: npm ci --prefix ${rel}\n`,
      );
      process.exit(2);
    }
    throw e;
  }
}

/** Line and column (1-based) of `offset` in `text`. */
function lineCol(text, offset) {
  let line = 1, start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) { line++; start = i + 1; }
  }
  return { line, col: offset - start + 1, start };
}

const CATEGORY = ["pedantic", "info", "warning", "error"];

/**
 * Rewires the module after asc compiled it (before optimisation): checks that the script
 * exports `tick(): void`, and exports a wrapper as `tick` that first resets the GC's shadow
 * stack pointer. A tick cut short by a trap or by running out of fuel leaves the pointer where
 * it was; without the reset every such fault would leak shadow-stack space until the stack
 * overflowed and the script faulted on every tick. At the start of a tick no frame is live,
 * so the initial value is always right. The optimiser inlines the script's tick into it.
 */
class TickWrapper {
  afterCompile(module) {
    const b = this.binaryen;
    const exp = module.getExport("tick");
    if (!exp) {
      throw new Error("the script does not export a tick function: add `export function tick(): void { ... }`");
    }
    const info = b.getExportInfo(exp);
    if (info.kind !== b.ExternalFunction) {
      throw new Error("`tick` must be a function: `export function tick(): void { ... }`");
    }
    const fn = b.getFunctionInfo(module.getFunction(info.value));
    if (fn.params !== b.none || fn.results !== b.none) {
      throw new Error("`tick` must take no parameters and return void: `export function tick(): void { ... }`");
    }
    const body = [];
    const sp = module.getGlobal("~lib/memory/__stack_pointer");
    if (sp) {
      const init = b.getExpressionInfo(b.getGlobalInfo(sp).init);
      if (init.id === b.ConstId) {
        body.push(module.global.set("~lib/memory/__stack_pointer", module.i32.const(init.value)));
      }
    }
    body.push(module.call(info.value, [], b.none));
    module.addFunction("~astroboids/tick", b.none, b.none, [], module.block(null, body, b.none));
    module.removeExport("tick");
    module.addFunctionExport("~astroboids/tick", "tick");
  }
}

/** Compiles one script; returns { ok, out, bytes } and prints diagnostics. */
async function buildOne(asc, source, out, wat) {
  const texts = new Map(); // internal path -> source text, for diagnostics
  const written = new Map();
  const diagnostics = [];
  const stderr = asc.createMemoryStream();
  const stdout = asc.createMemoryStream();
  const sdkPath = (internal) => {
    const m = internal.match(/^~lib\/astroboids\/(.*)$/);
    return m ? path.relative(process.cwd(), path.join(SDK_ASSEMBLY, m[1])) : internal;
  };
  const args = [source, EXPORTS_FILE, "--outFile", out, ...ASC_OPTIONS];
  if (wat) args.push("--textFile", out.replace(/\.wasm$/, "") + ".wat");
  const result = await asc.main(args, {
    stdout,
    stderr,
    transforms: [TickWrapper],
    readFile(name, baseDir) {
      const abs = path.resolve(baseDir, name);
      if (path.basename(abs) === "asconfig.json") return null; // scripts build the same anywhere
      // The package "astroboids" is this SDK: asc looks for it as node_modules/astroboids/...
      // in the script's folder first, so every such lookup is answered from assembly/.
      const m = abs.match(/[\\/]node_modules[\\/]astroboids[\\/](.*)$/);
      const real = m ? path.join(SDK_ASSEMBLY, m[1]) : abs;
      try {
        const text = fs.readFileSync(real, "utf8");
        texts.set(path.normalize(real), text);
        return text;
      } catch {
        return null;
      }
    },
    writeFile(name, contents, baseDir) {
      written.set(path.resolve(baseDir, name), contents);
      return true;
    },
    listFiles() {
      return [];
    },
    reportDiagnostic(d) {
      diagnostics.push(d);
    },
  });

  let errors = 0;
  for (const d of diagnostics) {
    const category = CATEGORY[d.category] ?? "error";
    if (category === "error") errors++;
    if (category !== "error" && category !== "warning") continue;
    let where = "";
    let excerpt = "";
    if (d.range && d.range.source) {
      const internal = d.range.source.normalizedPath;
      const shown = sdkPath(internal);
      let text = null;
      if (internal.startsWith("~lib/astroboids/")) text = texts.get(path.normalize(path.join(SDK_ASSEMBLY, internal.slice(16))));
      else if (internal.startsWith("~lib/")) text = asc.libraryFiles[internal.slice(5).replace(/\.ts$/, "")] ?? null;
      else text = texts.get(path.normalize(path.resolve(internal))) ?? null;
      if (text !== null) {
        const { line, col, start } = lineCol(text, d.range.start);
        where = `${shown}:${line}:${col}: `;
        let end = text.indexOf("\n", start);
        if (end < 0) end = text.length;
        const src = text.slice(start, end).replace(/\r$/, "");
        const width = Math.max(1, Math.min(d.range.end, end) - d.range.start);
        excerpt = `    ${src}\n    ${" ".repeat(col - 1)}${"^".repeat(width)}\n`;
      } else {
        where = `${shown}: `;
      }
    }
    process.stderr.write(`${where}${category} TS${d.code}: ${d.message}\n${excerpt}`);
  }
  if (result.error) {
    if (errors === 0) {
      // Not a diagnostic: a failed transform check (tick) or a compiler failure.
      const text = String(result.error.message ?? result.error).replace(/^Error: /, "");
      process.stderr.write(`${source}: error: ${text}\n`);
      const extra = stderr.toString().trim();
      if (extra && !extra.includes(text)) process.stderr.write(extra + "\n");
    }
    return { ok: false };
  }

  const binary = written.get(path.resolve(out));
  if (!binary) {
    process.stderr.write(`${source}: error: the compiler produced no module\n`);
    return { ok: false };
  }
  const problems = checkModule(binary);
  if (problems.length) {
    for (const p of problems) process.stderr.write(`${source}: error: ${p}\n`);
    return { ok: false };
  }
  for (const [file, contents] of written) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, contents);
  }
  return { ok: true, bytes: binary.length };
}

/** What the server would refuse: imports, exports, size. */
function checkModule(binary) {
  const problems = [];
  if (binary.length > MAX_MODULE_BYTES) {
    problems.push(`the module is ${binary.length} bytes; the server takes at most ${MAX_MODULE_BYTES}`);
  }
  const module = new WebAssembly.Module(binary);
  for (const imp of WebAssembly.Module.imports(module)) {
    const name = `${imp.module}.${imp.name}`;
    if (imp.kind !== "function" || !ALLOWED_IMPORTS.has(name)) {
      problems.push(`the module imports ${name} (${imp.kind}), which the server refuses: ${hintFor(name)}`);
    }
  }
  const exports = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
  for (const name of REQUIRED_EXPORTS) {
    if (!exports.has(name)) problems.push(`the module does not export ${name}`);
  }
  for (const name of exports) {
    if (name.startsWith("wasmer_")) problems.push(`export ${name}: names starting with wasmer_ are reserved`);
  }
  return problems;
}

function outputFor(source, { outFile, outDir }) {
  if (outFile) return outFile;
  const name = path.basename(source, ".ts") + ".wasm";
  return outDir ? path.join(outDir, name) : path.join(path.dirname(source), name);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  for (const f of opts.files) {
    if (!fs.existsSync(f)) {
      process.stderr.write(`build.mjs: ${f}: no such file\n`);
      process.exit(1);
    }
  }
  const asc = await loadAsc();
  let failed = 0;
  for (const source of opts.files) {
    const out = outputFor(source, opts);
    const r = await buildOne(asc, source, out, opts.wat);
    if (r.ok) process.stdout.write(`${source} -> ${out} (${r.bytes} bytes)\n`);
    else failed++;
  }
  if (failed) {
    process.stderr.write(`build.mjs: ${failed} of ${opts.files.length} script(s) failed\n`);
    process.exit(1);
  }
}

main().catch((e) => {
  process.stderr.write(`build.mjs: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
