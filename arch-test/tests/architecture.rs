//! The workspace's architecture rules, checked on every `cargo test`.
//!
//! Four kinds of rule, each failing with the crate, file and line it is about and the rule
//! it breaks:
//!
//! - **Dependencies** ([`DEPENDENCY_RULES`]): a crate must not reach certain packages through
//!   its normal (non-dev, non-build) dependencies, directly or through any other package of
//!   the resolved graph (`cargo metadata`). The sim reaching tokio through some other crate is
//!   as much a breach as naming it in its own `Cargo.toml`.
//! - **Banned APIs** ([`API_RULES`]): names a crate's `src/` promises not to use (the wall
//!   clock, the file system, sockets, `unsafe`, platform float functions, hash maps that could
//!   be iterated), found in the token stream after comments, string
//!   literals and `#[cfg(test)]` items are removed. Exceptions are an explicit allow-list
//!   ([`Allowance`]), each with the reason the docs give; an allowance that no longer matches
//!   anything fails too, so the list cannot silently outlive the code it excuses.
//! - **Module cycles**: within each crate, the top-level modules (`src/x.rs`, `src/x/`) must
//!   not reference each other in a circle through `crate::` or `super::` paths. The crate root
//!   is not a node: it declares every module and holds the crate's shared vocabulary (e.g. the
//!   sim's `SimSet`), so counting it would put every module in one circle. A path to an item
//!   the root re-exports (`pub use config::UniverseConfig`) counts as a path to the module
//!   that defines it. Test modules may reach any module to build fixtures and are not counted.
//!
//! - **File size** ([`MAX_CODE_LINES_PER_FILE`]): no file under a crate's `src/` has more
//!   lines of code than one concern needs, counted on the same token stream (a line with a
//!   token, outside `#[cfg(test)]` items).
//!
//! **How the rules and docs/architecture.md stay together.** Every rule quotes the
//! "Architecture invariant:" paragraph of docs/architecture.md it enforces, and
//! [`every_rule_quotes_an_architecture_invariant_of_the_docs`] fails when a quote is no
//! longer in one: rewording or dropping an invariant forces a look at the rules that rely on
//! it. The other direction (every invariant line mapped to a check) was not chosen: most
//! invariants (ordered iteration, `libm` floats, a `Store` staying on its thread, fuel taken
//! before work) are enforced by behavioural tests in their crates or by the compiler, not by
//! anything a source scan can see, so such a map would be mostly hand-kept references to test
//! names that nothing keeps true when tests are renamed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// The rules
// ---------------------------------------------------------------------------------------------

/// Packages a crate must not reach through normal dependencies.
struct DependencyRule {
    krate: &'static str,
    forbidden: &'static [&'static str],
    /// Words of the invariant in docs/architecture.md this rule enforces.
    invariant: &'static str,
}

/// Crates on the simulation side of the workspace; the client must reach none of them.
const SIMULATION_AND_SERVER_CRATES: &[&str] = &[
    "astroboids-engine",
    "astroboids-sim",
    "astroboids-scripting",
    "astroboids-storage",
    "astroboids-host",
    "astroboids-server",
    "astroboids-designer",
    "astroboids-views",
    "astroboids-cluster",
    "astroboids-cluster-net",
    "astroboids-pgstore",
    "astroboids-gateway",
];

/// The crates that run the online world (the single server's and the cluster's).
const SERVER_CRATES: &[&str] = &[
    "astroboids-server",
    "astroboids-views",
    "astroboids-cluster",
    "astroboids-cluster-net",
    "astroboids-pgstore",
    "astroboids-gateway",
];

const DEPENDENCY_RULES: &[DependencyRule] = &[
    DependencyRule {
        krate: "astroboids-engine",
        // The engine is the bottom of the workspace: any crate of ours would bring game rules
        // (or I/O) into it.
        forbidden: &[
            "astroboids-sim",
            "astroboids-scripting",
            "astroboids-storage",
            "astroboids-host",
            "astroboids-protocol",
            "astroboids-net",
            "astroboids-server",
            "astroboids-client",
            "astroboids-designer",
            "tokio",
            "quinn",
        ],
        invariant: "the engine knows nothing of ships, sectors or any game rule",
    },
    DependencyRule {
        krate: "astroboids-sim",
        forbidden: &[
            "astroboids-storage",
            "astroboids-host",
            "astroboids-protocol",
            "astroboids-net",
            "astroboids-server",
            "astroboids-client",
            "astroboids-designer",
            "tokio",
            "quinn",
            "sled",
        ],
        invariant: "no I/O, no wall-clock time",
    },
    DependencyRule {
        krate: "astroboids-scripting",
        forbidden: &[
            "astroboids-engine",
            "astroboids-sim",
            "astroboids-storage",
            "astroboids-host",
            "astroboids-protocol",
            "astroboids-net",
            "astroboids-server",
            "astroboids-client",
            "astroboids-designer",
            "bevy_ecs",
            "bevy_app",
        ],
        invariant: "the scripting crate knows no ECS and no game rule: it depends on no other \
                    AstroBoids crate",
    },
    DependencyRule {
        krate: "astroboids-scripting",
        // The sockets and clocks of a runtime, and wasmer's WASI implementation, are how a
        // clock or entropy would reach a script.
        forbidden: &["wasmer-wasix", "tokio", "quinn", "astroboids-net"],
        invariant: "no clock, entropy or WASI reaches a script",
    },
    DependencyRule {
        krate: "astroboids-storage",
        forbidden: &[
            "astroboids-engine",
            "astroboids-sim",
            "astroboids-scripting",
            "astroboids-host",
        ],
        invariant: "storage stores bytes under keys; it knows nothing of the sim's types",
    },
    DependencyRule {
        krate: "astroboids-host",
        forbidden: &[
            "astroboids-protocol",
            "astroboids-net",
            "astroboids-server",
            "astroboids-client",
            "tokio",
            "quinn",
        ],
        invariant: "the host knows files and the store, never sockets",
    },
    DependencyRule {
        krate: "astroboids-designer",
        // No store, no replay files (host), and, since callers hand it text and take bytes,
        // no network either.
        forbidden: &[
            "astroboids-storage",
            "astroboids-host",
            "astroboids-protocol",
            "astroboids-net",
            "astroboids-server",
            "astroboids-client",
            "sled",
            "tokio",
            "quinn",
        ],
        invariant: "the designer crate reads and writes no files and keeps no time; callers pass \
                    configuration text and take summaries, tables and image bytes",
    },
    DependencyRule {
        krate: "astroboids-client",
        forbidden: SIMULATION_AND_SERVER_CRATES,
        invariant: "the client knows the protocol (`net`) only; never the server's or the \
                    simulation's crates",
    },
    DependencyRule {
        krate: "astroboids-play",
        forbidden: SERVER_CRATES,
        invariant: "the windowed client links no server crate: it plays through the protocol, \
                    and its replay and design views reuse `host` and `designer` (and the sim they run)",
    },
    DependencyRule {
        krate: "astroboids-protocol",
        // The protocol core is the part of the networking that is not the QUIC shell; `rand`
        // counts as input the caller did not pass (test-only randomness is a dev-dependency).
        forbidden: &["tokio", "quinn", "rand"],
        invariant: "the protocol crate opens no sockets, reads no clock and spawns no tasks; \
                    bytes in, bytes out, time as an argument",
    },
    DependencyRule {
        krate: "astroboids-infra",
        // Starts processes and polls a socket until they answer: std (and nix for SIGTERM).
        // Whoever uses the servers brings the client libraries.
        forbidden: &[
            "astroboids-engine",
            "astroboids-sim",
            "astroboids-scripting",
            "astroboids-storage",
            "astroboids-host",
            "astroboids-protocol",
            "astroboids-net",
            "astroboids-server",
            "astroboids-client",
            "astroboids-designer",
            "astroboids-cluster",
            "astroboids-cluster-net",
            "astroboids-test-kit",
            "astroboids-pgstore",
            "tokio",
            "async-nats",
            "etcd-client",
            "tokio-postgres",
        ],
        invariant: "the infra crate starts, checks and stops server processes and talks to them \
                    only to see that they are ready: it depends on no other AstroBoids crate, no \
                    async runtime and no NATS, etcd or PostgreSQL client library",
    },
    DependencyRule {
        krate: "astroboids-pgstore",
        // Rows and bytes: the gateways decode what it keeps. argon2 is the caller's (it takes
        // PHC strings), and the world store is the single server's, not the cluster's.
        forbidden: &[
            "astroboids-engine",
            "astroboids-sim",
            "astroboids-scripting",
            "astroboids-storage",
            "astroboids-host",
            "astroboids-net",
            "astroboids-server",
            "astroboids-client",
            "astroboids-designer",
            "astroboids-cluster",
            "astroboids-cluster-net",
            "bevy_ecs",
            "wasmer",
            "quinn",
            "sled",
            "argon2",
        ],
        invariant: "it knows nothing of the simulation (no engine, sim, scripting, host or server \
                    crate, no QUIC)",
    },
    DependencyRule {
        krate: "astroboids-views",
        forbidden: &[
            "astroboids-storage",
            "astroboids-host",
            "astroboids-net",
            "astroboids-server",
            "tokio",
            "quinn",
            "sled",
            "async-nats",
            "tokio-postgres",
        ],
        invariant: "the views crate reads a world between ticks and does nothing else: no I/O, \
                    no clock, no network or store crate",
    },
    DependencyRule {
        krate: "astroboids-cluster",
        forbidden: &[
            "tokio",
            "async-nats",
            "etcd-client",
            "quinn",
            "astroboids-infra",
        ],
        invariant: "the cluster crate is the tick protocol without I/O: no sockets, no clock, no \
                    tasks",
    },
];

