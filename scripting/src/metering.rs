//! Fuel metering that charges work before it runs and prices work that grows with a length.
//!
//! wasmer-middlewares' `Metering` charges a straight-line block at its end (the branch, call or
//! `end` that closes it) and prices every operator alike. Hostile scripts exploit both: a block
//! that ends in a trap does its work for free, and `memory.fill` of a whole megabyte costs the
//! same one unit as an `i32.add`. This middleware closes both holes:
//!
//! - **Charged before it runs.** Operators are buffered up to the next accounting operator
//!   (every branch, branch target, call and `end`); the buffered segment is then emitted behind a
//!   check that takes the whole segment's cost first. Every point control can enter (function
//!   entry, after a `loop`, `if`, `else`, `end` or call) starts a segment, so no instruction runs
//!   before the segment holding it has paid. A trap halfway through a segment has paid for all
//!   of it.
//! - **Priced by length.** Right before `memory.fill`, `memory.copy`, `memory.init`,
//!   `table.copy`, `table.init` and `memory.grow`, the length operand on the stack is read
//!   (through a scratch global, then pushed back) and a cost proportional to it is charged
//!   before the operator runs.
//! - **Priced by CPU.** Calls, indirect calls, host calls, divisions and square roots cost
//!   more than one unit: [`operator_cost`] is the table, measured by `benches/benches/fuel.rs`.
//!
//! When fuel runs out the check sets the exhausted flag and executes `unreachable`; the host
//! tells that apart from the script's own traps by the flag.
//!
//! One instance meters exactly one module (it records that module's global indexes), so the
//! engine makes a fresh one per compilation.

use std::sync::Mutex;

use wasmer::sys::{FunctionMiddleware, MiddlewareError, MiddlewareReaderState, ModuleMiddleware};
use wasmer::wasmparser::{BlockType, Operator, ValType};
use wasmer::{
    ExportIndex, GlobalInit, GlobalType, LocalFunctionIndex, ModuleInfo, Mutability, Type,
};

/// Export name of the fuel left (i64), set by the host before each call.
pub(crate) const REMAINING_POINTS: &str = "wasmer_metering_remaining_points";
/// Export name of the exhausted flag (i32): 1 when a check found too little fuel.
pub(crate) const POINTS_EXHAUSTED: &str = "wasmer_metering_points_exhausted";

/// Bump when any price below changes: costs are compiled into artifacts and decide how far a
/// script gets in a tick, so they are part of the simulation's results.
pub const COST_TABLE_VERSION: u32 = 5;

/// Charged once per segment on top of its operators: the check itself is work, and without it
/// a loop of one-operator segments (`loop br_if`) would run several times the CPU per unit of a
/// long arithmetic segment.
pub const SEGMENT_COST: u64 = 2;
/// A call into the host (`astroboids.random`, `astroboids.log`, `env.abort`): the trampoline
/// into Rust and back. `astroboids.log` also charges per byte inside the host.
pub const HOST_CALL_COST: u64 = 40;
/// A direct call: frame set-up, stack check, and code that may be cold in the instruction cache
/// when a chain runs through thousands of distinct functions.
pub const CALL_COST: u64 = 16;
/// An indirect call: a call plus the table bounds and signature checks.
pub const CALL_INDIRECT_COST: u64 = 24;
/// `memory.fill`, `memory.copy` and `memory.init` cost one unit per this many bytes (a power of
/// two: the middleware shifts).
pub const BULK_BYTES_PER_FUEL_LOG2: i64 = 3;
/// `table.copy` and `table.init` cost this many units per element (wasmer copies tables one
/// element at a time, with checks).
pub const TABLE_ELEMENT_COST: i64 = 8;
/// Operators wasmer carries out by calling into its runtime (bulk memory and table operations,
/// `data.drop`, `elem.drop`, `memory.size`): the call, before any per-length price.
pub const RUNTIME_CALL_COST: u64 = 40;
/// Loads and stores: an access may miss the cache anywhere in a megabyte of memory.
pub const MEMORY_ACCESS_COST: u64 = 4;
/// Entering a function costs one unit per this many locals it declares: every call zeroes them.
pub const LOCALS_PER_FUEL: u64 = 4;
/// Every page a script gets costs this many units, 1 per byte: each `memory.grow` per page asked
/// for (capped at the memory limit, beyond which a grow fails without work), and the pages the
/// module starts with at start. Growing itself is cheap (`tunables::ReservedMemory` grows in
/// place); the price is for the page faults when the script first touches the memory (~40 µs
/// per 64 KiB page measured here), which happen once per page and are paid up front.
pub const GROW_PAGE_COST: i64 = 65_536;

