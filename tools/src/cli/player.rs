//! Arguments of a player's commands: `client ...` (with `sync`), `watch` and `play`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::SdkArgs;

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Where `astroboids client login` kept the server and your session.
    #[arg(long, env = "ASTROBOIDS_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlayArgs {
    /// Where `astroboids client login` kept the server and your session.
    #[arg(long, env = "ASTROBOIDS_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// The window's size in points.
    #[arg(long, default_value_t = 1280.0)]
    pub width: f32,
    #[arg(long, default_value_t = 800.0)]
    pub height: f32,
    /// Write what the window shows as a PNG and exit (with one `drawn:` line per thing drawn,
    /// in pixels).
    #[arg(long, value_name = "FILE.png")]
    pub screenshot: Option<PathBuf>,
    /// With --screenshot: ticks of live snapshots to wait for first.
    #[arg(long, default_value_t = 10, requires = "screenshot", conflicts_with_all = ["replay", "design"])]
    pub after_ticks: u64,
    /// Open in the replay view with this replay (.abreplay) or trace (.json) file.
    #[arg(long, value_name = "FILE", conflicts_with = "design")]
    pub replay: Option<PathBuf>,
    /// With --replay: the tick to show.
    #[arg(long, requires = "replay")]
    pub tick: Option<u64>,
    /// With --replay: the ship to look into.
    #[arg(long, requires = "replay")]
    pub ship: Option<u64>,
    /// Open in the design view: `default`, `preset:NAME` or a universe config file.
    #[arg(long, value_name = "CONFIG", num_args = 0..=1, default_missing_value = "default")]
    pub design: Option<astroboids_designer::ConfigSource>,
    #[command(flatten)]
    pub sdk: SdkArgs,
    /// Measure frame times instead of playing: no server, a synthetic world of this many ships
    /// and asteroids in sight; prints the figures and exits.
    #[arg(long, value_name = "N", conflicts_with = "screenshot")]
    pub bench_entities: Option<usize>,
    /// Frames a benchmark times.
    #[arg(long, default_value_t = 300, requires = "bench_entities")]
    pub bench_frames: usize,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Where the client keeps the server address, its fingerprint and your session token
    /// (default: the user's config directory, e.g. ~/.config/astroboids).
    #[arg(long, env = "ASTROBOIDS_CONFIG_DIR", global = true)]
    pub config_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: ClientCommand,
}

#[derive(Debug, Default, Args)]
pub struct ServerArgs {
    /// The server's address, or several separated by commas (the gateways of a cluster:
    /// the first that answers is used, the others when it fails); saved for later commands.
    #[arg(long, value_delimiter = ',', value_name = "ADDR[,ADDR...]")]
    pub server: Vec<std::net::SocketAddr>,
    /// The server certificate's SHA-256 fingerprint, as `astroboids serve` prints it (saved).
    #[arg(long)]
    pub fingerprint: Option<String>,
}

#[derive(Debug, Args)]
pub struct CredentialsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long)]
    pub user: String,
    /// The password (default: $ASTROBOIDS_PASSWORD, else asked for without echo).
    #[arg(long, env = "ASTROBOIDS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create an account (and log in).
    Register(CredentialsArgs),
    /// Log in; the session token is kept in the config directory.
    Login(CredentialsArgs),
    /// End the session.
    Logout,
    /// Upload a script (.ts compiled with the SDK first, or .wasm); NAME defaults to the
    /// file's stem.
    Upload {
        file: PathBuf,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        sdk: SdkArgs,
    },
    /// Your scripts (latest version of each).
    Scripts,
    /// A new ship in your home sector (an admin may spawn one for another user).
    Spawn {
        #[arg(long = "for")]
        for_user: Option<String>,
    },
    /// Give a ship the latest version of one of your scripts.
    Assign {
        #[arg(long)]
        ship: u64,
        #[arg(long)]
        script: String,
    },
    /// Your ships: position, hull, energy, cargo, what flies them.
    Status {
        #[arg(long)]
        ship: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// A ship's recent script log lines and faults.
    Logs {
        #[arg(long)]
        ship: u64,
    },
    /// A manual command for a ship's next tick.
    Move {
        #[arg(long)]
        ship: u64,
        /// -1..1
        #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
        thrust: f32,
        /// -1..1
        #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
        turn: f32,
        #[arg(long)]
        mine: bool,
        #[arg(long)]
        stop: bool,
    },
    /// Watch a folder: compile .ts files, upload them and assign them when they change.
    Sync(SyncArgs),
    /// Finished recordings of the live world (tick ranges for `trace`).
    Replays,
    /// Download a per-ship trace of one of your ships (see `astroboids replay trace`).
    Trace {
        #[arg(long)]
        ship: u64,
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: u64,
        /// Where to write it (default: ship-ID-FROM-TO.trace.json).
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Admin: destroy a ship.
    Despawn {
        #[arg(long)]
        ship: u64,
    },
    /// Admin: revoke a user's sessions and close their connections.
    Kick {
        #[arg(long)]
        user: String,
    },
    /// Admin: the ships a user may own (a number, or `default` for the server's).
    ShipLimit {
        #[arg(long)]
        user: String,
        ships: String,
    },
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The folder of scripts (*.ts, *.wasm; a script's name is its file's stem).
    pub dir: PathBuf,
    /// Assign a script on each upload: NAME=all (every ship of yours) or NAME=ID,ID,...
    /// (default: with a single script in the folder, it flies all your ships).
    #[arg(long = "assign", value_name = "NAME=SHIPS")]
    pub assign: Vec<String>,
    /// Sync once and exit (no watching).
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub sdk: SdkArgs,
}
