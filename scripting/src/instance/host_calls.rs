//! What a script may call: `astroboids.log`, `astroboids.random` and `env.abort`, each taking
//! its fuel before it does anything, and the state they share with the instance.

use wasmer::{
    Function, FunctionEnv, FunctionEnvMut, Global, Imports, Memory, RuntimeError, Store, Value,
    imports,
};

use crate::limits::ScriptLimits;

/// What host functions see.
pub(super) struct HostState {
    pub(super) memory: Option<Memory>,
    pub(super) remaining: Option<Global>,
    pub(super) exhausted: Option<Global>,
    pub(super) random_state: u64,
    pub(super) logs: Vec<String>,
    pub(super) logs_dropped: u32,
    pub(super) log_lines_max: u32,
    pub(super) log_line_bytes: u32,
    pub(super) log_fuel: u64,
    pub(super) abort: Option<String>,
}

impl HostState {
    pub(super) fn new(limits: &ScriptLimits) -> Self {
        Self {
            memory: None,
            remaining: None,
            exhausted: None,
            random_state: 0,
            logs: Vec::new(),
            logs_dropped: 0,
            log_lines_max: limits.log_lines_per_tick,
            log_line_bytes: limits.log_line_bytes,
            log_fuel: limits.log_fuel,
            abort: None,
        }
    }
}

/// The functions a script may import, bound to its instance's `env`.
pub(super) fn host_imports(store: &mut Store, env: &FunctionEnv<HostState>) -> Imports {
    imports! {
        "astroboids" => {
            "log" => Function::new_typed_with_env(store, env, host_log),
            "random" => Function::new_typed_with_env(store, env, host_random),
        },
        "env" => {
            "abort" => Function::new_typed_with_env(store, env, host_abort),
        },
    }
}

/// Takes `cost` fuel from inside a host call; traps as out-of-fuel when there is not enough.
fn charge(env: &mut FunctionEnvMut<HostState>, cost: u64) -> Result<(), RuntimeError> {
    let (state, mut store) = env.data_and_store_mut();
    let (Some(remaining), Some(exhausted)) = (state.remaining.clone(), state.exhausted.clone())
    else {
        return Ok(());
    };
    let left = match remaining.get(&mut store) {
        Value::I64(v) => v,
        _ => 0,
    };
    let cost = i64::try_from(cost).unwrap_or(i64::MAX);
    if left < cost {
        let _ = remaining.set(&mut store, Value::I64(0));
        let _ = exhausted.set(&mut store, Value::I32(1));
        return Err(RuntimeError::new("out of fuel in a host call"));
    }
    let _ = remaining.set(&mut store, Value::I64(left - cost));
    Ok(())
}

/// `astroboids.log(ptr, len)`: charged before anything is read; the whole range must lie in
/// memory (also when the line is then dropped or cut), so a bad pointer always traps alike.
fn host_log(mut env: FunctionEnvMut<HostState>, ptr: i32, len: i32) -> Result<(), RuntimeError> {
    if len < 0 {
        return Err(RuntimeError::new(format!(
            "astroboids.log: the length is {len}; it must be 0 or more"
        )));
    }
    let (start, len) = (u64::from(ptr as u32), len as u64);
    let fuel = env.data().log_fuel;
    charge(&mut env, fuel.saturating_add(len))?;
    let (state, store) = env.data_and_store_mut();
    let Some(memory) = state.memory.as_ref() else {
        return Ok(());
    };
    let view = memory.view(&store);
    if start + len > view.data_size() {
        return Err(RuntimeError::new(format!(
            "astroboids.log: bytes {start}..{} lie outside the memory ({} bytes)",
            start + len,
            view.data_size()
        )));
    }
    if state.logs.len() >= state.log_lines_max as usize {
        state.logs_dropped += 1;
        return Ok(());
    }
    let keep = len.min(u64::from(state.log_line_bytes));
    let mut bytes = vec![0u8; keep as usize];
    view.read(start, &mut bytes)
        .map_err(|_| RuntimeError::new("astroboids.log: cannot read the line"))?;
    let line = escape_control(&String::from_utf8_lossy(&bytes));
    state.logs.push(line);
    Ok(())
}

/// Renders control characters (C0, DEL, C1) as escapes (`\n`, `\t`, `\x1b`, `\u{9b}`) and a
/// backslash as `\\`, so a log line shown in a terminal or a client can neither move the
/// cursor, change colours, nor forge a second line.
pub fn escape_control(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (0x80..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

fn host_random(mut env: FunctionEnvMut<HostState>) -> i32 {
    // SplitMix64 step: fixed algorithm, so the sequence is the same everywhere.
    let state = env.data_mut();
    state.random_state = state.random_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = state.random_state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 32) as u32 as i32
}

fn host_abort(
    mut env: FunctionEnvMut<HostState>,
    _message: i32,
    _file: i32,
    line: i32,
    column: i32,
) -> Result<(), RuntimeError> {
    let text = format!("abort() called at line {line}, column {column}");
    env.data_mut().abort = Some(text.clone());
    Err(RuntimeError::new(text))
}
