//! One way to run a world, for every host of it (`astroboids sim`, the online server): inputs
//! are submitted (applied for the next tick, and recorded), committed (logged and flushed when
//! the world persists), and the world stepped (the tick recorded, files rotated).
//!
//! Architecture invariant: every input a host applies goes through [`WorldRunner::submit`], so
//! the persisted log, the recording and the world never disagree about what was applied.

use astroboids_engine::Simulation;
use astroboids_sim::inputs::{InputOutcome, WorldInput, apply_input};

use crate::persistent::{HostError, PersistentWorld};
use crate::recording::{Recording, RecordingPlan, Rotation, Written};

/// A world a [`WorldRunner`] can run: in memory, or persisted.
pub trait RunnableWorld {
    fn sim(&self) -> &Simulation;
    /// For observers that need `&mut` (hashing, capturing); changes go through `submit`.
    fn sim_mut(&mut self) -> &mut Simulation;
    /// Applies `input` for the next tick (a refusal changes nothing).
    fn submit(&mut self, input: WorldInput) -> Result<InputOutcome, HostError>;
    /// Makes the inputs submitted so far durable; returns the tick they were logged for
    /// (`None`: nothing to log, or nothing is persisted).
    fn commit(&mut self) -> Result<Option<u64>, HostError>;
    /// Runs one tick; returns whether a checkpoint was taken (a persisted world stores it on a
    /// writer thread while the next ticks run).
    fn step(&mut self) -> Result<bool, HostError>;
}

impl RunnableWorld for Simulation {
    fn sim(&self) -> &Simulation {
        self
    }

    fn sim_mut(&mut self) -> &mut Simulation {
        self
    }

    fn submit(&mut self, input: WorldInput) -> Result<InputOutcome, HostError> {
        Ok(apply_input(self.world_mut(), &input)?)
    }

    fn commit(&mut self) -> Result<Option<u64>, HostError> {
        Ok(None)
    }

    fn step(&mut self) -> Result<bool, HostError> {
        Simulation::step(self);
        Ok(false)
    }
}

impl RunnableWorld for PersistentWorld {
    fn sim(&self) -> &Simulation {
        PersistentWorld::sim(self)
    }

    fn sim_mut(&mut self) -> &mut Simulation {
        PersistentWorld::sim_mut(self)
    }

    fn submit(&mut self, input: WorldInput) -> Result<InputOutcome, HostError> {
        PersistentWorld::submit(self, input)
    }

    fn commit(&mut self) -> Result<Option<u64>, HostError> {
        PersistentWorld::commit(self)
    }

    fn step(&mut self) -> Result<bool, HostError> {
        PersistentWorld::step(self)
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stepped {
    /// The tick the inputs were logged for before it ran (persisted worlds).
    pub committed: Option<u64>,
    /// A checkpoint was taken after the tick (stored by the world's writer thread).
    pub checkpoint_written: bool,
    pub recording: Rotation,
}

/// A world and its recording (see the module docs).
#[derive(Debug)]
pub struct WorldRunner<W> {
    world: W,
    recording: Recording,
}

impl<W: RunnableWorld> WorldRunner<W> {
    /// Runs `world`, recording by `plan` from its first checkpoint tick (at once when it is at
    /// one now). An error starting the recording is returned with the runner: the world runs
    /// on without it.
    pub fn new(mut world: W, plan: RecordingPlan) -> (Self, Rotation) {
        let mut recording = Recording::new(plan);
        let started = recording.after_tick(world.sim_mut());
        (Self { world, recording }, started)
    }

    pub fn world(&self) -> &W {
        &self.world
    }

    /// The world, for observers and reads; inputs go through [`Self::submit`].
    pub fn world_mut(&mut self) -> &mut W {
        &mut self.world
    }

    pub fn sim(&self) -> &Simulation {
        self.world.sim()
    }

    /// The last tick that ran.
    pub fn tick(&self) -> u64 {
        self.world.sim().tick()
    }

    pub fn sim_mut(&mut self) -> &mut Simulation {
        self.world.sim_mut()
    }

    pub fn recording(&self) -> &Recording {
        &self.recording
    }

    /// Applies `input` for the next tick and records it; a refused input changes nothing and
    /// is neither logged nor recorded.
    pub fn submit(&mut self, input: WorldInput) -> Result<InputOutcome, HostError> {
        let outcome = self.world.submit(input.clone())?;
        self.recording.input(&input);
        Ok(outcome)
    }

    /// Makes everything submitted so far durable (persisted worlds).
    pub fn commit(&mut self) -> Result<Option<u64>, HostError> {
        self.world.commit()
    }

    /// Commits, runs one tick and records it.
    pub fn step(&mut self) -> Result<Stepped, HostError> {
        let committed = self.world.commit()?;
        let checkpoint_written = self.world.step()?;
        let recording = self.recording.after_tick(self.world.sim_mut());
        Ok(Stepped {
            committed,
            checkpoint_written,
            recording,
        })
    }

    /// Ends the recording (at the end of a run, or a clean shutdown at a checkpoint tick) and
    /// returns the world.
    pub fn finish(mut self) -> (W, Result<Option<Written>, String>) {
        let written = self.recording.finish(self.world.sim_mut());
        (self.world, written)
    }
}

/// A world chosen at run time: in memory, or persisted to a data directory.
pub enum AnyWorld {
    InMemory(Box<Simulation>),
    Persistent(Box<PersistentWorld>),
}

impl std::fmt::Debug for AnyWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InMemory(sim) => write!(f, "AnyWorld::InMemory(tick {})", sim.tick()),
            Self::Persistent(world) => write!(f, "AnyWorld::{world:?}"),
        }
    }
}

impl AnyWorld {
    pub fn persistent(&self) -> Option<&PersistentWorld> {
        match self {
            Self::InMemory(_) => None,
            Self::Persistent(world) => Some(world),
        }
    }
}

impl RunnableWorld for AnyWorld {
    fn sim(&self) -> &Simulation {
        match self {
            Self::InMemory(sim) => sim,
            Self::Persistent(world) => world.sim(),
        }
    }

    fn sim_mut(&mut self) -> &mut Simulation {
        match self {
            Self::InMemory(sim) => sim,
            Self::Persistent(world) => world.sim_mut(),
        }
    }

    fn submit(&mut self, input: WorldInput) -> Result<InputOutcome, HostError> {
        match self {
            Self::InMemory(sim) => RunnableWorld::submit(sim.as_mut(), input),
            Self::Persistent(world) => RunnableWorld::submit(world.as_mut(), input),
        }
    }

    fn commit(&mut self) -> Result<Option<u64>, HostError> {
        match self {
            Self::InMemory(_) => Ok(None),
            Self::Persistent(world) => world.commit(),
        }
    }

    fn step(&mut self) -> Result<bool, HostError> {
        match self {
            Self::InMemory(sim) => RunnableWorld::step(sim.as_mut()),
            Self::Persistent(world) => RunnableWorld::step(world.as_mut()),
        }
    }
}
