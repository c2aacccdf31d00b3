//! Changes to rows: the statements that write what the rules decided
//! ([`Change`]s), pipelined with the COMMIT so a transaction costs one
//! round trip for its writes.

use super::failure::Failure;
use crate::registry::rules::{Change, IdOwner, HISTORY_LEN};

pub(super) const INSERT_MEMBER: &str =
    "INSERT INTO xlreg_members(cluster_id, idx, member_id, name, token)
     VALUES ($1, $2, $3, $4, $5)";
pub(super) const UPDATE_MEMBER: &str =
    "UPDATE xlreg_members SET token = $3 WHERE cluster_id = $1 AND idx = $2";

/// One write of a [`Change`]: its statement and parameters.
pub(super) fn change_sql(
    ch: &Change,
) -> (
    &'static str,
    Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>,
) {
    match ch {
        Change::NewId { id, owner } => {
            let (kind, sig): (i16, Option<Vec<u8>>) = match owner {
                IdOwner::Registry => (0, None),
                IdOwner::Cluster => (1, None),
                IdOwner::Member(h) => (2, Some(h.to_vec())),
            };
            (
                "INSERT INTO xlreg_ids(id, kind, sig_sha256) VALUES ($1, $2, $3)",
                vec![
                    Box::new(id.as_bytes().to_vec()),
                    Box::new(kind),
                    Box::new(sig),
                ],
            )
        }
        Change::NewCluster {
            id,
            name,
            attrs,
            max_size,
            ep_count,
            ttl_ms,
            created_ms,
            last_active_ms,
            version,
            owner,
        } => (
            "INSERT INTO xlreg_clusters(id, name, attrs, max_size, ep_count,
                                        ttl_ms, created_ms, last_active_ms, version, owner)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            vec![
                Box::new(id.as_bytes().to_vec()),
                Box::new(name.to_vec()),
                Box::new(*attrs as i64),
                Box::new(*max_size as i32),
                Box::new(*ep_count as i32),
                Box::new(ttl_ms.map(|v| v as i64)),
                Box::new(*created_ms as i64),
                Box::new(*last_active_ms as i64),
                Box::new(*version as i64),
                Box::new(owner.map(|o| o.as_bytes().to_vec())),
            ],
        ),
        // Its members and history go with it (one statement: one row
        // count, the cluster's); its ID stays owned by a cluster.
        Change::DeleteCluster { id } => (
            "WITH gone AS (DELETE FROM xlreg_members WHERE cluster_id = $1),
                  past AS (DELETE FROM xlreg_history WHERE cluster_id = $1)
             DELETE FROM xlreg_clusters WHERE id = $1",
            vec![Box::new(id.as_bytes().to_vec())],
        ),
        Change::Touch { id, at_ms } => (
            "UPDATE xlreg_clusters SET last_active_ms = GREATEST(last_active_ms, $2)
             WHERE id = $1",
            vec![Box::new(id.as_bytes().to_vec()), Box::new(*at_ms as i64)],
        ),
        Change::NewMember {
            cluster,
            index,
            record,
        } => (
            INSERT_MEMBER,
            vec![
                Box::new(cluster.as_bytes().to_vec()),
                Box::new(*index as i32),
                Box::new(record.id.as_bytes().to_vec()),
                Box::new(record.name.to_vec()),
                Box::new(record.token.to_vec()),
            ],
        ),
        Change::ReplaceMember {
            cluster,
            index,
            record,
        } => (
            UPDATE_MEMBER,
            vec![
                Box::new(cluster.as_bytes().to_vec()),
                Box::new(*index as i32),
                Box::new(record.token.to_vec()),
            ],
        ),
        Change::RemoveMember { cluster, index } => (
            "DELETE FROM xlreg_members WHERE cluster_id = $1 AND idx = $2",
            vec![Box::new(cluster.as_bytes().to_vec()), Box::new(*index as i32)],
        ),
        Change::Resize { cluster, max_size } => (
            "UPDATE xlreg_clusters SET max_size = $2 WHERE id = $1",
            vec![Box::new(cluster.as_bytes().to_vec()), Box::new(*max_size as i32)],
        ),
        // The history row (its trigger announces the change), the older
        // rows beyond HISTORY_LEN, and the version: one statement, one row
        // count (the cluster's).
        Change::Logged { cluster, entry } => (
            "WITH h AS (INSERT INTO xlreg_history(cluster_id, version, at_ms, kind, detail, by_whom)
                        VALUES ($1, $2, $3, $4, $5, $6)),
                  t AS (DELETE FROM xlreg_history WHERE cluster_id = $1 AND version <= $2 - $7)
             UPDATE xlreg_clusters SET version = GREATEST(version, $2) WHERE id = $1",
            vec![
                Box::new(cluster.as_bytes().to_vec()),
                Box::new(entry.version as i64),
                Box::new(entry.at_ms as i64),
                Box::new(entry.kind.as_str().to_string()),
                Box::new(entry.detail.to_string()),
                Box::new(entry.by.as_str().to_string()),
                Box::new(HISTORY_LEN as i64),
            ],
        ),
    }
}

/// Write `changes` atomically, durable on return: one statement commits
/// by itself; several go in one pipelined BEGIN … COMMIT.
pub(super) async fn write_autocommit(
    client: &deadpool_postgres::Object,
    changes: &[Change],
) -> Result<(), Failure> {
    match changes {
        [] => Ok(()),
        [one] => {
            let (sql, v) = change_sql(one);
            let st = client.prepare_cached(sql).await?;
            let p: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = v
                .iter()
                .map(|b| &**b as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            client.execute(&st, &p).await?;
            Ok(())
        }
        several => {
            client.batch_execute("BEGIN").await?;
            let r = commit_changes(client, several).await;
            if r.is_err() {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            r
        }
    }
}

/// Write `changes` and COMMIT the open transaction, pipelined in one
/// round trip (ROLLBACK when there is nothing to write). A statement that
/// fails makes the COMMIT a rollback; its error is returned.
pub(super) async fn commit_changes(
    client: &deadpool_postgres::Object,
    changes: &[Change],
) -> Result<(), Failure> {
    if changes.is_empty() {
        client.batch_execute("ROLLBACK").await?;
        return Ok(());
    }
    let mut stmts = Vec::with_capacity(changes.len());
    let mut values = Vec::with_capacity(changes.len());
    for ch in changes {
        let (sql, v) = change_sql(ch);
        stmts.push(client.prepare_cached(sql).await?);
        values.push(v);
    }
    let refs: Vec<Vec<&(dyn tokio_postgres::types::ToSql + Sync)>> = values
        .iter()
        .map(|v| {
            v.iter()
                .map(|b| &**b as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect()
        })
        .collect();
    let writes = futures_util::future::try_join_all(
        stmts.iter().zip(&refs).map(|(st, p)| client.execute(st, p)),
    );
    let (counts, ()) = tokio::try_join!(writes, client.batch_execute("COMMIT"))?;
    // A cluster another server's sweep removed first, or its activity,
    // may touch no row: the outcome is the same.
    let gone_already =
        |ch: &Change| matches!(ch, Change::DeleteCluster { .. } | Change::Touch { .. });
    if let Some(i) = counts
        .iter()
        .zip(changes)
        .position(|(n, ch)| *n != 1 && !(*n == 0 && gone_already(ch)))
    {
        return Err(Failure::Corrupt(format!(
            "writing {:?} changed {} rows",
            changes[i], counts[i]
        )));
    }
    Ok(())
}
