//! `astroboids script build|check`, and loading the script given to `astroboids sim --script`.
//!
//! TypeScript is compiled by the SDK's `build.mjs` (AssemblyScript, run by Node.js); this module
//! only finds Node and the SDK, explains what is missing, and validates the result with the
//! same checks the server applies.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use astroboids_net::text::escape_control;
use astroboids_scripting::{CompilerKind, ScriptEngine};

use crate::cli::{BuildArgs, CheckArgs, SdkArgs};
use crate::universe_config::load_config;

/// `astroboids script build FILE.ts [-o OUT.wasm]`.
pub fn build(args: &BuildArgs) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.file.with_extension("wasm"));
    compile_typescript(&args.file, &out, &args.sdk)?;
    let wasm = read_module(&out)?;
    // The server's compiler and checks, trial start included.
    let engine = ScriptEngine::new(load_config(None)?.scripts.limits(), CompilerKind::Cranelift);
    engine
        .load_for_upload(&wasm)
        .with_context(|| format!("{} was built but the server would reject it", out.display()))?;
    println!(
        "built {} ({} bytes), valid for ABI v1",
        out.display(),
        wasm.len()
    );
    Ok(())
}

/// `astroboids script check FILE.wasm|FILE.wat`.
pub fn check(args: &CheckArgs) -> Result<()> {
    let config = load_config(args.config.as_deref())?;
    let limits = config.scripts.limits();
    let wasm = if is_wat(&args.file) {
        read_wat(&args.file)?
    } else {
        read_module(&args.file)?
    };
    // The server's compiler and checks: shape limits, the compile-time cap, a trial start.
    let engine = ScriptEngine::new(limits.clone(), CompilerKind::Cranelift);
    let compiled = engine
        .load_for_upload(&wasm)
        .with_context(|| format!("{} is not a valid ship script", args.file.display()))?;
    let summary = compiled.describe();
    println!("{}: valid ship script (ABI v1)", args.file.display());
    println!(
        "  size       {} bytes (limit {})",
        wasm.len(),
        limits.max_module_bytes
    );
    println!("  id         {:032x}", compiled.hash());
    println!("  imports");
    // Import and export names come from the module: shown escaped, as script text is.
    for (name, signature) in &summary.imports {
        println!("    {:<24} {signature}", escape_control(name));
    }
    println!("  exports");
    for (name, signature) in &summary.exports {
        println!("    {:<24} {signature}", escape_control(name));
    }
    let declared = summary
        .memory_max_pages
        .map_or("no maximum".to_string(), |p| format!("up to {p} pages"));
    println!(
        "  memory     {} pages at start, {declared}; the host allows {} pages ({} KiB)",
        summary.memory_min_pages,
        limits.max_memory_pages,
        limits.max_memory_pages * 64
    );
    println!(
        "  fuel       {} per tick into a bucket of {}, at most {} per tick; {} to start",
        config.scripts.fuel_per_tick,
        config.scripts.fuel_bucket_max,
        config.scripts.fuel_burst_max,
        limits.start_fuel
    );
    println!(
        "  start      ran in a trial instance: {} fuel of {}",
        compiled.trial_start_fuel(),
        limits.start_fuel
    );
    println!(
        "  log        {} lines per tick, {} bytes per line, {} fuel per call",
        limits.log_lines_per_tick, limits.log_line_bytes, limits.log_fuel
    );
    Ok(())
}

/// The module bytes of a `--script` argument: a .wasm file as is, a .wat file (WebAssembly
/// text, as hand-written test modules are) assembled, a .ts file compiled first (into the
/// temp directory, leaving the source tree alone).
pub fn load_script_argument(path: &Path, sdk: &SdkArgs) -> Result<Vec<u8>> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("wasm") => read_module(path),
        Some("wat") => read_wat(path),
        Some("ts") => {
            let stem = path
                .file_stem()
                .map_or("script".into(), |s| s.to_string_lossy());
            let out = std::env::temp_dir()
                .join(format!("astroboids-{}", std::process::id()))
                .join(format!("{stem}.wasm"));
            compile_typescript(path, &out, sdk)?;
            let wasm = read_module(&out);
            let _ = std::fs::remove_dir_all(out.parent().expect("a file in a directory"));
            wasm
        }
        _ => bail!(
            "{}: a script is a .wasm module, a .wat module (WebAssembly text) or a .ts file \
             (AssemblyScript)",
            path.display()
        ),
    }
}

/// Upper bound on a module file we read at all; the configured limit is checked after.
const MODULE_FILE_MAX_BYTES: u64 = 64 << 20;

fn read_module(path: &Path) -> Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read script {}", path.display()))?
        .len();
    if size > MODULE_FILE_MAX_BYTES {
        bail!(
            "{} is {size} bytes; no ship script is anywhere near that large",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read script {}", path.display()))
}

fn is_wat(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wat")
}

/// Assembles a WebAssembly text file; a syntax error names the file, line and column.
fn read_wat(path: &Path) -> Result<Vec<u8>> {
    let text = read_module(path)?;
    match wasmer::wat2wasm(&text) {
        Ok(wasm) => Ok(wasm.into_owned()),
        Err(mut e) => {
            e.set_path(path);
            bail!("{} is not valid WebAssembly text: {e}", path.display())
        }
    }
}

/// Runs `node <sdk>/build.mjs SOURCE -o OUT`, explaining a missing Node, SDK or npm install.
fn compile_typescript(source: &Path, out: &Path, sdk: &SdkArgs) -> Result<()> {
    if !source.is_file() {
        bail!("cannot read script {}: no such file", source.display());
    }
    let sdk_dir = find_sdk(sdk)?;
    let build_script = sdk_dir.join("build.mjs");
    if !sdk_dir.join("node_modules/assemblyscript").is_dir() {
        bail!(
            "the SDK's packages are not installed: run `npm ci --prefix {}` (needs Node.js and \
             the npm registry), then try again",
            sdk_dir.display()
        );
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let status = Command::new("node")
        .arg(&build_script)
        .arg(source)
        .arg("-o")
        .arg(out)
        .status()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "`node` was not found on PATH: building TypeScript scripts needs Node.js 20 or \
                 newer (https://nodejs.org); .wasm scripts run without it"
            ),
            _ => anyhow::anyhow!("cannot run node: {e}"),
        })?;
    if !status.success() {
        bail!(
            "{} did not compile (the compiler's messages are above)",
            source.display()
        );
    }
    Ok(())
}

/// `--sdk` / `$ASTROBOIDS_SDK`, else `scripting/sdk` in this checkout.
fn find_sdk(sdk: &SdkArgs) -> Result<PathBuf> {
    let (dir, origin) = match &sdk.sdk {
        Some(dir) => (dir.clone(), "--sdk / ASTROBOIDS_SDK"),
        None => (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripting/sdk"),
            "the source checkout this binary was built from",
        ),
    };
    if !dir.join("build.mjs").is_file() {
        bail!(
            "no script SDK at {} (from {origin}): pass --sdk DIR or set ASTROBOIDS_SDK to the \
             scripting/sdk directory",
            dir.display()
        );
    }
    Ok(dir)
}
