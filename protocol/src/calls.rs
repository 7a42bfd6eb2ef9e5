//! Typed requests: one type per [`Request`] variant, each naming the answer it gets.
//!
//! A [`Response`] can be any variant whatever was asked, so a caller of the raw protocol has
//! to handle answers that cannot belong to its request. A [`Call`] does that once, here:
//! [`Call::answer`] turns the response into the call's own answer, a refusal
//! ([`Response::Error`]) into [`CallError::Refused`] with the server's reason intact, and
//! anything else into [`CallError::Unexpected`], which only a broken or foreign server causes.
//!
//! ```
//! use astroboids_protocol::calls::{Call, SpawnShip};
//! use astroboids_protocol::messages::Response;
//!
//! let request = SpawnShip.request(); // what goes on the wire
//! assert_eq!(request.kind(), SpawnShip::KIND);
//! assert_eq!(SpawnShip::answer(Response::ShipSpawned { ship: 7 }), Ok(7));
//! ```

use crate::messages::{
    MoveCommand, ReplayListing, Request, RequestError, Response, ScriptListing, ShipStatusReport,
    Token,
};

/// A request whose answer has a type of its own.
pub trait Call {
    /// What a successful call yields.
    type Answer;

    /// The request's short name, as [`Request::kind`] gives it (for errors, logs and metrics).
    const KIND: &'static str;

    /// The request to send.
    fn request(self) -> Request;

    /// The answer in `response`, or why there is none.
    fn answer(response: Response) -> Result<Self::Answer, CallError>;
}

/// Why a call yielded no answer although the server responded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The server said no, and why. Shown as the server's reason alone: that is what a player
    /// acts on, and it already names what was wrong.
    #[error(transparent)]
    Refused(RequestError),
    /// The server answered with a response that belongs to another request: it is broken or
    /// speaks another protocol under the same version. `answer` is the response's variant
    /// name only, because its content may be a credential (a session token) or megabytes (a
    /// trace) that do not belong in an error message.
    #[error(
        "the server answered a {request} request with {answer}, which does not answer it \
         (a broken or foreign server)"
    )]
    Unexpected {
        request: &'static str,
        answer: String,
    },
}

impl CallError {
    /// The refusal or mismatch that `response` is for a `request` call that did not get its
    /// answer.
    fn from_response(request: &'static str, response: Response) -> Self {
        match response {
            Response::Error(reason) => Self::Refused(reason),
            other => Self::Unexpected {
                request,
                answer: response_name(&other).to_string(),
            },
        }
    }

    /// The server's reason, when it refused.
    pub fn refusal(&self) -> Option<&RequestError> {
        match self {
            Self::Refused(reason) => Some(reason),
            Self::Unexpected { .. } => None,
        }
    }
}

/// The variant name of a response. Exhaustive on purpose: a new response must be named here.
fn response_name(response: &Response) -> &'static str {
    match response {
        Response::Registered => "Registered",
        Response::LoggedIn { .. } => "LoggedIn",
        Response::Authenticated { .. } => "Authenticated",
        Response::LoggedOut => "LoggedOut",
        Response::ScriptUploaded { .. } => "ScriptUploaded",
        Response::Scripts(_) => "Scripts",
        Response::ScriptAssigned { .. } => "ScriptAssigned",
        Response::ShipSpawned { .. } => "ShipSpawned",
        Response::Ships(_) => "Ships",
        Response::MoveQueued { .. } => "MoveQueued",
        Response::Logs { .. } => "Logs",
        Response::Error(_) => "Error",
        Response::Replays(_) => "Replays",
        Response::Trace { .. } => "Trace",
        Response::Despawned { .. } => "Despawned",
        Response::Kicked { .. } => "Kicked",
        Response::ShipLimitSet { .. } => "ShipLimitSet",
        Response::Subscribed { .. } => "Subscribed",
        Response::Unsubscribed => "Unsubscribed",
    }
}

/// A new session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    pub token: Token,
    pub expires_in_s: u64,
}

/// Whose session the connection is now bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub user: String,
    pub admin: bool,
}

