//! ABI v1 data blocks: the sensor block the host writes into guest memory before each tick,
//! and the command block it reads back after. Fixed layouts, little-endian, no host call per
//! contact. The layout is specified in docs/scripting-abi.md; tests pin it.

/// Contacts a sensor block holds at most.
pub const MAX_CONTACTS: usize = 32;
/// Bytes before the first contact.
pub const SENSOR_HEADER_BYTES: usize = 64;
/// Bytes per contact.
pub const CONTACT_BYTES: usize = 40;
/// Total sensor block size.
pub const SENSOR_BLOCK_BYTES: usize = SENSOR_HEADER_BYTES + MAX_CONTACTS * CONTACT_BYTES;
/// Command block size.
pub const COMMAND_BLOCK_BYTES: usize = 16;

/// What kind of thing a contact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[repr(u32)]
pub enum ContactKind {
    Ship = 1,
    Asteroid = 2,
}

/// One contact, relative to the sensing ship.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SensedContact {
    pub kind: ContactKind,
    /// Ship id, or the asteroid's sector packed as (x as u32) << 32 | (y as u32).
    pub id: u64,
    /// Asteroid index within its sector; 0 for ships.
    pub index: u32,
    pub dx: f32,
    pub dy: f32,
    pub vx: f32,
    pub vy: f32,
    pub distance: f32,
    pub radius: f32,
}

/// Everything a script sees at the start of a tick.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SensorSnapshot {
    pub tick: u64,
    pub ship: u64,
    pub sector_x: i32,
    pub sector_y: i32,
    pub x: f32,
    pub y: f32,
    pub vx: f32,
    pub vy: f32,
    pub heading: f32,
    pub hull: f32,
    pub energy: f32,
    pub cargo: u32,
    pub sensor_range: f32,
    /// Nearest first; at most [`MAX_CONTACTS`] are encoded.
    pub contacts: Vec<SensedContact>,
}

impl SensorSnapshot {
    /// The block as laid out in guest memory; always [`SENSOR_BLOCK_BYTES`] long, unused
    /// contact slots zeroed.
    pub fn encode(&self) -> Vec<u8> {
        let mut block = vec![0; SENSOR_BLOCK_BYTES];
        self.encode_into(&mut block);
        block
    }

    /// Writes the block into `out` (reused across ticks, so a tick allocates nothing).
    ///
    /// # Panics
    /// When `out` is not [`SENSOR_BLOCK_BYTES`] long.
    pub fn encode_into(&self, out: &mut [u8]) {
        assert_eq!(out.len(), SENSOR_BLOCK_BYTES, "sensor block size");
        let mut w = Writer { out, at: 0 };
        w.put(&self.tick.to_le_bytes());
        w.put(&self.ship.to_le_bytes());
        w.put(&self.sector_x.to_le_bytes());
        w.put(&self.sector_y.to_le_bytes());
        for v in [
            self.x,
            self.y,
            self.vx,
            self.vy,
            self.heading,
            self.hull,
            self.energy,
        ] {
            w.put(&v.to_le_bytes());
        }
        w.put(&self.cargo.to_le_bytes());
        w.put(&self.sensor_range.to_le_bytes());
        let count = self.contacts.len().min(MAX_CONTACTS);
        w.put(&(count as u32).to_le_bytes());
        debug_assert_eq!(w.at, SENSOR_HEADER_BYTES);
        for c in &self.contacts[..count] {
            w.put(&(c.kind as u32).to_le_bytes());
            w.put(&c.index.to_le_bytes());
            w.put(&c.id.to_le_bytes());
            for v in [c.dx, c.dy, c.vx, c.vy, c.distance, c.radius] {
                w.put(&v.to_le_bytes());
            }
        }
        let used = w.at;
        out[used..].fill(0);
    }
}

/// Sequential little-endian writes into a fixed block.
struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.out[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
}

/// What a script asked its ship to do. Decoding never fails: garbage becomes a safe value.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScriptCommand {
    /// 0..=1.
    pub thrust: f32,
    /// -1..=1.
    pub turn: f32,
    pub mine: bool,
    pub stop: bool,
}

/// Flag bits in the command block.
pub const FLAG_MINE: u32 = 1;
pub const FLAG_STOP: u32 = 2;

