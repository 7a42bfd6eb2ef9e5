//! One shard's piece of the world and its side of the tick protocol, without I/O: the shell
//! (in-process or over NATS) hands it the leader's [`TickStart`] and the other shards'
//! [`Exchange`]s, and carries out what it returns.

use std::collections::BTreeMap;

use astroboids_engine::{HashCost, NetId, Simulation, StateHashExt};
use astroboids_sim::checkpoint::ShipRecord;
use astroboids_sim::config::UniverseConfig;
use astroboids_sim::inputs::{InputOutcome, WorldInput, WorldInputError, apply_input};
use astroboids_sim::scripts::ScriptHost;
use astroboids_sim::sensors::{Contact, Sensors};
use astroboids_sim::shard::{self, ArrivalError, HaloShip, ShardScope};
use astroboids_sim::ships::{Owner, ShipIndex};
use astroboids_sim::space::{SectorCoord, SpacePos, Vec2};
use astroboids_sim::{SimOptions, build_simulation_with};

use crate::assignment::{SectorAssignment, ShardId};
use crate::messages::{Exchange, InputVerdict, ShardFigures, TickDone, TickStart};

/// Where a shard is in the tick protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Between ticks: waiting for the leader's start of `next`.
    Idle { next: u64 },
    /// Ran `tick`; waiting for every other shard's exchange.
    Exchanging { tick: u64 },
}

/// A protocol message that does not fit where the shard is.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("shard {shard} expected {expected}, got {got}")]
    OutOfOrder {
        shard: ShardId,
        expected: String,
        got: String,
    },
    #[error("shard {shard}: start of tick {tick} fenced {fence}, below {seen} already obeyed")]
    Fenced {
        shard: ShardId,
        tick: u64,
        fence: u64,
        seen: u64,
    },
    #[error("shard {shard} runs epoch {expected}, got a message of epoch {got}")]
    Epoch {
        shard: ShardId,
        expected: u64,
        got: u64,
    },
    #[error("shard {shard}: handoff refused: {source}")]
    Arrival {
        shard: ShardId,
        source: ArrivalError,
    },
}

/// One shard of a world.
pub struct ShardNode {
    id: ShardId,
    assignment: SectorAssignment,
    /// The plan this shard was made for; it obeys only that plan's messages.
    epoch: u64,
    /// The shards it exchanges with each tick ([`SectorAssignment::neighbours`]).
    neighbours: Vec<ShardId>,
    sim: Simulation,
    config: UniverseConfig,
    phase: Phase,
    fence_seen: u64,
    /// This tick's start (kept for the report) and what is known so far of the exchange.
    current: Option<TickStart>,
    verdicts: Vec<Option<InputVerdict>>,
    received: BTreeMap<ShardId, Exchange>,
    /// Departed ships this shard's own sectors can still sense.
    own_halo: Vec<HaloShip>,
    /// What owned ships that left this tick had sensed, by owner: their new holder has the
    /// ships but not their contacts, and their players' views need both.
    departed_sightings: BTreeMap<String, Vec<Contact>>,
    figures: ShardFigures,
}

impl ShardNode {
    /// A fresh world's shard (tick 0).
    pub fn new(
        id: ShardId,
        assignment: SectorAssignment,
        config: UniverseConfig,
        seed: u64,
        options: SimOptions,
    ) -> Self {
        let sim = build_simulation_with(config.clone(), seed, options);
        Self::from_sim(id, assignment, config, sim)
    }

    /// A shard around a world restored from a checkpoint that holds only this shard's ships
    /// (see [`crate::checkpoint`]); `remote_ships` counts the others.
    pub fn from_sim(
        id: ShardId,
        assignment: SectorAssignment,
        config: UniverseConfig,
        mut sim: Simulation,
    ) -> Self {
        let owns = move |sector: SectorCoord| assignment.shard_of(sector) == id;
        shard::install(sim.world_mut(), ShardScope::new(owns));
        // A shard reports the full hash after every checkpoint tick and stores its piece.
        sim.world()
            .resource::<ScriptHost>()
            .take_states_at_checkpoint_ticks(true);
        let next = sim.tick() + 1;
        Self {
            id,
            assignment,
            epoch: 1,
            neighbours: assignment.neighbours(id),
            sim,
            config,
            phase: Phase::Idle { next },
            fence_seen: 0,
            current: None,
            verdicts: Vec::new(),
            received: BTreeMap::new(),
            own_halo: Vec::new(),
            departed_sightings: BTreeMap::new(),
            figures: ShardFigures::default(),
        }
    }

    pub fn id(&self) -> ShardId {
        self.id
    }

    pub fn assignment(&self) -> SectorAssignment {
        self.assignment
    }

    /// The same shard under plan `epoch` (a new shard starts at epoch 1).
    pub fn with_epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The shards this one exchanges with each tick, sorted.
    pub fn neighbours(&self) -> &[ShardId] {
        &self.neighbours
    }