/// Static price of each operator, charged with its segment.
pub fn operator_cost(op: &Operator, imported_functions: u32) -> u64 {
    match op {
        // Stack and local shuffling and structure markers compile to nothing (cranelift keeps
        // locals in registers); charging them would make code heavy in them look cheap per
        // unit of fuel. The segment's own charge still makes every loop iteration cost.
        Operator::LocalGet { .. }
        | Operator::LocalSet { .. }
        | Operator::LocalTee { .. }
        | Operator::I32Const { .. }
        | Operator::I64Const { .. }
        | Operator::F32Const { .. }
        | Operator::F64Const { .. }
        | Operator::Drop
        | Operator::Nop
        | Operator::Block { .. }
        | Operator::Loop { .. }
        | Operator::Else
        | Operator::End => 0,
        Operator::Call { function_index } if *function_index < imported_functions => HOST_CALL_COST,
        Operator::Call { .. } => CALL_COST,
        Operator::CallIndirect { .. } => CALL_INDIRECT_COST,
        Operator::I32DivS
        | Operator::I32DivU
        | Operator::I32RemS
        | Operator::I32RemU
        | Operator::I64DivS
        | Operator::I64DivU
        | Operator::I64RemS
        | Operator::I64RemU => 8,
        Operator::F32Div | Operator::F64Div | Operator::F32Sqrt | Operator::F64Sqrt => 4,
        Operator::I32Load { .. }
        | Operator::I64Load { .. }
        | Operator::F32Load { .. }
        | Operator::F64Load { .. }
        | Operator::I32Load8S { .. }
        | Operator::I32Load8U { .. }
        | Operator::I32Load16S { .. }
        | Operator::I32Load16U { .. }
        | Operator::I64Load8S { .. }
        | Operator::I64Load8U { .. }
        | Operator::I64Load16S { .. }
        | Operator::I64Load16U { .. }
        | Operator::I64Load32S { .. }
        | Operator::I64Load32U { .. }
        | Operator::I32Store { .. }
        | Operator::I64Store { .. }
        | Operator::F32Store { .. }
        | Operator::F64Store { .. }
        | Operator::I32Store8 { .. }
        | Operator::I32Store16 { .. }
        | Operator::I64Store8 { .. }
        | Operator::I64Store16 { .. }
        | Operator::I64Store32 { .. } => MEMORY_ACCESS_COST,
        Operator::MemoryFill { .. }
        | Operator::MemoryCopy { .. }
        | Operator::MemoryInit { .. }
        | Operator::TableCopy { .. }
        | Operator::TableInit { .. }
        | Operator::DataDrop { .. }
        | Operator::ElemDrop { .. }
        | Operator::MemorySize { .. } => RUNTIME_CALL_COST,
        Operator::MemoryGrow { .. } => 64,
        _ => 1,
    }
}

/// Whether `op` ends a segment: it branches, is a branch target, or calls.
fn is_accounting(op: &Operator) -> bool {
    matches!(
        op,
        Operator::Loop { .. }
            | Operator::End
            | Operator::If { .. }
            | Operator::Else
            | Operator::Br { .. }
            | Operator::BrTable { .. }
            | Operator::BrIf { .. }
            | Operator::Call { .. }
            | Operator::CallIndirect { .. }
            | Operator::Return
            | Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. }
            | Operator::Throw { .. }
            | Operator::ThrowRef
            | Operator::Rethrow { .. }
            | Operator::Delegate { .. }
            | Operator::Catch { .. }
            | Operator::CallRef { .. }
            | Operator::ReturnCallRef { .. }
            | Operator::BrOnNull { .. }
            | Operator::BrOnNonNull { .. }
            | Operator::BrOnCast { .. }
            | Operator::BrOnCastFail { .. }
    )
}

