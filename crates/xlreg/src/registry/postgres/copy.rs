//! `xlreg store copy`: move a registry's clusters, members and known IDs
//! from its SQLite store into PostgreSQL, in one transaction, verified by
//! counts. The destination must hold no clusters, members or member IDs
//! yet (copying twice would merge two histories).

use super::{Failure, PostgresBackend};
use crate::registry::backend::BackendError;
use crate::registry::rules::{Change, IdOwner, Registry};

/// What was copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyCounts {
    /// IDs owned by members.
    pub member_ids: u64,
    /// Clusters.
    pub clusters: u64,
    /// Cluster members.
    pub members: u64,
}

impl std::fmt::Display for CopyCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} clusters, {} members, {} member IDs",
            self.clusters, self.members, self.member_ids
        )
    }
}

/// Why a copy did not happen; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The destination already holds data.
    #[error("destination {url} is not empty ({found}); copy into a fresh database")]
    NotEmpty {
        /// Redacted URL.
        url: String,
        /// What it holds.
        found: CopyCounts,
    },
    /// The counts after the copy differ from the source's.
    #[error("verification failed: source has {want}, destination has {got}")]
    Mismatch {
        /// Source counts.
        want: CopyCounts,
        /// Destination counts.
        got: CopyCounts,
    },
    /// The database failed.
    #[error("{0}")]
    Store(String),
}

impl From<BackendError> for CopyError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Storage(s) => CopyError::Store(format!("{s}: {}", s.cause)),
            other => CopyError::Store(other.to_string()),
        }
    }
}

/// Counts of a loaded registry.
pub fn counts_of(reg: &Registry) -> CopyCounts {
    CopyCounts {
        member_ids: reg
            .ids()
            .filter(|(_, o)| matches!(o, IdOwner::Member(_)))
            .count() as u64,
        clusters: reg.clusters().count() as u64,
        members: reg.clusters().map(|c| c.len() as u64).sum(),
    }
}

/// Copy `src` (a registry loaded from SQLite) into `dst`, then verify.
pub async fn copy_registry(src: &Registry, dst: &PostgresBackend) -> Result<CopyCounts, CopyError> {
    let want = counts_of(src);
    let (member_ids, clusters, members) = dst.counts().await?;
    let found = CopyCounts {
        member_ids,
        clusters,
        members,
    };
    if found != CopyCounts::default() {
        return Err(CopyError::NotEmpty {
            url: dst.url().to_string(),
            found,
        });
    }
    let mut changes = Vec::new();
    for (id, owner) in src.ids() {
        if let IdOwner::Member(_) = owner {
            changes.push(Change::NewId {
                id: *id,
                owner: *owner,
            });
        }
    }
    for c in src.clusters() {
        changes.push(Change::NewId {
            id: c.id,
            owner: IdOwner::Cluster,
        });
        changes.push(Change::NewCluster {
            id: c.id,
            name: c.name.clone(),
            attrs: c.attrs,
            max_size: c.max_size,
            ep_count: c.ep_count,
            ttl_ms: c.ttl_ms,
            created_ms: c.created_ms,
            last_active_ms: c.last_active_ms,
            version: c.version,
            owner: c.owner,
        });
        for (index, m) in c.members() {
            changes.push(Change::NewMember {
                cluster: c.id,
                index,
                record: m.clone(),
            });
        }
        for entry in c.history() {
            changes.push(Change::Logged {
                cluster: c.id,
                entry: entry.clone(),
            });
        }
    }
    let write = async {
        let client = dst.inner.client().await?;
        client.batch_execute("BEGIN").await?;
        let r = super::write::commit_changes(&client, &changes).await;
        if r.is_err() {
            let _ = client.batch_execute("ROLLBACK").await;
        }
        r
    };
    write
        .await
        .map_err(|f: Failure| CopyError::Store(format!("copy not applied: {}", f.text())))?;
    let (member_ids, clusters, members) = dst.counts().await?;
    let got = CopyCounts {
        member_ids,
        clusters,
        members,
    };
    if got != want {
        return Err(CopyError::Mismatch { want, got });
    }
    Ok(got)
}
