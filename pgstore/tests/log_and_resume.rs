//! The durable input log and exactly-once request answers against a real PostgreSQL, with two
//! store handles standing for two gateways.

mod common;

use astroboids_pgstore::{Begin, Finish, Limits, NewInput, ResumeKey, StoreError};
use common::{Db, user_with_session};

fn input<'a>(position: u64, bytes: &'a [u8], by: Option<&'a str>) -> NewInput<'a> {
    NewInput {
        position,
        input: bytes,
        submitted_by: by,
        at_unix_s: 1000 + position,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_input_log_is_idempotent_and_read_in_order() {
    let db = Db::new("input_log").await;
    let (a, b) = (db.store().await, db.store().await);
    assert_eq!(a.last_input_position("w1").await.unwrap(), None);

    // Out of order in the batch; read back in position order.
    let first = [
        input(2, b"two", Some("ada")),
        input(0, b"zero", None),
        input(1, b"one", Some("bob")),
    ];
    let done = a.append_inputs("w1", &first).await.unwrap();
    assert_eq!((done.inserted, done.already_there), (3, 0));

    // A retry, from another gateway, with a later time: no change.
    let mut retry = first;
    retry[0].at_unix_s = 99_999;
    let done = b.append_inputs("w1", &retry).await.unwrap();
    assert_eq!((done.inserted, done.already_there), (0, 3));
    // Partly new.
    let done = b
        .append_inputs(
            "w1",
            &[input(2, b"two", Some("ada")), input(3, b"three", None)],
        )
        .await
        .unwrap();
    assert_eq!((done.inserted, done.already_there), (1, 1));

    let log = a.inputs("w1", 0, 100).await.unwrap();
    let read: Vec<(u64, &[u8], Option<&str>, u64)> = log
        .iter()
        .map(|i| {
            (
                i.position,
                i.input.as_slice(),
                i.submitted_by.as_deref(),
                i.at_unix_s,
            )
        })
        .collect();
    assert_eq!(
        read,
        [
            (0, &b"zero"[..], None, 1000),
            (1, b"one", Some("bob"), 1001),
            (2, b"two", Some("ada"), 1002),
            (3, b"three", None, 1003),
        ]
    );
    let tail: Vec<u64> = a
        .inputs("w1", 2, 1)
        .await
        .unwrap()
        .iter()
        .map(|i| i.position)
        .collect();
    assert_eq!(tail, [2]);
    assert_eq!(a.last_input_position("w1").await.unwrap(), Some(3));
    // Worlds are separate logs.
    assert!(a.inputs("w2", 0, 100).await.unwrap().is_empty());

    // A different input at a logged position refuses the whole batch.
    let error = b
        .append_inputs(
            "w1",
            &[input(4, b"four", None), input(1, b"ONE", Some("bob"))],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::InputConflict { world, position: 1 } if world == "w1"),
        "{error}"
    );
    let error = b
        .append_inputs("w1", &[input(1, b"one", Some("eve"))])
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::InputConflict { position: 1, .. }),
        "{error}"
    );
    assert_eq!(
        a.last_input_position("w1").await.unwrap(),
        Some(3),
        "4 was not kept"
    );

    // Pruning what a checkpoint covers.
    assert_eq!(a.prune_inputs_before("w1", 2).await.unwrap(), 2);
    let left: Vec<u64> = a
        .inputs("w1", 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|i| i.position)
        .collect();
    assert_eq!(left, [2, 3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn input_log_arguments_are_checked() {
    let db = Db::new("input_log_refused").await;
    let store = db
        .store_with(Limits {
            max_input_bytes: 4,
            max_rows: 3,
            ..Limits::default()
        })
        .await;
    let error = store
        .append_inputs("w", &[input(0, b"12345", None)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::TooLarge {
                bytes: 5,
                limit: 4,
                ..
            }
        ),
        "{error}"
    );
    let error = store
        .append_inputs("w", &[input(0, b"a", None), input(0, b"a", None)])
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("position 0 appears twice"),
        "{error}"
    );
    let four: Vec<_> = (0..4).map(|p| input(p, b"a", None)).collect();
    let error = store.append_inputs("w", &four).await.unwrap_err();
    assert!(
        error.to_string().contains("4 inputs; the limit is 3"),
        "{error}"
    );
    let far = NewInput {
        position: 1 << 63,
        ..input(0, b"a", None)
    };
    let error = store.append_inputs("w", &[far]).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::OutOfRange {
                what: "position",
                ..
            }
        ),
        "{error}"
    );
    let error = store
        .append_inputs("no world", &[input(0, b"a", None)])
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::InvalidName { what: "world", .. }),
        "{error}"
    );
    assert_eq!(store.last_input_position("w").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_is_given_once_across_two_gateways() {
    let db = Db::new("resume").await;
    let (gw1, gw2) = (db.store().await, db.store().await);
    let token = user_with_session(&gw1, "ada", 1, 1_000_000).await;
    // Random client instances use all 64 bits.
    let key = ResumeKey {
        token,
        instance: u64::MAX - 6,
    };

    // Gateway 1 takes the request; the client reconnects to gateway 2 and re-sends it.
    let Begin::New(claim) = gw1.begin_request(&key, 5, "gw1/c1", 10).await.unwrap() else {
        panic!("the first begin is new");
    };
    assert_eq!(
        gw2.begin_request(&key, 5, "gw2/c7", 11).await.unwrap(),
        Begin::InFlight
    );
    // Gateway 1 finishes: the answer goes to who asked last.
    let finished = gw1
        .finish_request(&key, 5, claim, b"answer five", 12)
        .await
        .unwrap();
    assert_eq!(
        finished,
        Finish::Stored {
            waiting: "gw2/c7".into()
        }
    );
    // Gateway 2 polls and gets it; so would anyone later.
    assert_eq!(
        gw2.begin_request(&key, 5, "gw2/c7", 13).await.unwrap(),
        Begin::Answered(b"answer five".to_vec())
    );
    assert_eq!(
        gw1.begin_request(&key, 5, "gw1/c2", 14).await.unwrap(),
        Begin::Answered(b"answer five".to_vec())
    );
    // Finishing twice stores nothing more.
    assert_eq!(
        gw1.finish_request(&key, 5, claim, b"again", 15)
            .await
            .unwrap(),
        Finish::Lost
    );

    // Another request id, instance or session is a different request.
    assert!(matches!(
        gw2.begin_request(&key, 6, "gw2/c7", 16).await.unwrap(),
        Begin::New(_)
    ));
    let other_instance = ResumeKey { instance: 1, ..key };
    assert!(matches!(
        gw2.begin_request(&other_instance, 5, "gw2/c7", 16)
            .await
            .unwrap(),
        Begin::New(_)
    ));

    // A session that is gone has no answers.
    let stranger = ResumeKey {
        token: common::token(99),
        instance: 1,
    };
    let error = gw1
        .begin_request(&stranger, 1, "gw1/c1", 16)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::UnknownSession), "{error}");
    gw1.revoke_session(&token).await.unwrap();
    assert!(matches!(
        gw2.begin_request(&key, 5, "gw2/c7", 17).await,
        Err(StoreError::UnknownSession)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_gateways_beginning_at_once_exactly_one_carries_it_out() {
    let db = Db::new("resume_race").await;
    let (gw1, gw2) = (db.store().await, db.store().await);
    let token = user_with_session(&gw1, "ada", 1, 1_000_000).await;
    let key = ResumeKey {
        token,
        instance: 42,
    };
    for id in 0..100u64 {
        let (r1, r2) = tokio::join!(
            gw1.begin_request(&key, id, "gw1", 100),
            gw2.begin_request(&key, id, "gw2", 100),
        );
        let (r1, r2) = (r1.unwrap(), r2.unwrap());
        let (winner, claim, waiting) = match (&r1, &r2) {
            (Begin::New(c), Begin::InFlight) => (&gw1, *c, "gw2"),
            (Begin::InFlight, Begin::New(c)) => (&gw2, *c, "gw1"),
            other => panic!("request {id}: {other:?}"),
        };
        let answer = id.to_be_bytes();
        assert_eq!(
            winner
                .finish_request(&key, id, claim, &answer, 101)
                .await
                .unwrap(),
            Finish::Stored {
                waiting: waiting.into()
            },
            "request {id}"
        );
    }
    // Four gateways at once, on tasks of their own.
    let stores = [gw1.clone(), gw2.clone(), db.store().await, db.store().await];
    let tasks: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(i, store)| {
            tokio::spawn(async move {
                store
                    .begin_request(&key, 1000, &format!("gw{i}"), 100)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut new = 0;
    for task in tasks {
        match task.await.unwrap() {
            Begin::New(_) => new += 1,
            Begin::InFlight => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(new, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_are_bounded_in_number_time_and_size() {
    let db = Db::new("resume_bounds").await;
    let store = db
        .store_with(Limits {
            answers_per_instance: 2,
            resume_keep_s: 100,
            max_answer_bytes: 8,
            ..Limits::default()
        })
        .await;
    let token = user_with_session(&store, "ada", 1, 1_000_000).await;
    let key = ResumeKey { token, instance: 7 };
    let answer = |id: u64, now: u64| {
        let store = store.clone();
        async move {
            let Begin::New(claim) = store.begin_request(&key, id, "gw", now).await.unwrap() else {
                panic!("request {id} is new");
            };
            store
                .finish_request(&key, id, claim, &[id as u8], now)
                .await
                .unwrap()
        }
    };
    for id in 1..=3 {
        answer(id, 10).await;
    }
    // Only the newest two answers are kept: request 1 would be carried out again.
    assert!(matches!(
        store.begin_request(&key, 1, "gw", 10).await.unwrap(),
        Begin::New(_)
    ));
    assert_eq!(
        store.begin_request(&key, 3, "gw", 10).await.unwrap(),
        Begin::Answered(vec![3])
    );

    // Too large an answer is refused by name.
    let Begin::New(claim) = store.begin_request(&key, 9, "gw", 10).await.unwrap() else {
        panic!()
    };
    let error = store
        .finish_request(&key, 9, claim, &[0; 9], 10)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::TooLarge {
                bytes: 9,
                limit: 8,
                ..
            }
        ),
        "{error}"
    );

    // After keep_s an answer is forgotten, also before a sweep...
    assert!(matches!(
        store.begin_request(&key, 3, "gw", 110).await.unwrap(),
        Begin::New(_)
    ));
    // ...and an abandoned claim (a crashed gateway's) frees its key; its late finish is lost.
    let Begin::New(stale) = store.begin_request(&key, 20, "gw-dead", 200).await.unwrap() else {
        panic!()
    };
    // A claim holds for claim_ttl_s (15 s by default), far less than an answer is kept: a
    // gateway lost mid-request holds its players' re-sent requests up only that long.
    assert_eq!(
        store.begin_request(&key, 20, "gw-live", 214).await.unwrap(),
        Begin::InFlight
    );
    let Begin::New(fresh) = store.begin_request(&key, 20, "gw-live", 216).await.unwrap() else {
        panic!("an expired claim is replaced");
    };
    assert_eq!(
        store
            .finish_request(&key, 20, stale, b"late", 217)
            .await
            .unwrap(),
        Finish::Lost
    );
    assert_eq!(
        store
            .finish_request(&key, 20, fresh, b"on time", 217)
            .await
            .unwrap(),
        Finish::Stored {
            waiting: "gw-live".into()
        }
    );

    // The sweep removes every expired row.
    let rows = |db: &Db| {
        let db_url = db.url();
        async move {
            let (client, conn) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let n: i64 = client
                .query_one("SELECT COUNT(*) FROM resume_answers", &[])
                .await
                .unwrap()
                .get(0);
            n
        }
    };
    assert!(rows(&db).await > 1);
    let swept = store.sweep_requests(1000).await.unwrap();
    assert!(swept > 0);
    assert_eq!(rows(&db).await, 0);

    let error = store.begin_request(&key, 1, "", 10).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Invalid {
                what: "waiting connection",
                ..
            }
        ),
        "{error}"
    );
}
