//! Fuel covers all the CPU a script can cause: every instruction class is charged in
//! proportion to the work it does, and charged before the work runs. These tests count fuel,
//! never time: `benches/benches/fuel.rs` measures what a unit of fuel costs per class.

use astroboids_scripting::blocks::SensorSnapshot;
use astroboids_scripting::metering::{
    BULK_BYTES_PER_FUEL_LOG2, CALL_COST, GROW_PAGE_COST, HOST_CALL_COST, TABLE_ELEMENT_COST,
};
use astroboids_scripting::{
    CompilerKind, FaultKind, RunReport, ScriptEngine, ScriptError, ScriptInstance, ScriptLimits,
};
use astroboids_test_kit::WatBot;

fn engine(compiler: CompilerKind) -> ScriptEngine {
    ScriptEngine::new(ScriptLimits::default(), compiler)
}

/// A module with the ABI exports, importing `$log` and `$random`; `extra` adds fields, `tick`
/// is the tick body.
fn script(extra: &str, tick: &str) -> Vec<u8> {
    WatBot::new()
        .import_log()
        .import_random()
        .field(extra)
        .tick(tick)
        .wasm()
}

/// One tick of `tick` with a large budget, on both compilers (they must charge alike).
fn run(extra: &str, tick: &str) -> RunReport {
    let wasm = script(extra, tick);
    let reports = [CompilerKind::Singlepass, CompilerKind::Cranelift].map(|compiler| {
        let e = engine(compiler);
        let compiled = e.load(&wasm).expect("loads");
        let mut ship = ScriptInstance::new(&compiled, 1).expect("starts");
        ship.run_tick(100_000_000, 1, &SensorSnapshot::default())
    });
    assert_eq!(
        reports[0], reports[1],
        "singlepass and cranelift charge the same"
    );
    let [first, _] = reports;
    first
}

fn fuel(extra: &str, tick: &str) -> u64 {
    let report = run(extra, tick);
    assert_eq!(report.fault, None, "{report:?}");
    report.fuel_used
}

/// Fuel of the same tick with a length of `small` and of `large`: the difference is what the
/// length costs.
fn length_cost(extra: &str, tick: impl Fn(u32) -> String, small: u32, large: u32) -> u64 {
    fuel(extra, &tick(large)) - fuel(extra, &tick(small))
}

#[test]
fn memory_fill_and_copy_cost_by_length() {
    let grow = "(drop (memory.grow (i32.const 15)))";
    let fill =
        |len: u32| format!("{grow} (memory.fill (i32.const 0) (i32.const 7) (i32.const {len}))");
    let copy = |len: u32| {
        format!("{grow} (memory.copy (i32.const 0) (i32.const 65536) (i32.const {len}))")
    };
    let mib = 1 << 20;
    let per_fuel = 1u64 << BULK_BYTES_PER_FUEL_LOG2;
    for (name, cost) in [
        ("memory.fill", length_cost("", fill, 0, mib)),
        ("memory.copy", length_cost("", copy, 0, mib - 65536)),
    ] {
        let bytes = if name == "memory.fill" {
            mib
        } else {
            mib - 65536
        };
        assert_eq!(
            cost,
            u64::from(bytes) / per_fuel,
            "{name}: one unit per {per_fuel} bytes"
        );
    }
}

