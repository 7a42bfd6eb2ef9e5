//! Limits on a module's shape, checked on the raw bytes before anything is compiled.
//!
//! Fuel bounds what a script does once it runs; these bound what it costs to compile and to
//! instantiate, which no fuel covers. A 260 KB module of deeply nested blocks takes minutes
//! to compile with cranelift; 50,000 mutable globals cost tens of milliseconds per instance;
//! a function with tens of thousands of locals zeroes them on every call. Each limit is far
//! above what compilers emit for real scripts (an AssemblyScript bot has a few hundred
//! functions, tens of globals, nesting in the tens) and each refusal names the limit.
//!
//! Also here: active data and element segments must fit the memory and table the module
//! starts with, so a module that would fail while instantiating is refused at upload with the
//! segment named, rather than at every ship's start.

use wasmer::wasmparser::{DataKind, ElementItems, ElementKind, Operator, Parser, Payload, TypeRef};

use crate::error::ScriptError;

/// Shape limits; see the module docs. Not part of the universe configuration: they protect the
/// host, and every one is far above what real scripts need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructureLimits {
    pub max_functions: u32,
    pub max_function_body_bytes: u32,
    pub max_locals_per_function: u32,
    /// Blocks, loops and ifs open at once in one function.
    pub max_nesting_depth: u32,
    pub max_br_table_targets: u32,
    /// Branch instructions (`br`, `br_if`, `br_table`, `if`) in one function: cranelift's
    /// compile time grows with their square (a 40 KB function of 10,000 `br_if`s takes
    /// seconds), so large functions must not be all branches.
    pub max_branches_per_function: u32,
    pub max_globals: u32,
    pub max_types: u32,
    pub max_exports: u32,
    pub max_tables: u32,
    pub max_data_segments: u32,
    pub max_element_segments: u32,
}

impl Default for StructureLimits {
    fn default() -> Self {
        Self {
            max_functions: 10_000,
            max_function_body_bytes: 64 * 1024,
            max_locals_per_function: 1_024,
            max_nesting_depth: 128,
            max_br_table_targets: 4_096,
            max_branches_per_function: 1_024,
            max_globals: 1_024,
            max_types: 1_024,
            max_exports: 1_024,
            max_tables: 1,
            max_data_segments: 1_024,
            max_element_segments: 1_024,
        }
    }
}

fn too_many(what: &str, found: u64, limit: u32) -> ScriptError {
    ScriptError::Structure(format!("{found} {what}; the limit is {limit}"))
}

fn check_count(what: &str, found: u64, limit: u32) -> Result<(), ScriptError> {
    if found > u64::from(limit) {
        return Err(too_many(what, found, limit));
    }
    Ok(())
}

fn malformed(e: impl std::fmt::Display) -> ScriptError {
    ScriptError::Invalid(e.to_string())
}

/// The i32 offset of a constant offset expression, if it is a plain `i32.const`.
fn const_offset(expr: &wasmer::wasmparser::ConstExpr) -> Option<u64> {
    match expr.get_operators_reader().read().ok()? {
        Operator::I32Const { value } => Some(u64::from(value as u32)),
        _ => None,
    }
}

