//! Fuel against CPU time: how much wall time one unit of fuel buys in each class of
//! instruction a hostile script can lean on. Every module of `assets/hostile/` (see its
//! README) loops forever in `tick`, so a run always ends by running out of fuel: the time of
//! one `run_tick` with a fixed budget (200,000 fuel) is "the time 200k fuel buys". Criterion
//! reports it as throughput, elements/s = fuel/s (cranelift, the compiler worlds run, for
//! every class; singlepass for `plain` only). Modules whose start function cannot finish
//! (`start_heavy`, `memory_grow`) are measured at start instead, per unit of start fuel
//! (`ScriptLimits::default().start_fuel`): the time of a refused `ScriptInstance::new`, or, when
//! the host already refuses such a module at load (a trial start), the time of that load (from a
//! temporary artifact directory, so not compiling); for those, criterion's figure includes the
//! load and the table subtracts a load of the same module without its start section.
//!
//! Then a table, both compilers, every class: fuel per run, fuel used, how the run ended, the
//! median time of a run, ns per unit of fuel (fixed costs subtracted: a tick that runs out of
//! fuel at once, with its trap, or an empty start), and the ratio to `plain.wat` (ordinary
//! arithmetic) with the same compiler. The largest ratio is the number that matters: "the
//! worst class costs at most N times the CPU per fuel of plain arithmetic".
//!
//! Nothing assumes which metering is in place. A run that does not use its whole budget (a
//! trap, or a meter that charges differently) is reported with the fuel it used, and ns/fuel
//! counts that. A class whose full-budget run would take too long (bulk memory at a flat price
//! burns seconds per 200k fuel) gets a smaller budget, found by probing, and a note says so.
//!
//! Run: `cargo bench -p astroboids-benches --bench fuel`; the table alone, without criterion:
//! `FUEL_TABLE_ONLY=1 cargo bench -p astroboids-benches --bench fuel`. `cargo test -p
//! astroboids-benches --bench fuel` checks every module loads and behaves, one short run each.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};

use astroboids_engine::stats::nearest_rank;
use astroboids_scripting::blocks::SensorSnapshot;
use astroboids_scripting::{
    ArtifactDir, CompiledScript, CompilerKind, FaultKind, ScriptEngine, ScriptError,
    ScriptInstance, ScriptLimits,
};

const SEED: u64 = 1;
/// Fuel per measured tick.
const BUDGET: u64 = 200_000;
/// A budget below the cost of `trap_after_work.wat`'s straight-line block (10,003): shows
/// whether the block runs before it is charged.
const BELOW_BLOCK_BUDGET: u64 = 1_000;
/// Modules whose start function is meant never to finish.
const STARTS_THAT_FAIL: [&str; 2] = ["memory_grow", "start_heavy"];
const COMPILERS: [(CompilerKind, &str); 2] = [
    (CompilerKind::Cranelift, "cranelift"),
    (CompilerKind::Singlepass, "singlepass"),
];

/// The fixed costs of a run: a start that does nothing, and a tick that runs out of fuel at
/// once (given 1 fuel), as every hostile run ends: the call, the sensor block, the trap.
const IDLE: &str = r#"(module
    (memory (export "memory") 1 16)
    (func (export "astroboids_abi") (result i32) i32.const 1)
    (func (export "sensor_ptr") (result i32) i32.const 1024)
    (func (export "command_ptr") (result i32) i32.const 4096)
    (func (export "tick") (loop $forever (br $forever))))"#;

struct Settings {
    /// `cargo test`: one short run of everything.
    test: bool,
    /// `--list`: criterion only lists; no table.
    list: bool,
    /// Longest one measured run may take; a class slower than that gets a smaller budget.
    max_run: Duration,
    /// Runs per table row (the median is printed), and the time a row may take.
    table_runs: usize,
    table_time: Duration,
}

impl Settings {
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let has = |flag: &str| args.iter().any(|a| a == flag);
        // As criterion decides: `cargo bench` passes --bench, `cargo test --bench` does not.
        let test = !has("--bench") || has("--test");
        Self {
            test,
            list: has("--list"),
            max_run: Duration::from_millis(if test { 20 } else { 250 }),
            table_runs: if test { 1 } else { 21 },
            table_time: Duration::from_secs(if test { 0 } else { 2 }),
        }
    }
}

