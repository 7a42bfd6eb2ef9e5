//! `astroboids client ...`: a player's commands against a server.
//!
//! The server's address, its pinned certificate fingerprint, the user name and the session
//! token are kept in `client.toml` in the config directory (owner-only permissions), written
//! by `register`/`login` and read by every other command. The address may be several,
//! separated by commas (the gateways of a cluster): the client uses the first that answers
//! and goes on through the others when it fails.
//!
//! Code map: `config` is the saved login file, `session` connecting, logging in and the calls'
//! errors as the player reads them, `sync` keeping a folder of scripts uploaded.

mod config;
mod session;
mod sync;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use astroboids_net::calls::{self};
use astroboids_net::messages::{MoveCommand, Token};
use astroboids_net::text::escape_control;
use astroboids_play::window::OpenMode;

use crate::cli::{ClientArgs, ClientCommand, ServerArgs};
use crate::script_cmd::load_script_argument;

use config::{ConfigFile, join_addrs};
use session::{assign, call, connect_with_password, login, session, upload};
use sync::{script_name, sync};

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
