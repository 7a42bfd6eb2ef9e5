//! Ships: spawning and commands go through the input log (answered with their tick's
//! verdict), ownership lives in the store, and status and logs are asked of the shard that
//! holds the ship (found from the last merged views; a ship that moved on is asked of the
//! other shards).

use std::collections::BTreeMap;

use astroboids_cluster::assignment::ShardId;
use astroboids_cluster::live::{MAX_QUERY_SHIPS, ShipFacts, ShipQuery};
use astroboids_cluster_net::process::query_subject;
use astroboids_pgstore::{Role, Session};
use astroboids_protocol::messages::{MoveCommand, RequestError, Response};
use astroboids_server::requests::{spawn_point, status_report};
use astroboids_sim::checkpoint::{CommandRecord, ShipRecord};
use astroboids_sim::inputs::WorldInput;

use super::{Gateway, InputIds, store_error};
use crate::unix_now_s;

type Answer = Result<Response, RequestError>;

impl Gateway {
    /// `Ok` when `session` may act on `ship`.
    pub(super) async fn check_owner(
        &self,
        session: &Session,
        ship: u64,
    ) -> Result<(), RequestError> {
        match self.store.ship_owner(ship).await.map_err(store_error)? {
            None => Err(RequestError::Rejected(format!("no ship {ship}"))),
            Some(_) if session.role == Role::Admin => Ok(()),
            Some(owner) if owner == session.user => Ok(()),
            Some(_) => Err(RequestError::Forbidden(format!("ship {ship} is not yours"))),
        }
    }

    /// A ship for `user` in their home sector; `capped`: within their ship limit (an admin's
    /// spawn is not).
    pub(super) async fn spawn(&self, user: &str, capped: bool, ids: &mut InputIds) -> Answer {
        let account = self
            .store
            .account(user)
            .await
            .map_err(store_error)?
            .ok_or_else(|| RequestError::Rejected(format!("no user {user:?}")))?;
        let owned = self.store.ship_count(user).await.map_err(store_error)? as usize;
        let cap = account
            .max_ships
            .unwrap_or(self.rules.max_ships_per_account) as usize;
        if capped && owned >= cap {
            return Err(RequestError::Rejected(format!(
                "you own {owned} ships, the most an account may ({cap})"
            )));
        }
        let (sector, local) = spawn_point(user, owned, self.world.sector_size);
        // One input: the ship exists owned by `user`, or not at all.
        let outcome = self
            .submit(
                WorldInput::SpawnShip {
                    sector,
                    local,
                    heading: 0.0,
                    autopilot: true,
                    owner: Some(user.to_owned()),
                },
                ids,
            )
            .await?;
        let ship = outcome
            .verdict
            .as_ref()
            .ok()
            .and_then(|ids| ids.first().copied())
            .ok_or_else(|| RequestError::Unavailable("the spawn reported no ship".into()))?;
        match self.store.record_ship(ship, user, None, unix_now_s()).await {
            Ok(_) => {}
            // Recorded by an earlier attempt of this request.
            Err(astroboids_pgstore::StoreError::ShipOwned { owner, .. }) if owner == user => {}
            Err(e) => return Err(store_error(e)),
        }
        Ok(Response::ShipSpawned { ship })
    }

    pub(super) async fn despawn(&self, ship: u64, ids: &mut InputIds) -> Answer {
        self.submit(WorldInput::Scrap { ship }, ids).await?;
        self.store.delete_ship(ship).await.map_err(store_error)?;
        Ok(Response::Despawned { ship })
    }

    pub(super) async fn move_ship(
        &self,
        ship: u64,
        command: MoveCommand,
        ids: &mut InputIds,
    ) -> Answer {
        let command = CommandRecord {
            thrust: command.thrust,
            turn: command.turn,
            mine: command.mine,
            stop: command.stop,
        };
        let outcome = self
            .submit(WorldInput::Command { ship, command }, ids)
            .await?;
        Ok(Response::MoveQueued { tick: outcome.tick })
    }

