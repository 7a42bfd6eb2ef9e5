//! The protocol core over a simulated link that drops, duplicates and reorders whole frames
//! in both directions: every request is carried out exactly once and answered exactly once,
//! because clients re-send unanswered requests under the same id and servers answer repeats
//! from their cache.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use astroboids_net::messages::{Request, Response};
use astroboids_net::session::{
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
        let mut client = ClientSession::new(64 * 1024, Duration::from_millis(200));
        let mut server = ServerSession::new(SessionLimits::default(), "test", 10);
        let mut up = Link::new(seed, 0.3, 0.1);
        let mut down = Link::new(seed + 1000, 0.3, 0.1);
        // The handshake travels on a reliable stream before requests are sent.
        for event in server.receive(&client.hello("test")) {
            if let ServerEvent::Send(bytes) = event {
                assert!(matches!(
                    client.receive(&bytes)[..],
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
                for event in client.receive(&frame) {
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

#[test]
fn a_retried_request_after_a_reconnect_gets_the_cached_answer() {
    let mut client = ClientSession::new(64 * 1024, Duration::from_secs(1));
    let mut server = ServerSession::new(SessionLimits::default(), "test", 10);
    server.receive(&client.hello("test"));
    let (id, frame) = client.request(Request::SpawnShip, Duration::ZERO);
    let [ServerEvent::Request { id: got, .. }] = &server.receive(&frame)[..] else {
        panic!("one request");
    };
    assert_eq!(*got, id);
    let _lost_answer = server
        .respond(id, Response::ShipSpawned { ship: 9 })
        .unwrap();
    // The answer is lost with the connection; the client re-sends on the same session.
    client.reconnected(64 * 1024);
    let resent = client.resend_all(Duration::from_secs(5));
    assert_eq!(resent.len(), 1);
    let events = server.receive(&resent[0]);
    let [ServerEvent::Send(bytes)] = &events[..] else {
        panic!("answered from the cache, not carried out again: {events:?}");
    };
    assert_eq!(
        client.receive(bytes),
        vec![ClientEvent::Response {
            id,
            response: Response::ShipSpawned { ship: 9 }
        }]
    );
}
