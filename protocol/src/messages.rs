//! What client and server say to each other (postcard-encoded, one message per frame).
//!
//! A connection starts with [`ClientMessage::Hello`] / [`ServerMessage::Welcome`] (version
//! negotiation), then carries requests, each with a client-chosen id, answered by a response
//! with the same id. Ids let a client that lost its connection re-send what was not answered:
//! the server answers a repeated id from its cache instead of acting twice.
//!
//! New variants go at the end of each enum: the variant index is part of the encoding.

use serde::{Deserialize, Serialize};

/// TLS application protocol: a client speaking anything else is refused in the handshake.
pub const ALPN: &[u8] = b"astroboids/1";

/// The message set this build speaks. A server answers a client with another version with
/// [`ServerMessage::Refused`], naming both. Bumped when a message's encoding changes; 2: the
/// greeting names the client instance (session resumption).
pub const PROTOCOL_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// The first message of a protocol version 1 client. Kept so that such a client is told
    /// which version this server speaks instead of failing to decode.
    Hello {
        protocol_version: u32,
        /// Free text for logs ("astroboids-client 0.1.0").
        client: String,
    },
    Request {
        id: u64,
        request: Request,
    },
    /// First message on a connection (protocol version 2 on).
    Greeting {
        protocol_version: u32,
        /// Free text for logs ("astroboids-client 0.1.0").
        client: String,
        /// Names this client across its connections (random, chosen once per client run):
        /// after a reconnect and re-authentication, a request re-sent under its original id is
        /// answered from the account session's cache for this instance, never carried out
        /// twice. 0: no resumption.
        instance: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMessage {
    Welcome {
        protocol_version: u32,
        server: String,
        tick_rate_hz: u32,
    },
    /// The connection cannot go on (version mismatch, too many errors, kicked); the server
    /// closes it after this.
    Refused {
        reason: String,
    },
    Response {
        id: u64,
        response: Response,
    },
    /// What happened to a subscribed client's ships in a tick (their script log lines and
    /// faults), on the reliable stream; snapshots of what they see come as datagrams.
    Events(TickEvents),
}

/// One tick's events for a subscribed client.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TickEvents {
    pub tick: u64,
    /// (ship, line) of the client's ships' scripts.
    pub logs: Vec<(u64, String)>,
    /// (ship, what went wrong).
    pub faults: Vec<(u64, String)>,
    /// Events of earlier ticks dropped because the client did not keep up.
    pub dropped_before: u32,
}

/// A session token: opaque to the client, presented with [`Request::Authenticate`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Token(pub String);

/// Manual ship command, as in the simulation (values are clamped by the server).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MoveCommand {
    pub thrust: f32,
    pub turn: f32,
    pub mine: bool,
    pub stop: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    Register {
        user: String,
        password: String,
    },
    Login {
        user: String,
        password: String,
    },
    /// Binds the connection to an existing session.
    Authenticate {
        token: Token,
    },
    /// Revokes the connection's session token.
    Logout,
    /// Validates and stores a script module under `name` (a new version each upload).
    UploadScript {
        name: String,
        wasm: Vec<u8>,
    },
    ListScripts,
    /// Gives one of the caller's ships the latest version of the caller's script `name`.
    AssignScript {
        ship: u64,
        name: String,
    },
    SpawnShip,
    /// The caller's ships (all of them, or one).
    ShipStatus {
        ship: Option<u64>,
    },
    /// Queued as an input for the next tick (and logged for replay).
    MoveShip {
        ship: u64,
        command: MoveCommand,
    },
    /// Recent log lines and faults of one of the caller's ships.
    ShipLogs {
        ship: u64,
    },
    /// The finished live recordings: their tick ranges, for choosing what to trace.
    ListReplays,
    /// A per-ship trace (sensor blocks in, commands out, per tick) of one of the caller's
    /// ships, cut from a finished live recording; the whole range must lie in one recording.
    DownloadTrace {
        ship: u64,
        from_tick: u64,
        to_tick: u64,
    },
    /// Admin: a ship for `owner`, past the per-account cap.
    AdminSpawn {
        owner: String,
    },
    /// Admin: removes a ship (destroyed at the next tick).
    AdminDespawn {
        ship: u64,
    },
    /// Admin: revokes every session of `user` and closes their connections.
    AdminKick {
        user: String,
    },
    /// Admin: the ships `user` may own (`None`: back to the server's default).
    AdminSetShipLimit {
        user: String,
        max_ships: Option<u32>,
    },
    /// Start receiving snapshots of what your ships see (datagrams of at most
    /// `max_datagram_bytes`) and your ships' events (on the stream).
    Subscribe {
        max_datagram_bytes: u32,
    },
    Unsubscribe,
}