#[test]
fn memory_init_costs_by_length() {
    let segment = format!(r#"(data $d "{}")"#, "x".repeat(4096));
    let init = |len: u32| format!("(memory.init $d (i32.const 0) (i32.const 0) (i32.const {len}))");
    assert_eq!(
        length_cost(&segment, init, 0, 4096),
        4096 >> BULK_BYTES_PER_FUEL_LOG2
    );
}

#[test]
fn table_copy_and_init_cost_per_element() {
    let funcs = "(func $f) (table 2000 funcref) (elem $e func $f $f $f $f $f $f $f $f $f $f)";
    let copy = |len: u32| format!("(table.copy (i32.const 0) (i32.const 1000) (i32.const {len}))");
    let init = |len: u32| format!("(table.init $e (i32.const 0) (i32.const 0) (i32.const {len}))");
    assert_eq!(
        length_cost(funcs, copy, 0, 1000),
        1000 * TABLE_ELEMENT_COST as u64
    );
    assert_eq!(
        length_cost(funcs, init, 0, 10),
        10 * TABLE_ELEMENT_COST as u64
    );
}

#[test]
fn memory_grow_costs_per_page_up_to_the_limit() {
    let grow = |pages: u32| format!("(drop (memory.grow (i32.const {pages})))");
    let page = GROW_PAGE_COST as u64;
    assert_eq!(length_cost("", grow, 0, 15), 15 * page);
    // Asking for more than the limit fails without work, and costs no more than the limit.
    let limit = u64::from(ScriptLimits::default().max_memory_pages);
    assert_eq!(length_cost("", grow, 0, 100_000), limit * page);
}

#[test]
fn calls_and_host_calls_cost_more_than_plain_instructions() {
    let repeat = |body: &str, n: usize| body.repeat(n);
    let calls = |n: u32| repeat("(call $f)", n as usize);
    assert!(length_cost("(func $f)", calls, 0, 100) >= 100 * CALL_COST);
    let randoms = |n: u32| repeat("(drop (call $random))", n as usize);
    assert!(length_cost("", randoms, 0, 100) >= 100 * HOST_CALL_COST);
    // A log call also pays per byte.
    let logs = |len: u32| format!("(call $log (i32.const 0) (i32.const {len}))");
    assert_eq!(length_cost("", logs, 0, 200), 200);
}

#[test]
fn a_function_pays_for_the_locals_it_zeroes_on_every_call() {
    let many = format!("(func $f (local {}))", "i64 ".repeat(1000));
    let few = "(func $f (local i64))";
    let calls = "(call $f) (call $f) (call $f) (call $f)";
    assert!(
        fuel(&many, calls) >= fuel(few, calls) + 4 * 200,
        "1,000 locals cost more than one"
    );
}

#[test]
fn work_before_a_trap_is_charged() {
    let work = "(drop (i32.add (i32.const 1) (i32.const 2)))".repeat(5_000);
    let report = run("", &format!("{work} unreachable"));
    assert_eq!(report.fault.map(|f| f.kind), Some(FaultKind::Trap));
    assert!(report.fuel_used >= 5_000, "{}", report.fuel_used);
}

#[test]
fn a_block_runs_only_once_its_whole_cost_is_paid() {
    // The store comes first in the block; with too little fuel for the block, it never runs.
    let work = "(drop (i32.add (i32.const 1) (i32.const 2)))".repeat(5_000);
    let tick = format!("(i32.store (i32.const 0) (i32.const 42)) {work}");
    let e = engine(CompilerKind::Singlepass);
    let compiled = e.load(&script("", &tick)).unwrap();
    let mut ship = ScriptInstance::new(&compiled, 1).unwrap();
    let report = ship.run_tick(1_000, 1, &SensorSnapshot::default());
    assert_eq!(report.fault.map(|f| f.kind), Some(FaultKind::OutOfFuel));
    assert_eq!(&ship.memory_snapshot()[..4], &[0; 4], "nothing ran");
    let report = ship.run_tick(1_000_000, 1, &SensorSnapshot::default());
    assert_eq!(report.fault, None);
    assert_eq!(&ship.memory_snapshot()[..4], &42u32.to_le_bytes());
}

#[test]
fn each_run_is_judged_on_its_own_after_running_out_of_fuel() {
    // Run 2 spins until its fuel is gone, run 3 traps, runs 1 and 4 return at once.
    let tick = "(i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
        (if (i32.eq (i32.load (i32.const 0)) (i32.const 2)) (then (loop $spin (br $spin))))
        (if (i32.eq (i32.load (i32.const 0)) (i32.const 3)) (then unreachable))";
    for compiler in [CompilerKind::Singlepass, CompilerKind::Cranelift] {
        let e = engine(compiler);
        let compiled = e.load(&script("", tick)).unwrap();
        let mut ship = ScriptInstance::new(&compiled, 1).unwrap();
        let kinds: Vec<Option<FaultKind>> = (1..=4)
            .map(|tick| {
                let report = ship.run_tick(10_000, tick, &SensorSnapshot::default());
                report.fault.map(|f| f.kind)
            })
            .collect();
        assert_eq!(
            kinds,
            [
                None,
                Some(FaultKind::OutOfFuel),
                Some(FaultKind::Trap),
                None
            ],
            "{compiler:?}: a trap after running out of fuel is a trap"
        );
    }
}

#[test]
fn a_start_function_out_of_fuel_says_so_and_its_logs_are_kept() {
    let e = engine(CompilerKind::Singlepass);
    let endless = script(
        r#"(data (i32.const 0) "starting") (func $start (call $log (i32.const 0) (i32.const 8))
            (loop $l (memory.fill (i32.const 0) (i32.const 0) (i32.const 65536)) (br $l)))
            (start $start)"#,
        "",
    );
    let err = e.load(&endless).err().expect("refused at load");
    let message = err.to_string();
    assert!(
        matches!(&err, ScriptError::Start(f) if f.kind == FaultKind::OutOfFuel),
        "{message}"
    );
    assert!(message.contains("used all"), "{message}");
    assert!(message.contains("start fuel"), "{message}");
    assert!(
        message.contains("\"starting\""),
        "its log line is shown: {message}"
    );

    let greeting = script(
        r#"(data (i32.const 0) "hello") (func $start (call $log (i32.const 0) (i32.const 5)))
            (start $start)"#,
        "",
    );
    let compiled = e.load(&greeting).unwrap();
    let mut ship = ScriptInstance::new(&compiled, 1).unwrap();
    assert_eq!(ship.take_start_logs(), vec!["hello".to_string()]);
}

