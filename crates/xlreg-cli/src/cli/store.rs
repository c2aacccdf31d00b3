//! `xlreg store …`: where a registry keeps its state. `store copy` moves a
//! registry from its SQLite file (DATA_DIR/…) into PostgreSQL, so a group
//! of servers can take over an existing registry's clusters.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::cli::BadInput;
use xlreg::registry::postgres::copy_registry;
use xlreg::registry::postgres::{DbUrl, PoolOptions, PostgresBackend};
use xlreg::registry::{Registry, SqliteStore, Store};
use xlreg::server::DirLock;
use xlreg::server::ServerIdentity;

/// Registry storage tools.
#[derive(Args, Debug)]
pub struct StoreArgs {
    #[command(subcommand)]
    command: StoreCommand,
}

#[derive(Subcommand, Debug)]
enum StoreCommand {
    /// Copy a registry's SQLite store into an empty PostgreSQL database,
    /// verified by counts (stop the server first).
    Copy(CopyArgs),
}

/// `xlreg store copy`.
#[derive(Args, Debug)]
pub struct CopyArgs {
    /// The data dir of the registry to copy (identity and SQLite store).
    #[arg(long, value_name = "DATA_DIR")]
    pub from: PathBuf,
    /// The PostgreSQL database to fill: `postgres://USER:PASSWORD@HOST/DB`
    /// (also XLREG_STORE). Must hold no clusters or members yet.
    #[arg(long, value_name = "URL", env = "XLREG_STORE", hide_env_values = true)]
    pub to: String,
}

/// A `--store`/`--to` value: a PostgreSQL URL, errors naming the flag with
/// the password redacted.
pub fn parse_store_url(raw: &str) -> anyhow::Result<DbUrl> {
    if !(raw.starts_with("postgres://") || raw.starts_with("postgresql://")) {
        return Err(BadInput(format!(
            "--store: expected postgres://USER:PASSWORD@HOST:PORT/DB, got {}",
            xlreg::registry::postgres::redact(raw)
        ))
        .into());
    }
    DbUrl::parse(raw).map_err(|e| BadInput(format!("--store: {e}")).into())
}

/// Run `xlreg store …`.
pub fn run(a: StoreArgs) -> anyhow::Result<()> {
    match a.command {
        StoreCommand::Copy(c) => copy(c),
    }
}

fn copy(a: CopyArgs) -> anyhow::Result<()> {
    let url = parse_store_url(&a.to)?;
    if !ServerIdentity::exists(&a.from) {
        return Err(BadInput(format!(
            "--from {}: no registry identity there (not a data dir)",
            a.from.display()
        ))
        .into());
    }
    // A running server holds this lock: copying under it could miss joins.
    let _lock = DirLock::acquire(&a.from)?;
    let identity = ServerIdentity::load(&a.from)?;
    let db = xlreg::registry::db_path(&a.from);
    if !db.exists() {
        return Err(BadInput(format!("--from: {} does not exist", db.display())).into());
    }
    let mut store = SqliteStore::open(&db)?;
    let changes = store.load()?;
    let reg = Registry::restore(identity.id, changes)
        .with_context(|| format!("{}: stored data refused", db.display()))?;
    let rt = crate::cli::runtime()?;
    let counts = rt.block_on(async {
        let dst = PostgresBackend::connect(
            &url,
            identity.id,
            &PoolOptions::default(),
            Default::default(),
        )
        .await?;
        let n = copy_registry(&reg, &dst).await?;
        anyhow::Ok(n)
    })?;
    println!("copied {counts} from {} to {url}", db.display());
    Ok(())
}
