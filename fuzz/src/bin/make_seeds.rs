//! Writes the seed corpora in fuzz/corpus/<target>/ from real encodings: messages and frames
//! the protocol encodes, snapshot datagrams an encoder sent, the golden replays in replays/,
//! a trace and checkpoints cut from them and from a small world, a data directory the host
//! wrote, and the hostile modules in assets/hostile/ plus the scripts the replays embed.
//!
//! It is built by `cargo fuzz build` with the targets: the dependencies are compiled once,
//! with coverage instrumentation, and instrumented code links only with libFuzzer's runtime.
//! So it is a libFuzzer binary whose initialization writes the seeds and exits before any
//! fuzzing starts. Run it from the repository root (see docs/fuzzing.md):
//! `fuzz/target/<host triple>/release/make_seeds`, with `ASTROBOIDS_SEED_WASM=DIR` naming a
//! directory of further .wasm modules (for example the SDK's example builds) to seed the
//! script target with.
//!
//! Seeds are kept small (a few KiB each, under a few MiB in all): a seed's job is to open the
//! decoder's paths, and libFuzzer mutates small inputs faster.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use astroboids_fuzz::{
    join_large_records, join_records, replay_chunks, split_records, store_record,
};
use astroboids_host::replay::Replay;
use astroboids_host::{PersistentWorld, WorldRequest};
use astroboids_sim::checkpoint::{self, CommandRecord};
use astroboids_sim::inputs::{WorldInput, apply_input};
use astroboids_sim::{SimOptions, UniverseConfig, build_simulation_with};
use protocol::frame::encode_frame;
use protocol::messages::{
    ClientMessage, MoveCommand, PROTOCOL_VERSION, ReplayListing, Request, RequestError, Response,
    ScriptListing, ServerMessage, ShipStatusReport, TickEvents, Token,
};
use protocol::session::{ClientSession, ServerEvent, ServerSession, SessionLimits};
use protocol::snapshot::{SnapshotDecoder, SnapshotEncoder, SnapshotLimits, View, ViewEntity};

struct Corpus {
    root: PathBuf,
    written: BTreeMap<String, (usize, usize)>,
}

impl Corpus {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
        let entry = self.written.entry(target.to_string()).or_default();
        entry.0 += 1;
        entry.1 += bytes.len();
    }
}

fn options() -> SimOptions {
    SimOptions {
        script_workers: 1,
        script_artifacts: None,
    }
}

fn client_messages() -> Vec<ClientMessage> {
    let requests = vec![
        Request::Register {
            user: "pilot".into(),
            password: "correct horse".into(),
        },
        Request::Login {
            user: "pilot".into(),
            password: "correct horse".into(),
        },
        Request::Authenticate {
            token: Token("c2Vzc2lvbi10b2tlbg".into()),
        },
        Request::Logout,
        Request::UploadScript {
            name: "miner".into(),
            wasm: b"\0asm\x01\0\0\0".to_vec(),
        },
        Request::ListScripts,
        Request::AssignScript {
            ship: 3,
            name: "miner".into(),
        },
        Request::SpawnShip,
        Request::ShipStatus { ship: Some(3) },
        Request::MoveShip {
            ship: 3,
            command: MoveCommand {
                thrust: 0.75,
                turn: -0.25,
                mine: true,
                stop: false,
            },
        },
        Request::ShipLogs { ship: 3 },
        Request::ListReplays,
        Request::DownloadTrace {
            ship: 3,
            from_tick: 100,
            to_tick: 120,
        },
        Request::AdminSpawn {
            owner: "pilot".into(),
        },
        Request::AdminDespawn { ship: 3 },
        Request::AdminKick {
            user: "pilot".into(),
        },
        Request::AdminSetShipLimit {
            user: "pilot".into(),
            max_ships: Some(5),
        },
        Request::Subscribe {
            max_datagram_bytes: 1_150,
        },
        Request::Unsubscribe,
    ];
    let mut messages = vec![
        ClientMessage::Hello {
            protocol_version: 1,
            client: "astroboids-client 0.1.0".into(),
        },
        ClientMessage::Greeting {
            protocol_version: PROTOCOL_VERSION,
            client: "astroboids-client 0.1.0".into(),
            instance: 0x1234_5678_9abc,
        },
    ];
    messages.extend(
        requests
            .into_iter()
            .zip(1..)
            .map(|(request, id)| ClientMessage::Request { id, request }),
    );
    messages
}

