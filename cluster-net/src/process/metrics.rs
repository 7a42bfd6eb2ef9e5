//! What the shard and leader processes measure, through the `metrics` facade: nothing is
//! recorded until the binary installs a recorder (`astroboids shard|leader --metrics ADDR`
//! installs the Prometheus one and serves it), and then [`describe_shard`] /
//! [`describe_leader`] name every metric and show it from the start (counters at 0).
//!
//! | metric | kind | what |
//! | --- | --- | --- |
//! | `astroboids_shard_ticks_total` | counter | ticks this process ran and reported |
//! | `astroboids_shard_tick_seconds` | histogram | a tick's own work (the `tick_us` of its report) |
//! | `astroboids_shard_exchange_wait_seconds` | histogram | from its exchanges sent to its tick done: waiting for neighbours, and taking theirs in (`exchange_us`) |
//! | `astroboids_shard_handoffs_out_total` | counter | ships handed to neighbouring shards |
//! | `astroboids_shard_halo_ships_out_total` | counter | halo ships sent to neighbours |
//! | `astroboids_shard_exchange_bytes_out_total` | counter | exchange bytes published |
//! | `astroboids_shard_exchange_frames_out_total` | counter | exchange frames (bus messages) published |
//! | `astroboids_shard_ships` | gauge | ships its shard holds after the last tick |
//! | `astroboids_shard_tick` | gauge | the last tick it reported |
//! | `astroboids_shard_epoch` | gauge | the plan epoch it runs under |
//! | `astroboids_shard_index` | gauge | the shard it runs under that plan |
//! | `astroboids_shard_restores_total` | counter | shards restored for a plan (start, recovery, rebalance) |
//! | `astroboids_shard_checkpoint_pieces_stored_total` | counter | checkpoint pieces stored in the blob store |
//! | `astroboids_shard_checkpoint_piece_bytes_total` | counter | their bytes |
//! | `astroboids_leader_leading` | gauge | 1 while this process leads, else 0 |
//! | `astroboids_leader_fence` | gauge | its fencing token while it leads |
//! | `astroboids_leader_ticks_total` | counter | ticks finished under it |
//! | `astroboids_leader_tick_seconds` | histogram | a tick as the cluster ran it: its start published to its last shard's report |
//! | `astroboids_leader_tick` | gauge | the last tick finished |
//! | `astroboids_leader_epoch` | gauge | the epoch of the last tick finished or plan written |
//! | `astroboids_leader_ships` | gauge | ships in the world after the last tick |
//! | `astroboids_leader_plans_total{why}` | counter | plans written; `why`: `start`, `lost_member`, `rebalance` |
//! | `astroboids_leader_checkpoints_total` | counter | checkpoints completed |
//! | `astroboids_leader_inputs_total` | counter | world inputs sequenced (taken from the input log, repeats not counted) |
//! | `astroboids_leader_shard_processes` | gauge | shard processes registered |

use astroboids_cluster::messages::{TickDone, TickReport};
use astroboids_cluster::plan::Plan;
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

pub const SHARD_TICKS: &str = "astroboids_shard_ticks_total";
pub const SHARD_TICK_SECONDS: &str = "astroboids_shard_tick_seconds";
pub const SHARD_EXCHANGE_WAIT_SECONDS: &str = "astroboids_shard_exchange_wait_seconds";
pub const SHARD_HANDOFFS_OUT: &str = "astroboids_shard_handoffs_out_total";
pub const SHARD_HALO_OUT: &str = "astroboids_shard_halo_ships_out_total";
pub const SHARD_EXCHANGE_BYTES_OUT: &str = "astroboids_shard_exchange_bytes_out_total";
pub const SHARD_EXCHANGE_FRAMES_OUT: &str = "astroboids_shard_exchange_frames_out_total";
pub const SHARD_SHIPS: &str = "astroboids_shard_ships";
pub const SHARD_TICK: &str = "astroboids_shard_tick";
pub const SHARD_EPOCH: &str = "astroboids_shard_epoch";
pub const SHARD_INDEX: &str = "astroboids_shard_index";
pub const SHARD_RESTORES: &str = "astroboids_shard_restores_total";
pub const SHARD_PIECES_STORED: &str = "astroboids_shard_checkpoint_pieces_stored_total";
pub const SHARD_PIECE_BYTES: &str = "astroboids_shard_checkpoint_piece_bytes_total";
pub const SHARD_CHECKPOINT_CAPTURE_SECONDS: &str = "astroboids_shard_checkpoint_capture_seconds";
pub const SHARD_CHECKPOINT_SECONDS: &str = "astroboids_shard_checkpoint_seconds";
pub const SHARD_VIEW_BYTES: &str = "astroboids_shard_view_bytes_total";
pub const SHARD_VIEWS_LEFT_OUT: &str = "astroboids_shard_views_left_out_total";
pub const SHARD_VIEW_SECONDS: &str = "astroboids_shard_view_seconds";
pub const SHARD_VIEW_PLAYERS: &str = "astroboids_shard_view_players";
pub const SHARD_QUERIES: &str = "astroboids_shard_queries_total";

