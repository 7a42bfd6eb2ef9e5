//! Designer tools: generate a region of sectors, measure it, draw it, compare two
//! parameter sets, and the named presets designers start from. The `astroboids sectors`
//! commands are thin shells over this crate.
//!
//! Architecture invariant: this crate reads no files, writes none and keeps no time: callers
//! pass configuration text in and take summaries, tables and image bytes out. Generation is
//! the sim's own `SectorGenerator`, so a map shows exactly what a server would generate.

pub mod presets;
pub mod region;
pub mod render;
pub mod stats;

pub use presets::{ConfigSource, PRESETS, Preset};
pub use region::{Coord, Region, RegionSummary};
pub use render::{MapSource, MapStyle, Shade};
pub use stats::RegionStats;