fn server_messages() -> Vec<ServerMessage> {
    let token = Token("c2Vzc2lvbi10b2tlbg".into());
    let responses = vec![
        Response::Registered,
        Response::LoggedIn {
            token,
            expires_in_s: 604_800,
        },
        Response::Authenticated {
            user: "pilot".into(),
            admin: false,
        },
        Response::LoggedOut,
        Response::ScriptUploaded {
            name: "miner".into(),
            version: 2,
            hash: "00112233445566778899aabbccddeeff".into(),
        },
        Response::Scripts(vec![ScriptListing {
            name: "miner".into(),
            version: 2,
            hash: "00112233445566778899aabbccddeeff".into(),
        }]),
        Response::ScriptAssigned {
            ship: 3,
            name: "miner".into(),
            version: 2,
        },
        Response::ShipSpawned { ship: 4 },
        Response::Ships(vec![ShipStatusReport {
            ship: 3,
            tick: 120,
            sector: (0, -1),
            local: (512.5, 87.25),
            velocity: (3.5, -1.0),
            heading: 1.5,
            hull: 100.0,
            energy: 80.0,
            cargo: 12,
            flown_by: "script miner v2".into(),
            script_fuel_used_last: 4_000,
            script_faults_total: 0,
        }]),
        Response::MoveQueued { tick: 121 },
        Response::Logs {
            lines: vec![(119, "mining".into())],
            faults: vec![(100, "out of fuel".into())],
        },
        Response::Error(RequestError::RateLimited("slow down".into())),
        Response::Replays(vec![ReplayListing {
            name: "live-1".into(),
            first_tick: 0,
            last_tick: 600,
            bytes: 40_000,
        }]),
        Response::Trace {
            ship: 3,
            from_tick: 100,
            to_tick: 120,
            json: b"{}".to_vec(),
        },
        Response::Despawned { ship: 3 },
        Response::Kicked {
            user: "pilot".into(),
            connections: 2,
        },
        Response::ShipLimitSet {
            user: "pilot".into(),
            max_ships: 5,
        },
        Response::Subscribed {
            sector_size: 1000.0,
            tick_rate_hz: 10,
            sensor_range: 300.0,
            nebula_range_factor: 0.5,
        },
        Response::Unsubscribed,
    ];
    let mut messages = vec![
        ServerMessage::Welcome {
            protocol_version: PROTOCOL_VERSION,
            server: "astroboids 0.1.0".into(),
            tick_rate_hz: 10,
        },
        ServerMessage::Refused {
            reason: "protocol version 1 is not supported".into(),
        },
        ServerMessage::Events(TickEvents {
            tick: 120,
            logs: vec![(3, "mining".into())],
            faults: vec![(3, "trap: unreachable".into())],
            dropped_before: 0,
        }),
    ];
    messages.extend(
        responses
            .into_iter()
            .zip(1..)
            .map(|(response, id)| ServerMessage::Response { id, response }),
    );
    messages
}

