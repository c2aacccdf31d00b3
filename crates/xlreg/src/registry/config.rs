//! Which store keeps the registry, and the one place a store is opened.
//!
//! Why one place: the server, the CLI (`xlreg serve --store`, `--ephemeral`,
//! `--data-dir`) and tests name a store with a [`StoreConfig`] and open it
//! with [`StoreConfig::open`], which gives every store the same
//! [`Policy`] (TTLs, limits) the same way. Nothing else chooses a store or
//! hands the policy to one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prometheus_client::metrics::histogram::Histogram;

use super::backend::Backend;
use super::rules::Policy;
use super::service::RegistryService;
use super::sqlite::{db_path, SqliteStore};
use super::store::StoreError;
use crate::wire::NodeId;

/// Where the registry's state lives.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// In memory only, gone when the server stops (ephemeral registries).
    Memory,
    /// A SQLite database file (created if missing), served by the
    /// in-process [`RegistryService`] with group commit.
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by several servers
    /// ([`PostgresBackend`](super::postgres::PostgresBackend)).
    #[cfg(feature = "postgres")]
    Postgres {
        /// The database (password redacted in every log line).
        url: Box<super::postgres::DbUrl>,
        /// The connection pool's settings.
        pool: super::postgres::PoolOptions,
    },
}

impl StoreConfig {
    /// SQLite in a server's data directory (`DATA_DIR/registry.db`), or
    /// memory when it has none: the store `xlreg serve` uses without
    /// `--store`.
    pub fn for_data_dir(data_dir: Option<&Path>) -> StoreConfig {
        match data_dir {
            Some(dir) => StoreConfig::Sqlite(db_path(dir)),
            None => StoreConfig::Memory,
        }
    }

    /// Open the store for the registry `own_id`, deciding every request
    /// with `policy`. `commit_seconds`, if given, records the duration of
    /// each commit of the in-process store.
    pub async fn open(
        &self,
        own_id: NodeId,
        policy: Policy,
        commit_seconds: Option<Histogram>,
    ) -> Result<Arc<dyn Backend>, StoreError> {
        let in_process = |svc: Arc<RegistryService>| {
            if let Some(h) = commit_seconds.clone() {
                svc.observe_commits(h);
            }
            svc as Arc<dyn Backend>
        };
        match self {
            StoreConfig::Memory => Ok(in_process(RegistryService::ephemeral(own_id, policy))),
            StoreConfig::Sqlite(path) => {
                let at = path.display().to_string();
                let path = path.clone();
                let svc = tokio::task::spawn_blocking(move || {
                    RegistryService::start(Box::new(SqliteStore::open(&path)?), own_id, policy)
                })
                .await
                .map_err(|e| StoreError::new(at, "cannot open", std::io::Error::other(e)))??;
                Ok(in_process(svc))
            }
            #[cfg(feature = "postgres")]
            StoreConfig::Postgres { url, pool } => {
                let b =
                    super::postgres::PostgresBackend::connect(url, own_id, pool, policy).await?;
                Ok(Arc::new(b))
            }
        }
    }
}