impl ScriptCommand {
    /// Reads a command block: NaN becomes 0, values are clamped to their ranges, unknown flag
    /// bits are ignored. A block of the wrong size is the idle command.
    pub fn decode(block: &[u8]) -> Self {
        let Ok(block) = <&[u8; COMMAND_BLOCK_BYTES]>::try_from(block) else {
            return Self::default();
        };
        let f32_at =
            |i: usize| f32::from_le_bytes([block[i], block[i + 1], block[i + 2], block[i + 3]]);
        let clean = |v: f32, lo: f32, hi: f32| if v.is_nan() { 0.0 } else { v.clamp(lo, hi) };
        let flags = u32::from_le_bytes([block[8], block[9], block[10], block[11]]);
        Self {
            thrust: clean(f32_at(0), 0.0, 1.0),
            turn: clean(f32_at(4), -1.0, 1.0),
            mine: flags & FLAG_MINE != 0,
            stop: flags & FLAG_STOP != 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(contacts: usize) -> SensorSnapshot {
        SensorSnapshot {
            tick: 0x0102_0304_0506_0708,
            ship: 42,
            sector_x: -3,
            sector_y: 1_000_000,
            x: 1.5,
            y: 2.5,
            vx: -1.0,
            vy: 0.25,
            heading: 3.0,
            hull: 99.0,
            energy: 50.0,
            cargo: 7,
            sensor_range: 200.0,
            contacts: (0..contacts)
                .map(|i| SensedContact {
                    kind: if i % 2 == 0 {
                        ContactKind::Ship
                    } else {
                        ContactKind::Asteroid
                    },
                    id: 100 + i as u64,
                    index: i as u32,
                    dx: i as f32,
                    dy: -(i as f32),
                    vx: 0.5,
                    vy: -0.5,
                    distance: i as f32 * 1.5,
                    radius: 2.0,
                })
                .collect(),
        }
    }

    #[test]
    fn sensor_block_layout_is_pinned() {
        let b = snapshot(2).encode();
        assert_eq!(b.len(), SENSOR_BLOCK_BYTES);
        assert_eq!(SENSOR_BLOCK_BYTES, 1344);
        assert_eq!(&b[0..8], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&b[8..16], &42u64.to_le_bytes());
        assert_eq!(&b[16..20], &(-3i32).to_le_bytes());
        assert_eq!(&b[20..24], &1_000_000i32.to_le_bytes());
        assert_eq!(&b[24..28], &1.5f32.to_le_bytes());
        assert_eq!(&b[44..48], &99.0f32.to_le_bytes());
        assert_eq!(&b[52..56], &7u32.to_le_bytes());
        assert_eq!(&b[56..60], &200.0f32.to_le_bytes());
        assert_eq!(&b[60..64], &2u32.to_le_bytes());
        let second =
            &b[SENSOR_HEADER_BYTES + CONTACT_BYTES..SENSOR_HEADER_BYTES + 2 * CONTACT_BYTES];
        assert_eq!(&second[0..4], &2u32.to_le_bytes(), "asteroid");
        assert_eq!(&second[4..8], &1u32.to_le_bytes(), "index");
        assert_eq!(&second[8..16], &101u64.to_le_bytes(), "id");
        assert_eq!(&second[36..40], &2.0f32.to_le_bytes(), "radius");
        assert!(
            b[SENSOR_HEADER_BYTES + 2 * CONTACT_BYTES..]
                .iter()
                .all(|&x| x == 0)
        );
    }

    #[test]
    fn contacts_beyond_the_block_are_cut() {
        let b = snapshot(MAX_CONTACTS + 5).encode();
        assert_eq!(b.len(), SENSOR_BLOCK_BYTES);
        assert_eq!(&b[60..64], &(MAX_CONTACTS as u32).to_le_bytes());
    }

    #[test]
    fn garbage_commands_are_clamped() {
        let mut block = [0u8; COMMAND_BLOCK_BYTES];
        block[0..4].copy_from_slice(&f32::NAN.to_le_bytes());
        block[4..8].copy_from_slice(&(-1e30f32).to_le_bytes());
        block[8..12].copy_from_slice(&(0xffff_fff0u32 | FLAG_STOP).to_le_bytes());
        let c = ScriptCommand::decode(&block);
        assert_eq!(
            c,
            ScriptCommand {
                thrust: 0.0,
                turn: -1.0,
                mine: false,
                stop: true
            }
        );
        block[0..4].copy_from_slice(&f32::INFINITY.to_le_bytes());
        assert_eq!(ScriptCommand::decode(&block).thrust, 1.0);
        assert_eq!(ScriptCommand::decode(&[1, 2, 3]), ScriptCommand::default());
    }
}