/// How an operator's length operand (an i32 on top of the stack) is priced.
#[derive(Debug, Clone, Copy)]
enum LengthPrice {
    /// One unit per 2^n bytes.
    BytesShift(i64),
    /// n units per element.
    PerElement(i64),
    /// n units per page, pages capped at the memory limit.
    PerPage(i64),
}

fn length_price(op: &Operator) -> Option<LengthPrice> {
    match op {
        Operator::MemoryFill { .. } | Operator::MemoryCopy { .. } | Operator::MemoryInit { .. } => {
            Some(LengthPrice::BytesShift(BULK_BYTES_PER_FUEL_LOG2))
        }
        Operator::TableCopy { .. } | Operator::TableInit { .. } => {
            Some(LengthPrice::PerElement(TABLE_ELEMENT_COST))
        }
        Operator::MemoryGrow { .. } => Some(LengthPrice::PerPage(GROW_PAGE_COST)),
        _ => None,
    }
}

/// The globals the middleware adds to its module.
#[derive(Debug, Clone, Copy)]
struct Globals {
    remaining: u32,
    exhausted: u32,
    /// Holds a length operand while its price is computed.
    scratch: u32,
}

/// What one module's metering needs to know, recorded by `transform_module_info`.
#[derive(Debug, Clone, Copy)]
struct ModuleFacts {
    globals: Globals,
    imported_functions: u32,
}

/// The module middleware: add its globals, then meter every function.
#[derive(Debug)]
pub(crate) struct FuelMetering {
    /// Fuel the start function runs with: the initial value of the remaining-points global.
    start_fuel: u64,
    /// `memory.grow` asks beyond this are priced as this many pages (they fail without work).
    max_memory_pages: u32,
    facts: Mutex<Option<ModuleFacts>>,
}

impl FuelMetering {
    pub(crate) fn new(start_fuel: u64, max_memory_pages: u32) -> Self {
        Self {
            start_fuel,
            max_memory_pages,
            facts: Mutex::new(None),
        }
    }
}

impl ModuleMiddleware for FuelMetering {
    fn generate_function_middleware<'a>(
        &self,
        _: LocalFunctionIndex,
    ) -> Box<dyn FunctionMiddleware<'a> + 'a> {
        let facts = self
            .facts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expect("transform_module_info runs before functions are compiled");
        Box::new(FunctionMetering {
            facts,
            max_memory_pages: self.max_memory_pages,
            segment: Vec::new(),
            segment_cost: 0,
        })
    }

    fn transform_module_info(&self, info: &mut ModuleInfo) -> Result<(), MiddlewareError> {
        let mut facts = self.facts.lock().unwrap_or_else(|e| e.into_inner());
        if facts.is_some() {
            return Err(MiddlewareError::new(
                "FuelMetering",
                "one metering middleware meters exactly one module",
            ));
        }
        let mut add_global = |ty: Type, init: GlobalInit| {
            let index = info.globals.push(GlobalType::new(ty, Mutability::Var));
            info.global_initializers.push(init);
            index
        };
        let start_fuel = i64::try_from(self.start_fuel).unwrap_or(i64::MAX);
        let remaining = add_global(Type::I64, GlobalInit::I64Const(start_fuel));
        let exhausted = add_global(Type::I32, GlobalInit::I32Const(0));
        let scratch = add_global(Type::I32, GlobalInit::I32Const(0));
        info.exports
            .insert(REMAINING_POINTS.to_string(), ExportIndex::Global(remaining));
        info.exports
            .insert(POINTS_EXHAUSTED.to_string(), ExportIndex::Global(exhausted));
        *facts = Some(ModuleFacts {
            globals: Globals {
                remaining: remaining.as_u32(),
                exhausted: exhausted.as_u32(),
                scratch: scratch.as_u32(),
            },
            imported_functions: info.num_imported_functions as u32,
        });
        Ok(())
    }
}

/// Meters one function: buffers a segment, then emits its charge followed by the segment.
#[derive(Debug)]
struct FunctionMetering<'a> {
    facts: ModuleFacts,
    max_memory_pages: u32,
    segment: Vec<Operator<'a>>,
    segment_cost: u64,
}

