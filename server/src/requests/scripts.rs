//! Scripts: uploads (validated with the server's compiler, stored as named versions),
//! listings, and assigning a version to a ship.

use astroboids_protocol::messages::{RequestError, Response, ScriptListing};
use astroboids_sim::inputs::WorldInput;
use astroboids_sim::scripts::{ScriptId, ScriptLibrary};

use super::{Answer, WorldServer, storage_error};

impl WorldServer {
    pub(super) fn upload(&mut self, user: &str, name: &str, wasm: &[u8]) -> Answer {
        let world = self.world.sim().world();
        let limit = world
            .resource::<astroboids_sim::UniverseConfig>()
            .scripts
            .max_module_bytes as usize;
        if wasm.len() > limit {
            return Err(RequestError::Invalid(format!(
                "the module is {} bytes; the limit is {limit}",
                wasm.len()
            )));
        }
        // A cache hit: the shell compiled it off the tick thread (`load_for_upload` there too,
        // so a module refused for compiling too long is refused here from the cache).
        let compiled = world
            .resource::<ScriptLibrary>()
            .engine()
            .load_for_upload(wasm)
            .map_err(|e| RequestError::Rejected(format!("script rejected: {e}")))?;
        let store = self.world.world().store();
        let hash = store.put_script(wasm).map_err(storage_error)?;
        debug_assert_eq!(hash, compiled.hash());
        let version = store.name_script(user, name, hash).map_err(storage_error)?;
        Ok(Response::ScriptUploaded {
            name: name.to_string(),
            version,
            hash: format!("{hash:032x}"),
        })
    }

    pub(super) fn list_scripts(&self, user: &str) -> Answer {
        let store = self.world.world().store();
        let mut listings = Vec::new();
        for name in store.script_names(user).map_err(storage_error)? {
            if let Some(latest) = store
                .script_versions(user, &name)
                .map_err(storage_error)?
                .last()
            {
                listings.push(ScriptListing {
                    name,
                    version: latest.version,
                    hash: format!("{:032x}", latest.hash),
                });
            }
        }
        Ok(Response::Scripts(listings))
    }

    pub(super) fn assign(&mut self, user: &str, ship: u64, name: &str) -> Answer {
        let store = self.world.world().store();
        let latest = store
            .script_versions(user, name)
            .map_err(storage_error)?
            .last()
            .copied()
            .ok_or_else(|| RequestError::Rejected(format!("you have no script named {name:?}")))?;
        let in_library = self
            .world
            .sim()
            .world()
            .resource::<ScriptLibrary>()
            .contains(ScriptId(latest.hash));
        if !in_library {
            let wasm = store
                .script(latest.hash)
                .map_err(storage_error)?
                .ok_or_else(|| {
                    RequestError::Unavailable("the script's module is missing".into())
                })?;
            self.submit(WorldInput::AddScript { wasm })?;
        }
        self.submit(WorldInput::AssignScript {
            ship,
            script: latest.hash,
        })?;
        Ok(Response::ScriptAssigned {
            ship,
            name: name.to_string(),
            version: latest.version,
        })
    }

    /// (hash, "NAME vN") of every version of `user`'s scripts.
    pub(super) fn script_names_by_hash(
        &self,
        user: &str,
    ) -> Result<Vec<(u128, String)>, RequestError> {
        let store = self.world.world().store();
        let mut out = Vec::new();
        for name in store.script_names(user).map_err(storage_error)? {
            for v in store.script_versions(user, &name).map_err(storage_error)? {
                out.push((v.hash, format!("{name} v{}", v.version)));
            }
        }
        Ok(out)
    }
}
