//! The server's I/O-free core under simulated time: no sockets, threads or sleeps. Events go
//! in with an explicit `now`, effects come out, and password jobs are run in line where a
//! shell would hand them to a worker.

mod common;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use common::fresh_dir;

use astroboids_host::{PersistentWorld, WorldRequest};
use astroboids_protocol::messages::{Request, RequestError, Response, Token};
use astroboids_server::core::{ConnId, CoreRules, Effect, Event, ServerCore};
use astroboids_server::limits::RateRules;
use astroboids_server::requests::{ServerRules, WorldServer};

const START_UNIX_S: u64 = 1_800_000_000;
const PASSWORD: &str = "correct horse";

/// A core over a fresh world, with rates that never limit.
fn core(name: &str, rules: CoreRules) -> ServerCore {
    let dir = fresh_dir(name);
    let (world, _) = PersistentWorld::open(&dir, WorldRequest::default()).unwrap();
    let unlimited = NonZeroU32::new(1_000_000).unwrap();
    let server = WorldServer::new(
        world,
        ServerRules {
            rates: RateRules {
                per_ip_per_s: unlimited,
                per_ip_burst: unlimited,
                per_account_per_s: unlimited,
                per_account_burst: unlimited,
            },
            ..ServerRules::default()
        },
    );
    ServerCore::new(server, rules, START_UNIX_S)
}

/// Drives a core as a shell would, keeping the answers each connection received.
struct Driver {
    core: ServerCore,
    now: Duration,
    answers: Vec<(ConnId, u64, Response)>,
    closed: Vec<ConnId>,
    /// Password jobs handed out and not yet reported back.
    jobs: Vec<Event>,
}

impl Driver {
    fn new(core: ServerCore) -> Self {
        Self {
            core,
            now: Duration::ZERO,
            answers: Vec::new(),
            closed: Vec::new(),
            jobs: Vec::new(),
        }
    }

    fn carry_out(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Answer { conn, id, response } => {
                    assert!(
                        !self.answers.iter().any(|(c, i, _)| (*c, *i) == (conn, id)),
                        "request {id} of connection {conn} answered twice"
                    );
                    self.answers.push((conn, id, response));
                }
                Effect::Close { conn, .. } => self.closed.push(conn),
                Effect::HashPassword { conn, ip, id, job } => {
                    // A worker would run it; the result comes back as an event.
                    self.jobs.push(Event::PasswordChecked {
                        conn,
                        ip,
                        id,
                        checked: job.run(),
                    });
                }
                Effect::RunTrace { .. } => panic!("no traces here"),
                Effect::Datagrams { .. } | Effect::Events { .. } | Effect::Notice(_) => {}
            }
        }
    }

    fn handle(&mut self, event: Event) {
        let effects = self.core.handle(event, self.now);
        self.carry_out(effects);
    }

    fn open(&mut self, conn: ConnId, ip: [u8; 4]) {
        self.handle(Event::Opened {
            conn,
            ip: IpAddr::from(ip),
            max_datagram_bytes: 1200,
        });
    }

    fn request(&mut self, conn: ConnId, instance: u64, id: u64, request: Request) {
        self.handle(Event::Request {
            conn,
            instance,
            id,
            request,
        });
    }

    /// Reports every password job back, as the workers would.
    fn finish_jobs(&mut self) {
        for event in std::mem::take(&mut self.jobs) {
            self.handle(event);
        }
    }

    /// Advances the clock to the next due tick and runs it.
    fn tick(&mut self) {
        self.now = self.now.max(self.core.next_due());
        let effects = self.core.tick(self.now).unwrap().expect("a tick is due");
        self.carry_out(effects);
    }

    fn answer(&self, conn: ConnId, id: u64) -> Option<&Response> {
        self.answers
            .iter()
            .find(|(c, i, _)| (*c, *i) == (conn, id))
            .map(|(.., r)| r)
    }

    /// Registers `user` and logs in on `conn` (request ids 1 and 2); returns the token.
    fn log_in(&mut self, conn: ConnId, instance: u64, user: &str) -> Token {
        for (id, request) in [
            (
                1,
                Request::Register {
                    user: user.into(),
                    password: PASSWORD.into(),
                },
            ),
            (
                2,
                Request::Login {
                    user: user.into(),
                    password: PASSWORD.into(),
                },
            ),
        ] {
            self.request(conn, instance, id, request);
            self.finish_jobs();
            self.tick();
        }
        match self.answer(conn, 2) {
            Some(Response::LoggedIn { token, .. }) => token.clone(),
            other => panic!("login: {other:?}"),
        }
    }

    fn ships(&mut self, conn: ConnId, id: u64) -> Vec<u64> {
        self.request(conn, 0, id, Request::ShipStatus { ship: None });
        match self.answer(conn, id) {
            Some(Response::Ships(ships)) => ships.iter().map(|s| s.ship).collect(),
            other => panic!("status: {other:?}"),
        }
    }
}