impl<'a> FunctionMiddleware<'a> for FunctionMetering<'a> {
    fn locals_info(&mut self, locals: &[ValType]) {
        // Charged with the function's first segment, which runs on every call.
        self.segment_cost = self
            .segment_cost
            .saturating_add(locals.len() as u64 / LOCALS_PER_FUEL);
    }

    fn feed(
        &mut self,
        operator: Operator<'a>,
        state: &mut MiddlewareReaderState<'a>,
    ) -> Result<(), MiddlewareError> {
        self.segment_cost = self
            .segment_cost
            .saturating_add(operator_cost(&operator, self.facts.imported_functions));
        if let Some(price) = length_price(&operator) {
            self.charge_length(price);
        }
        let ends_segment = is_accounting(&operator);
        self.segment.push(operator);
        if ends_segment {
            let cost = self.segment_cost.saturating_add(SEGMENT_COST);
            let cost = i64::try_from(cost).unwrap_or(i64::MAX);
            let charge = self.charge(CostOperand::Constant(cost));
            state.extend(charge);
            state.extend(self.segment.drain(..));
            self.segment_cost = 0;
        }
        Ok(())
    }
}

/// The cost a charge subtracts.
#[derive(Debug, Clone, Copy)]
enum CostOperand {
    Constant(i64),
    /// Computed from the length held in the scratch global.
    Length(LengthPrice),
}

impl<'a> FunctionMetering<'a> {
    /// `if remaining < cost { exhausted = 1; unreachable } remaining -= cost`: stack-neutral.
    fn charge(&self, cost: CostOperand) -> Vec<Operator<'a>> {
        let g = self.facts.globals;
        let mut ops = Vec::with_capacity(24);
        ops.push(Operator::GlobalGet {
            global_index: g.remaining,
        });
        self.push_cost(&mut ops, cost);
        ops.extend([
            Operator::I64LtU,
            Operator::If {
                blockty: BlockType::Empty,
            },
            Operator::I32Const { value: 1 },
            Operator::GlobalSet {
                global_index: g.exhausted,
            },
            Operator::Unreachable,
            Operator::End,
            Operator::GlobalGet {
                global_index: g.remaining,
            },
        ]);
        self.push_cost(&mut ops, cost);
        ops.extend([
            Operator::I64Sub,
            Operator::GlobalSet {
                global_index: g.remaining,
            },
        ]);
        ops
    }

    /// Pushes the cost as an i64.
    fn push_cost(&self, ops: &mut Vec<Operator<'a>>, cost: CostOperand) {
        let length = Operator::GlobalGet {
            global_index: self.facts.globals.scratch,
        };
        match cost {
            CostOperand::Constant(value) => ops.push(Operator::I64Const { value }),
            CostOperand::Length(LengthPrice::BytesShift(shift)) => ops.extend([
                length,
                Operator::I64ExtendI32U,
                Operator::I64Const { value: shift },
                Operator::I64ShrU,
            ]),
            CostOperand::Length(LengthPrice::PerElement(cost)) => ops.extend([
                length,
                Operator::I64ExtendI32U,
                Operator::I64Const { value: cost },
                Operator::I64Mul,
            ]),
            CostOperand::Length(LengthPrice::PerPage(cost)) => {
                let cap = i64::from(self.max_memory_pages);
                // select(cap, pages, pages > cap): the pages asked for, at most the limit.
                ops.extend([
                    Operator::I64Const { value: cap },
                    length.clone(),
                    Operator::I64ExtendI32U,
                    length,
                    Operator::I64ExtendI32U,
                    Operator::I64Const { value: cap },
                    Operator::I64GtU,
                    Operator::Select,
                    Operator::I64Const { value: cost },
                    Operator::I64Mul,
                ]);
            }
        }
    }

    /// Appends to the segment: take the length operand off the stack, charge its price, push
    /// it back. Runs right before the operator it prices.
    fn charge_length(&mut self, price: LengthPrice) {
        let scratch = self.facts.globals.scratch;
        self.segment.push(Operator::GlobalSet {
            global_index: scratch,
        });
        let charge = self.charge(CostOperand::Length(price));
        self.segment.extend(charge);
        self.segment.push(Operator::GlobalGet {
            global_index: scratch,
        });
    }
}