fn protocol_seeds(corpus: &mut Corpus) {
    let clients = client_messages();
    let servers = server_messages();
    for (i, m) in clients.iter().enumerate() {
        let mut seed = vec![0];
        seed.extend(postcard::to_allocvec(m).unwrap());
        corpus.put("messages", &format!("client-{i:02}"), &seed);
    }
    for (i, m) in servers.iter().enumerate() {
        let mut seed = vec![1];
        seed.extend(postcard::to_allocvec(m).unwrap());
        corpus.put("messages", &format!("server-{i:02}"), &seed);
    }

    // Streams of frames as a session's peer sends them, for the frame decoder.
    let client_stream: Vec<u8> = clients
        .iter()
        .flat_map(|m| encode_frame(&postcard::to_allocvec(m).unwrap()))
        .collect();
    let server_stream: Vec<u8> = servers
        .iter()
        .flat_map(|m| encode_frame(&postcard::to_allocvec(m).unwrap()))
        .collect();
    // Selector 5: the server's 320 KiB limit; 3: 255 bytes. Cuts split mid-prefix too.
    corpus.put(
        "frame",
        "client-stream",
        &[&[5, 0][..], &client_stream].concat(),
    );
    corpus.put(
        "frame",
        "server-stream-cut",
        &[&[5, 4, 1, 2, 3, 7][..], &server_stream].concat(),
    );
    corpus.put(
        "frame",
        "small-limit",
        &[&[3, 2, 5, 9][..], &client_stream].concat(),
    );
    corpus.put(
        "frame",
        "empty-frame",
        &[5, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
    );

    // A real exchange through both session ends: what the client sends, what the server
    // answers. The session target's input is `arbitrary`-shaped, so these go to the message
    // and frame targets; the session target starts from the structured seeds below.
    let mut server = ServerSession::new(SessionLimits::default(), "astroboids", 10);
    let mut client = ClientSession::new(320 * 1024, Duration::from_secs(5), 0x5eed);
    let mut to_server = client.hello("astroboids-client");
    let (_, frame) = client.request(Request::ListScripts, Duration::ZERO);
    to_server.extend(frame);
    let (_, frame) = client.request(Request::SpawnShip, Duration::ZERO);
    to_server.extend(frame);
    let mut to_client = Vec::new();
    for event in server.receive(&to_server) {
        match event {
            ServerEvent::Send(bytes) => to_client.extend(bytes),
            ServerEvent::Request { id, .. } => {
                to_client.extend(
                    server
                        .respond(id, Response::ShipSpawned { ship: id })
                        .unwrap(),
                );
            }
            ServerEvent::Close { .. } => {}
        }
    }
    corpus.put(
        "frame",
        "session-to-server",
        &[&[5, 0][..], &to_server].concat(),
    );
    corpus.put(
        "frame",
        "session-to-client",
        &[&[5, 1, 6][..], &to_client].concat(),
    );
}

/// Snapshot datagrams of snapshot datagrams, as a client receives them, plus its acks.
fn snapshot_seeds(corpus: &mut Corpus) {
    let limits = SnapshotLimits {
        max_datagram_bytes: 300,
        budget_bytes: 600,
        ..SnapshotLimits::default()
    };
    let mut encoder = SnapshotEncoder::new(limits.clone());
    let mut decoder = SnapshotDecoder::new(limits);
    let mut received: Vec<Vec<u8>> = Vec::new();
    let mut view: View = BTreeMap::new();
    for id in 1..=12u64 {
        let kind = if id <= 2 { 0 } else { 1 };
        view.insert(
            id,
            ViewEntity::quantize(kind, (0, 0), (100.0 + id as f32 * 30.0, 200.0), 0.3, 100.0),
        );
    }
    // Asteroids: ids with the top bit set (large gaps between records).
    for i in 0..6u64 {
        view.insert(
            (1 << 63) | (i << 40) | i,
            ViewEntity::quantize(2, (0, 0), (300.0, 40.0 * i as f32), 0.0, 12.0),
        );
    }
    for tick in 1..=12u64 {
        for (id, e) in view.iter_mut() {
            if *id < 1 << 63 {
                // Ships cruise, some turn, one takes damage, one changes sector.
                e.x = e.x.saturating_add(16 + (*id as u16 % 3));
                e.heading = e.heading.wrapping_add((*id % 4) as u8);
                if *id == 5 {
                    e.hull = e.hull.saturating_sub(3);
                }
                if *id == 7 && tick == 6 {
                    e.sector = (1, 0);
                }
            }
        }
        if tick == 8 {
            view.remove(&4);
        }
        let sent = encoder.encode(tick, &view, |id, _| id);
        for datagram in sent.datagrams {
            if let Ok(Some(seq)) = decoder.receive(&datagram) {
                encoder.ack(seq);
                received.push(datagram);
                received.push(protocol::snapshot::encode_ack(seq).to_vec());
            } else {
                received.push(datagram);
            }
        }
    }
    corpus.put(
        "snapshot",
        "cruise",
        &[&[0x8f][..], &join_records(&received)].concat(),
    );
    corpus.put(
        "snapshot",
        "cruise-short-history",
        &[&[0x21][..], &join_records(&received)].concat(),
    );
    for (i, datagram) in received.iter().enumerate().take(6) {
        corpus.put(
            "snapshot",
            &format!("datagram-{i}"),
            &[&[0x8f][..], &join_records(&[datagram])].concat(),
        );
    }
}

/// Deterministic bytes for the `arbitrary`-driven targets, which have no encoding to start
/// from: libFuzzer grows structure from these faster than from nothing.
fn structured_seeds(corpus: &mut Corpus) {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    };
    for target in ["session", "snapshot_codec"] {
        for (i, len) in [64usize, 256, 1024, 4096].into_iter().enumerate() {
            let bytes: Vec<u8> = (0..len).map(|_| next()).collect();
            corpus.put(target, &format!("random-{i}"), &bytes);
        }
    }
}

