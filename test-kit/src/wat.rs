/// Where every [`WatBot`] puts its sensor block (`sensor_ptr`); the tick number is its first
/// 8 bytes (docs/scripting-abi.md).
pub const SENSOR_PTR: u32 = 1024;

/// Where every [`WatBot`] puts its command block (`command_ptr`): thrust (f32) at +0, turn
/// (f32) at +4, flags at +8.
pub const COMMAND_PTR: u32 = 4096;

/// A script module for tests, in WebAssembly text: memory, the ABI exports every module must
/// have (`astroboids_abi` = 1, `sensor_ptr`, `command_ptr`, `tick`) and what the test adds.
///
/// The text comes out in a fixed order: imports (in the order asked for), memory, extra fields
/// (in order), the ABI exports, `tick`. Two tests building the same bot get the same module
/// bytes, so the same script id.
///
/// Modules that break the ABI on purpose (missing or mistyped exports, another ABI version)
/// are better written out in full where they are tested.
#[derive(Debug, Clone)]
pub struct WatBot {
    imports: Vec<&'static str>,
    memory: (u32, Option<u32>),
    fields: Vec<String>,
    tick: String,
}

impl Default for WatBot {
    fn default() -> Self {
        Self::new()
    }
}

impl WatBot {
    /// Steers towards its nearest contact (turning by the sign of its dy), mines, and sums
    /// the ids it has seen into its memory (at 8192): its commands and its memory depend on
    /// every contact it is given, neighbours' ships across a shard border included. The
    /// cluster's tests fly it.
    pub fn chaser() -> Self {
        let contact = SENSOR_PTR + 64;
        Self::new().tick(format!(
            "(if (i32.gt_u (i32.load (i32.const {count})) (i32.const 0))
               (then
                 (f32.store (i32.const {COMMAND_PTR}) (f32.const 1))
                 (f32.store (i32.const {turn})
                   (f32.copysign (f32.const 1) (f32.load (i32.const {dy}))))
                 (i32.store (i32.const {flags}) (i32.const 1))
                 (i64.store (i32.const 8192)
                   (i64.add (i64.load (i32.const 8192)) (i64.load (i32.const {id}))))))",
            count = SENSOR_PTR + 60,
            turn = COMMAND_PTR + 4,
            flags = COMMAND_PTR + 8,
            dy = contact + 20,
            id = contact + 8,
        ))
    }

    /// A bot with one page of memory (at most 16), no imports, doing nothing each tick.
    pub fn new() -> Self {
        Self {
            imports: Vec::new(),
            memory: (1, Some(16)),
            fields: Vec::new(),
            tick: String::new(),
        }
    }

    /// Imports `astroboids.random` as `$random` (`() -> i32`).
    pub fn import_random(mut self) -> Self {
        self.imports
            .push(r#"(import "astroboids" "random" (func $random (result i32)))"#);
        self
    }

    /// Imports `astroboids.log` as `$log` (`(ptr, len) -> ()`).
    pub fn import_log(mut self) -> Self {
        self.imports
            .push(r#"(import "astroboids" "log" (func $log (param i32 i32)))"#);
        self
    }

    /// Memory of `min` pages, growable to `max` (unbounded with `None`: the host clamps it).
    pub fn memory(mut self, min: u32, max: Option<u32>) -> Self {
        self.memory = (min, max);
        self
    }

    /// A module field placed after the memory: `(data ...)`, `(global ...)`, `(func ...)`,
    /// `(start ...)`.
    pub fn field(mut self, wat: impl Into<String>) -> Self {
        self.fields.push(wat.into());
        self
    }

    /// The body of `tick` (instructions, folded or not).
    pub fn tick(mut self, body: impl Into<String>) -> Self {
        self.tick = body.into();
        self
    }

    /// The module's text.
    pub fn wat(&self) -> String {
        let memory = match self.memory {
            (min, Some(max)) => format!(r#"(memory (export "memory") {min} {max})"#),
            (min, None) => format!(r#"(memory (export "memory") {min})"#),
        };
        let mut parts: Vec<String> = vec!["(module".into()];
        parts.extend(self.imports.iter().map(|i| i.to_string()));
        parts.push(memory);
        parts.extend(self.fields.iter().cloned());
        parts.push(r#"(func (export "astroboids_abi") (result i32) i32.const 1)"#.into());
        parts.push(format!(
            r#"(func (export "sensor_ptr") (result i32) i32.const {SENSOR_PTR})"#
        ));
        parts.push(format!(
            r#"(func (export "command_ptr") (result i32) i32.const {COMMAND_PTR})"#
        ));
        parts.push(format!(r#"(func (export "tick") {}))"#, self.tick));
        parts.join("\n  ")
    }

    /// The module's bytes.
    ///
    /// # Panics
    /// When the text is not valid WebAssembly, with the assembler's message and the text.
    pub fn wasm(&self) -> Vec<u8> {
        wasm(&self.wat())
    }
}

/// Assembles WebAssembly text (a test's own module).
///
/// # Panics
/// When the text is not valid WebAssembly, with the assembler's message and the text: a test
/// module that does not assemble is a broken test, not a case to handle.
pub fn wasm(wat: &str) -> Vec<u8> {
    match wasmer::wat2wasm(wat.as_bytes()) {
        Ok(bytes) => bytes.into_owned(),
        Err(e) => panic!("test WAT does not assemble: {e}\n{wat}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use astroboids_scripting::blocks::SensorSnapshot;
    use astroboids_scripting::{CompilerKind, ScriptEngine, ScriptInstance, ScriptLimits};

    #[test]
    fn the_same_bot_written_out_by_hand_is_the_same_module() {
        let bot = WatBot::new()
            .import_random()
            .import_log()
            .field(r#"(data (i32.const 200) "hello")"#)
            .tick("(call $log (i32.const 200) (i32.const 5))");
        let by_hand = r#"(module
            (import "astroboids" "random" (func $random (result i32)))
            (import "astroboids" "log" (func $log (param i32 i32)))
            (memory (export "memory") 1 16)
            (data (i32.const 200) "hello")
            (func (export "astroboids_abi") (result i32) i32.const 1)
            (func (export "sensor_ptr") (result i32) i32.const 1024)
            (func (export "command_ptr") (result i32) i32.const 4096)
            (func (export "tick") (call $log (i32.const 200) (i32.const 5))))"#;
        assert_eq!(bot.wasm(), wasm(by_hand));
        let swapped = WatBot::new().import_log().import_random();
        assert_ne!(
            swapped.wasm(),
            WatBot::new().import_random().import_log().wasm(),
            "imports keep the order asked for"
        );
    }

    #[test]
    fn a_bot_is_accepted_by_the_host_and_its_tick_runs() {
        let bot = WatBot::new()
            .import_log()
            .memory(2, None)
            .field(r#"(data (i32.const 200) "hi")"#)
            .tick(format!(
                "(call $log (i32.const 200) (i32.const 2)) \
                 (f32.store (i32.const {COMMAND_PTR}) (f32.const 0.5))"
            ));
        let engine = ScriptEngine::new(ScriptLimits::default(), CompilerKind::Singlepass);
        let compiled = engine.load(&bot.wasm()).expect("the host accepts the bot");
        let mut ship = ScriptInstance::new(&compiled, 1).expect("starts");
        let report = ship.run_tick(100_000, 1, &SensorSnapshot::default());
        assert_eq!(report.fault, None);
        assert_eq!(report.logs, ["hi"]);
        assert_eq!(report.command.expect("no fault").thrust, 0.5);
        assert_eq!(compiled.describe().memory_min_pages, 2);
        assert_eq!(compiled.describe().memory_max_pages, None);
    }

    #[test]
    #[should_panic(expected = "test WAT does not assemble")]
    fn text_that_does_not_assemble_fails_the_test_with_the_text() {
        WatBot::new().tick("(i32.bogus)").wasm();
    }
}
