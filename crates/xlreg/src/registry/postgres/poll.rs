//! Polling for changes: how a GetCluster held on one server hears of a
//! join or delete made through another when LISTEN is off
//! (`xlreg_listen=off`) or refused by the database.
//!
//! Why the cluster's version and no registry-wide change-counter row:
//! what a held request waits for is a change of its cluster (a held
//! GetCluster its members, a held Watch anything) and the cluster's
//! existence; every committed change of a cluster raises the version in
//! its own row (schema migration 5), which the change's transaction locks
//! anyway. Reading it for the watched clusters adds no write to any
//! transaction, no row that
//! every change of every cluster would have to lock (a one-row counter
//! serialises them all, and on a distributed engine turns into a hot
//! spot), and no gap in which a reader misses a change (`max(seq)` does:
//! sequence values are taken before commit, so a smaller one can commit
//! after a larger one was read). One statement per interval per server,
//! with one index lookup per watched cluster, whatever the load.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::NoTls;

use super::url::DbUrl;
use super::watchers::{Event, First, Watchers, APPLICATION_NAME, BACKOFF_MAX, BACKOFF_MIN};
use crate::wire::NodeId;

/// Each watched cluster that exists, with its version (+1 on every
/// committed change: a join, a leave, an evict, a resize).
const QUERY: &str = "SELECT c.id, c.version FROM xlreg_clusters c WHERE c.id = ANY($1)";

/// A poll that takes longer than this counts as a lost connection.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// What a poll saw of one cluster: its version, `-1` when it does not
/// exist (deleted or expired).
type Seen = HashMap<NodeId, i64>;

/// Poll every `url.watch().poll` until the task is dropped; reconnects
/// with backoff, and wakes every watcher after each (re)connection so
/// nothing changed in between is missed.
pub(super) async fn run(
    url: DbUrl,
    events: Arc<Watchers>,
    listening: Arc<AtomicBool>,
    mut first: Option<First>,
) {
    let mut config = url.config().clone();
    config.application_name(APPLICATION_NAME);
    let mut backoff = BACKOFF_MIN;
    loop {
        match config.connect(NoTls).await {
            Ok((client, conn)) => {
                let conn_task = tokio::spawn(conn);
                let why =
                    poll_until_lost(&client, &url, &events, &listening, &mut first, &mut backoff)
                        .await;
                conn_task.abort();
                if listening.swap(false, Ordering::Relaxed) {
                    // Held requests re-read now rather than at their bound.
                    events.wake(&Event::Resync);
                }
                match (first.take(), why) {
                    // The very first poll failed: the server does not start.
                    (Some(f), Err(e)) => {
                        let _ = f.send(Err(e));
                        return;
                    }
                    (f, why) => {
                        first = f;
                        let error = why.err().map(|e| e.to_string()).unwrap_or_default();
                        tracing::warn!(db = %url.short(), error, "polling connection lost");
                    }
                }
            }
            Err(e) => {
                if let Some(f) = first.take() {
                    let _ = f.send(Err(e));
                    return;
                }
                tracing::debug!(error = %e, db = %url.short(), "polling reconnect failed");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Poll on `client` until it fails: `Err` with the database's error, or
/// `Ok(())` for a timeout.
async fn poll_until_lost(
    client: &tokio_postgres::Client,
    url: &DbUrl,
    events: &Watchers,
    listening: &AtomicBool,
    first: &mut Option<First>,
    backoff: &mut Duration,
) -> Result<(), tokio_postgres::Error> {
    let st = client.prepare(QUERY).await?;
    let mut seen = Seen::new();
    let mut tick = tokio::time::interval(url.watch().poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let watched = events.watched();
        let ids: Vec<&[u8]> = watched.iter().map(|id| id.as_bytes()).collect();
        let rows = match tokio::time::timeout(POLL_TIMEOUT, client.query(&st, &[&ids])).await {
            Ok(r) => r?,
            Err(_) => {
                tracing::warn!(db = %url.short(), "a poll for changes took over {POLL_TIMEOUT:?}");
                return Ok(());
            }
        };
        let mut now = Seen::with_capacity(rows.len());
        for r in &rows {
            if let Ok(id) = NodeId::from_bytes(r.get::<_, &[u8]>(0)) {
                now.insert(id, r.get::<_, i64>(1));
            }
        }
        if !listening.swap(true, Ordering::Relaxed) {
            *backoff = BACKOFF_MIN;
            match first.take() {
                Some(f) => {
                    let _ = f.send(Ok(()));
                }
                None => tracing::info!(db = %url.short(), "polling connection restored"),
            }
            // Anything committed while no poll ran.
            events.wake(&Event::Resync);
        }
        for ev in changed(&mut seen, &watched, &now) {
            events.wake(&ev);
        }
    }
}

/// The wake-ups a poll's result `now` calls for, given what earlier polls
/// saw (updated): a cluster seen for the first time wakes too, since its
/// watcher may have read it before the change this poll is the first to
/// see. Clusters no longer watched are forgotten.
fn changed(seen: &mut Seen, watched: &[NodeId], now: &Seen) -> Vec<Event> {
    let keep: HashSet<&NodeId> = watched.iter().collect();
    seen.retain(|id, _| keep.contains(id));
    let mut out = Vec::new();
    for id in watched {
        let count = now.get(id).copied().unwrap_or(-1);
        if seen.insert(*id, count) != Some(count) {
            out.push(Event::Joined {
                cluster: *id,
                count: count.max(0) as usize,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> NodeId {
        NodeId::from_bytes(&[b; 20]).unwrap()
    }

    #[test]
    fn a_poll_wakes_new_grown_and_vanished_clusters_only() {
        let (a, b, c) = (id(1), id(2), id(3));
        let mut seen = Seen::new();
        let now: Seen = [(a, 1), (b, 2)].into_iter().collect();
        // First sight: every watched cluster, present (a, b) or not (c).
        assert_eq!(changed(&mut seen, &[a, b, c], &now).len(), 3);
        // Nothing changed: nothing wakes.
        assert!(changed(&mut seen, &[a, b, c], &now).is_empty());
        // a grew, b vanished (deleted or expired), c still absent.
        let now: Seen = [(a, 2)].into_iter().collect();
        let woke = changed(&mut seen, &[a, b, c], &now);
        assert_eq!(
            woke,
            vec![
                Event::Joined {
                    cluster: a,
                    count: 2
                },
                Event::Joined {
                    cluster: b,
                    count: 0
                }
            ]
        );
        // Unwatched clusters are forgotten: watched again, they wake again.
        assert!(changed(&mut seen, &[c], &now).is_empty());
        assert_eq!(seen.len(), 1);
        assert_eq!(changed(&mut seen, &[a, c], &now).len(), 1);
    }
}
