//! Scripts travel by reference: a start that adds a script carries its content hash, and the
//! module itself goes once into the blob store (content-addressed, XXH3-128), where a shard
//! fetches what it lacks. A start stays small however large the modules it adds, and a script
//! added again (another tick, a re-run) is stored once.

use std::collections::HashMap;

use astroboids_sim::inputs::WorldInput;

use crate::messages::{ScriptRef, TickStart};

/// The blob a script module is stored as.
pub fn script_blob_name(hash: u128) -> String {
    format!("script-{hash:032x}")
}

/// Why a start's scripts cannot be put back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptRefError {
    #[error("tick {tick}: script {name} is not in the blob store")]
    Missing { tick: u64, name: String },
    #[error("tick {tick}: blob {name} does not hash to its name (damaged or replaced)")]
    Damaged { tick: u64, name: String },
    #[error("tick {tick}: a script reference names input {input}, which is not an empty AddScript")]
    BadRef { tick: u64, input: u32 },
}

/// The start as published: every `AddScript` module moved out (returned, by hash, for the
/// blob store) and referred to.
pub fn detach_scripts(start: &TickStart) -> (TickStart, Vec<(u128, Vec<u8>)>) {
    let mut published = start.clone();
    let mut modules = Vec::new();
    for (i, input) in published.inputs.iter_mut().enumerate() {
        if let WorldInput::AddScript { wasm } = input
            && !wasm.is_empty()
        {
            let hash = astroboids_scripting::module_hash(wasm);
            modules.push((hash, std::mem::take(wasm)));
            published.scripts.push(ScriptRef {
                input: i as u32,
                hash,
            });
        }
    }
    (published, modules)
}

/// The blobs a published start refers to that `have` lacks.
pub fn missing_scripts(start: &TickStart, have: &HashMap<u128, Vec<u8>>) -> Vec<u128> {
    start
        .scripts
        .iter()
        .map(|r| r.hash)
        .filter(|h| !have.contains_key(h))
        .collect()
}

/// Puts the modules back into a published start, checking each against its hash.
pub fn attach_scripts(
    mut start: TickStart,
    modules: &HashMap<u128, Vec<u8>>,
) -> Result<TickStart, ScriptRefError> {
    let tick = start.tick;
    for r in std::mem::take(&mut start.scripts) {
        let name = script_blob_name(r.hash);
        let wasm = modules
            .get(&r.hash)
            .ok_or_else(|| ScriptRefError::Missing {
                tick,
                name: name.clone(),
            })?;
        if astroboids_scripting::module_hash(wasm) != r.hash {
            return Err(ScriptRefError::Damaged { tick, name });
        }
        match start.inputs.get_mut(r.input as usize) {
            Some(WorldInput::AddScript { wasm: slot }) if slot.is_empty() => {
                *slot = wasm.clone();
            }
            _ => {
                return Err(ScriptRefError::BadRef {
                    tick,
                    input: r.input,
                });
            }
        }
    }
    Ok(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(inputs: Vec<WorldInput>) -> TickStart {
        TickStart {
            epoch: 1,
            tick: 3,
            fence: 1,
            ships_alive: 0,
            inputs,
            inputs_through: 0,
            positions: Vec::new(),
            full_hash: false,
            scripts: Vec::new(),
        }
    }

    #[test]
    fn a_start_travels_without_its_modules_and_comes_back_whole() {
        let original = start(vec![
            WorldInput::SpawnFleet {
                count: 2,
                script: None,
            },
            WorldInput::AddScript {
                wasm: vec![1, 2, 3],
            },
        ]);
        let (published, modules) = detach_scripts(&original);
        assert_eq!(published.inputs[1], WorldInput::AddScript { wasm: vec![] });
        assert_eq!(modules.len(), 1);
        let mut have = HashMap::new();
        assert_eq!(missing_scripts(&published, &have), vec![modules[0].0]);
        have.extend(modules);
        assert!(missing_scripts(&published, &have).is_empty());
        assert_eq!(attach_scripts(published, &have).unwrap(), original);
    }

    #[test]
    fn a_missing_or_damaged_module_is_named() {
        let (published, modules) =
            detach_scripts(&start(vec![WorldInput::AddScript { wasm: vec![9; 10] }]));
        let hash = modules[0].0;
        let e = attach_scripts(published.clone(), &HashMap::new()).unwrap_err();
        assert_eq!(
            e,
            ScriptRefError::Missing {
                tick: 3,
                name: script_blob_name(hash)
            }
        );
        let damaged = HashMap::from([(hash, vec![8; 10])]);
        let e = attach_scripts(published, &damaged).unwrap_err();
        assert!(e.to_string().contains("does not hash to its name"), "{e}");
    }
}
