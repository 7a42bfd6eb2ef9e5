//! The protocol core over a simulated link that drops, duplicates and reorders whole frames
//! in both directions: every request is carried out exactly once and answered exactly once,
//! because clients re-send unanswered requests under the same id and servers answer repeats
//! from their cache.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use astroboids_protocol::messages::{Request, RequestError, Response, Token};
use astroboids_protocol::session::{
    ClientEvent, ClientSession, ServerEvent, ServerSession, SessionLimits,
};

/// A one-way link: each frame is lost, duplicated or delayed by a random number of steps.
struct Link {
    rng: ChaCha8Rng,
    loss: f64,
    duplication: f64,
    in_flight: Vec<(u32, Vec<u8>)>,
}

impl Link {
    fn new(seed: u64, loss: f64, duplication: f64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            loss,
            duplication,
            in_flight: Vec::new(),
        }
    }

    fn send(&mut self, frame: Vec<u8>) {
        if self.rng.random_bool(self.loss) {
            return;
        }
        if self.rng.random_bool(self.duplication) {
            let delay = self.rng.random_range(0..5);
            self.in_flight.push((delay, frame.clone()));
        }
        let delay = self.rng.random_range(0..5);
        self.in_flight.push((delay, frame));
    }

    /// Frames arriving this step, in an order that may differ from the sending order.
    fn deliver(&mut self) -> Vec<Vec<u8>> {
        let mut arrived = Vec::new();
        let mut waiting = Vec::new();
        for (delay, frame) in self.in_flight.drain(..) {
            if delay == 0 {
                arrived.push(frame);
            } else {
                waiting.push((delay - 1, frame));
            }
        }
        self.in_flight = waiting;
        arrived
    }
}