enum Subject {
    /// Measured by `run_tick` on this instance.
    Tick(ScriptInstance),
    /// Measured by running the start function.
    Start(StartRun),
}

/// Where a start function that runs out of fuel is caught: when a ship's instance starts
/// (`ScriptInstance::new`), or already when the module is loaded, by a trial start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caught {
    AtInstantiation,
    AtLoad,
}

/// A module whose start function never finishes, set up to run that start with one start fuel.
struct StartRun {
    kind: CompilerKind,
    wasm: Vec<u8>,
    /// Compiled for the case's start fuel, when the start runs at instantiation.
    script: Option<Arc<CompiledScript>>,
}

impl StartRun {
    /// Runs the start function once (in a whole load, from disk, when it runs at load).
    fn run(&self, start_fuel: u64) {
        match &self.script {
            Some(script) => {
                black_box(ScriptInstance::new(script, SEED).is_err());
            }
            None => {
                black_box(engine_with(self.kind, start_fuel).load(&self.wasm).is_err());
            }
        }
    }
}

/// One module, one compiler, one budget.
struct Case {
    class: String,
    compiler: &'static str,
    /// The fuel a run is meant to get: [`BUDGET`] or the default start fuel.
    nominal: u64,
    /// The fuel a run gets: `nominal`, or less when such a run would take too long.
    fuel: u64,
    subject: Subject,
    /// Fuel the last run used, and how it ended.
    used: u64,
    outcome: String,
    /// The duration of one run, measured at setup.
    took: Duration,
    /// Time in a run that is not the fuel's: a tick that runs out of fuel at once, an empty
    /// start, or for a start caught at load, loading the module with its start section stripped.
    fixed: Duration,
    notes: Vec<String>,
}

impl Case {
    fn is_start(&self) -> bool {
        matches!(self.subject, Subject::Start(_))
    }

    /// One run; returns the fuel it used.
    fn run_once(&mut self) -> u64 {
        match &mut self.subject {
            Subject::Tick(ship) => {
                ship.run_tick(self.fuel, SEED, &SensorSnapshot::default())
                    .fuel_used
            }
            Subject::Start(start) => {
                start.run(self.fuel);
                self.fuel
            }
        }
    }
}