fn replay_seeds(corpus: &mut Corpus, replays: &[(String, Vec<u8>)]) {
    for (name, bytes) in replays {
        let mut raw = vec![0];
        raw.extend(bytes);
        corpus.put("replay", &format!("{name}-file"), &raw);
        let chunks = replay_chunks(bytes).expect("a golden replay is well formed");
        let mut structured = vec![1];
        structured.extend(join_large_records(&chunks));
        // Keyframes with script memory decompress to megabytes: such a seed would be most
        // of the corpus and slow every mutation; the compressed file above covers them.
        if structured.len() <= 256 * 1024 {
            corpus.put("replay", &format!("{name}-chunks"), &structured);
        }
        // Header, start keyframe and end only: the shortest replay there is.
        let last = chunks.last().unwrap();
        let mut short = vec![1];
        short.extend(join_large_records(&[&chunks[0], &chunks[1], last]));
        corpus.put("replay", &format!("{name}-start-only"), &short);
    }
}

/// A small world: a few autopilot ships, scripted ones, a manual command.
fn small_world(script: &[u8]) -> astroboids_engine::Simulation {
    let mut sim = build_simulation_with(UniverseConfig::default(), 5, options());
    let script_id = xxhash_rust::xxh3::xxh3_128(script);
    let inputs = [
        WorldInput::AddScript {
            wasm: script.to_vec(),
        },
        WorldInput::SpawnFleet {
            count: 3,
            script: None,
        },
        WorldInput::SpawnFleet {
            count: 2,
            script: Some(script_id),
        },
        WorldInput::SetOwner {
            ship: 1,
            owner: Some("pilot".into()),
        },
    ];
    for input in &inputs {
        apply_input(sim.world_mut(), input).unwrap();
    }
    for tick in 0..6 {
        if tick == 3 {
            let command = WorldInput::Command {
                ship: 2,
                command: CommandRecord {
                    thrust: 1.0,
                    turn: 0.5,
                    mine: true,
                    stop: false,
                },
            };
            apply_input(sim.world_mut(), &command).unwrap();
        }
        sim.step();
    }
    sim
}

fn checkpoint_seeds(corpus: &mut Corpus, script: &[u8], replays: &[(String, Vec<u8>)]) {
    let mut sim = small_world(script);
    let encoded = checkpoint::encode(&checkpoint::capture(&mut sim));
    let packed =
        astroboids_host::compress::pack(&encoded, astroboids_host::compress::CHECKPOINT_LEVEL);
    corpus.put(
        "checkpoint",
        "small-world-restore",
        &[&[2][..], &encoded].concat(),
    );
    corpus.put(
        "checkpoint",
        "small-world-packed",
        &[&[3][..], &packed].concat(),
    );
    // Keyframes of the golden replays are recorded under their own configuration: mode 2
    // matches them to the embedded one. Worlds of 30-40 ships are too big to restore here,
    // so they seed the decoder only.
    for (name, bytes) in replays {
        let replay = Replay::parse(Path::new(name), bytes).unwrap();
        let cp = replay.keyframe(replay.start_tick()).unwrap().unwrap();
        let mut trimmed = cp.clone();
        trimmed.ships.truncate(4);
        trimmed.loaded_sectors.truncate(4);
        corpus.put(
            "checkpoint",
            &format!("{name}-start-trimmed"),
            &[&[2][..], &checkpoint::encode(&trimmed)].concat(),
        );
    }
}