impl Request {
    /// Whether carrying it out may change what is stored (the world, accounts, sessions,
    /// scripts). The answer to such a request is released only once the change is durable.
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            Self::Authenticate { .. }
                | Self::ListScripts
                | Self::ShipStatus { .. }
                | Self::ShipLogs { .. }
                | Self::ListReplays
                | Self::DownloadTrace { .. }
                | Self::Subscribe { .. }
                | Self::Unsubscribe
        )
    }

    /// A short name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Register { .. } => "register",
            Self::Login { .. } => "login",
            Self::Authenticate { .. } => "authenticate",
            Self::Logout => "logout",
            Self::UploadScript { .. } => "upload_script",
            Self::ListScripts => "list_scripts",
            Self::AssignScript { .. } => "assign_script",
            Self::SpawnShip => "spawn_ship",
            Self::ShipStatus { .. } => "ship_status",
            Self::MoveShip { .. } => "move_ship",
            Self::ShipLogs { .. } => "ship_logs",
            Self::ListReplays => "list_replays",
            Self::DownloadTrace { .. } => "download_trace",
            Self::AdminSpawn { .. } => "admin_spawn",
            Self::AdminDespawn { .. } => "admin_despawn",
            Self::AdminKick { .. } => "admin_kick",
            Self::AdminSetShipLimit { .. } => "admin_set_ship_limit",
            Self::Subscribe { .. } => "subscribe",
            Self::Unsubscribe => "unsubscribe",
        }
    }
}

/// A finished recording of the live world.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayListing {
    pub name: String,
    /// Ticks a trace may be cut from (the recording's first tick is its starting state).
    pub first_tick: u64,
    pub last_tick: u64,
    pub bytes: u64,
}

/// A script version as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptListing {
    pub name: String,
    pub version: u32,
    /// XXH3-128 of the module, hex.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipStatusReport {
    pub ship: u64,
    pub tick: u64,
    pub sector: (i32, i32),
    pub local: (f32, f32),
    pub velocity: (f32, f32),
    pub heading: f32,
    pub hull: f32,
    pub energy: f32,
    pub cargo: u32,
    /// "autopilot", "script NAME vN", or "manual".
    pub flown_by: String,
    pub script_fuel_used_last: u64,
    pub script_faults_total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Registered,
    LoggedIn {
        token: Token,
        expires_in_s: u64,
    },
    Authenticated {
        user: String,
        admin: bool,
    },
    LoggedOut,
    ScriptUploaded {
        name: String,
        version: u32,
        hash: String,
    },
    Scripts(Vec<ScriptListing>),
    ScriptAssigned {
        ship: u64,
        name: String,
        version: u32,
    },
    ShipSpawned {
        ship: u64,
    },
    Ships(Vec<ShipStatusReport>),
    /// Applies at `tick`.
    MoveQueued {
        tick: u64,
    },
    Logs {
        lines: Vec<(u64, String)>,
        faults: Vec<(u64, String)>,
    },
    Error(RequestError),
    Replays(Vec<ReplayListing>),
    /// A `astroboids_host::trace::ShipTrace` as JSON (what `astroboids replay export` writes).
    Trace {
        ship: u64,
        from_tick: u64,
        to_tick: u64,
        json: Vec<u8>,
    },
    Despawned {
        ship: u64,
    },
    Kicked {
        user: String,
        connections: u32,
    },
    /// The limit now in force for `user`.
    ShipLimitSet {
        user: String,
        max_ships: u32,
    },
    /// Snapshots follow, as datagrams (see `snapshot`); positions are within sectors of
    /// `sector_size` metres. Ships sense `sensor_range` metres, times `nebula_range_factor`
    /// inside a nebula.
    Subscribed {
        sector_size: f32,
        tick_rate_hz: u32,
        sensor_range: f32,
        nebula_range_factor: f32,
    },
    Unsubscribed,
}

/// Why a request was refused. The message names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RequestError {
    #[error("log in first")]
    NotAuthenticated,
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("too many requests: {0}")]
    RateLimited(String),
    #[error("{0}")]
    Rejected(String),
    #[error("the server cannot answer now: {0}")]
    Unavailable(String),
}