/// Per-compiler fixed costs, subtracted before dividing by fuel.
struct Overhead {
    compiler: &'static str,
    tick: Duration,
    start: Duration,
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median(runs: usize, limit: Duration, mut f: impl FnMut()) -> Duration {
    let mut times = Vec::with_capacity(runs);
    let begun = Instant::now();
    while times.is_empty() || (times.len() < runs && (times.len() < 3 || begun.elapsed() < limit)) {
        times.push(time(&mut f));
    }
    times.sort_unstable();
    nearest_rank(&times, 0.5).expect("at least one run")
}

/// The fuel, at most `target`, for which `run` stays within `max_run`: runs with 1,000 fuel,
/// then ten times more each step while the next step is predicted to fit, then scales the last
/// step to fit. Stepping up (rather than extrapolating from one small run) matters when the
/// cost is front-loaded, as in `memory_grow.wat`: 15 slow grows, then cheap refused ones.
fn calibrate(target: u64, max_run: Duration, mut run: impl FnMut(u64) -> Duration) -> u64 {
    let floor = target.min(1_000);
    let max_run = max_run.as_secs_f64();
    let mut fuel = floor;
    loop {
        let took = run(fuel).as_secs_f64().max(1e-9);
        if fuel == target {
            return target;
        }
        let next = (fuel * 10).min(target);
        if took * next as f64 / fuel as f64 <= max_run {
            fuel = next;
            continue;
        }
        return ((max_run / took * fuel as f64) as u64).clamp(floor, next);
    }
}

fn outcome_of(kind: FaultKind, message: &str) -> String {
    match kind {
        FaultKind::OutOfFuel => "out of fuel".to_string(),
        other => format!("{other:?}: {message}"),
    }
}

fn scaled_note(nominal: u64, fuel: u64, took: Duration) -> String {
    let full = took.as_secs_f64() * nominal as f64 / fuel as f64;
    format!(
        "a {nominal}-fuel run would take about {full:.2} s (extrapolated); measured with {fuel} fuel"
    )
}

fn tick_case(
    class: &str,
    compiler: &'static str,
    mut ship: ScriptInstance,
    nominal: u64,
    fixed: Duration,
    settings: &Settings,
    probe: bool,
) -> Case {
    let sensors = SensorSnapshot::default();
    let fuel = if probe {
        calibrate(nominal, settings.max_run, |fuel| {
            time(|| {
                black_box(ship.run_tick(fuel, SEED, &sensors));
            })
        })
    } else {
        nominal
    };
    let start = Instant::now();
    let report = ship.run_tick(fuel, SEED, &sensors);
    let took = start.elapsed();
    let fault = report.fault.unwrap_or_else(|| {
        panic!("{class} ({compiler}): tick returned; a hostile module loops forever or traps")
    });
    let outcome = outcome_of(fault.kind, &fault.message);
    let mut notes = Vec::new();
    if fuel < nominal {
        notes.push(scaled_note(nominal, fuel, took));
    }
    if report.fuel_used != fuel || fault.kind != FaultKind::OutOfFuel {
        notes.push(format!(
            "used {} of {fuel} fuel ({outcome}); ns/fuel counts the fuel used",
            report.fuel_used
        ));
    }
    Case {
        class: class.to_string(),
        compiler,
        nominal,
        fuel,
        subject: Subject::Tick(ship),
        used: report.fuel_used,
        outcome,
        took,
        fixed,
        notes,
    }
}

/// An engine whose scripts get `start_fuel` (start fuel may be compiled into modules, so each
/// start fuel is its own engine).
///
/// With an artifact directory, so that only the first load of a module compiles it: the loads
/// timed for a start caught at load read it back instead (far less noise than a compile).
fn engine_with(kind: CompilerKind, start_fuel: u64) -> ScriptEngine {
    let limits = ScriptLimits {
        start_fuel,
        ..ScriptLimits::default()
    };
    let dir = ArtifactDir::new(artifact_dir()).expect("a temporary artifact directory");
    ScriptEngine::new(limits, kind).with_artifact_dir(dir)
}

/// This run's artifact directory (removed at the end of `main`).
fn artifact_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| std::env::temp_dir().join(format!("astroboids-fuel-{}", std::process::id())))
}

/// Loads `wasm` in a fresh engine with `start_fuel`, from the artifact directory (compiling it
/// first when it is not there yet); returns the result and the time of the load from disk.
fn load_from_disk(
    kind: CompilerKind,
    start_fuel: u64,
    wasm: &[u8],
) -> (Result<Arc<CompiledScript>, ScriptError>, Duration) {
    loop {
        let engine = engine_with(kind, start_fuel);
        let begun = Instant::now();
        let result = engine.load(wasm);
        let took = begun.elapsed();
        if engine.load_stats().compiled == 0 {
            return (result, took);
        }
    }
}

fn has_start_function(wasm: &[u8]) -> bool {
    use wasmer::wasmparser::{Parser, Payload};
    Parser::new(0)
        .parse_all(wasm)
        .any(|payload| matches!(payload, Ok(Payload::StartSection { .. })))
}

/// `wasm` without its start section: the same code, with a start function that never runs.
fn without_start(wasm: &[u8]) -> Vec<u8> {
    const START_SECTION: u8 = 8;
    let mut out = wasm[..8].to_vec();
    let mut at = 8;
    while at < wasm.len() {
        let begin = at;
        let id = wasm[at];
        at += 1;
        let (mut size, mut shift) = (0usize, 0);
        loop {
            let byte = wasm[at];
            at += 1;
            size |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        at += size;
        if id != START_SECTION {
            out.extend_from_slice(&wasm[begin..at]);
        }
    }
    out
}

/// Runs a module's start function with a given start fuel, wherever the host runs it.
struct StartProbe<'a> {
    class: &'a str,
    kind: CompilerKind,
    compiler: &'static str,
    wasm: &'a [u8],
    /// Loading the module with its start section stripped: what a load costs besides the start.
    twin: Duration,
}