fn trace_seeds(corpus: &mut Corpus, replays: &[(String, Vec<u8>)]) {
    let (name, bytes) = replays
        .iter()
        .find(|(name, _)| name.contains("miner"))
        .expect("the miner replay");
    let replay = Replay::parse(Path::new(name), bytes).unwrap();
    // A keyframe after the scripts started: a scripted ship, and a tick where its instance
    // has state to save.
    let (keyframe, ship) = replay
        .keyframe_ticks()
        .find_map(|t| {
            let cp = replay.keyframe(t).unwrap().unwrap();
            cp.ships
                .iter()
                .find(|s| s.script.is_some())
                .map(|s| (t, s.id))
        })
        .expect("a scripted ship in some keyframe");
    // A trace that starts fresh (the recording's first ticks) and one that starts from a
    // saved instance state.
    let first = replay.start_tick() + 1;
    for (label, from) in [("fresh", first), ("resumed", keyframe + 1)] {
        let trace = astroboids_host::trace::export(
            &replay,
            astroboids_engine::NetId(ship),
            Some(from),
            Some(from + 3),
            options(),
        )
        .unwrap();
        corpus.put(
            "trace",
            &format!("miner-{label}"),
            &serde_json::to_vec_pretty(&trace).unwrap(),
        );
    }
}

/// A data directory as the host writes it: world info, inputs, a checkpoint, the tick reached;
/// plus accounts, sessions and named scripts as the server stores them.
fn store_seeds(corpus: &mut Corpus, script: &[u8]) {
    let dir = astroboids_fuzz::ScratchDir::new("seeds");
    let config = UniverseConfig::default();
    let every = config.persistence.checkpoint_every_ticks;
    {
        let request = WorldRequest {
            seed: Some(9),
            config: None,
            script_workers: 1,
        };
        let (mut world, _) = PersistentWorld::open(dir.path(), request).unwrap();
        let script_id = xxhash_rust::xxh3::xxh3_128(script);
        world
            .submit(WorldInput::AddScript {
                wasm: script.to_vec(),
            })
            .unwrap();
        world
            .submit(WorldInput::SpawnFleet {
                count: 2,
                script: Some(script_id),
            })
            .unwrap();
        world.step().unwrap();
        while world.tick() < every {
            world.step().unwrap();
        }
        world
            .submit(WorldInput::SpawnShip {
                sector: (0, 0),
                local: (10.0, 20.0),
                heading: 0.5,
                autopilot: true,
                owner: Some("pilot".into()),
            })
            .unwrap();
        world.step().unwrap();
        let store = world.store();
        // Account and session records are the server's postcard structs; their exact
        // layout does not matter to the store (opaque bytes), only that they look real.
        store
            .create_account(
                "pilot",
                &postcard::to_allocvec(&(
                    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
                    0u8,
                    1_700_000_000u64,
                    None::<u32>,
                ))
                .unwrap(),
            )
            .unwrap();
        store
            .put_session(
                &[7; 32],
                &postcard::to_allocvec(&("pilot", 1_700_600_000u64)).unwrap(),
            )
            .unwrap();
        let hash = store.put_script(b"\0asm\x01\0\0\0").unwrap();
        store.name_script("pilot", "bot", hash).unwrap();
        store.name_script("pilot", "bot", hash).unwrap();
        store.note_tick_reached(world.tick()).unwrap();
        store.flush().unwrap();
    }
    // Read the directory back raw: every record of every tree.
    let db = sled::Config::new().path(dir.path()).open().unwrap();
    let mut records = Vec::new();
    let mut without_big = Vec::new();
    for (index, name) in astroboids_fuzz::STORE_TREES.iter().enumerate() {
        let tree = db.open_tree(name).unwrap();
        for entry in tree.iter() {
            let (key, value) = entry.unwrap();
            let record = store_record(index as u8, &key, &value);
            if record.len() > u16::MAX as usize {
                continue;
            }
            if value.len() < 4096 {
                without_big.push(record.clone());
            }
            records.push(record);
        }
    }
    drop(db);
    // The meta tree's markers are among the records, so flags bit 0 (no markers) plus these
    // is the same directory.
    corpus.put(
        "store",
        "host-world",
        &[&[2][..], &join_records(&records)].concat(),
    );
    corpus.put(
        "store",
        "host-world-small-records",
        &[&[0][..], &join_records(&without_big)].concat(),
    );
    assert!(!split_records(&join_records(&records)).is_empty());
}