#[test]
fn log_ranges_are_checked_whole_and_control_characters_escaped() {
    let e = engine(CompilerKind::Singlepass);
    let run_tick = |tick: &str| {
        let compiled = e
            .load(&script(
                r#"(data (i32.const 0) "a\1b[31mred\ntick 99: forged")"#,
                tick,
            ))
            .unwrap();
        let mut ship = ScriptInstance::new(&compiled, 1).unwrap();
        ship.run_tick(1_000_000, 1, &SensorSnapshot::default())
    };
    let report = run_tick("(call $log (i32.const 0) (i32.const 25))");
    assert_eq!(
        report.logs,
        vec!["a\\x1b[31mred\\ntick 99: forged".to_string()]
    );

    let negative = run_tick("(call $log (i32.const 0) (i32.const -1))");
    let fault = negative.fault.expect("a negative length traps");
    assert!(fault.message.contains("length is -1"), "{}", fault.message);

    // Past the end of memory, though only the first 256 bytes would be kept.
    let past_end = run_tick("(call $log (i32.const 65000) (i32.const 1000))");
    assert!(
        past_end
            .fault
            .expect("traps")
            .message
            .contains("outside the memory")
    );

    // Over the per-tick line cap, a bad range still traps.
    let cap = ScriptLimits::default().log_lines_per_tick;
    let lines = "(call $log (i32.const 0) (i32.const 1))".repeat(cap as usize);
    let over_cap = run_tick(&format!(
        "{lines} (call $log (i32.const 65535) (i32.const 2))"
    ));
    assert!(
        over_cap
            .fault
            .expect("traps")
            .message
            .contains("outside the memory")
    );
}

#[test]
fn singlepass_and_cranelift_charge_loops_alike() {
    let looped = "(local $i i32) (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))";
    let used = fuel("", looped);
    assert!((1_000 * 3..1_000 * 20).contains(&used), "{used}");
}

#[test]
fn the_pages_a_module_starts_with_are_paid_from_its_start_fuel() {
    let e = engine(CompilerKind::Singlepass);
    let one_page = e.load(&script("", "")).unwrap();
    assert_eq!(
        one_page.trial_start_fuel(),
        GROW_PAGE_COST as u64,
        "one page, no start function"
    );
    let sixteen = wasmer::wat2wasm(
        br#"(module (memory (export "memory") 16 16)
            (func (export "astroboids_abi") (result i32) i32.const 1)
            (func (export "sensor_ptr") (result i32) i32.const 1024)
            (func (export "command_ptr") (result i32) i32.const 4096)
            (func (export "tick")))"#,
    )
    .unwrap();
    let message = e.load(&sixteen).err().expect("refused").to_string();
    assert_eq!(
        message,
        format!(
            "the script failed while starting: out of fuel: its initial memory of 16 pages costs \
             {} fuel, more than the {} start fuel",
            16 * GROW_PAGE_COST,
            ScriptLimits::default().start_fuel
        )
    );
}