impl<'a> StartProbe<'a> {
    fn new(
        class: &'a str,
        kind: CompilerKind,
        compiler: &'static str,
        wasm: &'a [u8],
        settings: &Settings,
    ) -> Self {
        let twin_wasm = without_start(wasm);
        let default_fuel = ScriptLimits::default().start_fuel;
        let mut loads: Vec<Duration> = (0..settings.table_runs.max(5))
            .map(|_| {
                let (loaded, took) = load_from_disk(kind, default_fuel, &twin_wasm);
                loaded.unwrap_or_else(|e| panic!("{class} ({compiler}) without start: {e}"));
                took
            })
            .collect();
        loads.sort_unstable();
        let twin = nearest_rank(&loads, 0.5).expect("at least five loads");
        Self {
            class,
            kind,
            compiler,
            wasm,
            twin,
        }
    }

    /// Starts the module with `start_fuel`: `None` when the start function finished, else where
    /// it was caught; and the time the start function took.
    fn run(&self, start_fuel: u64) -> (Option<Caught>, Duration) {
        let (class, compiler) = (self.class, self.compiler);
        let (loaded, took) = load_from_disk(self.kind, start_fuel, self.wasm);
        let script = match loaded {
            Err(ScriptError::Start(_)) => {
                return (Some(Caught::AtLoad), took.saturating_sub(self.twin));
            }
            Err(e) => panic!("{class} ({compiler}) is refused: {e}"),
            Ok(script) => script,
        };
        let begun = Instant::now();
        let result = ScriptInstance::new(&script, SEED);
        let took = begun.elapsed();
        match result {
            Ok(_) => (None, took),
            Err(ScriptError::Start(_)) => (Some(Caught::AtInstantiation), took),
            Err(e) => panic!("{class} ({compiler}) cannot start: {e}"),
        }
    }

    /// Where a start function that does not finish within the default start fuel is caught, or
    /// `None` when it finishes. Tried with 1,000 start fuel, then ten times more each step,
    /// giving up (it does not finish) once the next step is predicted to take longer than
    /// `max_run`: a start that burns seconds before running out (`start_heavy.wat` with bulk
    /// memory at a flat price) is never run whole.
    fn caught(&self, max_run: Duration) -> Option<Caught> {
        let target = ScriptLimits::default().start_fuel;
        let mut fuel = target.min(1_000);
        loop {
            let (caught, took) = self.run(fuel);
            caught?;
            let next = (fuel * 10).min(target);
            let predicted = took.as_secs_f64() * next as f64 / fuel as f64;
            if fuel == target || predicted > max_run.as_secs_f64() {
                return caught;
            }
            fuel = next;
        }
    }
}

fn start_case(probe: &StartProbe, caught: Caught, overhead: Duration, settings: &Settings) -> Case {
    let (class, compiler) = (probe.class, probe.compiler);
    let nominal = ScriptLimits::default().start_fuel;
    let fuel = calibrate(nominal, settings.max_run, |fuel| probe.run(fuel).1);
    let (result, took) = probe.run(fuel);
    let mut notes = Vec::new();
    if fuel < nominal {
        notes.push(scaled_note(nominal, fuel, took));
    }
    let outcome = match result {
        Some(Caught::AtInstantiation) => "start refused".to_string(),
        Some(Caught::AtLoad) => {
            notes.push(
                "refused at load (a trial start): the run is a whole load, less a load of the \
                 module without its start section"
                    .to_string(),
            );
            "refused at load".to_string()
        }
        None => {
            notes.push(
                "the start function finished: the start fuel it used is unknown, so ns/fuel \
                 is a lower bound"
                    .to_string(),
            );
            "started".to_string()
        }
    };
    let (script, fixed) = match caught {
        Caught::AtInstantiation => {
            let script = load_from_disk(probe.kind, fuel, probe.wasm).0;
            let script = script.unwrap_or_else(|e| panic!("{class} ({compiler}) is refused: {e}"));
            (Some(script), overhead)
        }
        Caught::AtLoad => (None, probe.twin),
    };
    Case {
        class: class.to_string(),
        compiler,
        nominal,
        fuel,
        subject: Subject::Start(StartRun {
            kind: probe.kind,
            wasm: probe.wasm.to_vec(),
            script,
        }),
        used: fuel,
        outcome,
        took,
        fixed,
        notes,
    }
}