/// A stored script version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub name: String,
    pub version: u32,
    /// XXH3-128 of the module, hex.
    pub hash: String,
}

/// The script version a ship flies now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub ship: u64,
    pub name: String,
    pub version: u32,
}

/// A ship's recent script output, (tick, text) each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logs {
    pub lines: Vec<(u64, String)>,
    pub faults: Vec<(u64, String)>,
}

/// A per-ship trace: a `astroboids_host::trace::ShipTrace` as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub ship: u64,
    pub from_tick: u64,
    pub to_tick: u64,
    pub json: Vec<u8>,
}

/// A user's sessions revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kicked {
    pub user: String,
    /// Connections closed.
    pub connections: u32,
}

/// The ship limit now in force for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipLimit {
    pub user: String,
    pub max_ships: u32,
}

/// Snapshots follow, as datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Subscribed {
    /// Snapshot positions are within sectors of this many metres.
    pub sector_size: f32,
    pub tick_rate_hz: u32,
    /// Ships sense this many metres (times `nebula_range_factor` inside a nebula).
    pub sensor_range: f32,
    pub nebula_range_factor: f32,
}

/// Defines each call type (fields as in its [`Request`] variant, which it is named after) and
/// its [`Call`] impl: the response pattern that answers it and the answer made from it.
macro_rules! calls {
    ($(
        $(#[$doc:meta])*
        $name:ident $({ $($(#[$field_doc:meta])* $field:ident: $ty:ty),* $(,)? })?
            -> $answer:ty = $kind:literal { $pattern:pat => $value:expr }
    )*) => {$(
        calls!(@type $(#[$doc])* $name $({ $($(#[$field_doc])* $field: $ty),* })?);

        impl Call for $name {
            type Answer = $answer;
            const KIND: &'static str = $kind;

            fn request(self) -> Request {
                let $name $({ $($field),* })? = self;
                Request::$name $({ $($field),* })?
            }

            fn answer(response: Response) -> Result<$answer, CallError> {
                match response {
                    $pattern => Ok($value),
                    other => Err(CallError::from_response(Self::KIND, other)),
                }
            }
        }
    )*};
    (@type $(#[$doc:meta])* $name:ident { $($(#[$field_doc:meta])* $field:ident: $ty:ty),* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $($(#[$field_doc])* pub $field: $ty,)*
        }
    };
    (@type $(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name;
    };
}

calls! {
    /// Creates an account (log in afterwards).
    Register { user: String, password: String } -> () = "register" {
        Response::Registered => ()
    }

    /// A new session token for `user`.
    Login { user: String, password: String } -> LoggedIn = "login" {
        Response::LoggedIn { token, expires_in_s } => LoggedIn { token, expires_in_s }
    }

    /// Binds the connection to an existing session.
    Authenticate { token: Token } -> Authenticated = "authenticate" {
        Response::Authenticated { user, admin } => Authenticated { user, admin }
    }

    /// Revokes the connection's session token.
    Logout -> () = "logout" {
        Response::LoggedOut => ()
    }

    /// Validates and stores a script module under `name` (a new version each upload).
    UploadScript { name: String, wasm: Vec<u8> } -> Uploaded = "upload_script" {
        Response::ScriptUploaded { name, version, hash } => Uploaded { name, version, hash }
    }

    /// The caller's scripts, latest version of each.
    ListScripts -> Vec<ScriptListing> = "list_scripts" {
        Response::Scripts(scripts) => scripts
    }

    /// Gives one of the caller's ships the latest version of the caller's script `name`.
    AssignScript { ship: u64, name: String } -> Assigned = "assign_script" {
        Response::ScriptAssigned { ship, name, version } => Assigned { ship, name, version }
    }

    /// A new ship for the caller; answers its id.
    SpawnShip -> u64 = "spawn_ship" {
        Response::ShipSpawned { ship } => ship
    }

    /// The caller's ships.
    ShipStatus {
        /// One ship, or (`None`) all of them.
        ship: Option<u64>,
    } -> Vec<ShipStatusReport> = "ship_status" {
        Response::Ships(ships) => ships
    }

    /// A manual command, queued for the next tick; answers the tick it applies at.
    MoveShip { ship: u64, command: MoveCommand } -> u64 = "move_ship" {
        Response::MoveQueued { tick } => tick
    }

    /// Recent log lines and faults of one of the caller's ships.
    ShipLogs { ship: u64 } -> Logs = "ship_logs" {
        Response::Logs { lines, faults } => Logs { lines, faults }
    }

    /// The finished live recordings.
    ListReplays -> Vec<ReplayListing> = "list_replays" {
        Response::Replays(replays) => replays
    }

    /// A per-ship trace of one of the caller's ships, cut from a finished live recording.
    DownloadTrace { ship: u64, from_tick: u64, to_tick: u64 } -> Trace = "download_trace" {
        Response::Trace { ship, from_tick, to_tick, json } => Trace { ship, from_tick, to_tick, json }
    }

    /// Admin: a ship for `owner`, past the per-account cap; answers its id.
    AdminSpawn { owner: String } -> u64 = "admin_spawn" {
        Response::ShipSpawned { ship } => ship
    }

    /// Admin: removes a ship (destroyed at the next tick); answers its id.
    AdminDespawn { ship: u64 } -> u64 = "admin_despawn" {
        Response::Despawned { ship } => ship
    }

    /// Admin: revokes every session of `user` and closes their connections.
    AdminKick { user: String } -> Kicked = "admin_kick" {
        Response::Kicked { user, connections } => Kicked { user, connections }
    }

    /// Admin: the ships `user` may own.
    AdminSetShipLimit {
        user: String,
        /// `None`: back to the server's default.
        max_ships: Option<u32>,
    } -> ShipLimit = "admin_set_ship_limit" {
        Response::ShipLimitSet { user, max_ships } => ShipLimit { user, max_ships }
    }

    /// Snapshots (datagrams of at most `max_datagram_bytes`) and the caller's ships' events.
    /// A client that keeps a live view subscribes through its connection, which knows the
    /// datagram size and subscribes again after a reconnect; [`Call::answer`] still types
    /// the response.
    Subscribe { max_datagram_bytes: u32 } -> Subscribed = "subscribe" {
        Response::Subscribed { sector_size, tick_rate_hz, sensor_range, nebula_range_factor } => Subscribed { sector_size, tick_rate_hz, sensor_range, nebula_range_factor }
    }

    /// No more snapshots or events.
    Unsubscribe -> () = "unsubscribe" {
        Response::Unsubscribed => ()
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use super::*;

    fn report(ship: u64) -> ShipStatusReport {
        ShipStatusReport {
            ship,
            tick: 12,
            sector: (1, -2),
            local: (3.0, 4.0),
            velocity: (0.5, -0.5),
            heading: 1.25,
            hull: 90.0,
            energy: 70.0,
            cargo: 3,
            flown_by: "script miner v2".into(),
            script_fuel_used_last: 1234,
            script_faults_total: 1,
        }
    }

    /// One response of every variant but `Error`, with content that tells them apart.
    fn every_answer() -> Vec<Response> {
        vec![
            Response::Registered,
            Response::LoggedIn {
                token: Token("t0k3n".into()),
                expires_in_s: 86_400,
            },
            Response::Authenticated {
                user: "ada".into(),
                admin: true,
            },
            Response::LoggedOut,
            Response::ScriptUploaded {
                name: "miner".into(),
                version: 3,
                hash: "abc123".into(),
            },
            Response::Scripts(vec![ScriptListing {
                name: "miner".into(),
                version: 3,
                hash: "abc123".into(),
            }]),
            Response::ScriptAssigned {
                ship: 5,
                name: "miner".into(),
                version: 3,
            },
            Response::ShipSpawned { ship: 41 },
            Response::Ships(vec![report(41), report(42)]),
            Response::MoveQueued { tick: 1001 },
            Response::Logs {
                lines: vec![(10, "hello".into())],
                faults: vec![(11, "out of fuel".into())],
            },
            Response::Replays(vec![ReplayListing {
                name: "live-0001".into(),
                first_tick: 100,
                last_tick: 200,
                bytes: 4096,
            }]),
            Response::Trace {
                ship: 5,
                from_tick: 100,
                to_tick: 150,
                json: b"{\"ticks\":[]}".to_vec(),
            },
            Response::Despawned { ship: 9 },
            Response::Kicked {
                user: "bob".into(),
                connections: 2,
            },
            Response::ShipLimitSet {
                user: "bob".into(),
                max_ships: 120,
            },
            Response::Subscribed {
                sector_size: 1000.0,
                tick_rate_hz: 10,
                sensor_range: 300.0,
                nebula_range_factor: 0.5,
            },
            Response::Unsubscribed,
        ]
    }

    /// `call` is sent as `request`, answered by `right` as `expected`; a refusal reaches the
    /// caller with the server's reason intact, and every other answer is a mismatch that names
    /// the request and what came back.
    fn check<C>(call: C, request: Request, right: &Response, expected: C::Answer)
    where
        C: Call + Debug,
        C::Answer: PartialEq + Debug,
    {
        assert_eq!(
            request.kind(),
            C::KIND,
            "{call:?}: KIND is the request's kind"
        );
        assert_eq!(call.request(), request);
        assert_eq!(C::answer(right.clone()), Ok(expected), "{right:?}");

        let reasons = [
            RequestError::NotAuthenticated,
            RequestError::Forbidden("admins only".into()),
            RequestError::Invalid("no ship 99 of yours".into()),
            RequestError::RateLimited("slow down".into()),
            RequestError::Rejected("name in use".into()),
            RequestError::Unavailable("shutting down".into()),
        ];
        for reason in reasons {
            let error = C::answer(Response::Error(reason.clone())).unwrap_err();
            assert_eq!(error.to_string(), reason.to_string());
            assert_eq!(error.refusal(), Some(&reason));
            assert_eq!(error, CallError::Refused(reason));
        }

        let mut mismatches = 0;
        for wrong in every_answer().into_iter().filter(|r| r != right) {
            let name = response_name(&wrong);
            let error = C::answer(wrong).unwrap_err();
            assert_eq!(
                error,
                CallError::Unexpected {
                    request: C::KIND,
                    answer: name.to_string(),
                },
            );
            assert_eq!(error.refusal(), None);
            let message = error.to_string();
            assert!(
                message.contains(C::KIND) && message.contains(name),
                "{message}"
            );
            mismatches += 1;
        }
        assert_eq!(
            mismatches,
            every_answer().len() - 1,
            "{right:?} is an answer"
        );
    }

    fn answer(name: &str) -> Response {
        every_answer()
            .into_iter()
            .find(|r| response_name(r) == name)
            .expect("a sample of every answer")
    }

    #[test]
    fn accounts_and_sessions() {
        let (user, password) = (String::from("ada"), String::from("correct horse"));
        check(
            Register {
                user: user.clone(),
                password: password.clone(),
            },
            Request::Register {
                user: user.clone(),
                password: password.clone(),
            },
            &answer("Registered"),
            (),
        );
        check(
            Login {
                user: user.clone(),
                password: password.clone(),
            },
            Request::Login { user, password },
            &answer("LoggedIn"),
            LoggedIn {
                token: Token("t0k3n".into()),
                expires_in_s: 86_400,
            },
        );
        let token = Token("saved".into());
        check(
            Authenticate {
                token: token.clone(),
            },
            Request::Authenticate { token },
            &answer("Authenticated"),
            Authenticated {
                user: "ada".into(),
                admin: true,
            },
        );
        check(Logout, Request::Logout, &answer("LoggedOut"), ());
    }

    #[test]
    fn scripts() {
        let wasm = b"\0asm\x01\0\0\0".to_vec();
        check(
            UploadScript {
                name: "miner".into(),
                wasm: wasm.clone(),
            },
            Request::UploadScript {
                name: "miner".into(),
                wasm,
            },
            &answer("ScriptUploaded"),
            Uploaded {
                name: "miner".into(),
                version: 3,
                hash: "abc123".into(),
            },
        );
        check(
            ListScripts,
            Request::ListScripts,
            &answer("Scripts"),
            vec![ScriptListing {
                name: "miner".into(),
                version: 3,
                hash: "abc123".into(),
            }],
        );
        check(
            AssignScript {
                ship: 5,
                name: "miner".into(),
            },
            Request::AssignScript {
                ship: 5,
                name: "miner".into(),
            },
            &answer("ScriptAssigned"),
            Assigned {
                ship: 5,
                name: "miner".into(),
                version: 3,
            },
        );
    }

    #[test]
    fn ships() {
        check(SpawnShip, Request::SpawnShip, &answer("ShipSpawned"), 41);
        for ship in [None, Some(41)] {
            check(
                ShipStatus { ship },
                Request::ShipStatus { ship },
                &answer("Ships"),
                vec![report(41), report(42)],
            );
        }
        let command = MoveCommand {
            thrust: 0.5,
            turn: -0.25,
            mine: true,
            stop: false,
        };
        check(
            MoveShip { ship: 41, command },
            Request::MoveShip { ship: 41, command },
            &answer("MoveQueued"),
            1001,
        );
        check(
            ShipLogs { ship: 41 },
            Request::ShipLogs { ship: 41 },
            &answer("Logs"),
            Logs {
                lines: vec![(10, "hello".into())],
                faults: vec![(11, "out of fuel".into())],
            },
        );
    }

    #[test]
    fn replays() {
        check(
            ListReplays,
            Request::ListReplays,
            &answer("Replays"),
            vec![ReplayListing {
                name: "live-0001".into(),
                first_tick: 100,
                last_tick: 200,
                bytes: 4096,
            }],
        );
        check(
            DownloadTrace {
                ship: 5,
                from_tick: 100,
                to_tick: 150,
            },
            Request::DownloadTrace {
                ship: 5,
                from_tick: 100,
                to_tick: 150,
            },
            &answer("Trace"),
            Trace {
                ship: 5,
                from_tick: 100,
                to_tick: 150,
                json: b"{\"ticks\":[]}".to_vec(),
            },
        );
    }

    #[test]
    fn admin() {
        check(
            AdminSpawn {
                owner: "bob".into(),
            },
            Request::AdminSpawn {
                owner: "bob".into(),
            },
            &answer("ShipSpawned"),
            41,
        );
        check(
            AdminDespawn { ship: 9 },
            Request::AdminDespawn { ship: 9 },
            &answer("Despawned"),
            9,
        );
        check(
            AdminKick { user: "bob".into() },
            Request::AdminKick { user: "bob".into() },
            &answer("Kicked"),
            Kicked {
                user: "bob".into(),
                connections: 2,
            },
        );
        for max_ships in [None, Some(120)] {
            check(
                AdminSetShipLimit {
                    user: "bob".into(),
                    max_ships,
                },
                Request::AdminSetShipLimit {
                    user: "bob".into(),
                    max_ships,
                },
                &answer("ShipLimitSet"),
                ShipLimit {
                    user: "bob".into(),
                    max_ships: 120,
                },
            );
        }
    }

    #[test]
    fn live() {
        check(
            Subscribe {
                max_datagram_bytes: 1200,
            },
            Request::Subscribe {
                max_datagram_bytes: 1200,
            },
            &answer("Subscribed"),
            Subscribed {
                sector_size: 1000.0,
                tick_rate_hz: 10,
                sensor_range: 300.0,
                nebula_range_factor: 0.5,
            },
        );
        check(
            Unsubscribe,
            Request::Unsubscribe,
            &answer("Unsubscribed"),
            (),
        );
    }

    #[test]
    fn a_mismatch_names_the_request_and_the_answer_but_not_its_content() {
        let error = Logout::answer(answer("LoggedIn")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the server answered a logout request with LoggedIn, which does not answer it \
             (a broken or foreign server)"
        );
        assert!(!error.to_string().contains("t0k3n"), "{error}");
    }
}