pub const LEADER_LEADING: &str = "astroboids_leader_leading";
pub const LEADER_FENCE: &str = "astroboids_leader_fence";
pub const LEADER_TICKS: &str = "astroboids_leader_ticks_total";
pub const LEADER_TICK_SECONDS: &str = "astroboids_leader_tick_seconds";
pub const LEADER_TICK: &str = "astroboids_leader_tick";
pub const LEADER_EPOCH: &str = "astroboids_leader_epoch";
pub const LEADER_SHIPS: &str = "astroboids_leader_ships";
pub const LEADER_PLANS: &str = "astroboids_leader_plans_total";
pub const LEADER_CHECKPOINTS: &str = "astroboids_leader_checkpoints_total";
pub const LEADER_INPUTS: &str = "astroboids_leader_inputs_total";
pub const LEADER_SHARD_PROCESSES: &str = "astroboids_leader_shard_processes";

/// Why a leader wrote a plan (the `why` label of [`LEADER_PLANS`] and of its log event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanWhy {
    /// The world's first plan.
    Start,
    /// A process of the previous plan is gone (or registered anew under its id: another
    /// process): its shards re-run from the last checkpoint.
    LostMember,
    /// Processes joined: shards move onto them at a checkpoint.
    Rebalance,
}

impl PlanWhy {
    /// What made `plan` after `previous` (`None`: there was none).
    pub fn of(previous: Option<&Plan>, plan: &Plan) -> Self {
        let Some(previous) = previous else {
            return Self::Start;
        };
        let gone = previous.members.iter().enumerate().any(|(shard, member)| {
            match previous.registrations.get(shard) {
                Some(registration) => plan.shard_of(*member, *registration).is_none(),
                None => plan.shard_of_member(*member).is_none(),
            }
        });
        if gone {
            Self::LostMember
        } else {
            Self::Rebalance
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::LostMember => "lost_member",
            Self::Rebalance => "rebalance",
        }
    }
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

/// Names and explains the shard process's metrics, and shows each from the start.
pub fn describe_shard() {
    let counters = [
        (
            SHARD_TICKS,
            Unit::Count,
            "Ticks this shard process ran and reported.",
        ),
        (
            SHARD_HANDOFFS_OUT,
            Unit::Count,
            "Ships handed over to neighbouring shards.",
        ),
        (
            SHARD_HALO_OUT,
            Unit::Count,
            "Halo ships sent to neighbouring shards.",
        ),
        (
            SHARD_EXCHANGE_BYTES_OUT,
            Unit::Bytes,
            "Exchange bytes published to neighbouring shards.",
        ),
        (
            SHARD_EXCHANGE_FRAMES_OUT,
            Unit::Count,
            "Exchange frames (bus messages) published to neighbouring shards.",
        ),
        (
            SHARD_RESTORES,
            Unit::Count,
            "Shards restored for a plan (the world's start, a recovery or a rebalance).",
        ),
        (
            SHARD_PIECES_STORED,
            Unit::Count,
            "Checkpoint pieces stored in the blob store.",
        ),
        (
            SHARD_PIECE_BYTES,
            Unit::Bytes,
            "Bytes of the checkpoint pieces stored.",
        ),
        (
            SHARD_VIEW_BYTES,
            Unit::Bytes,
            "Bytes of players' view pieces published for the gateways.",
        ),
        (
            SHARD_VIEWS_LEFT_OUT,
            Unit::Count,
            "Players' view pieces too large for a bus message, left out.",
        ),
        (
            SHARD_QUERIES,
            Unit::Count,
            "Gateways' ship queries answered.",
        ),
    ];
    for (name, unit, help) in counters {
        describe_counter!(name, unit, help);
        counter!(name).increment(0);
    }
    describe_histogram!(
        SHARD_TICK_SECONDS,
        Unit::Seconds,
        "A tick's own work on this shard (tick_us of its report)."
    );
    describe_histogram!(
        SHARD_EXCHANGE_WAIT_SECONDS,
        Unit::Seconds,
        "From a tick's exchanges sent to the tick done: waiting for and taking in the neighbours' (exchange_us)."
    );
    describe_histogram!(
        SHARD_CHECKPOINT_CAPTURE_SECONDS,
        Unit::Seconds,
        "Copying this shard's checkpoint piece: the part on the tick's path (script states, compression and upload follow beside the next ticks)."
    );
    describe_histogram!(
        SHARD_CHECKPOINT_SECONDS,
        Unit::Seconds,
        "A checkpoint piece from capture to stored in the blob store."
    );
    describe_histogram!(
        SHARD_VIEW_SECONDS,
        Unit::Seconds,
        "Building and publishing a tick's players' view pieces."
    );
    let gauges = [
        (
            SHARD_VIEW_PLAYERS,
            "Players with ships on this shard at its last tick.",
        ),
        (SHARD_SHIPS, "Ships the shard holds after its last tick."),
        (SHARD_TICK, "The last tick this shard reported."),
        (SHARD_EPOCH, "The plan epoch this process runs under."),
        (SHARD_INDEX, "The shard this process runs under the plan."),
    ];
    for (name, help) in gauges {
        describe_gauge!(name, Unit::Count, help);
        gauge!(name).set(0.0);
    }
}

/// Names and explains the leader process's metrics, and shows each from the start.
pub fn describe_leader() {
    describe_gauge!(
        LEADER_LEADING,
        "1 while this process leads its world, else 0."
    );
    gauge!(LEADER_LEADING).set(0.0);
    let gauges = [
        (
            LEADER_FENCE,
            "The fencing token (election revision) it leads with.",
        ),
        (LEADER_TICK, "The last tick finished under this leader."),
        (
            LEADER_EPOCH,
            "The plan epoch of the last tick finished or plan written.",
        ),
        (LEADER_SHIPS, "Ships in the world after the last tick."),
        (
            LEADER_SHARD_PROCESSES,
            "Shard processes registered (seen while leading).",
        ),
    ];
    for (name, help) in gauges {
        describe_gauge!(name, Unit::Count, help);
        gauge!(name).set(0.0);
    }
    describe_counter!(
        LEADER_TICKS,
        Unit::Count,
        "Ticks finished under this leader."
    );
    describe_counter!(
        LEADER_PLANS,
        Unit::Count,
        "Plans written, by why: start, lost_member, rebalance."
    );
    describe_counter!(
        LEADER_CHECKPOINTS,
        Unit::Count,
        "Checkpoints completed (every shard's piece stored)."
    );
    describe_counter!(
        LEADER_INPUTS,
        Unit::Count,
        "World inputs sequenced from the input log (repeats not counted)."
    );
    for name in [LEADER_TICKS, LEADER_CHECKPOINTS, LEADER_INPUTS] {
        counter!(name).increment(0);
    }
    for why in [PlanWhy::Start, PlanWhy::LostMember, PlanWhy::Rebalance] {
        counter!(LEADER_PLANS, "why" => why.as_str()).increment(0);
    }
    describe_histogram!(
        LEADER_TICK_SECONDS,
        Unit::Seconds,
        "A tick as the cluster ran it: its start published to the last shard's report."
    );
}

/// A shard restored for `epoch` as `shard`, at `tick`.
pub(crate) fn shard_restored(epoch: u64, shard: u32, tick: u64, ships: u64) {
    counter!(SHARD_RESTORES).increment(1);
    gauge!(SHARD_EPOCH).set(epoch as f64);
    gauge!(SHARD_INDEX).set(f64::from(shard));
    gauge!(SHARD_TICK).set(tick as f64);
    gauge!(SHARD_SHIPS).set(ships as f64);
}

/// A tick the shard reports.
pub(crate) fn shard_tick_done(done: &TickDone) {
    let f = &done.figures;
    counter!(SHARD_TICKS).increment(1);
    histogram!(SHARD_TICK_SECONDS).record(seconds(f.tick_us));
    histogram!(SHARD_EXCHANGE_WAIT_SECONDS).record(seconds(f.exchange_us));
    counter!(SHARD_HANDOFFS_OUT).increment(u64::from(f.handoffs_out));
    counter!(SHARD_HALO_OUT).increment(u64::from(f.halo_out));
    counter!(SHARD_EXCHANGE_BYTES_OUT).increment(f.exchange_bytes_out);
    counter!(SHARD_EXCHANGE_FRAMES_OUT).increment(u64::from(f.exchange_messages_out));
    gauge!(SHARD_SHIPS).set(done.ships as f64);
    gauge!(SHARD_TICK).set(done.tick as f64);
}

/// A checkpoint piece copied on the tick's path in `copied_us`, stored after `total_us`.
pub(crate) fn shard_piece_timed(copied_us: u64, total_us: u64) {
    histogram!(SHARD_CHECKPOINT_CAPTURE_SECONDS).record(seconds(copied_us));
    histogram!(SHARD_CHECKPOINT_SECONDS).record(seconds(total_us));
}

/// A tick's view pieces published.
pub(crate) fn shard_views_published(players: usize, bytes: u64, left_out: usize, took_us: u64) {
    counter!(SHARD_VIEW_BYTES).increment(bytes);
    counter!(SHARD_VIEWS_LEFT_OUT).increment(left_out as u64);
    histogram!(SHARD_VIEW_SECONDS).record(seconds(took_us));
    gauge!(SHARD_VIEW_PLAYERS).set(players as f64);
}

/// A gateway's query answered.
pub(crate) fn shard_query_answered() {
    counter!(SHARD_QUERIES).increment(1);
}

/// A checkpoint piece of `bytes` stored.
pub(crate) fn shard_piece_stored(bytes: u64) {
    counter!(SHARD_PIECES_STORED).increment(1);
    counter!(SHARD_PIECE_BYTES).increment(bytes);
}

/// Elected with `fence`.
pub(crate) fn leader_elected(fence: u64) {
    gauge!(LEADER_LEADING).set(1.0);
    gauge!(LEADER_FENCE).set(fence as f64);
}

/// No longer leading (stopped, deposed, or the world finished).
pub(crate) fn leader_left() {
    gauge!(LEADER_LEADING).set(0.0);
}

pub(crate) fn leader_shard_processes(live: usize) {
    gauge!(LEADER_SHARD_PROCESSES).set(live as f64);
}

/// A tick finished.
pub(crate) fn leader_tick(report: &TickReport) {
    counter!(LEADER_TICKS).increment(1);
    histogram!(LEADER_TICK_SECONDS).record(seconds(report.tick_us));
    gauge!(LEADER_TICK).set(report.tick as f64);
    gauge!(LEADER_EPOCH).set(report.epoch as f64);
    gauge!(LEADER_SHIPS).set(report.ships as f64);
}

/// A plan written.
pub(crate) fn leader_plan(epoch: u64, why: PlanWhy) {
    counter!(LEADER_PLANS, "why" => why.as_str()).increment(1);
    gauge!(LEADER_EPOCH).set(epoch as f64);
}

pub(crate) fn leader_checkpoint() {
    counter!(LEADER_CHECKPOINTS).increment(1);
}

pub(crate) fn leader_input_sequenced() {
    counter!(LEADER_INPUTS).increment(1);
}

#[cfg(test)]
mod tests {
    use astroboids_cluster::SectorAssignment;
    use astroboids_cluster::plan::Plan;