fn script_seeds(corpus: &mut Corpus, scripts: &[(String, Vec<u8>)], extra: Option<&Path>) {
    let hostile = Path::new("assets/hostile");
    let mut names: Vec<PathBuf> = std::fs::read_dir(hostile)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wat"))
        .collect();
    names.sort();
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        let wasm = wasmer::wat2wasm(text.as_bytes()).unwrap();
        let stem = path.file_stem().unwrap().to_string_lossy();
        corpus.put("script", &format!("hostile-{stem}.wasm"), &wasm);
    }
    for (name, wasm) in scripts {
        corpus.put("script", &format!("{name}.wasm"), wasm);
    }
    if let Some(dir) = extra {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        paths.sort();
        for path in paths {
            let wasm = std::fs::read(&path).unwrap();
            if wasm.len() <= 64 * 1024 {
                let name = path.file_name().unwrap().to_string_lossy();
                corpus.put("script", &format!("extra-{name}"), &wasm);
            }
        }
    }
}

libfuzzer_sys::fuzz_target!(init: write_seeds_and_exit(), |_data: &[u8]| {});

/// Writes every target's seeds, then ends the process: libFuzzer must not start.
fn write_seeds_and_exit() {
    write_seeds();
    std::process::exit(0);
}

fn write_seeds() {
    let extra = std::env::var_os("ASTROBOIDS_SEED_WASM").map(PathBuf::from);
    assert!(
        Path::new("fuzz/Cargo.toml").is_file(),
        "run from the repository root"
    );
    let mut corpus = Corpus {
        root: PathBuf::from("fuzz/corpus"),
        written: BTreeMap::new(),
    };

    let mut replays = Vec::new();
    for name in ["autopilot-40-ships", "miner-30-ships"] {
        let bytes = std::fs::read(format!("replays/{name}.abreplay")).unwrap();
        replays.push((name.to_string(), bytes));
    }
    // The scripts the replays embed (assets/scripts compiled by the SDK when recorded).
    let mut scripts = Vec::new();
    for (name, bytes) in &replays {
        let replay = Replay::parse(Path::new(name), bytes).unwrap();
        let added = replay
            .ticks
            .iter()
            .flat_map(|t| &t.inputs)
            .filter_map(|i| match i {
                WorldInput::AddScript { wasm } => Some(wasm.clone()),
                _ => None,
            });
        let ticks: Vec<u64> = replay.keyframe_ticks().collect();
        let kept = ticks
            .iter()
            .flat_map(|&t| replay.keyframe(t).unwrap().unwrap().scripts)
            .map(|(_, wasm)| wasm);
        let mut found: Vec<Vec<u8>> = added.chain(kept).collect();
        found.sort();
        found.dedup();
        for (i, wasm) in found.into_iter().enumerate() {
            scripts.push((format!("{name}-script-{i}"), wasm));
        }
    }
    let script = scripts
        .first()
        .map(|(_, w)| w.clone())
        .expect("the miner replay embeds its script");

    protocol_seeds(&mut corpus);
    snapshot_seeds(&mut corpus);
    structured_seeds(&mut corpus);
    replay_seeds(&mut corpus, &replays);
    checkpoint_seeds(&mut corpus, &script, &replays);
    trace_seeds(&mut corpus, &replays);
    store_seeds(&mut corpus, &script);
    script_seeds(&mut corpus, &scripts, extra.as_deref());

    let mut total = 0;
    for (target, (files, bytes)) in &corpus.written {
        println!("{target:16} {files:4} files {bytes:9} bytes");
        total += bytes;
    }
    println!("{:16} {total:20} bytes", "total");
}