/// Something a crate's sources must not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Banned {
    /// An identifier anywhere in code (a type, a crate used by path).
    Name(&'static str),
    /// A module of std, however imported: `std::fs::read`, `use std::{fs, io}`.
    Std(&'static str),
    /// A float method called as one: `x.sin()`, `f32::sin(x)` (not a local named `sin`, nor
    /// `libm::sinf`).
    Method(&'static str),
}

impl fmt::Display for Banned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Banned::Name(name) => write!(f, "`{name}`"),
            Banned::Std(module) => write!(f, "`std::{module}`"),
            Banned::Method(name) => write!(f, "`.{name}()`"),
        }
    }
}

/// One place the docs name as the exception to an [`ApiRule`].
struct Allowance {
    file: &'static str,
    banned: Banned,
    why: &'static str,
}

/// Names a crate's sources (the files and directories under `paths`, relative to the workspace
/// root) must not use.
struct ApiRule {
    paths: &'static [&'static str],
    banned: &'static [Banned],
    allow: &'static [Allowance],
    invariant: &'static str,
}

const WALL_CLOCK: [Banned; 2] = [Banned::Name("Instant"), Banned::Name("SystemTime")];

/// std's float functions whose results may differ by platform (they call the system's libm or
/// an LLVM intrinsic); `sqrt`, `mul_add` and the arithmetic operators are IEEE-exact.
const PLATFORM_FLOAT_FUNCTIONS: &[Banned] = &[
    Banned::Method("sin"),
    Banned::Method("cos"),
    Banned::Method("tan"),
    Banned::Method("sin_cos"),
    Banned::Method("asin"),
    Banned::Method("acos"),
    Banned::Method("atan"),
    Banned::Method("atan2"),
    Banned::Method("sinh"),
    Banned::Method("cosh"),
    Banned::Method("tanh"),
    Banned::Method("exp"),
    Banned::Method("exp2"),
    Banned::Method("exp_m1"),
    Banned::Method("ln"),
    Banned::Method("ln_1p"),
    Banned::Method("log"),
    Banned::Method("log2"),
    Banned::Method("log10"),
    Banned::Method("powf"),
    Banned::Method("powi"),
    Banned::Method("hypot"),
    Banned::Method("cbrt"),
];

/// The crates' sources under the workspace's `unsafe_code` lint.
const ALL_SOURCES: &[&str] = &[
    "benches/src",
    "client/src",
    "cluster-net/src",
    "cluster/src",
    "designer/src",
    "engine/src",
    "gateway/src",
    "host/src",
    "infra/src",
    "net/src",
    "pgstore/src",
    "play/src",
    "protocol/src",
    "scripting/src",
    "server/src",
    "sim/src",
    "storage/src",
    "test-kit/src",
    "tools/src",
    "views/src",
];

/// The windowed client's sources but the replay and design views (`play/src/replay`,
/// `play/src/design`); `the_play_view_rule_covers_every_file_but_the_replay_and_design_views`
/// keeps the list whole.
const PLAY_VIEW_SOURCES: &[&str] = &[
    "play/src/lib.rs",
    "play/src/app.rs",
    "play/src/camera.rs",
    "play/src/login.rs",
    "play/src/map.rs",
    "play/src/model.rs",
    "play/src/net.rs",
    "play/src/window",
];

/// The modules allowed `unsafe`, each with the reason docs/architecture.md gives.
const UNSAFE_MODULES: [(&str, &str); 3] = [
    (
        "scripting/src/tunables.rs",
        "wasmer's `Tunables` trait declares `unsafe` methods, and a memory hands compiled code \
         a raw definition",
    ),
    (
        "scripting/src/artifacts.rs",
        "deserializing machine code this host wrote and checksummed",
    ),
    (
        "scripting/src/linear_memory.rs",
        "a script's memory lent as a slice while its store is borrowed",
    ),
];

