//! The script ABI: what a module may import and must export.

use wasmer::{ExternType, Type};

use crate::error::ScriptError;

/// The ABI version this host speaks; a module reports its own from `astroboids_abi`.
pub const ABI_VERSION: i32 = 1;

/// A host function a script may import.
#[derive(Debug, Clone, Copy)]
pub struct ImportSpec {
    pub module: &'static str,
    pub name: &'static str,
    pub params: &'static [Type],
    pub results: &'static [Type],
}

/// A function a script must export.
#[derive(Debug, Clone, Copy)]
pub struct ExportSpec {
    pub name: &'static str,
    pub params: &'static [Type],
    pub results: &'static [Type],
}

/// Host functions scripts may import.
pub const IMPORTS: &[ImportSpec] = &[
    // Appends a UTF-8 line (ptr, len) to the ship's log. Charged fuel; rate-limited.
    ImportSpec {
        module: "astroboids",
        name: "log",
        params: &[Type::I32, Type::I32],
        results: &[],
    },
    // 32 random bits from the stream seeded by (universe seed, ship, tick). An integer on
    // purpose: no host function returns a float, because wasmer 7.4.2's singlepass compiler
    // returns garbage for f64 results of host functions (caught by a test).
    ImportSpec {
        module: "astroboids",
        name: "random",
        params: &[],
        results: &[Type::I32],
    },
    // AssemblyScript's abort(message, file, line, column): ends the tick with a fault.
    ImportSpec {
        module: "env",
        name: "abort",
        params: &[Type::I32, Type::I32, Type::I32, Type::I32],
        results: &[],
    },
];

/// Functions every script exports.
pub const EXPORTS: &[ExportSpec] = &[
    // Returns the ABI version the script was built for.
    ExportSpec {
        name: "astroboids_abi",
        params: &[],
        results: &[Type::I32],
    },
    // Runs once per tick.
    ExportSpec {
        name: "tick",
        params: &[],
        results: &[],
    },
    // Address of the sensor block in `memory`; called once after start.
    ExportSpec {
        name: "sensor_ptr",
        params: &[],
        results: &[Type::I32],
    },
    // Address of the command block in `memory`; called once after start.
    ExportSpec {
        name: "command_ptr",
        params: &[],
        results: &[Type::I32],
    },
];

/// The memory every script exports (its only memory).
pub const MEMORY_EXPORT: &str = "memory";

/// Export names the host reserves (wasmer's metering globals live there).
pub const RESERVED_EXPORT_PREFIX: &str = "wasmer_";

/// Why a well-known import is refused, so authors learn what to use instead.
pub fn forbidden_import_hint(module: &str, name: &str) -> &'static str {
    match (module, name) {
        (m, _) if m.starts_with("wasi") => {
            "WASI is not available to scripts: there is no file system, clock or entropy"
        }
        ("env", "seed") => "scripts get randomness from astroboids.random",
        ("env", "Date.now") | ("env", "performance.now") => {
            "scripts have no clock: time is the tick number"
        }
        ("env", "trace") => "use astroboids.log",
        _ => "only the functions listed in docs/scripting-abi.md may be imported",
    }
}

/// `(i32, i32) -> ()` style rendering for error messages.
pub fn signature(params: &[Type], results: &[Type]) -> String {
    let list = |types: &[Type]| {
        types
            .iter()
            .map(|t| format!("{t:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(params), list(results))
}

/// What kind of thing an import or export is, as messages name it.
pub(crate) fn kind_name(ty: &ExternType) -> &'static str {
    match ty {
        ExternType::Function(_) => "function",
        ExternType::Global(_) => "global",
        ExternType::Table(_) => "table",
        ExternType::Memory(_) => "memory",
        ExternType::Tag(_) => "tag",
    }
}

/// The ABI version a freshly started instance reports; checked right after instantiation.
pub(crate) fn check_abi_version(found: i32) -> Result<(), ScriptError> {
    if found == ABI_VERSION {
        Ok(())
    } else {
        Err(ScriptError::AbiVersion {
            found,
            supported: ABI_VERSION,
        })
    }
}