/// Checks every limit, walking the module once. Malformed bytes are reported as invalid (the
/// compiler's validation then gives the detailed reason).
pub(crate) fn check_structure(
    wasm: &[u8],
    limits: &StructureLimits,
    max_table_elements: u32,
) -> Result<(), ScriptError> {
    let mut memory_bytes: Option<u64> = None;
    let mut table_elements: Option<u64> = None;
    let mut imported_functions = 0u64;
    let mut function_number = 0u64;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(malformed)? {
            Payload::TypeSection(r) => check_count("types", r.count().into(), limits.max_types)?,
            Payload::ImportSection(r) => {
                for group in r {
                    for import in group.map_err(malformed)? {
                        let (_, import) = import.map_err(malformed)?;
                        if matches!(import.ty, TypeRef::Func(_) | TypeRef::FuncExact(_)) {
                            imported_functions += 1;
                        }
                    }
                }
            }
            Payload::FunctionSection(r) => {
                check_count("functions", r.count().into(), limits.max_functions)?;
            }
            Payload::TableSection(r) => {
                check_count("tables", r.count().into(), limits.max_tables)?;
                for table in r {
                    let ty = table.map_err(malformed)?.ty;
                    if ty.initial > u64::from(max_table_elements) {
                        return Err(ScriptError::TableTooLarge {
                            index: 0,
                            minimum: ty.initial.min(u64::from(u32::MAX)) as u32,
                            limit: max_table_elements,
                        });
                    }
                    table_elements = Some(ty.initial);
                }
            }
            Payload::MemorySection(r) => {
                for memory in r {
                    let ty = memory.map_err(malformed)?;
                    memory_bytes = Some(ty.initial.saturating_mul(64 * 1024));
                }
            }
            Payload::GlobalSection(r) => {
                check_count("globals", r.count().into(), limits.max_globals)?
            }
            Payload::ExportSection(r) => {
                check_count("exports", r.count().into(), limits.max_exports)?
            }
            Payload::ElementSection(r) => {
                check_count(
                    "element segments",
                    r.count().into(),
                    limits.max_element_segments,
                )?;
                for (index, element) in r.into_iter().enumerate() {
                    let element = element.map_err(malformed)?;
                    let ElementKind::Active { offset_expr, .. } = &element.kind else {
                        continue;
                    };
                    let items = match &element.items {
                        ElementItems::Functions(f) => u64::from(f.count()),
                        ElementItems::Expressions(_, e) => u64::from(e.count()),
                    };
                    let (Some(offset), Some(table)) = (const_offset(offset_expr), table_elements)
                    else {
                        continue;
                    };
                    if offset + items > table {
                        return Err(ScriptError::Structure(format!(
                            "element segment {index} writes elements {offset}..{} of a table \
                             that starts with {table}",
                            offset + items
                        )));
                    }
                }
            }
            Payload::DataSection(r) => {
                check_count("data segments", r.count().into(), limits.max_data_segments)?;
                for (index, data) in r.into_iter().enumerate() {
                    let data = data.map_err(malformed)?;
                    let DataKind::Active { offset_expr, .. } = &data.kind else {
                        continue;
                    };
                    let (Some(offset), Some(memory)) = (const_offset(offset_expr), memory_bytes)
                    else {
                        continue;
                    };
                    let end = offset + data.data.len() as u64;
                    if end > memory {
                        return Err(ScriptError::Structure(format!(
                            "data segment {index} writes bytes {offset}..{end} of a memory that \
                             starts with {memory} bytes"
                        )));
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let index = imported_functions + function_number;
                function_number += 1;
                check_function(&body, index, limits)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Size, locals, nesting and `br_table` of one function body (`index` counts imports too, as
/// the text format does).
fn check_function(
    body: &wasmer::wasmparser::FunctionBody,
    index: u64,
    limits: &StructureLimits,
) -> Result<(), ScriptError> {
    let in_function = |what: String| ScriptError::Structure(format!("function {index}: {what}"));
    let range = body.range();
    let bytes = range.end - range.start;
    if bytes > u64::from(limits.max_function_body_bytes) {
        return Err(in_function(format!(
            "its body is {bytes} bytes; the limit is {}",
            limits.max_function_body_bytes
        )));
    }
    let mut locals = 0u64;
    for group in body.get_locals_reader().map_err(malformed)? {
        let (count, _) = group.map_err(malformed)?;
        locals += u64::from(count);
        if locals > u64::from(limits.max_locals_per_function) {
            return Err(in_function(format!(
                "it declares more than {} locals, the limit",
                limits.max_locals_per_function
            )));
        }
    }
    let mut depth = 0u32;
    let mut branches = 0u32;
    let mut reader = body.get_operators_reader().map_err(malformed)?;
    while !reader.eof() {
        let op = reader.read().map_err(malformed)?;
        if matches!(
            op,
            Operator::Br { .. }
                | Operator::BrIf { .. }
                | Operator::BrTable { .. }
                | Operator::If { .. }
        ) {
            branches += 1;
            if branches > limits.max_branches_per_function {
                return Err(in_function(format!(
                    "it has more than {} branch instructions, the limit",
                    limits.max_branches_per_function
                )));
            }
        }
        match op {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => {
                depth += 1;
                if depth > limits.max_nesting_depth {
                    return Err(in_function(format!(
                        "blocks nest more than {} deep, the limit",
                        limits.max_nesting_depth
                    )));
                }
            }
            Operator::End => depth = depth.saturating_sub(1),
            Operator::BrTable { targets } => {
                let count = targets.len();
                if count > limits.max_br_table_targets {
                    return Err(in_function(format!(
                        "a br_table has {count} targets; the limit is {}",
                        limits.max_br_table_targets
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}