    use super::PlanWhy;

    /// A plan over `members`, each with registration id x 10.
    fn plan(members: &[u32]) -> Plan {
        Plan {
            epoch: 1,
            fence: 1,
            assignment: SectorAssignment::Stripes {
                shards: members.len() as u32,
                width: 1,
            },
            members: members.to_vec(),
            registrations: members.iter().map(|m| u64::from(*m) * 10).collect(),
            from: None,
            bus_seq: 0,
        }
    }

    #[test]
    fn a_plan_is_named_by_what_changed_in_its_members() {
        let why =
            |previous: &[u32], members: &[u32]| PlanWhy::of(Some(&plan(previous)), &plan(members));
        assert_eq!(PlanWhy::of(None, &plan(&[0, 1])), PlanWhy::Start);
        assert_eq!(why(&[0, 1, 2], &[0, 2]), PlanWhy::LostMember);
        assert_eq!(why(&[0, 2], &[0, 1, 2]), PlanWhy::Rebalance);
        // One lost and one joined in the same plan: the loss is what forced it.
        assert_eq!(why(&[0, 1], &[0, 2]), PlanWhy::LostMember);
        // The same ids, one registered anew: another process, the old one lost.
        let mut restarted = plan(&[0, 1]);
        restarted.registrations[1] += 1;
        assert_eq!(
            PlanWhy::of(Some(&plan(&[0, 1])), &restarted),
            PlanWhy::LostMember
        );
        // A plan that recorded no registrations: members by id only.
        let by_id = Plan {
            registrations: Vec::new(),
            ..plan(&[0, 1])
        };
        assert_eq!(PlanWhy::of(Some(&by_id), &restarted), PlanWhy::Rebalance);
    }
}
