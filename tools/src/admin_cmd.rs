//! `astroboids admin ...`: the operator's tools on a data directory, with the server stopped
//! (the store admits one process at a time). A running server is administered with an admin
//! account through `astroboids client` (spawn --for, despawn, kick).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use astroboids_net::quic::Fingerprint;
use astroboids_server::accounts::{AccountRules, Accounts, Role};
use astroboids_server::tls::TLS_DIR;
use astroboids_storage::{StoreLimits, WorldStore};

use crate::cli::{AdminArgs, AdminCommand};

pub fn run(args: &AdminArgs) -> Result<()> {
    if let AdminCommand::Fingerprint = args.command {
        let cert = args.data.join(TLS_DIR).join("cert.der");
        let der = std::fs::read(&cert).with_context(|| {
            format!(
                "cannot read {} (has `astroboids serve --data {}` run yet?)",
                cert.display(),
                args.data.display()
            )
        })?;
        println!("{}", Fingerprint::of(&der));
        return Ok(());
    }
    if let Some(url) = &args.postgres {
        return cluster_accounts(url, &args.command);
    }
    let store = open_store(&args.data)?;
    let accounts = Accounts::new(&store, AccountRules::default());
    match &args.command {
        AdminCommand::Accounts => {
            let list = accounts.list()?;
            if list.is_empty() {
                println!("no accounts");
            }
            for (user, role, created) in list {
                let limit = accounts
                    .ship_limit(&user)?
                    .map_or("default".to_string(), |n| n.to_string());
                println!(
                    "{user:<32} {:<7} ships {limit:<8} created {created} (Unix s)",
                    role_name(role)
                );
            }
        }
        AdminCommand::CreateUser {
            user,
            admin,
            password,
        } => {
            let password = password_for(user, password.as_deref())?;
            let role = if *admin { Role::Admin } else { Role::Player };
            accounts.register(user, &password, role, unix_now_s())?;
            println!("created {user} ({})", role_name(role));
        }
        AdminCommand::SetRole { user, role } => {
            let role = match role.as_str() {
                "admin" => Role::Admin,
                "player" => Role::Player,
                other => bail!("role {other:?}: admin or player"),
            };
            accounts.set_role(user, role)?;
            println!("{user} is now {}", role_name(role));
        }
        AdminCommand::Revoke { user } => {
            accounts.role(user)?;
            let revoked = accounts.revoke_all(user)?;
            println!("{user}: {revoked} sessions revoked");
        }
        AdminCommand::ShipLimit { user, ships } => {
            let max_ships = crate::client_cmd::parse_ship_limit(ships)?;
            accounts.set_ship_limit(user, max_ships)?;
            match max_ships {
                Some(n) => println!("{user} may own {n} ships"),
                None => println!("{user} may own the server's default number of ships"),
            }
        }
        AdminCommand::Fingerprint => unreachable!("answered above"),
    }
    // Account changes are durable only once flushed.
    store.flush()?;
    Ok(())
}

/// The account commands on a cluster's store (PostgreSQL), which gateways share: changes
/// take effect at once (sessions are checked against it on every request).
fn cluster_accounts(url: &str, command: &AdminCommand) -> Result<()> {
    use astroboids_pgstore::{PgStore, Role as PgRole, StoreConfig};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = PgStore::connect(StoreConfig::new(url))
            .await
            .with_context(|| "--postgres: the cluster's store".to_string())?;
        let pg_role = |role: &str| match role {
            "admin" => Ok(PgRole::Admin),
            "player" => Ok(PgRole::Player),
            other => bail!("role {other:?}: admin or player"),
        };
        match command {
            AdminCommand::Accounts => {
                let mut after: Option<String> = None;
                let mut any = false;
                loop {
                    let page = store.accounts(after.as_deref(), 1_000).await?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.name.clone());
                    for a in &page {
                        any = true;
                        let limit = a.max_ships.map_or("default".to_string(), |n| n.to_string());
                        println!(
                            "{:<32} {:<7} ships {limit:<8} created {} (Unix s)",
                            a.name,
                            a.role.as_str(),
                            a.created_unix_s
                        );
                    }
                }
                if !any {
                    println!("no accounts");
                }
            }
            AdminCommand::CreateUser {
                user,
                admin,
                password,
            } => {
                let password = password_for(user, password.as_deref())?;
                let phc = astroboids_server::accounts::hash_password(
                    &AccountRules::default(),
                    &password,
                )?;
                let role = if *admin {
                    PgRole::Admin
                } else {
                    PgRole::Player
                };
                store.create_account(user, &phc, role, unix_now_s()).await?;
                println!("created {user} ({})", role.as_str());
            }
            AdminCommand::SetRole { user, role } => {
                let role = pg_role(role)?;
                store.set_role(user, role).await?;
                println!("{user} is now {}", role.as_str());
            }
            AdminCommand::Revoke { user } => {
                if store.account(user).await?.is_none() {
                    bail!("no user {user:?}");
                }
                let revoked = store.revoke_sessions_of(user).await?;
                println!("{user}: {revoked} sessions revoked");
            }
            AdminCommand::ShipLimit { user, ships } => {
                let max_ships = crate::client_cmd::parse_ship_limit(ships)?;
                store.set_ship_limit(user, max_ships).await?;
                match max_ships {
                    Some(n) => println!("{user} may own {n} ships"),
                    None => println!("{user} may own the gateways' default number of ships"),
                }
            }
            // A cluster's fingerprint is its gateways' identity: `--data IDENTITY_DIR`.
            AdminCommand::Fingerprint => unreachable!("answered from --data above"),
        }
        store.close();
        anyhow::Ok(())
    })
}

/// The new account's password: given ($ASTROBOIDS_PASSWORD or --password), or asked for.
fn password_for(user: &str, given: Option<&str>) -> Result<String> {
    match given {
        Some(p) => Ok(p.to_owned()),
        None => rpassword::prompt_password(format!("password for {user}: "))
            .context("cannot read the password (set ASTROBOIDS_PASSWORD)"),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Player => "player",
    }
}

fn unix_now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The store of an existing world (never creates one).
fn open_store(data: &Path) -> Result<WorldStore> {
    if !data.join("conf").is_file() || !data.join("db").is_file() {
        bail!(
            "{}: no world here (start one with `astroboids serve --data {}`)",
            data.display(),
            data.display()
        );
    }
    WorldStore::open(data, StoreLimits::default()).map_err(|e| {
        let text = e.to_string();
        if text.contains("lock")
            || text.contains("WouldBlock")
            || text.contains("temporarily unavailable")
        {
            anyhow::anyhow!(
                "{}: the data directory is in use, probably by a running `astroboids serve`; \
                 stop it first, or use an admin account with `astroboids client` \
                 (spawn --for, despawn, kick)",
                data.display()
            )
        } else {
            anyhow::Error::new(e)
        }
    })
}