    pub fn config(&self) -> &UniverseConfig {
        &self.config
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn sim(&self) -> &Simulation {
        &self.sim
    }

    pub fn sim_mut(&mut self) -> &mut Simulation {
        &mut self.sim
    }

    /// The world and what owned ships that left during the last tick had sensed, by owner,
    /// together (views read both; nothing is copied per tick).
    pub fn world_and_departed_sightings(
        &mut self,
    ) -> (&mut bevy_ecs::world::World, &BTreeMap<String, Vec<Contact>>) {
        (self.sim.world_mut(), &self.departed_sightings)
    }

    pub fn ships(&self) -> u64 {
        self.sim.world().resource::<ShipIndex>().len() as u64
    }

    /// Applies the leader's inputs, runs the tick, and returns what goes to each neighbouring
    /// shard (one exchange per neighbour, empty or not: it doubles as "done with tick T" for
    /// the receiver).
    pub fn start_tick(&mut self, start: TickStart) -> Result<Vec<(ShardId, Exchange)>, ShardError> {
        let Phase::Idle { next } = self.phase else {
            return Err(self.out_of_order("an exchange", format!("start of tick {}", start.tick)));
        };
        self.check_epoch(start.epoch)?;
        if start.fence < self.fence_seen {
            return Err(ShardError::Fenced {
                shard: self.id,
                tick: start.tick,
                fence: start.fence,
                seen: self.fence_seen,
            });
        }
        if start.tick != next {
            return Err(self.out_of_order(
                &format!("start of tick {next}"),
                format!("start of tick {}", start.tick),
            ));
        }
        self.fence_seen = start.fence;
        let world = self.sim.world_mut();
        let local = world.resource::<ShipIndex>().len() as u64;
        shard::set_remote_ships(world, start.ships_alive.saturating_sub(local));
        self.verdicts = start
            .inputs
            .iter()
            .map(|input| {
                let result = apply_input(world, input);
                verdict(world, input, result)
            })
            .collect();
        self.sim.step();
        let outgoing = self.gather_exchange(start.tick);
        self.current = Some(start);
        self.received.clear();
        self.phase = Phase::Exchanging { tick: next };
        Ok(outgoing)
    }

    fn check_epoch(&self, got: u64) -> Result<(), ShardError> {
        if got == self.epoch {
            Ok(())
        } else {
            Err(ShardError::Epoch {
                shard: self.id,
                expected: self.epoch,
                got,
            })
        }
    }

    /// After the tick: departures, halo and sector deltas, sorted by receiver.
    fn gather_exchange(&mut self, tick: u64) -> Vec<(ShardId, Exchange)> {
        let mut out: BTreeMap<ShardId, Exchange> = self
            .neighbours
            .iter()
            .map(|&s| {
                let exchange = Exchange {
                    epoch: self.epoch,
                    tick,
                    from: self.id,
                    ..Exchange::default()
                };
                (s, exchange)
            })
            .collect();
        let world = self.sim.world_mut();
        self.departed_sightings = departing_sightings(world);
        let departures: Vec<ShipRecord> = shard::take_departures(world);
        let mut halo = shard::border_ships(world);
        halo.extend(departures.iter().map(shard::halo_of));
        let deltas = shard::changed_deltas(world);

        self.figures = ShardFigures {
            handoffs_out: departures.len() as u32,
            ..ShardFigures::default()
        };
        for ship in departures {
            let to = self.holder(ship.sector);
            out.get_mut(&to)
                .expect("a departure goes to a neighbouring shard")
                .handoffs
                .push(ship);
        }
        self.own_halo.clear();
        halo.sort_unstable_by_key(|h| h.id);
        for ship in halo {
            let holder = self.holder(ship.sector);
            let mut seen_by: Vec<ShardId> = shard::sensed_from(&self.config, &ship.pos())
                .into_iter()
                .map(|s| self.assignment.shard_of(s))
                .filter(|s| *s != holder)
                .collect();
            seen_by.sort_unstable();
            seen_by.dedup();
            for shard in seen_by {
                self.figures.halo_out += 1;
                if shard == self.id {
                    self.own_halo.push(ship.clone());
                } else {
                    out.get_mut(&shard)
                        .expect("a neighbouring shard")
                        .halo
                        .push(ship.clone());
                }
            }
        }
        for delta in deltas {
            let sector = SectorCoord::new(delta.x, delta.y);
            let mut near: Vec<ShardId> = sector
                .neighbourhood(1)
                .map(|s| self.assignment.shard_of(s))
                .filter(|s| *s != self.id)
                .collect();
            near.sort_unstable();
            near.dedup();
            for shard in near {
                out.get_mut(&shard)
                    .expect("a neighbouring shard")
                    .deltas
                    .push(delta.clone());
            }
        }
        self.figures.exchange_messages_out = out.len() as u32;
        out.into_iter().collect()
    }

    fn holder(&self, sector: (i32, i32)) -> ShardId {
        self.assignment
            .shard_of(SectorCoord::new(sector.0, sector.1))
    }

    /// Takes in another shard's exchange; once all are in, finishes the tick and returns the
    /// report for the leader.
    pub fn receive(&mut self, exchange: Exchange) -> Result<Option<TickDone>, ShardError> {
        let Phase::Exchanging { tick } = self.phase else {
            return Err(self.out_of_order(
                "a start",
                format!("exchange of tick {} from {}", exchange.tick, exchange.from),
            ));
        };
        self.check_epoch(exchange.epoch)?;
        if exchange.tick != tick || self.neighbours.binary_search(&exchange.from).is_err() {
            return Err(self.out_of_order(
                &format!("an exchange of tick {tick} from a neighbouring shard"),
                format!("exchange of tick {} from {}", exchange.tick, exchange.from),
            ));
        }
        // A repeat (redelivery) replaces nothing: the first copy stands.
        self.received.entry(exchange.from).or_insert(exchange);
        if self.received.len() < self.neighbours.len() {
            return Ok(None);
        }
        self.finish_tick(tick).map(Some)
    }

    /// With no neighbours (one shard) there is nobody to hear from: the tick finishes at once.
    pub fn finish_alone(&mut self) -> Result<Option<TickDone>, ShardError> {
        match self.phase {
            Phase::Exchanging { tick } if self.neighbours.is_empty() => {
                self.finish_tick(tick).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn finish_tick(&mut self, tick: u64) -> Result<TickDone, ShardError> {
        let received = std::mem::take(&mut self.received);
        let mut arrivals = Vec::new();
        let mut halo = std::mem::take(&mut self.own_halo);
        let world = self.sim.world_mut();
        for exchange in received.into_values() {
            arrivals.extend(exchange.handoffs);
            halo.extend(exchange.halo);
            shard::apply_deltas(world, &exchange.deltas);
        }
        shard::accept_arrivals(world, arrivals).map_err(|source| ShardError::Arrival {
            shard: self.id,
            source,
        })?;
        halo.sort_unstable_by_key(|h| h.id);
        shard::set_halo(world, halo);
        let start = self.current.take().expect("a tick is running");
        let cost = if start.full_hash {
            None
        } else {
            Some(HashCost::Cheap)
        };
        let hash = world.hash_shares(cost);
        self.phase = Phase::Idle { next: tick + 1 };
        Ok(TickDone {
            epoch: self.epoch,
            tick,
            shard: self.id,
            ships: self.ships(),
            hash,
            verdicts: std::mem::take(&mut self.verdicts),
            figures: self.figures,
        })
    }

    fn out_of_order(&self, expected: &str, got: String) -> ShardError {
        ShardError::OutOfOrder {
            shard: self.id,
            expected: expected.to_owned(),
            got,
        }
    }
}

/// The contacts of owned ships about to leave (ending the tick in a sector held elsewhere),
/// by owner.
fn departing_sightings(world: &mut bevy_ecs::world::World) -> BTreeMap<String, Vec<Contact>> {
    let mut out: BTreeMap<String, Vec<Contact>> = BTreeMap::new();
    let mut query = world.query::<(&SpacePos, &Owner, &Sensors)>();
    for (pos, owner, sensors) in query.iter(world) {
        if !shard::holds(world, pos.sector) {
            out.entry(owner.0.clone())
                .or_default()
                .extend(sensors.contacts.iter().copied());
        }
    }
    out
}

/// How an input fared on this shard: `None` when it names a ship this shard does not hold
/// (that ship's holder judges it; if no shard holds it, the leader answers "no ship").
fn verdict(
    world: &bevy_ecs::world::World,
    input: &WorldInput,
    result: Result<InputOutcome, WorldInputError>,
) -> Option<InputVerdict> {
    if let Some(ship) = named_ship(input)
        && !world.resource::<ShipIndex>().contains(ship)
    {
        return None;
    }
    Some(
        result
            .map(|outcome| match outcome {
                InputOutcome::Spawned(ids) => ids.into_iter().map(|id| id.0).collect(),
                _ => Vec::new(),
            })
            .map_err(|e| e.to_string()),
    )
}

/// The ship an input is about, if it is about one.
fn named_ship(input: &WorldInput) -> Option<NetId> {
    match input {
        WorldInput::Command { ship, .. }
        | WorldInput::AssignScript { ship, .. }
        | WorldInput::SetOwner { ship, .. }
        | WorldInput::Scrap { ship }
        | WorldInput::SuspendScript { ship, .. } => Some(NetId(*ship)),
        _ => None,
    }
}

/// Where a ship record says its ship is.
pub fn record_pos(record: &ShipRecord) -> SpacePos {
    SpacePos::new(
        SectorCoord::new(record.sector.0, record.sector.1),
        Vec2::new(record.local.0, record.local.1),
    )
}