#[test]
fn answers_to_changes_wait_for_the_group_commit_and_reads_do_not() {
    let mut d = Driver::new(core("core-durable", CoreRules::default()));
    d.tick();
    d.open(1, [10, 0, 0, 1]);
    d.request(
        1,
        0,
        1,
        Request::Register {
            user: "ann".into(),
            password: PASSWORD.into(),
        },
    );
    d.finish_jobs();
    assert!(
        d.answer(1, 1).is_none(),
        "the account is not durable before the commit"
    );
    d.tick();
    assert_eq!(d.answer(1, 1), Some(&Response::Registered));

    d.request(
        1,
        0,
        2,
        Request::Login {
            user: "ann".into(),
            password: PASSWORD.into(),
        },
    );
    d.finish_jobs();
    assert!(d.answer(1, 2).is_none(), "the session is not durable yet");
    d.tick();
    assert!(matches!(d.answer(1, 2), Some(Response::LoggedIn { .. })));
    d.request(1, 0, 3, Request::SpawnShip);
    d.request(1, 0, 4, Request::ListScripts);
    assert!(d.answer(1, 3).is_none(), "the spawn waits for the commit");
    assert!(
        d.answer(1, 4).is_none(),
        "a read behind a held answer keeps the connection's order"
    );
    let held = d.core.held_answers();
    assert_eq!(held, 2);
    d.tick();
    let order: Vec<u64> = d.answers.iter().map(|(_, id, _)| *id).collect();
    assert_eq!(
        &order[order.len() - 2..],
        [3, 4],
        "answered in the order sent"
    );
    assert!(matches!(d.answer(1, 3), Some(Response::ShipSpawned { .. })));

    // With nothing held, a read is answered at once, between ticks.
    d.request(1, 0, 5, Request::ListScripts);
    assert!(matches!(d.answer(1, 5), Some(Response::Scripts(_))));
}

#[test]
fn a_spawn_whose_answer_was_lost_is_answered_again_after_a_reconnect_never_carried_out_twice() {
    let mut d = Driver::new(core("core-resume", CoreRules::default()));
    d.tick();
    let instance = 0x5eed;
    d.open(1, [10, 0, 0, 1]);
    let token = d.log_in(1, instance, "ann");
    d.request(1, instance, 3, Request::SpawnShip);
    d.tick();
    let Some(Response::ShipSpawned { ship }) = d.answer(1, 3).cloned() else {
        panic!("spawned: {:?}", d.answer(1, 3));
    };
    // The answer was lost with the connection. The client reconnects, authenticates with
    // the same token and instance, and re-sends the spawn under its original id.
    d.handle(Event::Closed { conn: 1 });
    d.open(2, [10, 0, 0, 1]);
    d.request(2, instance, 4, Request::Authenticate { token });
    assert!(matches!(
        d.answer(2, 4),
        Some(Response::Authenticated { .. })
    ));
    d.request(2, instance, 3, Request::SpawnShip);
    assert_eq!(
        d.answer(2, 3),
        Some(&Response::ShipSpawned { ship }),
        "the original answer, at once"
    );
    d.tick();
    assert_eq!(d.ships(2, 5), vec![ship], "exactly one ship");
}

#[test]
fn a_request_resent_while_its_answer_is_held_is_answered_once_on_the_new_connection() {
    let mut d = Driver::new(core("core-resume-held", CoreRules::default()));
    d.tick();
    d.open(1, [10, 0, 0, 1]);
    let token = d.log_in(1, 7, "ann");
    d.request(1, 7, 3, Request::SpawnShip);
    // Lost before the commit: the spawn is carried out, its answer not yet released.
    d.handle(Event::Closed { conn: 1 });
    d.open(2, [10, 0, 0, 1]);
    d.request(
        2,
        7,
        4,
        Request::Authenticate {
            token: token.clone(),
        },
    );
    d.request(2, 7, 3, Request::SpawnShip);
    d.tick();
    assert!(
        matches!(d.answer(2, 3), Some(Response::ShipSpawned { .. })),
        "{:?}",
        d.answers
    );
    assert!(d.answer(1, 3).is_none(), "connection 1 is gone");
    assert_eq!(d.ships(2, 5).len(), 1, "carried out once");

    // Another client instance of the same account is another client: its id 3 is new.
    d.open(3, [10, 0, 0, 2]);
    d.request(3, 8, 1, Request::Authenticate { token });
    d.request(3, 8, 3, Request::SpawnShip);
    d.tick();
    assert_eq!(d.ships(3, 6).len(), 2);
}

