//! What the LISTEN task ([`listen`](super::listen)) and its polling
//! fallback ([`poll`](super::poll)) share: the [`Event`]s they hear, the
//! NOTIFY payload, the [`Watchers`] they wake, and their connection
//! settings. Its own file so that `listen` (which falls back to `poll`)
//! and `poll` depend on it, and not on each other.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use crate::wire::NodeId;

/// What the LISTEN connection hears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A join committed: the cluster now has `count` members.
    Joined {
        /// The cluster.
        cluster: NodeId,
        /// Members after the commit.
        count: usize,
    },
    /// Notifications may have been missed: re-read.
    Resync,
}

/// The payload sent with NOTIFY for a cluster that has `count` members.
pub fn payload(cluster: &NodeId, count: usize) -> String {
    format!("{}:{count}", cluster.to_hex())
}

/// Parse a [`payload`]; `None` for anything else.
pub fn parse_payload(p: &str) -> Option<Event> {
    let (id, count) = p.split_once(':')?;
    let id = hex::decode(id).ok()?;
    Some(Event::Joined {
        cluster: NodeId::from_bytes(&id).ok()?,
        count: count.parse().ok()?,
    })
}

/// One wake-up counter per watched cluster.
#[derive(Default)]
pub(super) struct Watchers {
    by_cluster: Mutex<HashMap<NodeId, watch::Sender<u64>>>,
}

/// Above this many entries, [`Watchers::subscribe`] drops the unwatched.
const PRUNE_AT: usize = 1024;

impl Watchers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, watch::Sender<u64>>> {
        self.by_cluster.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn subscribe(&self, cluster: &NodeId) -> watch::Receiver<u64> {
        let mut map = self.lock();
        if map.len() >= PRUNE_AT {
            map.retain(|_, tx| tx.receiver_count() > 0);
        }
        map.entry(*cluster)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    pub(super) fn generation(&self, cluster: &NodeId) -> Option<u64> {
        self.lock().get(cluster).map(|tx| *tx.borrow())
    }

    /// The clusters someone is waiting on right now.
    pub(super) fn watched(&self) -> Vec<NodeId> {
        self.lock()
            .iter()
            .filter(|(_, tx)| tx.receiver_count() > 0)
            .map(|(id, _)| *id)
            .collect()
    }

    pub(super) fn wake(&self, ev: &Event) {
        let map = self.lock();
        match ev {
            Event::Joined { cluster, .. } => {
                if let Some(tx) = map.get(cluster) {
                    tx.send_modify(|v| *v += 1);
                }
            }
            Event::Resync => {
                for tx in map.values() {
                    tx.send_modify(|v| *v += 1);
                }
            }
        }
    }
}

/// `application_name` of the LISTEN (or polling) connection
/// (`pg_stat_activity`).
pub const APPLICATION_NAME: &str = "xlreg-listen";

pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(50);
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Reports whether the first connection worked.
pub(super) type First = tokio::sync::oneshot::Sender<Result<(), tokio_postgres::Error>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_wakes_only_its_cluster_and_resync_wakes_all() {
        let w = Watchers::default();
        let (a, b) = (
            NodeId::from_bytes(&[1; 20]).unwrap(),
            NodeId::from_bytes(&[2; 20]).unwrap(),
        );
        let (ra, rb) = (w.subscribe(&a), w.subscribe(&b));
        w.wake(&Event::Joined {
            cluster: a,
            count: 1,
        });
        assert!(ra.has_changed().unwrap());
        assert!(!rb.has_changed().unwrap());
        w.wake(&Event::Resync);
        assert!(rb.has_changed().unwrap());
    }

    #[test]
    fn payload_round_trips_and_junk_is_ignored() {
        let id = NodeId::from_bytes(&[7; 20]).unwrap();
        assert_eq!(
            parse_payload(&payload(&id, 12)),
            Some(Event::Joined {
                cluster: id,
                count: 12
            })
        );
        assert_eq!(parse_payload("zz:1"), None);
        assert_eq!(parse_payload("0707:x"), None);
        assert_eq!(parse_payload("nothing"), None);
    }
}
