//! The transport against real servers: an etcd and a nats-server started per test by test-kit
//! (a missing binary fails the test with how to install it; nothing is skipped).
//!
//! One test binary for both halves: each binary costs a link in CI.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use astroboids_cluster_net::bus::{
    MAX_BLOB_BYTES, MAX_BLOB_STORE_BYTES, MAX_MESSAGE_BYTES, MAX_MSG_ID_LEN, MAX_STREAM_BYTES,
};
use astroboids_cluster_net::coordination::ETCD_CONNECT_TIMEOUT;
use astroboids_cluster_net::{
    CasOutcome, Coordination, Delivered, KeyChange, KeyWatch, NetError, ShardEvent, ShardInfo,
    StartAt, Subscription, TickBus, Versioned,
};
use astroboids_test_kit::infra::NATS_MAX_FILE_STORE;
use astroboids_test_kit::{Etcd, NatsServer, TempDir};

/// How long a test waits for something that should take well under it.
const PATIENCE: Duration = Duration::from_secs(5);

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn etcd(dir: &TempDir) -> Etcd {
    Etcd::start(dir).unwrap_or_else(|e| panic!("{e}"))
}

fn nats(dir: &TempDir) -> NatsServer {
    NatsServer::start(dir).unwrap_or_else(|e| panic!("{e}"))
}

async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {PATIENCE:?}"))
}

fn info(pid: u32) -> ShardInfo {
    ShardInfo {
        pid,
        host: "test-host".into(),
        started_at_unix_ms: 1_700_000_000_000 + u64::from(pid),
        version: "test".into(),
    }
}

// ---- etcd ----