#[test]
fn every_request_is_carried_out_once_and_answered_once_over_a_lossy_link() {
    for seed in 0..20 {
        let mut client = ClientSession::new(64 * 1024, Duration::from_millis(200), 1);
        let mut server = ServerSession::new(SessionLimits::default(), "test", 10);
        let mut up = Link::new(seed, 0.3, 0.1);
        let mut down = Link::new(seed + 1000, 0.3, 0.1);
        // The handshake travels on a reliable stream before requests are sent.
        for event in server.receive(&client.hello("test")) {
            if let ServerEvent::Send(bytes) = event {
                assert!(matches!(
                    client.receive(&bytes, Duration::ZERO)[..],
                    [ClientEvent::Welcome { .. }]
                ));
            }
        }

        let mut carried_out: BTreeMap<u64, u32> = BTreeMap::new();
        let mut answers: BTreeMap<u64, u32> = BTreeMap::new();
        let mut now = Duration::ZERO;
        let requests = 40;
        for ship in 0..requests {
            let (_, frame) = client.request(Request::ShipLogs { ship }, now);
            up.send(frame);
        }
        for _step in 0..2_000 {
            now += Duration::from_millis(20);
            for frame in client.resend_due(now) {
                up.send(frame);
            }
            for frame in up.deliver() {
                for event in server.receive(&frame) {
                    match event {
                        ServerEvent::Send(bytes) => down.send(bytes),
                        ServerEvent::Request { id, request } => {
                            *carried_out.entry(id).or_default() += 1;
                            let Request::ShipLogs { ship } = request else {
                                panic!("unexpected {request:?}");
                            };
                            let response = Response::Logs {
                                lines: vec![(ship, format!("ship {ship}"))],
                                faults: Vec::new(),
                            };
                            down.send(server.respond(id, response).expect("pending"));
                        }
                        ServerEvent::Close { reason } => panic!("closed: {reason}"),
                    }
                }
            }
            for frame in down.deliver() {
                for event in client.receive(&frame, now) {
                    match event {
                        ClientEvent::Response { id, response } => {
                            *answers.entry(id).or_default() += 1;
                            let Response::Logs { lines, .. } = response else {
                                panic!("unexpected {response:?}");
                            };
                            assert_eq!(lines[0].0 + 1, id, "the answer belongs to its request");
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
            if client.outstanding() == 0 {
                break;
            }
        }
        assert_eq!(client.outstanding(), 0, "seed {seed}: all answered");
        assert_eq!(carried_out.len() as u64, requests, "seed {seed}");
        assert!(
            carried_out.values().all(|&n| n == 1),
            "seed {seed}: once each"
        );
        assert_eq!(answers.len() as u64, requests);
        assert!(
            answers.values().all(|&n| n == 1),
            "seed {seed}: answered once each"
        );
    }
}

/// Answers `request` on `server` as a server that finished it would.
fn answer(server: &mut ServerSession, frame: &[u8], response: Response) -> (u64, Vec<u8>) {
    let [ServerEvent::Request { id, .. }] = &server.receive(frame)[..] else {
        panic!("one request");
    };
    (*id, server.respond(*id, response).unwrap())
}

#[test]
fn after_a_reconnect_the_client_reauthenticates_before_resending_under_the_original_ids() {
    let mut client = ClientSession::new(64 * 1024, Duration::from_secs(1), 42);
    let mut server = ServerSession::new(SessionLimits::default(), "test", 10);
    server.receive(&client.hello("test"));
    assert_eq!(server.instance(), 42, "the greeting names the instance");
    let token = Token("secret".into());
    let (_, auth) = client.request(
        Request::Authenticate {
            token: token.clone(),
        },
        Duration::ZERO,
    );
    let (_, authenticated) = answer(
        &mut server,
        &auth,
        Response::Authenticated {
            user: "ann".into(),
            admin: false,
        },
    );
    client.receive(&authenticated, Duration::ZERO);
    let (spawn_id, spawn) = client.request(Request::SpawnShip, Duration::ZERO);
    let [ServerEvent::Request { .. }] = &server.receive(&spawn)[..] else {
        panic!("the spawn reaches the server");
    };
    // The connection is lost before the answer arrives. On the new one: greeting, then the
    // re-authentication; the spawn waits until the session is bound again.
    let mut server = ServerSession::new(SessionLimits::default(), "test", 10);
    let frames = client.reconnected("test", Duration::from_secs(2));
    assert_eq!(frames.len(), 2, "greeting and re-authentication only");
    server.receive(&frames[0]);
    assert_eq!(
        server.instance(),
        42,
        "the same instance on the new connection"
    );
    let [
        ServerEvent::Request {
            id: reauth,
            request,
        },
    ] = &server.receive(&frames[1])[..]
    else {
        panic!("a re-authentication");
    };
    assert_eq!(request, &Request::Authenticate { token });
    // A request made while resuming waits too.
    let (status_id, held) =
        client.request(Request::ShipStatus { ship: None }, Duration::from_secs(2));
    assert!(held.is_empty(), "held until re-authenticated");
    let bytes = server
        .respond(
            *reauth,
            Response::Authenticated {
                user: "ann".into(),
                admin: false,
            },
        )
        .unwrap();
    let events = client.receive(&bytes, Duration::from_secs(2));
    let [ClientEvent::Send(resent)] = &events[..] else {
        panic!("the held requests are released: {events:?}");
    };
    let ids: Vec<u64> = resent
        .iter()
        .flat_map(|frame| match &server.receive(frame)[..] {
            [ServerEvent::Request { id, .. }] => vec![*id],
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, vec![spawn_id, status_id], "original ids, in order");
}

#[test]
fn a_failed_resumption_answers_every_held_request_with_its_error() {
    let mut client = ClientSession::new(64 * 1024, Duration::from_secs(1), 7);
    let mut server = ServerSession::new(SessionLimits::default(), "test", 10);
    server.receive(&client.hello("test"));
    let (_, login) = client.request(
        Request::Login {
            user: "ann".into(),
            password: "pw".into(),
        },
        Duration::ZERO,
    );
    let (_, logged_in) = answer(
        &mut server,
        &login,
        Response::LoggedIn {
            token: Token("t".into()),
            expires_in_s: 60,
        },
    );
    client.receive(&logged_in, Duration::ZERO);
    let (spawn_id, _) = client.request(Request::SpawnShip, Duration::ZERO);
    let mut server = ServerSession::new(SessionLimits::default(), "test", 10);
    let frames = client.reconnected("test", Duration::ZERO);
    server.receive(&frames[0]);
    let (_, refused) = answer(
        &mut server,
        &frames[1],
        Response::Error(RequestError::NotAuthenticated),
    );
    let events = client.receive(&refused, Duration::ZERO);
    assert!(
        events.contains(&ClientEvent::Response {
            id: spawn_id,
            response: Response::Error(RequestError::NotAuthenticated)
        }),
        "{events:?}"
    );
    assert_eq!(client.outstanding(), 0);
}
