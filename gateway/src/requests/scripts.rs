//! Scripts: uploads (validated with the world's script limits, stored as named versions in
//! the store), listings, and assigning a version to a ship (the module is added to the world
//! first, through the input log, unless this gateway already did).

use std::sync::Arc;

use astroboids_protocol::messages::{RequestError, Response, ScriptListing};
use astroboids_sim::inputs::WorldInput;

use super::{Gateway, InputIds, store_error};
use crate::unix_now_s;

type Answer = Result<Response, RequestError>;

impl Gateway {
    pub(super) async fn upload(&self, user: &str, name: &str, wasm: Vec<u8>) -> Answer {
        let limit = self.world.max_module_bytes;
        if wasm.len() > limit {
            return Err(RequestError::Invalid(format!(
                "the module is {} bytes; the limit is {limit}",
                wasm.len()
            )));
        }
        let compiled = {
            let _slot = self
                .compile_slots
                .acquire()
                .await
                .map_err(|_| RequestError::Unavailable("the gateway is stopping".into()))?;
            let engine = Arc::clone(&self.engine);
            let module = wasm.clone();
            tokio::task::spawn_blocking(move || engine.load_for_upload(&module).map(|c| c.hash()))
                .await
                .map_err(|e| RequestError::Unavailable(format!("the compiler failed: {e}")))?
        };
        compiled.map_err(|e| RequestError::Rejected(format!("script rejected: {e}")))?;
        let (hash, version) = self
            .store
            .upload_script(user, name, &wasm, unix_now_s())
            .await
            .map_err(store_error)?;
        Ok(Response::ScriptUploaded {
            name: name.to_owned(),
            version,
            hash: format!("{hash:032x}"),
        })
    }

    pub(super) async fn list_scripts(&self, user: &str) -> Answer {
        let listings = self.store.list_scripts(user).await.map_err(store_error)?;
        Ok(Response::Scripts(
            listings
                .into_iter()
                .map(|l| ScriptListing {
                    name: l.name,
                    version: l.latest.version,
                    hash: format!("{:032x}", l.latest.hash),
                })
                .collect(),
        ))
    }

    pub(super) async fn assign(
        &self,
        user: &str,
        ship: u64,
        name: &str,
        ids: &mut InputIds,
    ) -> Answer {
        let latest = self
            .store
            .latest_script(user, name)
            .await
            .map_err(store_error)?
            .ok_or_else(|| RequestError::Rejected(format!("you have no script named {name:?}")))?;
        let added = self
            .added_scripts
            .lock()
            .expect("not poisoned")
            .contains(&latest.hash);
        if !added {
            let wasm = self
                .store
                .script(latest.hash)
                .await
                .map_err(store_error)?
                .ok_or_else(|| {
                    RequestError::Unavailable("the script's module is missing".into())
                })?;
            self.submit(WorldInput::AddScript { wasm }, ids).await?;
            self.added_scripts
                .lock()
                .expect("not poisoned")
                .insert(latest.hash);
        }
        self.submit(
            WorldInput::AssignScript {
                ship,
                script: latest.hash,
            },
            ids,
        )
        .await?;
        Ok(Response::ScriptAssigned {
            ship,
            name: name.to_owned(),
            version: latest.version,
        })
    }

    /// (hash, "NAME vN") of every version of `user`'s scripts.
    pub(super) async fn script_labels(
        &self,
        user: &str,
    ) -> Result<Vec<(u128, String)>, RequestError> {
        let mut out = Vec::new();
        for listing in self.store.list_scripts(user).await.map_err(store_error)? {
            for v in self
                .store
                .script_versions(user, &listing.name)
                .await
                .map_err(store_error)?
            {
                out.push((v.hash, format!("{} v{}", listing.name, v.version)));
            }
        }
        Ok(out)
    }
}