#[test]
fn the_next_candidate_leads_with_a_larger_fence_when_the_leader_dies() {
    let dir = TempDir::new("net-election");
    let etcd = etcd(&dir);
    let endpoints = vec![etcd.endpoint()];
    block_on(async {
        let first = Coordination::connect(&endpoints, "w1", 1).await.unwrap();
        let second = Coordination::connect(&endpoints, "w1", 1).await.unwrap();
        assert_eq!(first.leader().await.unwrap(), None);

        let lead1 = first.campaign("first").await.unwrap();
        assert!(lead1.fence() > 0);
        assert_eq!(
            second.leader().await.unwrap(),
            Some(("first".to_owned(), lead1.fence()))
        );
        assert!(lead1.is_current().await.unwrap());
        lead1
            .put_json_if_leader("assignment", "by-first")
            .await
            .unwrap();

        let waiting = tokio::spawn(async move {
            let won = second.campaign("second").await;
            (second, won)
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !waiting.is_finished(),
            "the second candidate was elected while the first leads"
        );

        // The leader's process dies: its lease is no longer renewed (nor revoked).
        drop(first);
        let died = Instant::now();
        assert!(
            !lead1.lease_alive(),
            "the leadership knows its lease is no longer renewed"
        );
        let (second, lead2) = within("the second candidate's election", waiting)
            .await
            .unwrap();
        let lead2 = lead2.unwrap();
        eprintln!(
            "failover: the second candidate led {:?} after the first stopped renewing a 1 s lease",
            died.elapsed()
        );
        assert!(
            lead2.fence() > lead1.fence(),
            "fences {} then {}",
            lead1.fence(),
            lead2.fence()
        );
        assert_eq!(
            second.leader().await.unwrap(),
            Some(("second".to_owned(), lead2.fence()))
        );
        assert!(!lead1.is_current().await.unwrap());
        assert!(matches!(
            lead1.put_json_if_leader("assignment", "stale").await,
            Err(NetError::LeaseLost { .. })
        ));
        let assignment = second.get_json::<String>("assignment").await.unwrap();
        assert_eq!(assignment.map(|v| v.value).as_deref(), Some("by-first"));

        // A leader whose key went while it still believes in its lease (paused past its TTL,
        // say): its fenced writes are refused by etcd itself.
        let mut raw = etcd_client::Client::connect(&endpoints, None)
            .await
            .unwrap();
        raw.delete(lead2.key(), None).await.unwrap();
        assert!(lead2.lease_alive());
        let refused = lead2.put_json_if_leader("assignment", "by-second").await;
        assert!(
            matches!(refused, Err(NetError::NotLeader { fence }) if fence == lead2.fence()),
            "{refused:?}"
        );
        let assignment = second.get_json::<String>("assignment").await.unwrap();
        assert_eq!(assignment.map(|v| v.value).as_deref(), Some("by-first"));

        // Campaign again, then resign: nobody leads.
        let lead3 = second.campaign("second-again").await.unwrap();
        assert!(lead3.fence() > lead2.fence());
        lead3
            .put_json_if_leader("assignment", "by-second")
            .await
            .unwrap();
        lead3.resign().await.unwrap();
        assert_eq!(second.leader().await.unwrap(), None);
    });
}

#[test]
fn a_dead_shard_leaves_the_live_set_within_its_ttl() {
    let dir = TempDir::new("net-liveness");
    let mut etcd = etcd(&dir);
    let endpoints = vec![etcd.endpoint()];
    block_on(async {
        let leader = Coordination::connect(&endpoints, "w2", 5).await.unwrap();
        let shard3 = Coordination::connect(&endpoints, "w2", 1).await.unwrap();
        shard3.register_shard(3, &info(3)).await.unwrap();
        shard3.register_shard(3, &info(33)).await.unwrap(); // the same process: an update

        let set = leader.shards().await.unwrap();
        assert_eq!(set.shards, BTreeMap::from([(3, info(33))]));
        let mut watch = leader.watch_shards(set.revision).await.unwrap();

        let other = Coordination::connect(&endpoints, "w2", 1).await.unwrap();
        let taken = other.register_shard(3, &info(4)).await;
        assert!(
            matches!(&taken, Err(NetError::ShardIdTaken { shard: 3, holder_lease, .. })
                if *holder_lease == shard3.lease_id()),
            "{taken:?}"
        );
        other.register_shard(4, &info(4)).await.unwrap();
        let joined = within("shard 4 joining", watch.next()).await.unwrap();
        assert!(
            matches!(&joined, ShardEvent::Joined { shard: 4, info: i, .. } if *i == info(4)),
            "{joined:?}"
        );

        // Shard 3's process dies: its lease is no longer renewed.
        drop(shard3);
        let died = Instant::now();
        let left = within("shard 3 leaving", watch.next()).await.unwrap();
        let took = died.elapsed();
        eprintln!("liveness: a shard with a 1 s lease left the live set {took:?} after it died");
        assert!(
            matches!(left, ShardEvent::Left { shard: 3, .. }),
            "{left:?}"
        );
        assert!(took < Duration::from_secs(3), "{took:?} for a 1 s TTL");
        assert_eq!(
            leader.live_shards().await.unwrap(),
            BTreeMap::from([(4, info(4))])
        );

        // A clean exit revokes the lease: the shard goes at once.
        let closed = Instant::now();
        other.close().await.unwrap();
        let left = within("shard 4 leaving", watch.next()).await.unwrap();
        assert!(
            matches!(left, ShardEvent::Left { shard: 4, .. }),
            "{left:?}"
        );
        assert!(
            closed.elapsed() < Duration::from_secs(2),
            "{:?}",
            closed.elapsed()
        );
        assert!(leader.live_shards().await.unwrap().is_empty());

        // etcd goes away: a live shard learns that its lease is lost, and the leader's watch
        // ends with an error.
        let shard5 = Coordination::connect(&endpoints, "w2", 1).await.unwrap();
        shard5.register_shard(5, &info(5)).await.unwrap();
        let joined = within("shard 5 joining", watch.next()).await.unwrap();
        assert_eq!(joined.shard(), 5);
        assert!(shard5.lease_alive());
        etcd.kill();
        let killed = Instant::now();
        within("the lease loss report", shard5.lease_lost()).await;
        eprintln!(
            "liveness: a shard learnt its 1 s lease was lost {:?} after etcd died",
            killed.elapsed()
        );
        assert!(!shard5.lease_alive());
        assert!(matches!(
            shard5.register_shard(5, &info(5)).await,
            Err(NetError::LeaseLost { .. })
        ));
        assert!(matches!(
            shard5.campaign("shard5").await,
            Err(NetError::LeaseLost { .. })
        ));
        let ended = within("the watch's end", watch.next()).await;
        assert!(
            matches!(ended, Err(NetError::WatchEnded { .. })),
            "{ended:?}"
        );
    });
}

#[test]
fn compare_and_swap_refuses_a_stale_revision() {
    let dir = TempDir::new("net-cas");
    let etcd = etcd(&dir);
    let endpoints = vec![etcd.endpoint()];
    block_on(async {
        let c = Coordination::connect(&endpoints, "w3", 5).await.unwrap();
        let key = "checkpoint/last-tick";
        assert_eq!(c.get_json::<u64>(key).await.unwrap(), None);

        // Expected revision 0: create only if absent.
        let CasOutcome::Written { revision: r1 } =
            c.put_json_if_revision(key, &100u64, 0).await.unwrap()
        else {
            panic!("the first write of an absent key was refused");
        };
        assert_eq!(
            c.put_json_if_revision(key, &999u64, 0).await.unwrap(),
            CasOutcome::Stale {
                current_revision: r1
            }
        );
        assert_eq!(
            c.get_json::<u64>(key).await.unwrap(),
            Some(Versioned {
                value: 100,
                mod_revision: r1
            })
        );

        let CasOutcome::Written { revision: r2 } =
            c.put_json_if_revision(key, &200u64, r1).await.unwrap()
        else {
            panic!("a write at the current revision was refused");
        };
        assert!(r2 > r1);
        assert_eq!(
            c.put_json_if_revision(key, &300u64, r1).await.unwrap(),
            CasOutcome::Stale {
                current_revision: r2
            },
            "a stale revision must be refused"
        );
        assert_eq!(c.get_json::<u64>(key).await.unwrap().unwrap().value, 200);

        // Unconditional puts, typed values, another world's keys kept apart.
        let assignment = BTreeMap::from([("0,0".to_owned(), 1u32), ("0,1".to_owned(), 2)]);
        let r3 = c.put_json("assignment", &assignment).await.unwrap();
        let read = c.get_json::<BTreeMap<String, u32>>("assignment").await;
        assert_eq!(
            read.unwrap(),
            Some(Versioned {
                value: assignment,
                mod_revision: r3
            })
        );
        let other_world = Coordination::connect(&endpoints, "w3b", 5).await.unwrap();
        assert_eq!(other_world.get_json::<u64>(key).await.unwrap(), None);

        let wrong_type = c.get_json::<String>(key).await.unwrap_err();
        assert!(
            wrong_type
                .to_string()
                .contains("astroboids/w3/config/checkpoint/last-tick"),
            "{wrong_type}"
        );
        assert!(matches!(
            c.put_json("../escape", &1).await,
            Err(NetError::InvalidName { .. })
        ));
    });
}

async fn next_change<T: serde::de::DeserializeOwned>(watch: &mut KeyWatch<T>) -> KeyChange<T> {
    within(&format!("a change of {}", watch.key()), watch.next())
        .await
        .unwrap()
}

/// No change comes within a short while.
async fn assert_no_change<T: serde::de::DeserializeOwned + std::fmt::Debug>(
    watch: &mut KeyWatch<T>,
) {
    let more = tokio::time::timeout(Duration::from_millis(300), watch.next()).await;
    assert!(more.is_err(), "unexpected: {more:?}");
}

#[test]
fn a_config_key_is_watched_in_order() {
    let dir = TempDir::new("net-key-watch");
    let etcd = etcd(&dir);
    let endpoints = vec![etcd.endpoint()];
    block_on(async {
        let c = Coordination::connect(&endpoints, "w8", 5).await.unwrap();
        let leader = Coordination::connect(&endpoints, "w8", 5).await.unwrap();
        let other_world = Coordination::connect(&endpoints, "w8b", 5).await.unwrap();
        let key = "checkpoint/last-tick";
        let full = "astroboids/w8/config/checkpoint/last-tick";
        let mut watch = c.watch_json::<u64>(key, 0).await.unwrap();
        assert_eq!(watch.key(), full);

        // Keys next to it (longer, under it, another world's) are not it.
        c.put_json("checkpoint/last-tick-2", &1u64).await.unwrap();
        c.put_json("checkpoint/last-tick/x", &2u64).await.unwrap();
        c.put_json("checkpoint", &3u64).await.unwrap();
        other_world.put_json(key, &4u64).await.unwrap();

        let r1 = c.put_json(key, &100u64).await.unwrap();
        let r2 = c.put_json(key, &200u64).await.unwrap();
        let mut raw = etcd_client::Client::connect(&endpoints, None)
            .await
            .unwrap();
        let deleted = raw.delete(full, None).await.unwrap();
        let r3 = u64::try_from(deleted.header().unwrap().revision()).unwrap();
        let lead = leader.campaign("leader").await.unwrap();
        let r4 = lead.put_json_if_leader(key, &400u64).await.unwrap();
        assert!(r1 < r2 && r2 < r3 && r3 < r4, "{r1} {r2} {r3} {r4}");

        let expected = [
            KeyChange::Put(Versioned {
                value: 100,
                mod_revision: r1,
            }),
            KeyChange::Put(Versioned {
                value: 200,
                mod_revision: r2,
            }),
            KeyChange::Deleted { revision: r3 },
            KeyChange::Put(Versioned {
                value: 400,
                mod_revision: r4,
            }),
        ];
        for want in &expected {
            assert_eq!(&next_change(&mut watch).await, want);
        }
        assert_no_change(&mut watch).await;
        assert_eq!(
            expected.iter().map(KeyChange::revision).collect::<Vec<_>>(),
            [r1, r2, r3, r4]
        );

        // From a revision: what came after it, then what comes next.
        let mut from_r1 = c.watch_json::<u64>(key, r1).await.unwrap();
        for want in &expected[1..] {
            assert_eq!(&next_change(&mut from_r1).await, want);
        }
        // Watched from the revision a read gave: nothing before it comes again.
        let read = c.get_json::<u64>(key).await.unwrap().unwrap();
        assert_eq!(read.mod_revision, r4);
        let mut from_read = c.watch_json::<u64>(key, read.mod_revision).await.unwrap();
        assert_no_change(&mut from_read).await;

        // A value that does not decode: an error naming the key, and the watch goes on.
        c.put_json(key, "not a number").await.unwrap();
        let r6 = c.put_json(key, &600u64).await.unwrap();
        for watch in [&mut watch, &mut from_r1, &mut from_read] {
            let e = within("the undecodable value", watch.next())
                .await
                .unwrap_err();
            assert!(matches!(e, NetError::Json { .. }), "{e:?}");
            assert!(e.to_string().contains(full), "{e}");
            assert_eq!(
                next_change(watch).await,
                KeyChange::Put(Versioned {
                    value: 600,
                    mod_revision: r6
                })
            );
        }

        assert!(matches!(
            c.watch_json::<u64>("../escape", 0).await,
            Err(NetError::InvalidName { .. })
        ));
    });
}

#[test]
fn unreachable_servers_are_named_in_the_error() {
    // A port nothing listens on.
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    block_on(async {
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let e = Coordination::connect(std::slice::from_ref(&url), "w4", 1)
            .await
            .unwrap_err();
        assert!(matches!(e, NetError::EtcdUnreachable { .. }), "{e:?}");
        assert!(e.to_string().contains(&url), "{e}");
        assert!(started.elapsed() < ETCD_CONNECT_TIMEOUT + Duration::from_secs(2));

        let url = format!("nats://127.0.0.1:{port}");
        let e = TickBus::connect(&url, "w4").await.unwrap_err();
        assert!(matches!(e, NetError::NatsUnreachable { .. }), "{e:?}");
        assert!(e.to_string().contains(&url), "{e}");

        let e = TickBus::connect(&url, "no.dots").await.unwrap_err();
        assert!(matches!(e, NetError::InvalidWorld { .. }), "{e:?}");
    });
}

// ---- NATS ----

async fn next(sub: &mut Subscription) -> Delivered {
    within(&format!("a message on {}", sub.subject()), sub.next())
        .await
        .unwrap()
}

/// Nothing more arrives within a short while.
async fn assert_quiet(sub: &mut Subscription) {
    let more = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(more.is_err(), "unexpected: {more:?}");
}

#[test]
fn the_tick_log_is_read_in_order_deduplicated_and_replayed() {
    let dir = TempDir::new("net-bus");
    let nats = nats(&dir);
    block_on(async {
        let bus = TickBus::connect(&nats.url(), "w5").await.unwrap();
        let mut ticks = bus.subscribe("tick", None, StartAt::All).await.unwrap();
        let mut exchange1 = bus
            .subscribe("exchange.1", None, StartAt::New)
            .await
            .unwrap();
        let mut exchanges = bus
            .subscribe("exchange.*", None, StartAt::All)
            .await
            .unwrap();

        let mut published = Vec::new();
        let mut last = 0;
        for i in 0..30 {
            let subject = ["tick", "exchange.1", "exchange.2"][i % 3];
            let msg_id = format!("{subject}-{i}");
            let payload = format!("payload {i}").into_bytes();
            let seq = bus
                .publish(subject, &msg_id, payload.clone())
                .await
                .unwrap();
            assert!(seq > last, "sequence {seq} after {last}");
            last = seq;
            published.push(Delivered {
                seq,
                subject: subject.to_owned(),
                msg_id,
                payload,
            });
        }
        let on = |filter: &dyn Fn(&str) -> bool| -> Vec<Delivered> {
            published
                .iter()
                .filter(|d| filter(&d.subject))
                .cloned()
                .collect()
        };
        for (sub, expected) in [
            (&mut ticks, on(&|s| s == "tick")),
            (&mut exchange1, on(&|s| s == "exchange.1")),
            (&mut exchanges, on(&|s| s.starts_with("exchange."))),
        ] {
            for want in expected {
                assert_eq!(next(sub).await, want);
            }
            assert_quiet(sub).await;
        }

        // The same id twice: stored once, both publishes answered with its sequence.
        let first = bus
            .publish("tick", "tick-dup", b"first".to_vec())
            .await
            .unwrap();
        let again = bus
            .publish("tick", "tick-dup", b"second".to_vec())
            .await
            .unwrap();
        assert_eq!(first, again);
        let after = bus
            .publish("tick", "tick-after-dup", b"after".to_vec())
            .await
            .unwrap();
        let got = next(&mut ticks).await;
        assert_eq!((got.seq, got.payload), (first, b"first".to_vec()));
        assert_eq!(next(&mut ticks).await.seq, after);
        assert_quiet(&mut ticks).await;

        // A restarted reader re-reads from a sequence: the 5th tick on.
        let ticks_published = on(&|s| s == "tick");
        let from = ticks_published[4].seq;
        let mut replay = bus
            .subscribe("tick", None, StartAt::Sequence(from))
            .await
            .unwrap();
        for want in &ticks_published[4..] {
            assert_eq!(&next(&mut replay).await, want);
        }
        assert_eq!(next(&mut replay).await.msg_id, "tick-dup");
        assert_eq!(next(&mut replay).await.msg_id, "tick-after-dup");
        assert_quiet(&mut replay).await;

        // A durable reader resumes after what it finished: a message counts as finished when
        // the next one is asked for (acknowledged without waiting: after a crash, the last
        // few may come again), or for sure when `ack` returns.
        let mut durable = bus
            .subscribe("tick", Some("shard-7"), StartAt::All)
            .await
            .unwrap();
        for want in &ticks_published[..3] {
            assert_eq!(&next(&mut durable).await, want);
        }
        drop(durable); // handed the 3rd, finished the first two
        let mut durable = bus
            .subscribe("tick", Some("shard-7"), StartAt::All)
            .await
            .unwrap();
        let resumed = next(&mut durable).await;
        let at = ticks_published[..3]
            .iter()
            .position(|t| *t == resumed)
            .unwrap_or_else(|| panic!("resumed at {resumed:?}, not at one of the first three"));
        for want in &ticks_published[at + 1..4] {
            assert_eq!(&next(&mut durable).await, want);
        }
        durable.ack().await.unwrap(); // the 4th, confirmed by the server
        drop(durable);
        let mut durable = bus
            .subscribe("tick", Some("shard-7"), StartAt::New)
            .await
            .unwrap();
        assert_eq!(&next(&mut durable).await, &ticks_published[4]);
        durable.ack().await.unwrap();
        drop(durable);
        let mismatch = bus
            .subscribe("exchange.1", Some("shard-7"), StartAt::All)
            .await;
        assert!(
            matches!(mismatch, Err(NetError::DurableMismatch { .. })),
            "{mismatch:?}"
        );
        // A new durable with StartAt::New sees what comes after it was made, also across a
        // restart before its first message.
        let durable = bus
            .subscribe("tick", Some("shard-8"), StartAt::New)
            .await
            .unwrap();
        drop(durable);
        let late = bus
            .publish("tick", "tick-late", b"late".to_vec())
            .await
            .unwrap();
        let mut durable = bus
            .subscribe("tick", Some("shard-8"), StartAt::New)
            .await
            .unwrap();
        assert_eq!(next(&mut durable).await.seq, late);

        // Size limits: ours, and the server's max_payload (1 MiB by default), both named.
        let e = bus
            .publish("tick", "too-big", vec![0; MAX_MESSAGE_BYTES + 1])
            .await
            .unwrap_err();
        assert!(matches!(e, NetError::MessageTooLarge { .. }), "{e:?}");
        assert!(e.to_string().contains("MAX_MESSAGE_BYTES"), "{e}");
        let fits = bus.max_payload();
        assert!(fits <= MAX_MESSAGE_BYTES);
        if fits < MAX_MESSAGE_BYTES {
            // `fits` leaves room for the longest message id: with one, a byte more is over.
            let e = bus
                .publish("tick", &"o".repeat(MAX_MSG_ID_LEN), vec![0; fits + 1])
                .await
                .unwrap_err();
            assert!(matches!(e, NetError::MessageTooLarge { .. }), "{e:?}");
            assert!(e.to_string().contains("max_payload"), "{e}");
        }
        let seq = bus.publish("tick", "largest", vec![7; fits]).await.unwrap();
        let got = next(&mut ticks).await;
        assert_eq!((got.seq, got.payload.len()), (late, 4));
        let got = next(&mut ticks).await;
        assert_eq!((got.seq, got.payload.len()), (seq, fits));

        for bad in ["tick.*", "", "a b", "a..b"] {
            let e = bus.publish(bad, "id", vec![]).await.unwrap_err();
            assert!(matches!(e, NetError::InvalidName { .. }), "{bad:?}: {e:?}");
        }
    });
}

#[test]
fn the_end_of_the_log_is_read_from_the_server() {
    let dir = TempDir::new("net-log-end");
    let nats = nats(&dir);
    block_on(async {
        let bus = TickBus::connect(&nats.url(), "w9").await.unwrap();
        // Another process's connection: what it reads was published by the first.
        let reader = TickBus::connect(&nats.url(), "w9").await.unwrap();
        assert_eq!(reader.last_seq().await.unwrap(), 0);
        assert_eq!(reader.last_message("tick").await.unwrap(), None);

        let mut published = BTreeMap::new();
        let mut last = 0;
        for (i, subject) in [
            "tick",
            "exchange.1",
            "tick",
            "ticks",
            "tick.late",
            "exchange.1",
        ]
        .into_iter()
        .enumerate()
        {
            let msg_id = format!("{subject}-{i}");
            let payload = format!("payload {i}").into_bytes();
            let seq = bus
                .publish(subject, &msg_id, payload.clone())
                .await
                .unwrap();
            assert!(seq > last, "sequence {seq} after {last}");
            last = seq;
            assert_eq!(reader.last_seq().await.unwrap(), seq);
            published.insert(
                subject,
                Delivered {
                    seq,
                    subject: subject.to_owned(),
                    msg_id,
                    payload,
                },
            );
        }
        // The last on exactly each subject: not one on a subject that starts like it
        // (`ticks`), nor under it (`tick.late`), nor the log's last.
        for (subject, want) in &published {
            assert_eq!(
                reader.last_message(subject).await.unwrap().as_ref(),
                Some(want),
                "{subject}"
            );
        }
        assert_eq!(published["tick"].msg_id, "tick-2");
        for empty in ["exchange.2", "tic", "exchange"] {
            assert_eq!(reader.last_message(empty).await.unwrap(), None, "{empty}");
        }

        // A duplicate is not stored: the last sequence stays.
        let again = bus
            .publish("tick", "tick-2", b"again".to_vec())
            .await
            .unwrap();
        assert_eq!(again, published["tick"].seq);
        assert_eq!(reader.last_seq().await.unwrap(), last);
        assert_eq!(
            reader.last_message("tick").await.unwrap().as_ref(),
            Some(&published["tick"])
        );

        // The largest message fits in the answer too.
        let fits = bus.max_payload();
        let seq = bus.publish("big", "big-1", vec![7; fits]).await.unwrap();
        let got = reader.last_message("big").await.unwrap().unwrap();
        assert_eq!((got.seq, got.payload.len()), (seq, fits));
        assert_eq!(reader.last_seq().await.unwrap(), seq);

        for bad in ["exchange.*", ">", "", "a..b"] {
            let e = reader.last_message(bad).await.unwrap_err();
            assert!(matches!(e, NetError::InvalidName { .. }), "{bad:?}: {e:?}");
        }
    });
}

#[test]
fn blobs_round_trip_and_a_missing_one_is_none() {
    let dir = TempDir::new("net-blobs");
    let nats = nats(&dir);
    block_on(async {
        let bus = TickBus::connect(&nats.url(), "w6").await.unwrap();
        // A second process finds the stream and bucket made.
        let bus2 = TickBus::connect(&nats.url(), "w6").await.unwrap();

        // Several object store chunks (128 KiB each), not a multiple of the chunk size.
        let checkpoint: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
        bus.put_blob("checkpoints/000120", &checkpoint)
            .await
            .unwrap();
        bus.put_blob("checkpoints/000240", b"later").await.unwrap();
        bus.put_blob("scripts/abc", b"\0asm").await.unwrap();
        assert_eq!(
            bus2.get_blob("checkpoints/000120").await.unwrap(),
            Some(checkpoint.clone())
        );
        assert_eq!(bus2.get_blob("checkpoints/000360").await.unwrap(), None);

        let listed = bus2.list_blobs("checkpoints/").await.unwrap();
        let names: Vec<(&str, usize)> = listed.iter().map(|b| (b.name.as_str(), b.size)).collect();
        assert_eq!(
            names,
            [
                ("checkpoints/000120", checkpoint.len()),
                ("checkpoints/000240", 5)
            ]
        );
        assert_eq!(bus2.list_blobs("").await.unwrap().len(), 3);

        bus.put_blob("checkpoints/000240", b"replaced")
            .await
            .unwrap();
        assert_eq!(
            bus.get_blob("checkpoints/000240").await.unwrap().as_deref(),
            Some(&b"replaced"[..])
        );
        assert!(bus.delete_blob("checkpoints/000240").await.unwrap());
        assert!(!bus.delete_blob("checkpoints/000240").await.unwrap());
        assert_eq!(bus.get_blob("checkpoints/000240").await.unwrap(), None);
        assert_eq!(bus.list_blobs("checkpoints/").await.unwrap().len(), 1);

        let too_big = vec![0u8; MAX_BLOB_BYTES + 1];
        let e = bus.put_blob("huge", &too_big).await.unwrap_err();
        assert!(matches!(e, NetError::BlobTooLarge { .. }), "{e:?}");
        assert!(e.to_string().contains("MAX_BLOB_BYTES"), "{e}");
        let e = bus.put_blob(".hidden", b"x").await.unwrap_err();
        assert!(matches!(e, NetError::InvalidName { .. }), "{e:?}");
    });
}

/// A world's stream and blob bucket reserve their whole byte limits in the server's JetStream
/// storage when they are made. The test kit's server fixes that storage at
/// `NATS_MAX_FILE_STORE`, so it holds as many worlds as fit in it, whatever the disk had free
/// when it started (nats-server's default limit is 75% of that, 8 worlds on 80 GB free), and
/// the world after the last says what ran out and how to make room.
#[test]
fn a_server_holds_worlds_up_to_its_store_limit_and_names_the_limit_past_it() {
    let dir = TempDir::new("net-many-worlds");
    let nats = nats(&dir);
    let per_world = u64::try_from(MAX_STREAM_BYTES + MAX_BLOB_STORE_BYTES).unwrap();
    let fit = NATS_MAX_FILE_STORE / per_world;
    let free = rustix::fs::statvfs(nats.dir()).unwrap();
    let default_limit = free.f_bavail * free.f_frsize / 4 * 3;
    eprintln!(
        "{fit} worlds fit; nats-server's default limit would hold {}",
        default_limit / per_world
    );
    block_on(async {
        let mut buses = Vec::new();
        for i in 0..fit {
            let bus = TickBus::connect(&nats.url(), &format!("many-{i}"))
                .await
                .unwrap_or_else(|e| panic!("world {i} of {fit}: {e}"));
            buses.push(bus);
        }
        let last = buses.last().unwrap();
        last.put_blob("scripts/s", b"\0asm").await.unwrap();
        assert_eq!(
            last.get_blob("scripts/s").await.unwrap().as_deref(),
            Some(&b"\0asm"[..])
        );

        let e = TickBus::connect(&nats.url(), "one-too-many")
            .await
            .unwrap_err();
        assert!(matches!(e, NetError::JetStreamStorageFull { .. }), "{e:?}");
        let text = e.to_string();
        for part in [
            nats.url().as_str(),
            "stream ASTROBOIDS_one-too-many",
            &MAX_STREAM_BYTES.to_string(),
            "max_file_store",
        ] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
        // The worlds already made are untouched.
        let again = TickBus::connect(&nats.url(), "many-0").await.unwrap();
        again.put_blob("scripts/t", b"kept").await.unwrap();
    });
}

/// Not a benchmark: a figure to know the order of magnitude of one hop of the tick protocol.
#[test]
fn round_trip_of_publish_and_receive() {
    let dir = TempDir::new("net-rtt");
    let nats = nats(&dir);
    block_on(async {
        let bus = TickBus::connect(&nats.url(), "w7").await.unwrap();
        let mut sub = bus.subscribe("rtt", None, StartAt::New).await.unwrap();
        let mut times = Vec::with_capacity(200);
        for i in 0..200 {
            let payload = vec![i as u8; 64];
            let started = Instant::now();
            let seq = bus
                .publish("rtt", &format!("rtt-{i}"), payload)
                .await
                .unwrap();
            let got = next(&mut sub).await;
            times.push(started.elapsed());
            assert_eq!(got.seq, seq);
        }
        times.sort();
        eprintln!(
            "round trip (JetStream publish with ack + receive on a subscriber, one subject, \
             64-byte payloads, 200 messages): median {:?}, p90 {:?}, max {:?}",
            times[100], times[180], times[199]
        );
    });
}

mod networked_cluster {
    //! The shard and leader processes' loops over a real nats-server and etcd: shards on
    //! threads of their own, each with its own connections, and a leader; the world's hash
    //! must be the single process's, tick for tick.

    use super::*;

    use astroboids_cluster::SectorAssignment;
    use astroboids_cluster::messages::TickReport;
    use astroboids_cluster::plan::{self, WorldSpec};
    use astroboids_cluster_net::process::leader::LeaderExit;
    use astroboids_cluster_net::process::shard::ShardExit;
    use astroboids_cluster_net::process::{
        LeaderProcess, ShardProcess, run_leader_process, run_shard_process,
    };
    use astroboids_engine::StateHashExt;
    use astroboids_sim::config::UniverseConfig;
    use astroboids_sim::inputs::{WorldInput, apply_input};
    use astroboids_sim::{SimOptions, build_simulation_with};
    use astroboids_test_kit::{COMMAND_PTR, SENSOR_PTR, WatBot};

    const SEED: u64 = 5;
    const WORLD: &str = "samehash";
    const FRAME_LIMIT: usize = 600;

    fn options() -> SimOptions {
        SimOptions {
            script_workers: 1,
            ..SimOptions::default()
        }
    }

    /// Full thrust, turning by the sign of its nearest contact's dy, counting contacts in
    /// memory: scripted ships whose memory crosses shard borders with them.
    fn inputs() -> Vec<WorldInput> {
        let wasm = WatBot::new()
            .tick(format!(
                "(f32.store (i32.const {COMMAND_PTR}) (f32.const 1))
                 (f32.store (i32.const {turn})
                   (f32.copysign (f32.const 1) (f32.load (i32.const {dy}))))
                 (i32.store (i32.const 8192)
                   (i32.add (i32.load (i32.const 8192)) (i32.load (i32.const {count}))))",
                turn = COMMAND_PTR + 4,
                dy = SENSOR_PTR + 64 + 20,
                count = SENSOR_PTR + 60,
            ))
            .wasm();
        let script = astroboids_scripting::module_hash(&wasm);
        vec![
            WorldInput::AddScript { wasm },
            WorldInput::SpawnFleet {
                count: 300,
                script: None,
            },
            WorldInput::SpawnFleet {
                count: 40,
                script: Some(script),
            },
        ]
    }

    /// A shard process's loop on a thread of its own (the sim's tick blocks it), with its
    /// own connections.
    fn shard_thread(nats: String, etcd: String, member: u32) -> std::thread::JoinHandle<ShardExit> {
        shard_thread_in(nats, etcd, WORLD.to_owned(), member)
    }

    fn shard_thread_in(
        nats: String,
        etcd: String,
        world: String,
        member: u32,
    ) -> std::thread::JoinHandle<ShardExit> {
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let coordination = Coordination::connect(&[etcd], &world, 2).await.unwrap();
                let bus = TickBus::connect(&nats, &world).await.unwrap();
                let process = ShardProcess {
                    coordination: &coordination,
                    bus: &bus,
                    member,
                    options: &options,
                    // Small frames: exchanges with handoffs travel in several.
                    frame_limit: Some(FRAME_LIMIT),
                };
                run_shard_process(process, std::future::pending())
                    .await
                    .unwrap()
            })
        })
    }

    #[test]
    fn shards_over_nats_give_the_single_process_hash_tick_for_tick() {
        let dir = TempDir::new("networked-cluster");
        let nats = NatsServer::start(&dir).unwrap();
        let etcd = Etcd::start(&dir).unwrap();
        let config = UniverseConfig::default();
        let ticks = 80;

        let mut sim = build_simulation_with(config.clone(), SEED, options());
        for input in inputs() {
            apply_input(sim.world_mut(), &input).unwrap();
        }
        let expected: Vec<_> = (1..=ticks)
            .map(|tick| {
                sim.step();
                if tick == ticks {
                    sim.world_mut().state_hash()
                } else {
                    sim.world_mut().quick_state_hash()
                }
            })
            .collect();

        let spec = WorldSpec {
            seed: SEED,
            config,
            assignment: SectorAssignment::Stripes {
                shards: 3,
                width: 1,
            },
            checkpoint_every: 100,
            tick_ms: 0,
            last_tick: Some(ticks),
            setup: inputs(),
        };
        let reports = block_on(async {
            let coordination = Coordination::connect(&[etcd.endpoint()], WORLD, 2)
                .await
                .unwrap();
            coordination
                .put_json(plan::keys::SPEC, &spec)
                .await
                .unwrap();
            let shards: Vec<_> = (0..3)
                .map(|member| shard_thread(nats.url(), etcd.endpoint(), member))
                .collect();
            let bus = TickBus::connect(&nats.url(), WORLD).await.unwrap();
            let mut reports: Vec<TickReport> = Vec::new();
            let process = LeaderProcess {
                coordination: &coordination,
                bus: &bus,
                name: "test-leader",
            };
            let exit =
                run_leader_process(process, |r| reports.push(r.clone()), std::future::pending())
                    .await
                    .unwrap();
            assert_eq!(exit, LeaderExit::Finished { tick: ticks });
            for shard in shards {
                assert_eq!(shard.join().unwrap(), ShardExit::Finished { tick: ticks });
            }
            reports
        });
        assert_eq!(reports.len(), ticks as usize);
        let mut handoffs = 0;
        let mut bytes = 0;
        for (report, expected) in reports.iter().zip(&expected) {
            assert_eq!(report.state_hash, expected.total, "tick {}", report.tick);
            assert_eq!(report.ships, 340);
            assert_eq!(report.epoch, 1);
            for (_, _, figures) in &report.shards {
                handoffs += figures.handoffs_out;
                bytes += figures.exchange_bytes_out;
            }
        }
        assert!(handoffs > 0, "ships crossed shard borders");
        // Each shard has two neighbours: more messages than that were frames of one exchange.
        let most = reports
            .iter()
            .flat_map(|r| r.shards.iter().map(|s| s.2.exchange_messages_out))
            .max()
            .unwrap();
        assert!(
            most > 2,
            "some exchange travelled in several frames ({most} messages)"
        );
        let mut exchange_us: Vec<u64> = reports
            .iter()
            .flat_map(|r| r.shards.iter().map(|s| s.2.exchange_us))
            .collect();
        exchange_us.sort_unstable();
        eprintln!(
            "networked cluster: {ticks} ticks, 3 shards, {handoffs} handoffs, {:.0} exchange \
             bytes per tick, exchange phase median {} us",
            bytes as f64 / ticks as f64,
            exchange_us[exchange_us.len() / 2]
        );
    }

    /// The promise at scale, over real servers: 500 ticks of 3,000 ships, 300 of them
    /// scripted, give `astroboids sim`'s hash every tick on 1, 2, 3 and 4 shard processes'
    /// loops, under stripes and under blocks.
    #[test]
    fn three_thousand_ships_on_one_to_four_shards_under_two_assignments() {
        let dir = TempDir::new("networked-matrix");
        let etcd = Etcd::start(&dir).unwrap();
        let config = UniverseConfig::default();
        let (ships, scripted, ticks) = (3_000, 300, 500);
        let wasm = WatBot::chaser().wasm();
        let script = astroboids_scripting::module_hash(&wasm);
        let setup = vec![
            WorldInput::AddScript { wasm },
            WorldInput::SpawnFleet {
                count: ships - scripted,
                script: None,
            },
            WorldInput::SpawnFleet {
                count: scripted,
                script: Some(script),
            },
        ];
        let mut sim = build_simulation_with(config.clone(), SEED, options());
        for input in &setup {
            apply_input(sim.world_mut(), input).unwrap();
        }
        // Reports carry the full hash at checkpoint ticks (every 100) and the last tick.
        let expected: Vec<u64> = (1..=ticks)
            .map(|tick| {
                sim.step();
                if tick == ticks || tick % 100 == 0 {
                    sim.world_mut().state_hash().total
                } else {
                    sim.world_mut().quick_state_hash().total
                }
            })
            .collect();
        let layouts = [
            SectorAssignment::Stripes {
                shards: 1,
                width: 1,
            },
            SectorAssignment::Stripes {
                shards: 2,
                width: 1,
            },
            SectorAssignment::Blocks { shards: 2, side: 2 },
            SectorAssignment::Stripes {
                shards: 3,
                width: 2,
            },
            SectorAssignment::Blocks { shards: 3, side: 1 },
            SectorAssignment::Stripes {
                shards: 4,
                width: 1,
            },
            SectorAssignment::Blocks { shards: 4, side: 1 },
        ];
        // One server for all the worlds, as a deployment has.
        let nats = NatsServer::start(&dir).unwrap();
        for (i, assignment) in layouts.into_iter().enumerate() {
            let world = format!("matrix-{i}");
            let spec = WorldSpec {
                seed: SEED,
                config: config.clone(),
                assignment,
                checkpoint_every: 100,
                tick_ms: 0,
                last_tick: Some(ticks),
                setup: setup.clone(),
            };
            let reports = block_on(async {
                let coordination = Coordination::connect(&[etcd.endpoint()], &world, 2)
                    .await
                    .unwrap();
                coordination
                    .put_json(plan::keys::SPEC, &spec)
                    .await
                    .unwrap();
                let shards: Vec<_> = (0..assignment.shards())
                    .map(|m| shard_thread_in(nats.url(), etcd.endpoint(), world.clone(), m))
                    .collect();
                let bus = TickBus::connect(&nats.url(), &world).await.unwrap();
                let mut reports: Vec<TickReport> = Vec::new();
                let process = LeaderProcess {
                    coordination: &coordination,
                    bus: &bus,
                    name: "matrix-leader",
                };
                run_leader_process(process, |r| reports.push(r.clone()), std::future::pending())
                    .await
                    .unwrap();
                for shard in shards {
                    shard.join().unwrap();
                }
                reports
            });
            assert_eq!(reports.len(), ticks as usize, "{assignment}");
            let mut handoffs = 0u64;
            for (report, expected) in reports.iter().zip(&expected) {
                assert_eq!(
                    report.state_hash, *expected,
                    "{assignment}, tick {}",
                    report.tick
                );
                let held: u64 = report.shards.iter().map(|s| s.1).sum();
                assert_eq!(held, report.ships, "{assignment}, tick {}", report.tick);
                handoffs += report
                    .shards
                    .iter()
                    .map(|s| u64::from(s.2.handoffs_out))
                    .sum::<u64>();
            }
            if assignment.shards() > 1 {
                assert!(
                    handoffs > 100,
                    "{assignment}: ships crossed borders ({handoffs})"
                );
            }
        }
    }
}