const API_RULES: &[ApiRule] = &[
    ApiRule {
        // The workspace denies `unsafe_code`; a module can only opt out by naming the lint, and
        // only the modules that opt out may write `unsafe` (every member takes the workspace's
        // lints: `every_crate_takes_the_workspace_lints`).
        paths: ALL_SOURCES,
        banned: &[Banned::Name("unsafe_code"), Banned::Name("unsafe")],
        allow: &[
            Allowance {
                file: UNSAFE_MODULES[0].0,
                banned: Banned::Name("unsafe_code"),
                why: UNSAFE_MODULES[0].1,
            },
            Allowance {
                file: UNSAFE_MODULES[0].0,
                banned: Banned::Name("unsafe"),
                why: UNSAFE_MODULES[0].1,
            },
            Allowance {
                file: UNSAFE_MODULES[1].0,
                banned: Banned::Name("unsafe_code"),
                why: UNSAFE_MODULES[1].1,
            },
            Allowance {
                file: UNSAFE_MODULES[1].0,
                banned: Banned::Name("unsafe"),
                why: UNSAFE_MODULES[1].1,
            },
            Allowance {
                file: UNSAFE_MODULES[2].0,
                banned: Banned::Name("unsafe_code"),
                why: UNSAFE_MODULES[2].1,
            },
            Allowance {
                file: UNSAFE_MODULES[2].0,
                banned: Banned::Name("unsafe"),
                why: UNSAFE_MODULES[2].1,
            },
        ],
        invariant: "the workspace denies `unsafe`; the exceptions are",
    },
    ApiRule {
        paths: &["sim/src", "engine/src"],
        banned: PLATFORM_FLOAT_FUNCTIONS,
        allow: &[],
        invariant: "floats that reach state come from IEEE-exact operations or `libm`",
    },
    ApiRule {
        // Maps that are only looked up; a new one elsewhere is reviewed for iteration first.
        paths: &["sim/src"],
        banned: &[
            Banned::Name("HashMap"),
            Banned::Name("HashSet"),
            Banned::Name("FxHashSet"),
            Banned::Name("FxHashMap"),
        ],
        allow: &[
            Allowance {
                file: "sim/src/physics/mod.rs",
                banned: Banned::Name("FxHashMap"),
                why: "a sector's slot in the tick's list of sector worlds, looked up by coordinate",
            },
            Allowance {
                file: "sim/src/sensors.rs",
                banned: Banned::Name("FxHashMap"),
                why: "the sensor grid's cells and per-sector tables, and the cloudy sectors, \
                      looked up by key",
            },
            Allowance {
                file: "sim/src/damage.rs",
                banned: Banned::Name("FxHashMap"),
                why: "the hazardous sectors, looked up by coordinate",
            },
        ],
        invariant: "Hash maps are only looked up, never iterated",
    },
    ApiRule {
        // Timeouts and retry delays are the protocol sessions'; QUIC's transport settings are
        // the shell's own.
        paths: &["net/src"],
        banned: &[Banned::Name("from_secs"), Banned::Name("from_millis")],
        allow: &[Allowance {
            file: "net/src/quic.rs",
            banned: Banned::Name("from_secs"),
            why: "QUIC's idle timeout and keep-alive interval, transport settings",
        }],
        invariant: "`net` makes no protocol decisions",
    },
    ApiRule {
        paths: &["server/src", "tools/src"],
        banned: &[Banned::Name("apply_input")],
        allow: &[],
        invariant: "every input a running world applies (`astroboids sim`, the server) goes \
                    through `WorldRunner::submit`",
    },
    ApiRule {
        // Systems, queries and resources are how a rule would enter the binary.
        paths: &["tools/src"],
        banned: &[
            Banned::Name("add_systems"),
            Banned::Name("add_plugins"),
            Banned::Name("ResMut"),
            Banned::Name("Commands"),
            Banned::Name("apply_input"),
        ],
        allow: &[],
        invariant: "the binary holds no game rule",
    },
    ApiRule {
        paths: &["engine/src"],
        // Not even the Pacer reads the wall clock: it is handed a clock function.
        banned: &[WALL_CLOCK[0], WALL_CLOCK[1], Banned::Std("time")],
        allow: &[Allowance {
            file: "engine/src/driver.rs",
            banned: Banned::Std("time"),
            why: "`driver::Pacer` is the one part of the engine that looks at time; it takes \
                  clock readings and waits as `Duration`s from its caller",
        }],
        invariant: "nothing in `TickSchedule` reads the wall clock; only `driver::Pacer` looks \
                    at time, and it is handed a clock function by its caller",
    },
    ApiRule {
        // The engine is the sim's tick driver: everything it does runs inside a `Simulation`,
        // so the sim's "no I/O" holds for it too.
        paths: &["engine/src"],
        banned: &[Banned::Std("fs"), Banned::Std("net")],
        allow: &[],
        invariant: "no I/O, no wall-clock time",
    },
    ApiRule {
        paths: &["sim/src"],
        banned: &[
            WALL_CLOCK[0],
            WALL_CLOCK[1],
            Banned::Std("fs"),
            Banned::Std("net"),
            Banned::Std("env"),
            Banned::Std("process"),
        ],
        allow: &[],
        invariant: "no I/O, no wall-clock time",
    },
    ApiRule {
        paths: &["sim/src"],
        banned: &[Banned::Std("time")],
        allow: &[],
        invariant: "The sim gets configuration as text or values, scripts as bytes, and time as \
                    ticks",
    },
    ApiRule {
        // The script workers are created by the scripting crate; the sim spawns no thread.
        paths: &["sim/src"],
        banned: &[Banned::Std("thread")],
        allow: &[],
        invariant: "the only threads the sim owns are the script workers",
    },
    ApiRule {
        // A pool of its own would ignore the caller's thread count (`--threads`, the tests'
        // 1-to-4-thread runs); rayon's global pool is the caller's when it installs none.
        paths: &["sim/src", "engine/src"],
        banned: &[
            Banned::Name("ThreadPoolBuilder"),
            Banned::Name("ThreadPool"),
            Banned::Name("spawn_broadcast"),
        ],
        allow: &[],
        invariant: "Parallel stages use the caller's rayon pool",
    },
    ApiRule {
        paths: &["cluster/src"],
        banned: &[
            Banned::Name("tokio"),
            Banned::Std("net"),
            Banned::Std("fs"),
            Banned::Std("thread"),
            WALL_CLOCK[0],
            WALL_CLOCK[1],
        ],
        allow: &[],
        invariant: "the cluster crate is the tick protocol without I/O: no sockets, no clock, no \
                    tasks",
    },
    ApiRule {
        // The Leader's deciding calls and plan-making belong to the Conductor; a shell that
        // named them would be deciding.
        paths: &["cluster-net/src/process"],
        banned: &[
            Banned::Name("start_next"),
            Banned::Name("on_done"),
            Banned::Name("rewind"),
            Banned::Name("replan"),
            Banned::Name("with_shards"),
            Banned::Name("SectorAssignment"),
        ],
        allow: &[],
        invariant: "the cluster's processes decide nothing: plans, tick starts, checkpoints, \
                    recoveries and rebalances are the `Conductor`'s, the tick's work the \
                    `ShardNode`'s; the shells in `cluster-net::process` carry out what those \
                    return and hand them what arrives",
    },
    ApiRule {
        paths: &["views/src"],
        banned: &[
            WALL_CLOCK[0],
            WALL_CLOCK[1],
            Banned::Std("fs"),
            Banned::Std("net"),
            Banned::Std("thread"),
        ],
        allow: &[],
        invariant: "the views crate reads a world between ticks and does nothing else: no I/O, \
                    no clock, no network or store crate",
    },
    ApiRule {
        paths: &["gateway/src/outcomes.rs", "gateway/src/viewers.rs"],
        banned: &[
            WALL_CLOCK[0],
            WALL_CLOCK[1],
            Banned::Name("tokio"),
            Banned::Name("quinn"),
            Banned::Std("net"),
        ],
        allow: &[],
        invariant: "a gateway's decisions without I/O (`outcomes`, `viewers`) take no clock and \
                    open no sockets",
    },
    ApiRule {
        // A world (or the single server's store of one) inside a gateway would be state of its
        // own, out of step with the cluster's.
        paths: &["gateway/src"],
        banned: &[
            Banned::Name("Simulation"),
            Banned::Name("build_simulation"),
            Banned::Name("PersistentWorld"),
            Banned::Name("WorldStore"),
            Banned::Name("WorldServer"),
        ],
        allow: &[],
        invariant: "a gateway never holds world state of its own",
    },
    ApiRule {
        paths: &["protocol/src"],
        banned: &[
            Banned::Name("tokio"),
            Banned::Name("quinn"),
            Banned::Std("net"),
            WALL_CLOCK[0],
            WALL_CLOCK[1],
        ],
        allow: &[],
        invariant: "the protocol crate opens no sockets, reads no clock and spawns no tasks; \
                    bytes in, bytes out, time as an argument",
    },
    ApiRule {
        // Times are unix seconds handed in; the pool's timeouts are tokio's business.
        paths: &["pgstore/src"],
        banned: &[WALL_CLOCK[0], WALL_CLOCK[1]],
        allow: &[],
        invariant: "reads no clock (every time is an argument)",
    },
    ApiRule {
        // The server's core, its request families, accounts and rate limits are driven with
        // explicit time by the shells in `serve`.
        paths: &[
            "server/src/core",
            "server/src/requests",
            "server/src/accounts.rs",
            "server/src/limits.rs",
        ],
        banned: &[
            WALL_CLOCK[0],
            WALL_CLOCK[1],
            Banned::Std("thread"),
            Banned::Name("tokio"),
            Banned::Name("quinn"),
            Banned::Name("UdpSocket"),
            Banned::Name("TcpStream"),
        ],
        allow: &[Allowance {
            file: "server/src/limits.rs",
            banned: WALL_CLOCK[0],
            why: "the `Instant` named there is governor's `FakeRelativeClock::Instant`, the clock \
                  the caller advances, not std's",
        }],
        invariant: "`core`, `requests`, `accounts` and `limits` take time as an argument and \
                    start no threads, open no sockets and read no clock",
    },
    ApiRule {
        paths: &["host/src"],
        banned: &[
            Banned::Std("net"),
            Banned::Name("tokio"),
            Banned::Name("quinn"),
            WALL_CLOCK[0],
            WALL_CLOCK[1],
        ],
        allow: &[],
        invariant: "the host knows files and the store, never sockets, and reads no wall clock",
    },
    ApiRule {
        // The live map is drawn from snapshots: the play view names no simulation crate, so it
        // shows only what a player may see. The replay and design views are the exceptions.
        paths: PLAY_VIEW_SOURCES,
        banned: &[
            Banned::Name("astroboids_engine"),
            Banned::Name("astroboids_sim"),
            Banned::Name("astroboids_host"),
            Banned::Name("astroboids_designer"),
        ],
        allow: &[],
        invariant: "the play view (the map, its panels, the login and the session thread) knows \
                    the protocol only; only the replay and design views name `host`, `sim` and \
                    `designer`",
    },
    ApiRule {
        paths: &["designer/src"],
        banned: &[
            Banned::Std("fs"),
            Banned::Std("time"),
            WALL_CLOCK[0],
            WALL_CLOCK[1],
        ],
        allow: &[],
        invariant: "the designer crate reads and writes no files and keeps no time",
    },
];

