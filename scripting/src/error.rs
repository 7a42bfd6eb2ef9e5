//! Rejections (at load) and faults (at run time).

/// Why a module was refused. Each variant names the exact problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    #[error("module is {bytes} bytes; the limit is {limit} bytes")]
    TooLarge { bytes: usize, limit: usize },
    #[error("not a valid WebAssembly module for this host: {0}")]
    Invalid(String),
    #[error("import {module}.{name} is not allowed: {hint}")]
    ForbiddenImport {
        module: String,
        name: String,
        hint: &'static str,
    },
    #[error("import {module}.{name} has type {found}, expected {expected}")]
    ImportSignature {
        module: String,
        name: String,
        found: String,
        expected: String,
    },
    #[error("import {module}.{name} is a {kind}; scripts may import only host functions")]
    ImportKind {
        module: String,
        name: String,
        kind: &'static str,
    },
    #[error("missing export `{name}`: a function {expected}")]
    MissingExport {
        name: &'static str,
        expected: String,
    },
    #[error("export `{name}` has type {found}, expected {expected}")]
    ExportSignature {
        name: &'static str,
        found: String,
        expected: String,
    },
    #[error("export `{name}` uses a name reserved for the host (prefix `wasmer_`)")]
    ReservedExport { name: String },
    #[error("the module must define exactly one memory and export it as `memory`; {0}")]
    Memory(String),
    #[error("memory needs {minimum} pages at start; the limit is {limit} pages ({limit_kib} KiB)")]
    MemoryTooLarge {
        minimum: u32,
        limit: u32,
        limit_kib: u32,
    },
    #[error("table {index} needs {minimum} elements at start; the limit is {limit}")]
    TableTooLarge {
        index: usize,
        minimum: u32,
        limit: u32,
    },
    #[error("script speaks ABI version {found}; this host supports version {supported}")]
    AbiVersion { found: i32, supported: i32 },
    #[error("{0}")]
    Blocks(String),
    #[error("the module is too complex for this host: {0}")]
    Structure(String),
    #[error(
        "compiling took longer than {limit_ms} ms, the limit for uploads; simplify the module (fewer or smaller functions)"
    )]
    CompileTimeout { limit_ms: u64 },
    #[error("initializing the module's memory or table failed: {0}")]
    Initialize(String),
    #[error("cannot restore the script's saved state: {0}")]
    Restore(String),
    #[error("the script failed while starting: {0}")]
    Start(Fault),
}

/// What went wrong while running a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The fuel budget ran out (e.g. an infinite loop).
    OutOfFuel,
    /// The script trapped: unreachable, out-of-bounds access, stack overflow, abort().
    Trap,
}

/// A failed run: the ship's commands for that tick are discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub message: String,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            FaultKind::OutOfFuel => write!(f, "out of fuel: {}", self.message),
            FaultKind::Trap => write!(f, "trap: {}", self.message),
        }
    }
}
