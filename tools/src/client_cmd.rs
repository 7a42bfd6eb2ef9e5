//! `astroboids client ...`: a player's commands against a server.
//!
//! The server's address, its pinned certificate fingerprint, the user name and the session
//! token are kept in `client.toml` in the config directory (owner-only permissions), written
//! by `register`/`login` and read by every other command. The address may be several,
//! separated by commas (the gateways of a cluster): the client uses the first that answers
//! and goes on through the others when it fails.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use astroboids_net::calls::{self, Call, CallError};
use astroboids_net::client::{Client, ClientError};
use astroboids_net::messages::{MoveCommand, RequestError, Token};
use astroboids_net::quic::Fingerprint;
use astroboids_net::text::escape_control;
use astroboids_play::window::OpenMode;

use crate::cli::{ClientArgs, ClientCommand, CredentialsArgs, ServerArgs, SyncArgs};
use crate::script_cmd::load_script_argument;

const CONFIG_FILE: &str = "client.toml";
const CLIENT_NAME: &str = concat!("astroboids-client ", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientConfig {
    /// One address, or several separated by commas (as `--server` takes them).
    server: Option<String>,
    fingerprint: Option<String>,
    user: Option<String>,
    token: Option<String>,
}

struct ConfigFile {
    path: PathBuf,
    config: ClientConfig,
}

impl ConfigFile {
    fn open(dir: Option<&Path>) -> Result<Self> {
        let dir = match dir {
            Some(dir) => dir.to_path_buf(),
            None => directories::ProjectDirs::from("", "", "astroboids")
                .context(
                    "no home directory to keep the client's settings in: pass --config-dir DIR",
                )?
                .config_dir()
                .to_path_buf(),
        };
        let path = dir.join(CONFIG_FILE);
        let config = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).with_context(|| {
                format!("{} is damaged (delete it and log in again)", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ClientConfig::default(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(Self { path, config })
    }

    /// Writes the settings readable by the owner only (the token is a credential).
    fn save(&self) -> Result<()> {
        let dir = self.path.parent().expect("a file in a directory");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let text = toml::to_string(&self.config).expect("plain data");
        let tmp = self.path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        use std::io::Write;
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// `--server`/`--fingerprint` when given (remembered), else the saved ones.
    fn server(&mut self, args: &ServerArgs) -> Result<(Vec<SocketAddr>, Fingerprint)> {
        if !args.server.is_empty() {
            self.config.server = Some(join_addrs(&args.server));
        }
        if let Some(fingerprint) = &args.fingerprint {
            self.config.fingerprint = Some(fingerprint.clone());
        }
        let server = self.config.server.as_deref().context(
            "which server? pass --server ADDR --fingerprint SHA256 (as `astroboids serve` prints them)",
        )?;
        let servers = parse_addrs(server).with_context(|| {
            format!(
                "{}: the saved server {server:?} is not ADDR[,ADDR...] (pass --server again)",
                self.path.display()
            )
        })?;
        let fingerprint = self
            .config
            .fingerprint
            .as_deref()
            .context("pass --fingerprint SHA256 (as `astroboids serve` prints it): the client trusts only that certificate")?
            .parse::<Fingerprint>()
            .map_err(|e| anyhow::anyhow!("--fingerprint: {e}"))?;
        Ok((servers, fingerprint))
    }
}

/// Addresses as `--server` takes them: separated by commas.
fn join_addrs(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The addresses of `join_addrs` (at least one).
fn parse_addrs(text: &str) -> Result<Vec<SocketAddr>> {
    let addrs = text
        .split(',')
        .map(|a| a.trim().parse::<SocketAddr>())
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        bail!("no address");
    }
    Ok(addrs)
}

/// `astroboids watch`: the terminal live view with the saved login.
pub fn watch(args: &crate::cli::WatchArgs) -> Result<()> {
    let mut config = ConfigFile::open(args.config_dir.as_deref())?;
    let (servers, fingerprint) = config.server(&ServerArgs::default())?;
    let token = config
        .config
        .token
        .clone()
        .context("not logged in: run `astroboids client login --user NAME` first")?;
    let user = config.config.user.clone().unwrap_or_default();
    astroboids_client::terminal::run(astroboids_client::terminal::WatchTarget {
        servers,
        fingerprint,
        user,
        token: Token(token),
    })
    .context("the terminal failed")
}

/// `astroboids play`: the windowed client with the saved login.
pub fn play(args: &crate::cli::PlayArgs) -> Result<()> {
    if let Some(entities) = args.bench_entities {
        let bench = astroboids_play::window::Bench {
            entities,
            frames: args.bench_frames.max(1),
        };
        return astroboids_play::window::bench(bench, args.width, args.height)
            .map_err(|e| anyhow::anyhow!(e));
    }
    let mut config = ConfigFile::open(args.config_dir.as_deref())?;
    let token = config.config.token.clone();
    let saved = match (token, config.server(&ServerArgs::default())) {
        (Some(token), Ok((servers, fingerprint))) => Some(astroboids_play::net::Target {
            servers,
            fingerprint,
            user: config.config.user.clone().unwrap_or_default(),
            token: Token(token),
        }),
        _ => None,
    };
    let mode = open_mode(args)?;
    let start = match saved {
        Some(target) => astroboids_play::window::Start::Saved(target),
        None if args.screenshot.is_some() && mode == OpenMode::Play => {
            bail!(
                "not logged in: run `astroboids client login --user NAME` first (a screenshot needs a saved login)"
            )
        }
        // The form, filled with what the settings know; a login is kept there, as the
        // command line keeps it.
        None => {
            let form = astroboids_play::login::LoginForm {
                server: config.config.server.clone().unwrap_or_default(),
                fingerprint: config.config.fingerprint.clone().unwrap_or_default(),
                user: config.config.user.clone().unwrap_or_default(),
                ..Default::default()
            };
            let save = Box::new(move |target: &astroboids_play::net::Target| {
                config.config.server = Some(join_addrs(&target.servers));
                config.config.fingerprint = Some(target.fingerprint.to_string());
                config.config.user = Some(target.user.clone());
                config.config.token = Some(target.token.0.clone());
                config.save().map_err(|e| format!("{e:#}"))
            });
            astroboids_play::window::Start::Form { form, save }
        }
    };
    let options = astroboids_play::window::WindowOptions {
        width: args.width,
        height: args.height,
        screenshot: args.screenshot.clone(),
        after_ticks: args.after_ticks,
        mode,
    };
    // The window uploads scripts as `client upload` does: .ts compiled by the SDK first.
    let sdk = args.sdk.clone();
    let load_script: astroboids_play::window::ScriptLoader = std::sync::Arc::new(move |path| {
        crate::script_cmd::load_script_argument(path, &sdk).map_err(|e| format!("{e:#}"))
    });
    astroboids_play::window::run(start, options, load_script).map_err(|e| anyhow::anyhow!(e))
}

/// The mode `play` opens in, with the design view's configuration read here (errors name the
/// file).
fn open_mode(args: &crate::cli::PlayArgs) -> Result<OpenMode> {
    use astroboids_designer::ConfigSource;
    if let Some(file) = &args.replay {
        return Ok(OpenMode::Replay {
            file: Some(file.clone()),
            tick: args.tick,
            ship: args.ship,
        });
    }
    let Some(source) = &args.design else {
        return Ok(OpenMode::Play);
    };
    let config = match (source, source.embedded_text()) {
        (_, Some((text, _))) => Some(text.to_owned()),
        (ConfigSource::File(path), None) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?,
        ),
        (_, None) => None,
    };
    Ok(OpenMode::Design {
        config,
        label: source.label(),
    })
}

pub fn run(args: &ClientArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the network runtime")?;
    let mut config = ConfigFile::open(args.config_dir.as_deref())?;
    runtime.block_on(run_command(&args.command, &mut config))
}

async fn run_command(command: &ClientCommand, config: &mut ConfigFile) -> Result<()> {
    match command {
        ClientCommand::Register(credentials) => {
            let (mut client, password) = connect_with_password(config, credentials).await?;
            call(
                &mut client,
                calls::Register {
                    user: credentials.user.clone(),
                    password: password.clone(),
                },
            )
            .await?;
            println!("registered {}", credentials.user);
            login(&mut client, config, &credentials.user, password).await
        }
        ClientCommand::Login(credentials) => {
            let (mut client, password) = connect_with_password(config, credentials).await?;
            login(&mut client, config, &credentials.user, password).await
        }
        ClientCommand::Logout => {
            let mut client = session(config).await?;
            call(&mut client, calls::Logout).await?;
            config.config.token = None;
            config.save()?;
            println!("logged out");
            Ok(())
        }
        ClientCommand::Upload { file, name, sdk } => {
            let wasm = load_script_argument(file, sdk)?;
            let name = name.clone().unwrap_or_else(|| script_name(file));
            let mut client = session(config).await?;
            upload(&mut client, &name, wasm).await.map(|_| ())
        }
        ClientCommand::Scripts => {
            let mut client = session(config).await?;
            let scripts = call(&mut client, calls::ListScripts).await?;
            if scripts.is_empty() {
                println!("no scripts yet: astroboids client upload FILE");
            }
            for s in scripts {
                println!("{:<24} v{:<4} {}", s.name, s.version, s.hash);
            }
            Ok(())
        }
        ClientCommand::Spawn { for_user } => {
            let mut client = session(config).await?;
            let ship = match for_user {
                Some(owner) => {
                    let owner = owner.clone();
                    call(&mut client, calls::AdminSpawn { owner }).await?
                }
                None => call(&mut client, calls::SpawnShip).await?,
            };
            println!("ship {ship} spawned");
            Ok(())
        }
        ClientCommand::Assign { ship, script } => {
            let mut client = session(config).await?;
            assign(&mut client, *ship, script).await
        }
        ClientCommand::Status { ship, json } => {
            let mut client = session(config).await?;
            let ships = call(&mut client, calls::ShipStatus { ship: *ship }).await?;
            if *json {
                let rows: Vec<serde_json::Value> = ships
                    .iter()
                    .map(|s| {
                        serde_json::json!({
                            "ship": s.ship, "tick": s.tick, "sector": [s.sector.0, s.sector.1],
                            "local": [s.local.0, s.local.1], "velocity": [s.velocity.0, s.velocity.1],
                            "heading": s.heading, "hull": s.hull, "energy": s.energy,
                            "cargo": s.cargo, "flown_by": s.flown_by,
                            "script_fuel_used_last": s.script_fuel_used_last,
                            "script_faults_total": s.script_faults_total,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            if ships.is_empty() {
                println!("no ships yet: astroboids client spawn");
            }
            for s in ships {
                println!(
                    "ship {} tick {}: sector ({}, {}) at ({:.1}, {:.1}) v ({:.1}, {:.1}) heading {:.2} | hull {:.0} energy {:.0} cargo {} | {} (fuel {}, faults {})",
                    s.ship,
                    s.tick,
                    s.sector.0,
                    s.sector.1,
                    s.local.0,
                    s.local.1,
                    s.velocity.0,
                    s.velocity.1,
                    s.heading,
                    s.hull,
                    s.energy,
                    s.cargo,
                    s.flown_by,
                    s.script_fuel_used_last,
                    s.script_faults_total
                );
            }
            Ok(())
        }
        ClientCommand::Logs { ship } => {
            let mut client = session(config).await?;
            let calls::Logs { lines, faults } =
                call(&mut client, calls::ShipLogs { ship: *ship }).await?;
            for (tick, line) in lines {
                println!("tick {tick}: {}", escape_control(&line));
            }
            for (tick, fault) in faults {
                println!("tick {tick}: FAULT {}", escape_control(&fault));
            }
            Ok(())
        }
        ClientCommand::Move {
            ship,
            thrust,
            turn,
            mine,
            stop,
        } => {
            let mut client = session(config).await?;
            let command = MoveCommand {
                thrust: *thrust,
                turn: *turn,
                mine: *mine,
                stop: *stop,
            };
            let ship = *ship;
            let tick = call(&mut client, calls::MoveShip { ship, command }).await?;
            println!("ship {ship}: command queued for tick {tick}");
            Ok(())
        }
        ClientCommand::Sync(args) => sync(config, args).await,
        ClientCommand::Replays => {
            let mut client = session(config).await?;
            let replays = call(&mut client, calls::ListReplays).await?;
            if replays.is_empty() {
                println!("no finished recordings yet");
            }
            for r in replays {
                println!(
                    "ticks {}..={} ({} bytes) {}",
                    r.first_tick, r.last_tick, r.bytes, r.name
                );
            }
            Ok(())
        }
        ClientCommand::Trace {
            ship,
            from,
            to,
            out,
        } => {
            let mut client = session(config).await?;
            let download = calls::DownloadTrace {
                ship: *ship,
                from_tick: *from,
                to_tick: *to,
            };
            let calls::Trace { json, .. } = call(&mut client, download).await?;
            let out = out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("ship-{ship}-{from}-{to}.trace.json")));
            std::fs::write(&out, &json)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "trace of ship {ship}, ticks {from}..={to}: {} ({} bytes); replay it offline with `astroboids replay trace {}`",
                out.display(),
                json.len(),
                out.display()
            );
            Ok(())
        }
        ClientCommand::Despawn { ship } => {
            let mut client = session(config).await?;
            call(&mut client, calls::AdminDespawn { ship: *ship }).await?;
            println!("ship {ship} will be destroyed at the next tick");
            Ok(())
        }
        ClientCommand::ShipLimit { user, ships } => {
            let max_ships = parse_ship_limit(ships)?;
            let mut client = session(config).await?;
            let user = user.clone();
            let calls::ShipLimit { user, max_ships } =
                call(&mut client, calls::AdminSetShipLimit { user, max_ships }).await?;
            println!("{user} may own {max_ships} ships");
            Ok(())
        }
        ClientCommand::Kick { user } => {
            let mut client = session(config).await?;
            let user = user.clone();
            let calls::Kicked { user, connections } =
                call(&mut client, calls::AdminKick { user }).await?;
            println!("{user}: sessions revoked, {connections} connections closed");
            Ok(())
        }
    }
}

/// `N` or `default` (`None`).
pub fn parse_ship_limit(text: &str) -> Result<Option<u32>> {
    if text == "default" {
        return Ok(None);
    }
    text.parse::<u32>().map(Some).map_err(|_| {
        anyhow::anyhow!("ship limit {text:?}: a number of ships (0 or more), or `default`")
    })
}

/// Carries out `request` on `client`, its failure as [`explain`] puts it.
async fn call<C: Call>(client: &mut Client, request: C) -> Result<C::Answer> {
    client.call(request).await.map_err(explain)
}

/// A failed call as the player reads it: a refused session becomes what to do about it; a
/// connection failure stays a `QuicError`, which `sync` looks for to reconnect.
fn explain(error: ClientError) -> anyhow::Error {
    match error {
        ClientError::Call(CallError::Refused(RequestError::NotAuthenticated)) => anyhow::anyhow!(
            "the server does not know this session (expired, revoked or never made): run \
             `astroboids client login --user NAME`"
        ),
        ClientError::Quic(e) => e.into(),
        ClientError::Call(e) => e.into(),
    }
}

async fn connect(config: &mut ConfigFile, args: &ServerArgs) -> Result<Client> {
    let (servers, fingerprint) = config.server(args)?;
    Ok(Client::connect_any(&servers, fingerprint, CLIENT_NAME).await?)
}

async fn connect_with_password(
    config: &mut ConfigFile,
    credentials: &CredentialsArgs,
) -> Result<(Client, String)> {
    let password = match &credentials.password {
        Some(p) => p.clone(),
        None => rpassword::prompt_password(format!("password for {}: ", credentials.user))
            .context("cannot read the password (set ASTROBOIDS_PASSWORD or pass --password)")?,
    };
    let client = connect(config, &credentials.server).await?;
    Ok((client, password))
}

async fn login(
    client: &mut Client,
    config: &mut ConfigFile,
    user: &str,
    password: String,
) -> Result<()> {
    let calls::LoggedIn {
        token,
        expires_in_s,
    } = call(
        client,
        calls::Login {
            user: user.to_string(),
            password,
        },
    )
    .await?;
    config.config.user = Some(user.to_string());
    config.config.token = Some(token.0);
    config.save()?;
    println!(
        "logged in as {user} on {} (session valid {} h; token kept in {})",
        client.server,
        expires_in_s / 3600,
        config.path.display()
    );
    Ok(())
}

/// A connection authenticated with the saved token.
async fn session(config: &mut ConfigFile) -> Result<Client> {
    let token = config
        .config
        .token
        .clone()
        .context("not logged in: run `astroboids client login --user NAME` first")?;
    let mut client = connect(config, &ServerArgs::default()).await?;
    call(
        &mut client,
        calls::Authenticate {
            token: Token(token),
        },
    )
    .await?;
    Ok(client)
}

async fn upload(client: &mut Client, name: &str, wasm: Vec<u8>) -> Result<u32> {
    let bytes = wasm.len();
    let upload = calls::UploadScript {
        name: name.to_string(),
        wasm,
    };
    let calls::Uploaded { version, hash, .. } = call(client, upload).await?;
    println!("uploaded {name} v{version} ({bytes} bytes, {hash})");
    Ok(version)
}

async fn assign(client: &mut Client, ship: u64, script: &str) -> Result<()> {
    let name = script.to_string();
    let calls::Assigned { version, .. } = call(client, calls::AssignScript { ship, name }).await?;
    println!("ship {ship} now flies {script} v{version}");
    Ok(())
}

fn script_name(file: &Path) -> String {
    file.file_stem()
        .map_or("script".into(), |s| s.to_string_lossy().into_owned())
}

/// Which ships a script is assigned to after an upload.
#[derive(Debug, Clone, PartialEq)]
enum Targets {
    AllShips,
    Ships(Vec<u64>),
}

fn parse_assignments(specs: &[String]) -> Result<BTreeMap<String, Targets>> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let (name, ships) = spec
            .split_once('=')
            .with_context(|| format!("--assign {spec:?}: expected NAME=all or NAME=ID,ID,..."))?;
        let targets = if ships == "all" {
            Targets::AllShips
        } else {
            Targets::Ships(
                ships
                    .split(',')
                    .map(|id| {
                        id.trim()
                            .parse::<u64>()
                            .with_context(|| format!("--assign {spec:?}: {id:?} is not a ship id"))
                    })
                    .collect::<Result<_>>()?,
            )
        };
        out.insert(name.to_string(), targets);
    }
    Ok(out)
}

/// The scripts in a sync folder: name -> path (a .ts wins over a .wasm of the same name).
fn sync_sources(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("ts") if !path.to_string_lossy().ends_with(".d.ts") => {
                out.insert(script_name(&path), path);
            }
            Some("wasm") => {
                out.entry(script_name(&path)).or_insert(path);
            }
            _ => {}
        }
    }
    Ok(out)
}

async fn sync(config: &mut ConfigFile, args: &SyncArgs) -> Result<()> {
    let mut assignments = parse_assignments(&args.assign)?;
    let sources = sync_sources(&args.dir)?;
    if sources.is_empty() {
        bail!(
            "{}: no scripts (*.ts or *.wasm) to sync",
            args.dir.display()
        );
    }
    if assignments.is_empty() && sources.len() == 1 {
        let only = sources.keys().next().expect("one").clone();
        assignments.insert(only, Targets::AllShips);
    }
    let mut client = session(config).await?;
    // Content hash of each source as last synced: an unchanged file is not uploaded again.
    let mut synced: BTreeMap<PathBuf, u64> = BTreeMap::new();
    let (changes_tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = changes_tx.send(());
        }
    })
    .context("cannot watch the folder")?;
    if !args.once {
        use notify::Watcher;
        watcher
            .watch(&args.dir, notify::RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch {}", args.dir.display()))?;
        println!("watching {} (Ctrl-C to stop)", args.dir.display());
    }
    loop {
        sync_round(&mut client, config, args, &assignments, &mut synced).await?;
        if args.once {
            return Ok(());
        }
        // Wait for a change, then for the editor to finish writing (changes come in bursts).
        if changes.recv().await.is_none() {
            return Ok(());
        }
        loop {
            tokio::select! {
                more = changes.recv() => if more.is_none() { return Ok(()) },
                _ = tokio::time::sleep(Duration::from_millis(300)) => break,
            }
        }
    }
}

/// Uploads (and assigns) every script whose content changed since the last round; a script
/// that does not compile or is rejected is reported and skipped.
async fn sync_round(
    client: &mut Client,
    config: &mut ConfigFile,
    args: &SyncArgs,
    assignments: &BTreeMap<String, Targets>,
    synced: &mut BTreeMap<PathBuf, u64>,
) -> Result<()> {
    for (name, path) in sync_sources(&args.dir)? {
        let Ok(source) = std::fs::read(&path) else {
            continue; // Deleted or being replaced; the next event brings it back.
        };
        let hash = xxhash_rust::xxh3::xxh3_64(&source);
        if synced.get(&path) == Some(&hash) {
            continue;
        }
        synced.insert(path.clone(), hash);
        let wasm = match load_script_argument(&path, &args.sdk) {
            Ok(wasm) => wasm,
            Err(e) => {
                println!("{name}: not uploaded: {}", crate::error_chain(&e));
                continue;
            }
        };
        let result = async {
            upload(client, &name, wasm).await?;
            let Some(targets) = assignments.get(&name) else {
                return anyhow::Ok(());
            };
            let ships = match targets {
                Targets::Ships(ships) => ships.clone(),
                Targets::AllShips => call(client, calls::ShipStatus { ship: None })
                    .await?
                    .iter()
                    .map(|s| s.ship)
                    .collect(),
            };
            for ship in ships {
                assign(client, ship, &name).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            println!("{name}: {}", crate::error_chain(&e));
            // A lost connection: reconnect for the next round.
            if e.downcast_ref::<astroboids_net::quic::QuicError>()
                .is_some()
            {
                *client = session(config).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use astroboids_net::quic::QuicError;

    use super::*;

    #[test]
    fn the_saved_server_is_one_address_as_before_or_several() {
        let before: ClientConfig =
            toml::from_str("server = \"127.0.0.1:4433\"\nfingerprint = \"ab\"\n").unwrap();
        let one: SocketAddr = "127.0.0.1:4433".parse().unwrap();
        assert_eq!(
            parse_addrs(before.server.as_deref().unwrap()).unwrap(),
            vec![one]
        );
        assert_eq!(
            join_addrs(&[one]),
            "127.0.0.1:4433",
            "a file older clients read"
        );
        let several: Vec<SocketAddr> = vec![
            "127.0.0.1:7777".parse().unwrap(),
            "[::1]:7778".parse().unwrap(),
        ];
        assert_eq!(parse_addrs(&join_addrs(&several)).unwrap(), several);
        assert!(parse_addrs("127.0.0.1:7777,elsewhere").is_err());
    }

    #[test]
    fn a_refused_session_tells_the_player_to_log_in_again() {
        let refused = CallError::Refused(RequestError::NotAuthenticated);
        let message = explain(ClientError::Call(refused)).to_string();
        assert!(message.contains("does not know this session"), "{message}");
        assert!(message.contains("astroboids client login"), "{message}");
    }

    #[test]
    fn other_refusals_show_the_servers_reason_alone() {
        let reason = RequestError::Forbidden("admins only".into());
        let error = explain(ClientError::Call(CallError::Refused(reason)));
        assert_eq!(error.to_string(), "not allowed: admins only");
        assert!(error.downcast_ref::<QuicError>().is_none());
    }

    #[test]
    fn a_connection_failure_stays_one_so_sync_reconnects() {
        let lost = QuicError::Lost("the server closed the stream".into());
        let message = lost.to_string();
        let error = explain(ClientError::Quic(lost));
        assert!(error.downcast_ref::<QuicError>().is_some(), "{error}");
        assert_eq!(error.to_string(), message);
    }

    #[test]
    fn a_foreign_answer_names_the_request() {
        let unexpected = CallError::Unexpected {
            request: "ship_status",
            answer: "Scripts".into(),
        };
        let message = explain(ClientError::Call(unexpected)).to_string();
        assert!(
            message.contains("ship_status") && message.contains("Scripts"),
            "{message}"
        );
    }
}