/// Every `.wat` of `assets/hostile/`, `plain` first, as (class, wasm).
fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/hostile");
    let mut modules: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "wat"))
        .map(|path| {
            let class = path.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read(&path).expect("readable .wat");
            let wasm = wasmer::wat2wasm(&text)
                .unwrap_or_else(|e| panic!("{} is not valid WAT: {e}", path.display()))
                .into_owned();
            (class, wasm)
        })
        .collect();
    modules.sort_by(|(a, _), (b, _)| (a != "plain", a).cmp(&(b != "plain", b)));
    assert!(
        modules.first().is_some_and(|(class, _)| class == "plain"),
        "the corpus has no plain.wat to compare with"
    );
    modules
}

fn setup(settings: &Settings) -> (Vec<Case>, Vec<Overhead>) {
    let modules = corpus();
    let idle = wasmer::wat2wasm(IDLE.as_bytes()).unwrap().into_owned();
    let mut cases = Vec::new();
    let mut overheads = Vec::new();
    let (runs, limit) = (settings.table_runs * 10, settings.table_time);
    for (kind, compiler) in COMPILERS {
        // Tick classes may set up more than a ship's start fuel allows (memory_random links
        // 15,360 cache lines): they are measured in `tick`, so their start gets what it needs.
        let setup_limits = ScriptLimits {
            start_fuel: 20_000_000,
            ..ScriptLimits::default()
        };
        let engine = ScriptEngine::new(setup_limits, kind);
        let idle = engine.load(&idle).unwrap();
        let mut ship = ScriptInstance::new(&idle, SEED).unwrap();
        let sensors = SensorSnapshot::default();
        let overhead = Overhead {
            compiler,
            tick: median(runs, limit, || {
                black_box(ship.run_tick(1, SEED, &sensors));
            }),
            start: median(runs, limit, || {
                black_box(ScriptInstance::new(&idle, SEED).unwrap());
            }),
        };
        for (class, wasm) in &modules {
            let expected_start = STARTS_THAT_FAIL.contains(&class.as_str());
            // Only the start classes are measured at start; the others' start is set-up.
            let probe = (expected_start && has_start_function(wasm))
                .then(|| StartProbe::new(class, kind, compiler, wasm, settings));
            let caught = probe.as_ref().and_then(|p| p.caught(settings.max_run));
            let mut case = match (caught, &probe) {
                (Some(caught), Some(probe)) => start_case(probe, caught, overhead.start, settings),
                _ => {
                    let script = engine.load(wasm);
                    let script =
                        script.unwrap_or_else(|e| panic!("{class} ({compiler}) is refused: {e}"));
                    let ship = ScriptInstance::new(&script, SEED)
                        .unwrap_or_else(|e| panic!("{class} ({compiler}) cannot start: {e}"));
                    tick_case(class, compiler, ship, BUDGET, overhead.tick, settings, true)
                }
            };
            if case.is_start() != expected_start {
                case.notes.push(if expected_start {
                    "expected its start function never to finish, but it did".to_string()
                } else {
                    "its start function failed (measured at start instead of tick)".to_string()
                });
            }
            let below_block = class == "trap_after_work" && !case.is_start();
            cases.push(case);
            if below_block {
                let script = engine.load(wasm).unwrap();
                let ship = ScriptInstance::new(&script, SEED).unwrap();
                let name = format!("{class}/budget_{BELOW_BLOCK_BUDGET}");
                let (fuel, fixed) = (BELOW_BLOCK_BUDGET, overhead.tick);
                let case = tick_case(&name, compiler, ship, fuel, fixed, settings, false);
                cases.push(case);
            }
        }
        overheads.push(overhead);
    }
    (cases, overheads)
}

fn criterion_pass(c: &mut Criterion, cases: &mut [Case]) {
    let measured = cases
        .iter_mut()
        .filter(|case| case.compiler == "cranelift" || case.class == "plain");
    for case in measured {
        let prefix = if case.is_start() {
            "start_fuel"
        } else {
            "fuel"
        };
        let mut group = c.benchmark_group(format!("{prefix}/{}", case.class));
        group
            .throughput(Throughput::Elements(case.used.max(1)))
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        if case.took > Duration::from_millis(10) {
            group
                .sample_size(10)
                .sampling_mode(SamplingMode::Flat)
                .measurement_time((case.took * 12).max(Duration::from_secs(3)));
        }
        let compiler = case.compiler;
        group.bench_function(compiler, |b| b.iter(|| case.run_once()));
        group.finish();
    }
}