#[test]
fn password_jobs_are_bounded_in_all_and_per_address_and_requests_behind_a_login_keep_order() {
    let rules = CoreRules {
        password_queue: 4,
        password_jobs_per_ip: 2,
        ..CoreRules::default()
    };
    let mut d = Driver::new(core("core-passwords", rules));
    d.tick();
    let busy = |r: Option<&Response>, why: &str| matches!(r, Some(Response::Error(RequestError::Unavailable(m))) if m.contains(why));
    // Three registrations from one address: the third is refused at once.
    for conn in 1..=3 {
        d.open(conn, [10, 0, 0, 1]);
        d.request(
            conn,
            0,
            1,
            Request::Register {
                user: format!("home{conn}"),
                password: PASSWORD.into(),
            },
        );
    }
    assert!(busy(d.answer(3, 1), "logins from your address"));
    // Others fill the queue to 4 jobs; the next is refused as busy.
    for conn in 4..=6 {
        d.open(conn, [10, 0, 1, conn as u8]);
        d.request(
            conn,
            0,
            1,
            Request::Register {
                user: format!("away{conn}"),
                password: PASSWORD.into(),
            },
        );
    }
    assert!(busy(d.answer(6, 1), "busy checking passwords"));
    assert_eq!(d.jobs.len(), 4);
    d.finish_jobs();
    d.tick();
    for conn in [1, 2, 4, 5] {
        assert_eq!(d.answer(conn, 1), Some(&Response::Registered), "{conn}");
    }

    // A login, then at once a request that needs its session, a logout, a wrong login and
    // another request: carried out and answered in the order sent.
    let requests = [
        Request::Login {
            user: "home1".into(),
            password: PASSWORD.into(),
        },
        Request::ListScripts,
        Request::Logout,
        Request::Login {
            user: "home1".into(),
            password: "wrong horse".into(),
        },
        Request::ListScripts,
    ];
    for (i, request) in requests.into_iter().enumerate() {
        d.request(1, 0, 100 + i as u64, request);
    }
    while !d.jobs.is_empty() {
        d.finish_jobs();
    }
    d.tick();
    let answered: Vec<(u64, &Response)> = d
        .answers
        .iter()
        .filter(|(c, id, _)| *c == 1 && *id >= 100)
        .map(|(_, id, r)| (*id, r))
        .collect();
    let ids: Vec<u64> = answered.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [100, 101, 102, 103, 104], "{answered:?}");
    assert!(matches!(answered[0].1, Response::LoggedIn { .. }));
    assert!(matches!(answered[1].1, Response::Scripts(_)));
    assert!(matches!(answered[2].1, Response::LoggedOut));
    assert!(matches!(
        answered[3].1,
        Response::Error(RequestError::Rejected(_))
    ));
    assert!(matches!(
        answered[4].1,
        Response::Error(RequestError::NotAuthenticated)
    ));
}

#[test]
fn ticks_run_when_due_on_the_core_clock_and_a_short_backlog_is_caught_up() {
    let mut core = core("core-pacing", CoreRules::default());
    let ms = Duration::from_millis;
    assert!(
        core.tick(ms(0)).unwrap().is_some(),
        "the first tick is due at once"
    );
    assert_eq!(core.next_due(), ms(100), "10 Hz");
    assert!(core.tick(ms(50)).unwrap().is_none(), "not due yet");
    assert!(core.tick(ms(100)).unwrap().is_some());
    // 350 ms late: the ticks owed run back to back (next_due says now), then pacing resumes.
    assert!(core.tick(ms(550)).unwrap().is_some());
    let mut caught_up = 0;
    while core.next_due() == Duration::ZERO {
        assert!(core.tick(ms(550)).unwrap().is_some());
        caught_up += 1;
    }
    assert_eq!(caught_up, 3);
    assert_eq!(core.server().world().tick(), 6);
    assert!(core.next_due() > ms(550));
}

#[test]
fn requests_during_shutdown_are_refused_and_held_answers_are_released_durable() {
    let mut d = Driver::new(core("core-shutdown", CoreRules::default()));
    d.tick();
    d.open(1, [10, 0, 0, 1]);
    d.log_in(1, 0, "ann");
    d.request(1, 0, 3, Request::SpawnShip);
    d.handle(Event::Shutdown);
    d.request(1, 0, 4, Request::SpawnShip);
    assert!(matches!(
        d.answer(1, 4),
        Some(Response::Error(RequestError::Unavailable(m))) if m.contains("shutting down")
    ));
    let Driver { core, now, .. } = d;
    let done = core.shut_down(now).unwrap();
    let mut answered = false;
    let mut closed = false;
    for effect in done.effects {
        match effect {
            Effect::Answer {
                conn: 1,
                id: 3,
                response,
            } => {
                assert!(matches!(response, Response::ShipSpawned { .. }));
                answered = true;
            }
            Effect::Close { conn: 1, .. } => closed = true,
            _ => {}
        }
    }
    assert!(answered && closed);
}