// ---------------------------------------------------------------------------------------------
// The checks against this workspace
// ---------------------------------------------------------------------------------------------

#[test]
fn no_crate_reaches_a_forbidden_dependency() {
    let meta = Metadata::of_workspace();
    let mut failures = Vec::new();
    for rule in DEPENDENCY_RULES {
        assert!(
            meta.ids.contains_key(rule.krate),
            "the rule names {}, which is not a workspace member; update the rule",
            rule.krate
        );
        for path in meta.forbidden_paths(rule.krate, rule.forbidden) {
            failures.push(format!(
                "{}: depends on {} ({}); rule: \"{}\" (docs/architecture.md)",
                rule.krate,
                path.last().expect("a path ends at the forbidden package"),
                path.join(" -> "),
                rule.invariant
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

#[test]
fn banned_apis_stay_out_of_the_crates_that_promise_so() {
    let root = workspace_root();
    let mut failures = Vec::new();
    for rule in API_RULES {
        let mut files = Vec::new();
        for path in rule.paths {
            let found = rust_files(&root.join(path));
            assert!(
                !found.is_empty(),
                "{path}: no Rust sources there; update the rule"
            );
            files.extend(found);
        }
        let mut used = vec![false; rule.allow.len()];
        for file in files {
            let relative = relative_path(&root, &file);
            let tokens = without_test_items(&lex(&read(&file)));
            for (banned, line) in find_banned(&tokens, rule.banned) {
                let allowance = rule
                    .allow
                    .iter()
                    .position(|a| a.file == relative && a.banned == banned);
                match allowance {
                    Some(i) => used[i] = true,
                    None => failures.push(format!(
                        "{relative}:{line}: uses {banned}; rule: \"{}\" (docs/architecture.md)",
                        rule.invariant
                    )),
                }
            }
        }
        for (allowance, used) in rule.allow.iter().zip(used) {
            if !used {
                failures.push(format!(
                    "{}: allowed to use {} ({}) but no longer does: remove the allowance",
                    allowance.file, allowance.banned, allowance.why
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

#[test]
fn no_crate_has_a_cycle_between_its_top_level_modules() {
    let meta = Metadata::of_workspace();
    let root = workspace_root();
    let mut failures = Vec::new();
    let mut crates_seen = 0;
    for (name, dir) in &meta.member_dirs {
        let Some(krate) = CrateSources::read(dir) else {
            continue;
        };
        crates_seen += 1;
        let graph = ModuleGraph::build(&krate.root, &krate.files);
        for cycle in graph.cycles() {
            let edges: Vec<String> = cycle
                .edges
                .iter()
                .map(|(from, to, at)| format!("    {from} -> {to} ({})", at.shown_from(&root, dir)))
                .collect();
            failures.push(format!(
                "{name}: modules {} import each other in a circle (rule: no cycles between a \
                 crate's top-level modules); the references:\n{}",
                cycle.modules.join(", "),
                edges.join("\n")
            ));
        }
    }
    assert!(
        crates_seen >= 10,
        "only {crates_seen} crates with sources found"
    );
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

#[test]
fn every_crate_takes_the_workspace_lints() {
    let meta = Metadata::of_workspace();
    let root = workspace_root();
    let mut failures = Vec::new();
    for dir in meta.member_dirs.values() {
        let manifest: toml::Table = toml::from_str(&read(&dir.join("Cargo.toml")))
            .unwrap_or_else(|e| panic!("{}/Cargo.toml: {e}", dir.display()));
        let takes_them = manifest
            .get("lints")
            .and_then(|l| l.get("workspace"))
            .and_then(toml::Value::as_bool)
            == Some(true);
        if !takes_them {
            failures.push(format!(
                "{}/Cargo.toml: no `[lints] workspace = true`, so the workspace's deny of \
                 `unsafe_code` does not reach it; rule: \"{}\" (docs/architecture.md)",
                relative_path(&root, dir),
                API_RULES[0].invariant
            ));
        }
    }
    assert!(
        meta.member_dirs.len() >= 10,
        "only {} members found",
        meta.member_dirs.len()
    );
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

#[test]
fn the_play_view_rule_covers_every_file_but_the_replay_and_design_views() {
    let root = workspace_root();
    let covered: BTreeSet<PathBuf> = PLAY_VIEW_SOURCES
        .iter()
        .flat_map(|path| rust_files(&root.join(path)))
        .collect();
    let views_allowed_more = [root.join("play/src/replay"), root.join("play/src/design")];
    let missing: Vec<String> = rust_files(&root.join("play/src"))
        .into_iter()
        .filter(|file| !views_allowed_more.iter().any(|dir| file.starts_with(dir)))
        .filter(|file| !covered.contains(file))
        .map(|file| relative_path(&root, &file))
        .collect();
    assert!(
        missing.is_empty(),
        "play sources outside PLAY_VIEW_SOURCES (add them, or move them under replay/ or \
         design/ if they are those views): {missing:?}"
    );
}

/// Lines of code a file under a crate's `src/` may have outside its tests.
const MAX_CODE_LINES_PER_FILE: usize = 500;
/// Words of the invariant in docs/architecture.md the file-size rule enforces.
const FILE_SIZE_INVARIANT: &str = "a source file holds one concern: at most 500 lines of code";

#[test]
fn no_source_file_outgrows_one_concern() {
    let meta = Metadata::of_workspace();
    let root = workspace_root();
    let mut failures = Vec::new();
    let mut files_seen = 0;
    for dir in meta.member_dirs.values() {
        for path in rust_files(&dir.join("src")) {
            files_seen += 1;
            let lines = code_lines(&read(&path));
            if lines > MAX_CODE_LINES_PER_FILE {
                failures.push(format!(
                    "{}: {lines} lines of code outside its tests, more than \
                     {MAX_CODE_LINES_PER_FILE}; rule: \"{FILE_SIZE_INVARIANT}\" \
                     (docs/architecture.md): split it by concern",
                    relative_path(&root, &path)
                ));
            }
        }
    }
    assert!(files_seen >= 100, "only {files_seen} source files found");
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

#[test]
fn every_rule_quotes_an_architecture_invariant_of_the_docs() {
    let docs = read(&workspace_root().join("docs/architecture.md"));
    let invariants = invariant_paragraphs(&docs);
    assert!(
        invariants.len() >= 10,
        "found only {} \"Architecture invariant:\" paragraphs in docs/architecture.md",
        invariants.len()
    );
    let quotes = DEPENDENCY_RULES
        .iter()
        .map(|r| (r.krate, r.invariant))
        .chain(API_RULES.iter().map(|r| (r.paths[0], r.invariant)))
        .chain([("every source file", FILE_SIZE_INVARIANT)]);
    let mut failures = Vec::new();
    for (subject, quote) in quotes {
        let quote = normalize_space(quote);
        if !invariants.iter().any(|p| p.contains(&quote)) {
            failures.push(format!(
                "rule for {subject} quotes \"{quote}\", which no \"Architecture invariant:\" \
                 paragraph of docs/architecture.md says any more: re-read the invariant and \
                 update the rule (or the docs)"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The checks' own behaviour, on made-up inputs (a checker that found nothing because it
// parsed nothing would pass the tests above)
// ---------------------------------------------------------------------------------------------

#[test]
fn float_methods_are_found_as_calls_only() {
    let source = r#"
        fn f(x: f32, sin: f32) -> f32 {
            let (sin, cos) = libm::sincosf(x);
            let a = x.sin() + f32::cos(x) + f64::atan2(1.0, 2.0) as f32;
            let b = sin * cos + x.sqrt() + libm::powf(x, 2.0);
            a + b + x . powi ( 2 )
        }
    "#;
    let banned = [
        Banned::Method("sin"),
        Banned::Method("cos"),
        Banned::Method("atan2"),
        Banned::Method("powf"),
        Banned::Method("powi"),
        Banned::Method("sqrt_not_banned_here"),
    ];
    let found = find_banned(&lex(source), &banned);
    assert_eq!(
        found,
        vec![
            (Banned::Method("sin"), 4),
            (Banned::Method("cos"), 4),
            (Banned::Method("atan2"), 4),
            (Banned::Method("powi"), 6),
        ]
    );
}

#[test]
fn code_lines_leave_out_blank_lines_comments_and_tests() {
    let source = r#"//! A module doc.

/// A doc comment.
fn f(
    x: u32, // a trailing comment
) -> u32 {
    /* a block
       comment */
    let text = "a string
        over two lines";
    x + text.len() as u32
}

#[cfg(test)]
mod tests {
    fn helper() {}
}
"#;
    // `fn f(`, `x: u32,`, `) -> u32 {`, `let text = "a string`, `over two lines";` (its `;`),
    // `x + ...`, `}`.
    assert_eq!(code_lines(source), 7);
    assert_eq!(code_lines("#![cfg(test)]\nfn only_for_tests() {}\n"), 0);
}

#[test]
fn banned_names_are_found_in_code_only() {
    let source = r##"
        // use std::fs; Instant
        /* a /* nested */ SystemTime comment */
        const TEXT: &str = "std::fs::read(Instant)";
        const RAW: &[u8] = br#"SystemTime "quoted" std::net"#;
        fn f<'a>(x: &'a str) -> char { let _ = (InstantiationError, '\'', b'"', '"'); 'I' }
        use std::{io, net::TcpStream};
        fn g() { let _ = ::std::fs::read("x"); let _ = std::time::Instant::now(); }
        #[cfg(test)]
        mod tests { use std::fs; fn t() { SystemTime::now(); } }
        #[cfg(test)]
        fn helper() { std::fs::read("x"); }
        fn h() {}
    "##;
    let tokens = without_test_items(&lex(source));
    let found = find_banned(
        &tokens,
        &[
            Banned::Std("fs"),
            Banned::Std("net"),
            Banned::Std("time"),
            Banned::Name("Instant"),
            Banned::Name("SystemTime"),
        ],
    );
    assert_eq!(
        found,
        vec![
            (Banned::Std("net"), 7),
            (Banned::Std("fs"), 8),
            (Banned::Std("time"), 8),
            (Banned::Name("Instant"), 8),
        ]
    );
    assert!(
        tokens.iter().any(|t| t.tok == Tok::Ident("h".into())),
        "code after a skipped test item is kept"
    );
}

#[test]
fn module_cycles_are_found_through_crate_super_and_root_reexports() {
    let root = "mod a; mod b; mod c; mod d; mod e;\npub use b::Thing;\npub struct Shared;";
    let file = |module: &str, depth: usize, text: &str| SourceFile {
        path: PathBuf::from(format!("{module}.rs")),
        module: module.into(),
        depth,
        text: text.into(),
    };
    let files = vec![
        // a <-> b through an import and an expression path.
        file("a", 1, "use crate::b::X;\nuse crate::Shared;"),
        file("b", 1, "fn f() {\n    crate::a::g();\n}"),
        // c -> b through the root's re-export, c -> d through a group.
        file("c", 1, "use super::Thing;\nuse crate::{Shared, d::Y};"),
        // d -> e from a nested file (`super::super` from depth 2 is the root), e -> c.
        file(
            "d",
            2,
            "mod inner {\n    use super::super::super::e::Z;\n}\nuse super::Sibling;",
        ),
        file("e", 1, "fn f() { let _ = crate::c::C; }"),
        // Only a test module looks back at a: no cycle through it.
        file(
            "a",
            1,
            "#[cfg(test)]\nmod tests {\n    use crate::e::Fixture;\n    use super::*;\n}",
        ),
    ];
    let graph = ModuleGraph::build(root, &files);
    let edges: Vec<(&str, &str)> = graph
        .edges
        .keys()
        .map(|(from, to)| (from.as_str(), to.as_str()))
        .collect();
    assert_eq!(
        edges,
        [
            ("a", "b"),
            ("b", "a"),
            ("c", "b"),
            ("c", "d"),
            ("d", "e"),
            ("e", "c")
        ]
    );
    let cycles = graph.cycles();
    // Each circle as "modules: from->to@line ...".
    let summary: Vec<String> = cycles
        .iter()
        .map(|c| {
            let edges: Vec<String> = c
                .edges
                .iter()
                .map(|(from, to, at)| format!("{from}->{to}@{}", at.line))
                .collect();
            format!("{}: {}", c.modules.join(","), edges.join(" "))
        })
        .collect();
    assert_eq!(
        summary,
        [
            "a,b: a->b@1 b->a@2",
            // c -> b is no part of this circle.
            "c,d,e: c->d@2 d->e@2 e->c@1",
        ]
    );
}

#[test]
fn dependency_paths_follow_normal_edges_through_any_package() {
    let metadata = serde_json::json!({
        "workspace_root": "/w",
        "workspace_members": ["a", "b"],
        "packages": [
            {"id": "a", "name": "a", "manifest_path": "/w/a/Cargo.toml"},
            {"id": "b", "name": "b", "manifest_path": "/w/b/Cargo.toml"},
            {"id": "x", "name": "x", "manifest_path": "/r/x/Cargo.toml"},
            {"id": "tokio", "name": "tokio", "manifest_path": "/r/t/Cargo.toml"},
            {"id": "quinn", "name": "quinn", "manifest_path": "/r/q/Cargo.toml"},
            {"id": "sled", "name": "sled", "manifest_path": "/r/s/Cargo.toml"}
        ],
        "resolve": {"nodes": [
            {"id": "a", "deps": [
                {"pkg": "b", "dep_kinds": [{"kind": null}]},
                {"pkg": "quinn", "dep_kinds": [{"kind": "dev"}]},
                {"pkg": "sled", "dep_kinds": [{"kind": "build"}]}
            ]},
            {"id": "b", "deps": [{"pkg": "x", "dep_kinds": [{"kind": "dev"}, {"kind": null}]}]},
            {"id": "x", "deps": [{"pkg": "tokio", "dep_kinds": [{"kind": null}]}]},
            {"id": "tokio", "deps": []},
            {"id": "quinn", "deps": []},
            {"id": "sled", "deps": []}
        ]}
    });
    let meta = Metadata::parse(&metadata);
    assert_eq!(
        meta.forbidden_paths("a", &["tokio", "quinn", "sled"]),
        vec![vec!["a", "b", "x", "tokio"]]
    );
    assert!(
        meta.forbidden_paths("b", &["a"]).is_empty(),
        "edges are followed one way"
    );
    assert_eq!(meta.member_dirs["b"], PathBuf::from("/w/b"));
}

#[test]
fn invariant_paragraphs_run_until_the_next_invariant_or_blank_line() {
    let docs = "Intro.\n\nArchitecture invariant: one\nline two.\nArchitecture invariant: \
                other.\n\nNot an invariant: line two.\n";
    assert_eq!(
        invariant_paragraphs(docs),
        vec![
            "Architecture invariant: one line two.",
            "Architecture invariant: other."
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Workspace access
// ---------------------------------------------------------------------------------------------

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("arch-test lives inside the workspace")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn relative_path(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Every `.rs` file under `dir`, sorted (so reports come in a stable order).
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    if dir.extension().is_some_and(|e| e == "rs") {
        return if dir.is_file() {
            vec![dir.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// What `cargo metadata` says about the workspace and its resolved dependency graph.
struct Metadata {
    /// Package id by name, for workspace members.
    ids: BTreeMap<String, String>,
    /// Directory of each workspace member, by name.
    member_dirs: BTreeMap<String, PathBuf>,
    names: BTreeMap<String, String>,
    /// Normal (non-dev, non-build) dependencies, by package id.
    normal_deps: BTreeMap<String, Vec<String>>,
}

impl Metadata {
    fn of_workspace() -> Self {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // Only this platform's graph: the other platforms' packages need not be downloaded,
        // and what this machine builds is what the rules are about.
        let output = Command::new(&cargo)
            .args(["metadata", "--format-version", "1", "--filter-platform"])
            .arg(host_triple())
            .current_dir(workspace_root())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cargo} metadata: {e}"));
        assert!(
            output.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let value: Value =
            serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
        Self::parse(&value)
    }

    fn parse(value: &Value) -> Self {
        let text = |v: &Value| v.as_str().expect("a string in cargo metadata").to_string();
        let members: BTreeSet<String> = value["workspace_members"]
            .as_array()
            .expect("workspace_members")
            .iter()
            .map(text)
            .collect();
        let mut names = BTreeMap::new();
        let mut ids = BTreeMap::new();
        let mut member_dirs = BTreeMap::new();
        for package in value["packages"].as_array().expect("packages") {
            let (id, name) = (text(&package["id"]), text(&package["name"]));
            if members.contains(&id) {
                let manifest = PathBuf::from(text(&package["manifest_path"]));
                let dir = manifest.parent().expect("a manifest is in a directory");
                member_dirs.insert(name.clone(), dir.to_path_buf());
                ids.insert(name.clone(), id.clone());
            }
            names.insert(id, name);
        }
        let mut normal_deps = BTreeMap::new();
        for node in value["resolve"]["nodes"].as_array().expect("resolve.nodes") {
            let deps = node["deps"]
                .as_array()
                .expect("deps")
                .iter()
                .filter(|dep| {
                    dep["dep_kinds"]
                        .as_array()
                        .expect("dep_kinds")
                        .iter()
                        .any(|kind| kind["kind"].is_null())
                })
                .map(|dep| text(&dep["pkg"]))
                .collect();
            normal_deps.insert(text(&node["id"]), deps);
        }
        Self {
            ids,
            member_dirs,
            names,
            normal_deps,
        }
    }

    /// For each package named in `forbidden` that `krate` reaches, the shortest chain of
    /// package names leading to it (in breadth-first order, so the same graph always gives the
    /// same chains).
    fn forbidden_paths(&self, krate: &str, forbidden: &[&str]) -> Vec<Vec<String>> {
        let start = &self.ids[krate];
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([start.as_str()]);
        let mut reached = Vec::new();
        while let Some(id) = queue.pop_front() {
            let name = self.names[id].as_str();
            if id != start && forbidden.contains(&name) {
                reached.push(id);
                // What it brings along is reported when the first breach is fixed.
                continue;
            }
            for dep in self.normal_deps.get(id).into_iter().flatten() {
                if dep != start && !parent.contains_key(dep.as_str()) {
                    parent.insert(dep, id);
                    queue.push_back(dep);
                }
            }
        }
        reached
            .into_iter()
            .map(|mut id| {
                let mut path = vec![self.names[id].clone()];
                while let Some(&up) = parent.get(id) {
                    path.push(self.names[up].clone());
                    id = up;
                }
                path.reverse();
                path
            })
            .collect()
    }
}

fn host_triple() -> String {
    let output = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// A small Rust lexer: enough to tell code from comments, strings and test items
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Punct(char),
    /// A string, character or number literal (contents are never code).
    Literal,
    Lifetime,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

impl Token {
    fn new(tok: Tok, line: usize) -> Self {
        Self { tok, line }
    }

    fn is_ident(&self, name: &str) -> bool {
        matches!(&self.tok, Tok::Ident(i) if i == name)
    }

    fn is_punct(&self, c: char) -> bool {
        self.tok == Tok::Punct(c)
    }
}

fn lex(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Newlines in `chars[from..to]`, for tokens that span lines.
    let count_lines =
        |from: usize, to: usize| chars[from..to].iter().filter(|&&c| c == '\n').count();
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            if c == '\n' {
                line += 1;
            }
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = i;
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            line += count_lines(start, i.min(chars.len()));
        } else if c == '"' {
            let (start, start_line) = (i, line);
            i = skip_string(&chars, i);
            line += count_lines(start, i.min(chars.len()));
            tokens.push(Token::new(Tok::Literal, start_line));
        } else if c == '\'' {
            if next == Some('\\') {
                // An escaped character literal: past the escaped character (which may be a
                // quote), then up to the closing quote.
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                tokens.push(Token::new(Tok::Literal, line));
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                tokens.push(Token::new(Tok::Literal, line));
            } else {
                // A lifetime or a loop label.
                i += 1;
                while i < chars.len() && is_ident_char(chars[i]) {
                    i += 1;
                }
                tokens.push(Token::new(Tok::Lifetime, line));
            }
        } else if c.is_ascii_digit() {
            while i < chars.len()
                && (is_ident_char(chars[i])
                    || (chars[i] == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)))
            {
                i += 1;
            }
            tokens.push(Token::new(Tok::Literal, line));
        } else if is_ident_char(c) {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let after = chars.get(i).copied();
            let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
            let quote_after_hashes = chars.get(i + hashes) == Some(&'"');
            if matches!(word.as_str(), "r" | "br" | "cr") && quote_after_hashes {
                // A raw string: ends at a quote followed by as many hashes as it began with.
                let (start, start_line) = (i, line);
                i += hashes + 1;
                loop {
                    if i >= chars.len() {
                        break;
                    }
                    if chars[i] == '"'
                        && chars[i + 1..].iter().take_while(|&&c| c == '#').count() >= hashes
                    {
                        i += 1 + hashes;
                        break;
                    }
                    i += 1;
                }
                line += count_lines(start, i.min(chars.len()));
                tokens.push(Token::new(Tok::Literal, start_line));
            } else if matches!(word.as_str(), "b" | "c") && after == Some('"') {
                let (start, start_line) = (i, line);
                i = skip_string(&chars, i);
                line += count_lines(start, i.min(chars.len()));
                tokens.push(Token::new(Tok::Literal, start_line));
            } else if word == "b" && after == Some('\'') {
                i += 1;
                if chars.get(i) == Some(&'\\') {
                    i += 1;
                }
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                tokens.push(Token::new(Tok::Literal, line));
            } else if word == "r" && hashes == 1 {
                // A raw identifier, `r#type`.
                let start = i + 1;
                i = start;
                while i < chars.len() && is_ident_char(chars[i]) {
                    i += 1;
                }
                tokens.push(Token::new(
                    Tok::Ident(chars[start..i].iter().collect()),
                    line,
                ));
            } else {
                tokens.push(Token::new(Tok::Ident(word), line));
            }
        } else {
            tokens.push(Token::new(Tok::Punct(c), line));
            i += 1;
        }
    }
    tokens
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// The index just past the string literal whose opening quote is at `open`.
fn skip_string(chars: &[char], open: usize) -> usize {
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// The index of the token closing the bracket opened at `open` (or the end).
fn matching_close(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t.tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

/// Lines holding code: a line counts when a token starts on it, after comments and
/// `#[cfg(test)]` items are removed (a string spanning lines counts once).
fn code_lines(source: &str) -> usize {
    without_test_items(&lex(source))
        .iter()
        .map(|t| t.line)
        .collect::<BTreeSet<_>>()
        .len()
}

/// `tokens` without items marked `#[cfg(test)]` (a file starting with `#![cfg(test)]` is
/// dropped whole): test code may use what the crate itself must not.
fn without_test_items(tokens: &[Token]) -> Vec<Token> {
    let is_cfg_test = |at: usize, inner: bool| {
        let pattern: &[&str] = if inner {
            &["#", "!", "[", "cfg", "(", "test", ")", "]"]
        } else {
            &["#", "[", "cfg", "(", "test", ")", "]"]
        };
        pattern.iter().enumerate().all(|(k, p)| {
            tokens.get(at + k).is_some_and(|t| match &t.tok {
                Tok::Ident(i) => i == p,
                Tok::Punct(c) => p.len() == 1 && p.starts_with(*c),
                _ => false,
            })
        })
    };
    if is_cfg_test(0, true) {
        return Vec::new();
    }
    let mut kept = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if !is_cfg_test(i, false) {
            kept.push(tokens[i].clone());
            i += 1;
            continue;
        }
        // Skip this and any further attributes, then the item: up to a `;` outside brackets
        // or the end of its first `{...}` block.
        i += 7;
        while tokens.get(i).is_some_and(|t| t.is_punct('#')) {
            i = matching_close(tokens, i + 1) + 1;
        }
        while i < tokens.len() {
            match tokens[i].tok {
                Tok::Punct(';') => {
                    i += 1;
                    break;
                }
                Tok::Punct('{') => {
                    i = matching_close(tokens, i) + 1;
                    break;
                }
                Tok::Punct('(' | '[') => i = matching_close(tokens, i) + 1,
                _ => i += 1,
            }
        }
    }
    kept
}

/// Every use of a banned name, with its line, in source order.
fn find_banned(tokens: &[Token], banned: &[Banned]) -> Vec<(Banned, usize)> {
    let mut found = Vec::new();
    let is_path_sep = |at: usize| {
        tokens.get(at).is_some_and(|t| t.is_punct(':'))
            && tokens.get(at + 1).is_some_and(|t| t.is_punct(':'))
    };
    for (i, token) in tokens.iter().enumerate() {
        let Tok::Ident(word) = &token.tok else {
            continue;
        };
        let called = tokens.get(i + 1).is_some_and(|t| t.is_punct('('));
        let after_dot = i > 0 && tokens[i - 1].is_punct('.');
        let after_float_path = i >= 3
            && is_path_sep(i - 2)
            && (tokens[i - 3].is_ident("f32") || tokens[i - 3].is_ident("f64"));
        for &b in banned {
            match b {
                Banned::Name(name) if name == word => found.push((b, token.line)),
                Banned::Method(name)
                    if name == word && called && (after_dot || after_float_path) =>
                {
                    found.push((b, token.line))
                }
                _ => {}
            }
        }
        if word != "std" || !is_path_sep(i + 1) {
            continue;
        }
        // `std::x`, or the first names of each branch of `std::{x, y::z}`.
        let modules: Vec<&str> = match tokens.get(i + 3).map(|t| &t.tok) {
            Some(Tok::Ident(module)) => vec![module.as_str()],
            Some(Tok::Punct('{')) => {
                let close = matching_close(tokens, i + 3);
                let mut names = Vec::new();
                let mut depth = 0;
                let mut expect_name = true;
                for t in &tokens[i + 4..close] {
                    match &t.tok {
                        Tok::Punct('{') => depth += 1,
                        Tok::Punct('}') => depth -= 1,
                        Tok::Punct(',') if depth == 0 => expect_name = true,
                        Tok::Ident(name) if depth == 0 && expect_name => {
                            names.push(name.as_str());
                            expect_name = false;
                        }
                        _ => {}
                    }
                }
                names
            }
            _ => Vec::new(),
        };
        for module in modules {
            for &b in banned {
                if matches!(b, Banned::Std(m) if m == module) {
                    found.push((b, token.line));
                }
            }
        }
    }
    found.sort_by_key(|&(b, line)| (line, banned.iter().position(|x| *x == b)));
    found
}

// ---------------------------------------------------------------------------------------------
// Module graphs
// ---------------------------------------------------------------------------------------------

/// One source file of a crate, inside top-level module `module`.
struct SourceFile {
    path: PathBuf,
    module: String,
    /// How many modules deep the file's own module is: 1 for `src/x.rs` and `src/x/mod.rs`,
    /// 2 for `src/x/y.rs`.
    depth: usize,
    text: String,
}

struct CrateSources {
    /// The crate root's text (`src/lib.rs`, else `src/main.rs`).
    root: String,
    files: Vec<SourceFile>,
}

impl CrateSources {
    /// The sources of the crate in `dir`; `None` for a package without a library or binary
    /// root (benchmark- or test-only packages).
    fn read(dir: &Path) -> Option<Self> {
        let src = dir.join("src");
        let root = ["lib.rs", "main.rs"]
            .iter()
            .map(|f| src.join(f))
            .find(|p| p.is_file())?;
        let mut files = Vec::new();
        for path in rust_files(&src) {
            let relative = path.strip_prefix(&src).expect("under src");
            let parts: Vec<String> = relative
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            // The roots, and binaries (`src/bin`), are not modules of the crate.
            if parts.len() == 1 && (parts[0] == "lib.rs" || parts[0] == "main.rs") {
                continue;
            }
            if parts[0] == "bin" {
                continue;
            }
            let module = parts[0].trim_end_matches(".rs").to_string();
            let is_mod_rs = parts.last().is_some_and(|p| p == "mod.rs");
            let depth = if is_mod_rs {
                parts.len() - 1
            } else {
                parts.len()
            };
            files.push(SourceFile {
                text: read(&path),
                path,
                module,
                depth,
            });
        }
        Some(Self {
            root: read(&root),
            files,
        })
    }
}

/// Where a reference was found.
#[derive(Debug, Clone)]
struct Location {
    path: PathBuf,
    line: usize,
}

impl Location {
    fn shown_from(&self, root: &Path, crate_dir: &Path) -> String {
        let path = if self.path.is_absolute() {
            relative_path(root, &self.path)
        } else {
            relative_path(root, &crate_dir.join("src").join(&self.path))
        };
        format!("{path}:{}", self.line)
    }
}

struct Cycle {
    /// The modules of one strongly connected component, sorted.
    modules: Vec<String>,
    /// Every reference between them: (from, to, first place it is made).
    edges: Vec<(String, String, Location)>,
}

struct ModuleGraph {
    /// (from, to) -> the first reference making that edge.
    edges: BTreeMap<(String, String), Location>,
    modules: BTreeSet<String>,
}

impl ModuleGraph {
    fn build(root: &str, files: &[SourceFile]) -> Self {
        let modules: BTreeSet<String> = files.iter().map(|f| f.module.clone()).collect();
        let reexports = root_reexports(&lex(root), &modules);
        let mut edges = BTreeMap::new();
        for file in files {
            let tokens = without_test_items(&lex(&file.text));
            for (name, line) in root_references(&tokens, file.depth) {
                let target = if modules.contains(&name) {
                    Some(name)
                } else {
                    reexports.get(&name).cloned()
                };
                if let Some(target) = target
                    && target != file.module
                {
                    edges
                        .entry((file.module.clone(), target))
                        .or_insert_with(|| Location {
                            path: file.path.clone(),
                            line,
                        });
                }
            }
        }
        Self { edges, modules }
    }

    /// The strongly connected components with more than one module (Tarjan), sorted.
    fn cycles(&self) -> Vec<Cycle> {
        let nodes: Vec<&String> = self.modules.iter().collect();
        let index_of: BTreeMap<&String, usize> =
            nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut successors = vec![Vec::new(); nodes.len()];
        for (from, to) in self.edges.keys() {
            successors[index_of[from]].push(index_of[to]);
        }
        let mut tarjan = Tarjan {
            successors: &successors,
            index: vec![None; nodes.len()],
            low: vec![0; nodes.len()],
            on_stack: vec![false; nodes.len()],
            stack: Vec::new(),
            next: 0,
            components: Vec::new(),
        };
        for v in 0..nodes.len() {
            if tarjan.index[v].is_none() {
                tarjan.visit(v);
            }
        }
        let mut cycles: Vec<Cycle> = tarjan
            .components
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|component| {
                let mut modules: Vec<String> =
                    component.iter().map(|&i| nodes[i].clone()).collect();
                modules.sort();
                let edges = self
                    .edges
                    .iter()
                    .filter(|((from, to), _)| modules.contains(from) && modules.contains(to))
                    .map(|((from, to), at)| (from.clone(), to.clone(), at.clone()))
                    .collect();
                Cycle { modules, edges }
            })
            .collect();
        cycles.sort_by(|a, b| a.modules.cmp(&b.modules));
        cycles
    }
}

struct Tarjan<'a> {
    successors: &'a [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    components: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, v: usize) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in &self.successors[v] {
            match self.index[w] {
                None => {
                    self.visit(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(index) if self.on_stack[w] => self.low[v] = self.low[v].min(index),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut component = Vec::new();
            loop {
                let w = self.stack.pop().expect("v is on the stack");
                self.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

/// Names the root re-exports from a module (`pub use config::UniverseConfig;`, also through
/// `self::`/`crate::` and groups), mapped to that module.
fn root_reexports(tokens: &[Token], modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 && tokens[i].is_ident("use") {
            let end = (i..tokens.len())
                .find(|&k| tokens[k].is_punct(';'))
                .unwrap_or(tokens.len());
            let mut leaves = Vec::new();
            use_tree(&tokens[i + 1..end], &[], &mut leaves);
            for (path, binding) in leaves {
                let path: Vec<&String> = path
                    .iter()
                    .skip_while(|s| *s == "crate" || *s == "self")
                    .collect();
                if let (Some(first), Some(binding)) = (path.first(), binding)
                    && modules.contains(*first)
                {
                    map.insert(binding, (*first).clone());
                }
            }
            i = end;
        }
        i += 1;
    }
    map
}

/// The leaves of a `use` tree: each full path with the name it binds (`None` for a glob).
fn use_tree(tokens: &[Token], prefix: &[String], leaves: &mut Vec<(Vec<String>, Option<String>)>) {
    let mut path = prefix.to_vec();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i].tok {
            Tok::Ident(word) if word == "as" => {
                if let Some(Tok::Ident(alias)) = tokens.get(i + 1).map(|t| &t.tok) {
                    leaves.push((path.clone(), Some(alias.clone())));
                }
                return;
            }
            Tok::Ident(word) if word != "pub" => path.push(word.clone()),
            Tok::Punct('*') => {
                leaves.push((path, None));
                return;
            }
            Tok::Punct('{') => {
                let close = matching_close(tokens, i);
                let inner = &tokens[i + 1..close.min(tokens.len())];
                let mut start = 0;
                let mut depth = 0;
                for k in 0..=inner.len() {
                    let at_end = k == inner.len();
                    if !at_end {
                        match inner[k].tok {
                            Tok::Punct('{') => depth += 1,
                            Tok::Punct('}') => depth -= 1,
                            _ => {}
                        }
                    }
                    if at_end || (depth == 0 && inner[k].is_punct(',')) {
                        if k > start {
                            use_tree(&inner[start..k], &path, leaves);
                        }
                        start = k + 1;
                    }
                }
                return;
            }
            _ => {}
        }
        i += 1;
    }
    if let Some(last) = path.last() {
        let binding = if last == "self" {
            path.iter().rev().nth(1).cloned()
        } else {
            Some(last.clone())
        };
        leaves.push((path, binding));
    }
}

/// The first segment of every path that starts at the crate root (`crate::x`, or enough
/// `super::`s to climb out of the file's module), with its line. `$crate` (macros) and
/// globs are left out: a glob names nothing in particular.
fn root_references(tokens: &[Token], file_depth: usize) -> Vec<(String, usize)> {
    let is_sep = |at: usize| {
        tokens.get(at).is_some_and(|t| t.is_punct(':'))
            && tokens.get(at + 1).is_some_and(|t| t.is_punct(':'))
    };
    let mut found = Vec::new();
    // Inline `mod name { ... }` blocks open at these brace depths.
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        match token.tok {
            Tok::Punct('{') => {
                let opens_mod = i >= 2
                    && tokens[i - 2].is_ident("mod")
                    && matches!(tokens[i - 1].tok, Tok::Ident(_));
                if opens_mod {
                    inline_mods.push(depth);
                }
                depth += 1;
            }
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline_mods.last() == Some(&depth) {
                    inline_mods.pop();
                }
            }
            _ => {}
        }
        let after_dollar = i > 0 && tokens[i - 1].is_punct('$');
        let continues_path = i > 1 && is_sep(i - 2);
        let start = if token.is_ident("crate") && !after_dollar && is_sep(i + 1) {
            Some(i + 3)
        } else if token.is_ident("super") && !continues_path {
            let mut k = i;
            let mut supers = 0;
            while tokens.get(k).is_some_and(|t| t.is_ident("super")) && is_sep(k + 1) {
                supers += 1;
                k += 3;
            }
            (supers > 0 && supers >= file_depth + inline_mods.len()).then_some(k)
        } else {
            None
        };
        if let Some(at) = start {
            match tokens.get(at).map(|t| &t.tok) {
                Some(Tok::Ident(name)) => found.push((name.clone(), token.line)),
                Some(Tok::Punct('{')) => {
                    let close = matching_close(tokens, at);
                    let mut leaves = Vec::new();
                    use_tree(
                        &tokens[at..close.min(tokens.len() - 1) + 1],
                        &[],
                        &mut leaves,
                    );
                    for (path, _) in leaves {
                        if let Some(first) = path.first().filter(|f| *f != "self") {
                            found.push((first.clone(), token.line));
                        }
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    found
}

// ---------------------------------------------------------------------------------------------
// The docs
// ---------------------------------------------------------------------------------------------

/// Each "Architecture invariant:" paragraph, whitespace collapsed: from its marker to the next
/// marker or blank line.
fn invariant_paragraphs(docs: &str) -> Vec<String> {
    const MARKER: &str = "Architecture invariant:";
    let mut paragraphs = Vec::new();
    let mut current: Option<String> = None;
    for line in docs.lines() {
        let line = line.trim();
        if line.starts_with(MARKER) || line.is_empty() {
            paragraphs.extend(current.take());
        }
        if line.starts_with(MARKER) {
            current = Some(line.to_string());
        } else if let Some(p) = &mut current {
            p.push(' ');
            p.push_str(line);
        }
    }
    paragraphs.extend(current);
    paragraphs.iter().map(|p| normalize_space(p)).collect()
}

fn normalize_space(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
