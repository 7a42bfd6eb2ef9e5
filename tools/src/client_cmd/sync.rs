//! `astroboids client sync`: a folder of scripts uploaded whenever they change, and assigned
//! to ships as the command line says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use astroboids_net::calls::{self};
use astroboids_net::client::Client;

use crate::cli::SyncArgs;
use crate::script_cmd::load_script_argument;

use super::config::ConfigFile;
use super::session::{assign, call, session, upload};

pub(super) fn script_name(file: &Path) -> String {
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

pub(super) async fn sync(config: &mut ConfigFile, args: &SyncArgs) -> Result<()> {
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
