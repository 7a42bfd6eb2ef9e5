//! How a checkpoint is laid out in bytes, by format.
//!
//! Every format is one postcard sequence of the same fields in the same order; they differ
//! only in how a script's memory is stored. Up to [`WHOLE_MEMORY_FORMAT`] a memory is one byte
//! string of every byte (at 10,000 scripted ships that was 655 MB to encode and compress, of
//! which a few percent was not zero); later formats store a [`MemoryImage`]: the size and the
//! non-zero chunks. The first field, `format`, says which layout the rest uses, so reading
//! needs no outside hint and writing uses the layout the value's own format names: a
//! checkpoint read from an old file and written back comes out byte for byte the same.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use astroboids_scripting::MemoryImage;

use super::{ShipRecord, WHOLE_MEMORY_FORMAT, WorldCheckpoint};

/// A script memory as formats up to [`WHOLE_MEMORY_FORMAT`] store it: every byte.
#[derive(Debug, Clone, PartialEq)]
pub struct WholeMemory(pub MemoryImage);

impl Serialize for WholeMemory {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0.to_vec())
    }
}

impl<'de> Deserialize<'de> for WholeMemory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(deserializer)?;
        Ok(WholeMemory(MemoryImage::of(&bytes)))
    }
}

impl<M> ShipRecord<M> {
    /// The same record with its script memory stored as `store` makes it.
    pub fn map_memory<N>(self, store: impl FnOnce(M) -> N) -> ShipRecord<N> {
        let ShipRecord {
            id,
            sector,
            local,
            velocity,
            heading,
            hull,
            energy,
            cargo,
            autopilot,
            script,
            owner,
        } = self;
        ShipRecord {
            id,
            sector,
            local,
            velocity,
            heading,
            hull,
            energy,
            cargo,
            autopilot,
            script: script.map(|s| super::ScriptRecord {
                script: s.script,
                status: s.status,
                fuel_stored: s.fuel_stored,
                faults: s.faults,
                clean_runs: s.clean_runs,
                resume_at_tick: s.resume_at_tick,
                fuel_used_last: s.fuel_used_last,
                fuel_used_total: s.fuel_used_total,
                faults_total: s.faults_total,
                log: s.log,
                log_dropped: s.log_dropped,
                memory: store(s.memory),
                globals: s.globals,
            }),
            owner,
        }
    }
}

const FIELDS: &[&str] = &[
    "format",
    "generator_version",
    "config_digest",
    "universe_seed",
    "tick",
    "next_net_id",
    "ships",
    "loaded_sectors",
    "sector_deltas",
    "totals",
    "pending_inputs",
    "scripts",
    "recent_faults",
];

impl Serialize for WorldCheckpoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("WorldCheckpoint", FIELDS.len())?;
        out.serialize_field("format", &self.format)?;
        out.serialize_field("generator_version", &self.generator_version)?;
        out.serialize_field("config_digest", &self.config_digest)?;
        out.serialize_field("universe_seed", &self.universe_seed)?;
        out.serialize_field("tick", &self.tick)?;
        out.serialize_field("next_net_id", &self.next_net_id)?;
        if self.format <= WHOLE_MEMORY_FORMAT {
            let whole: Vec<ShipRecord<WholeMemory>> = self
                .ships
                .iter()
                .map(|ship| ship.clone().map_memory(WholeMemory))
                .collect();
            out.serialize_field("ships", &whole)?;
        } else {
            out.serialize_field("ships", &self.ships)?;
        }
        out.serialize_field("loaded_sectors", &self.loaded_sectors)?;
        out.serialize_field("sector_deltas", &self.sector_deltas)?;
        out.serialize_field("totals", &self.totals)?;
        out.serialize_field("pending_inputs", &self.pending_inputs)?;
        out.serialize_field("scripts", &self.scripts)?;
        out.serialize_field("recent_faults", &self.recent_faults)?;
        out.end()
    }
}

impl<'de> Deserialize<'de> for WorldCheckpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct("WorldCheckpoint", FIELDS, CheckpointVisitor)
    }
}

struct CheckpointVisitor;

/// The next field of a checkpoint, or an error naming the missing one.
fn field<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
    seq: &mut A,
    index: usize,
) -> Result<T, A::Error> {
    seq.next_element()?
        .ok_or_else(|| de::Error::invalid_length(index, &"a world checkpoint's 13 fields"))
}

impl<'de> Visitor<'de> for CheckpointVisitor {
    type Value = WorldCheckpoint;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a world checkpoint")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WorldCheckpoint, A::Error> {
        let format: u32 = field(&mut seq, 0)?;
        let generator_version = field(&mut seq, 1)?;
        let config_digest = field(&mut seq, 2)?;
        let universe_seed = field(&mut seq, 3)?;
        let tick = field(&mut seq, 4)?;
        let next_net_id = field(&mut seq, 5)?;
        let ships = if format <= WHOLE_MEMORY_FORMAT {
            field::<Vec<ShipRecord<WholeMemory>>, _>(&mut seq, 6)?
                .into_iter()
                .map(|ship| ship.map_memory(|whole| whole.0))
                .collect()
        } else {
            field(&mut seq, 6)?
        };
        Ok(WorldCheckpoint {
            format,
            generator_version,
            config_digest,
            universe_seed,
            tick,
            next_net_id,
            ships,
            loaded_sectors: field(&mut seq, 7)?,
            sector_deltas: field(&mut seq, 8)?,
            totals: field(&mut seq, 9)?,
            pending_inputs: field(&mut seq, 10)?,
            scripts: field(&mut seq, 11)?,
            recent_faults: field(&mut seq, 12)?,
        })
    }
}