/// ns of CPU per unit of fuel, the fixed overhead of a call taken off.
fn ns_per_fuel(took: Duration, overhead: Duration, used: u64) -> f64 {
    took.saturating_sub(overhead).as_secs_f64() * 1e9 / used.max(1) as f64
}

fn print_table(cases: &mut [Case], overheads: &[Overhead], settings: &Settings) {
    println!();
    println!("CPU per unit of fuel, by hostile class (assets/hostile/*.wat)");
    println!(
        "ns/fuel: (median run - fixed overhead) / fuel used; x plain: against plain.wat, same compiler"
    );
    if settings.test {
        println!("test mode (cargo test): one short run per row; the figures are rough");
    }
    for overhead in overheads {
        let compiler = overhead.compiler;
        println!();
        println!(
            "{compiler}: fixed costs {:.2} us per tick (out of fuel at once), {:.1} us per start \
             (subtracted)",
            overhead.tick.as_secs_f64() * 1e6,
            overhead.start.as_secs_f64() * 1e6
        );
        let rows: Vec<(usize, Duration)> = cases
            .iter_mut()
            .enumerate()
            .filter(|(_, case)| case.compiler == compiler)
            .map(|(i, case)| {
                let mut used = case.used;
                let took = median(settings.table_runs, settings.table_time, || {
                    used = case.run_once();
                });
                case.used = used;
                (i, took)
            })
            .collect();
        let per_fuel = |i: usize, took: Duration| {
            let case = &cases[i];
            ns_per_fuel(took, case.fixed, case.used)
        };
        let plain = rows
            .iter()
            .find(|(i, _)| cases[*i].class == "plain")
            .map(|&(i, took)| per_fuel(i, took))
            .unwrap_or(f64::NAN);
        println!(
            "{:<34} {:>9} {:>9}  {:<24} {:>10} {:>9} {:>8}",
            "class", "fuel/run", "used", "outcome", "us/run", "ns/fuel", "x plain"
        );
        let mut worst: Option<(f64, &str)> = None;
        let mut notes = Vec::new();
        for &(i, took) in &rows {
            let case = &cases[i];
            let ns = per_fuel(i, took);
            let ratio = ns / plain;
            let name = if case.is_start() {
                format!("start: {}", case.class)
            } else {
                case.class.clone()
            };
            let mut outcome = case.outcome.clone();
            outcome.truncate(24);
            println!(
                "{name:<34} {:>9} {:>9}  {outcome:<24} {:>10.1} {ns:>9.3} {ratio:>8.2}",
                case.fuel,
                case.used,
                took.as_secs_f64() * 1e6
            );
            // The budget-below-block row is about when the block is charged, not a class.
            if !case.class.contains('/') && worst.is_none_or(|(r, _)| ratio > r) {
                worst = Some((ratio, &case.class));
            }
            for note in &case.notes {
                notes.push(format!("  {name}: {note}"));
            }
            if case.fuel != case.nominal && case.notes.is_empty() {
                notes.push(format!("  {name}: measured with {} fuel", case.fuel));
            }
        }
        if let Some((ratio, class)) = worst {
            println!(
                "{compiler}: the worst class, {class}, costs {ratio:.2}x the CPU per fuel of plain arithmetic"
            );
        }
        if !notes.is_empty() {
            println!("notes:");
            for note in notes {
                println!("{note}");
            }
        }
    }
}

fn main() {
    let settings = Settings::from_args();
    let (mut cases, overheads) = setup(&settings);
    if std::env::var_os("FUEL_TABLE_ONLY").is_none() {
        let mut criterion = Criterion::default().configure_from_args();
        criterion_pass(&mut criterion, &mut cases);
        criterion.final_summary();
    }
    if !settings.list {
        print_table(&mut cases, &overheads, &settings);
    }
    let _ = std::fs::remove_dir_all(artifact_dir());
}