    pub(super) async fn status(&self, session: &Session, ship: Option<u64>) -> Answer {
        let ships = match ship {
            Some(ship) => {
                self.check_owner(session, ship).await?;
                vec![ship]
            }
            None => {
                let mut ships = self
                    .store
                    .ships_of(&session.user)
                    .await
                    .map_err(store_error)?;
                ships.truncate(MAX_QUERY_SHIPS);
                ships
            }
        };
        let (tick, records, _) = self.ask_shards(&ships, false).await?;
        let labels = if records.iter().any(|r| r.script.is_some()) {
            self.script_labels(&session.user).await?
        } else {
            Vec::new()
        };
        let reports = records
            .iter()
            .map(|record| status_report(record, tick, &labels))
            .collect();
        Ok(Response::Ships(reports))
    }

    pub(super) async fn logs(&self, ship: u64) -> Answer {
        let (_, records, faults) = self.ask_shards(&[ship], true).await?;
        let record = records
            .into_iter()
            .next()
            .ok_or_else(|| RequestError::Rejected(format!("no ship {ship}")))?;
        Ok(Response::Logs {
            lines: record.script.map(|s| s.log).unwrap_or_default(),
            faults: faults
                .into_iter()
                .filter(|(s, ..)| *s == ship)
                .map(|(_, tick, text)| (tick, text))
                .collect(),
        })
    }

    /// The records of `ships` from the shards holding them (ships no shard holds are gone),
    /// the newest tick any answering shard stood at, and the ships' recent faults when asked.
    async fn ask_shards(
        &self,
        ships: &[u64],
        faults: bool,
    ) -> Result<(u64, Vec<ShipRecord>, Vec<(u64, u64, String)>), RequestError> {
        let (located, shards) = {
            let viewers = self.viewers.lock().expect("not poisoned");
            let mut by_shard: BTreeMap<ShardId, Vec<u64>> = BTreeMap::new();
            let mut unknown = Vec::new();
            for &ship in ships {
                match viewers.shard_of(ship) {
                    Some(shard) => by_shard.entry(shard).or_default().push(ship),
                    None => unknown.push(ship),
                }
            }
            ((by_shard, unknown), viewers.shards().max(1))
        };
        let (by_shard, mut left) = located;
        let mut tick = 0;
        let mut records: BTreeMap<u64, ShipRecord> = BTreeMap::new();
        let mut found_faults = Vec::new();
        let mut take = |facts: ShipFacts, left: &mut Vec<u64>| {
            tick = tick.max(facts.tick);
            for record in facts.ships {
                left.retain(|s| *s != record.id);
                records.insert(record.id, record);
            }
            found_faults.extend(facts.faults);
            left.extend(facts.elsewhere);
            left.sort_unstable();
            left.dedup();
        };
        for (shard, ships) in by_shard {
            let facts = self.query_shard(shard, ships, faults).await?;
            take(facts, &mut left);
        }
        // Ships not where the views had them (moved on, or in no view yet): ask every shard.
        for shard in 0..shards {
            if left.is_empty() {
                break;
            }
            let facts = self.query_shard(shard, left.clone(), faults).await?;
            let asked = std::mem::take(&mut left);
            take(facts, &mut left);
            // A shard's "elsewhere" means no more than that: keep asking the others.
            left.retain(|s| asked.contains(s));
        }
        let ordered = ships.iter().filter_map(|s| records.remove(s)).collect();
        Ok((tick, ordered, found_faults))
    }

    async fn query_shard(
        &self,
        shard: ShardId,
        ships: Vec<u64>,
        faults: bool,
    ) -> Result<ShipFacts, RequestError> {
        let query = ShipQuery { ships, faults };
        let payload = postcard::to_allocvec(&query).expect("plain data");
        let answer = self
            .bus
            .request_live(&query_subject(shard), payload, self.rules.query_timeout)
            .await
            .map_err(|e| RequestError::Unavailable(format!("shard {shard} did not answer: {e}")))?;
        postcard::from_bytes(&answer).map_err(|e| {
            RequestError::Unavailable(format!("shard {shard}'s answer does not decode: {e}"))
        })
    }
}
