//! LISTEN/NOTIFY: how a GetCluster held on one server learns that the
//! last member joined through another, without polling the table.
//!
//! One dedicated connection per server LISTENs on [`CHANNEL`]; every
//! notification (cluster ID and its member count after the commit) goes
//! to a broadcast channel that held requests watch. When the connection
//! drops, the task reconnects with backoff, LISTENs again and broadcasts
//! [`Event::Resync`] so every held request re-reads its cluster: nothing
//! committed while it was not listening is missed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};

use super::schema::CHANNEL;
use super::url::DbUrl;
use crate::wire::NodeId;

/// What a held request hears.
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

/// The listening task's handle: dropping it stops the task.
pub struct Listener {
    events: broadcast::Sender<Event>,
    listening: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

impl Listener {
    /// Start listening; returns once the first LISTEN is in place (or
    /// failed: the task keeps retrying in the background).
    pub async fn start(url: DbUrl) -> Result<Listener, tokio_postgres::Error> {
        let (events, _) = broadcast::channel(4096);
        let listening = Arc::new(AtomicBool::new(false));
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(run(
            url,
            events.clone(),
            listening.clone(),
            Some(first_tx),
        ));
        match first_rx.await {
            Ok(Err(e)) => {
                task.abort();
                Err(e)
            }
            _ => Ok(Listener {
                events,
                listening,
                task,
            }),
        }
    }

    /// Subscribe before reading, so no event after the read is missed.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Is the LISTEN connection up right now?
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }
}

type First = tokio::sync::oneshot::Sender<Result<(), tokio_postgres::Error>>;

async fn run(
    url: DbUrl,
    events: broadcast::Sender<Event>,
    listening: Arc<AtomicBool>,
    mut first: Option<First>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match url.config().connect(NoTls).await {
            Ok((client, mut conn)) => {
                let events2 = events.clone();
                // The connection must be polled for LISTEN to complete and
                // for notifications to arrive.
                let pump = tokio::spawn(async move {
                    let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                    while let Some(msg) = stream.next().await {
                        match msg {
                            Ok(AsyncMessage::Notification(n)) => {
                                if let Some(ev) = parse_payload(n.payload()) {
                                    let _ = events2.send(ev);
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "LISTEN connection lost");
                                return;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        listening.store(true, Ordering::Relaxed);
                        backoff = BACKOFF_MIN;
                        if let Some(f) = first.take() {
                            let _ = f.send(Ok(()));
                        } else {
                            tracing::info!(db = %url.short(), "LISTEN connection restored");
                        }
                        // Anything committed while we were not listening.
                        let _ = events.send(Event::Resync);
                        let _ = pump.await;
                        listening.store(false, Ordering::Relaxed);
                        let _ = events.send(Event::Resync);
                    }
                    Err(e) => {
                        pump.abort();
                        if let Some(f) = first.take() {
                            let _ = f.send(Err(e));
                            return;
                        }
                        tracing::warn!(error = %e, "LISTEN failed");
                    }
                }
                drop(client);
            }
            Err(e) => {
                if let Some(f) = first.take() {
                    let _ = f.send(Err(e));
                    return;
                }
                tracing::debug!(error = %e, db = %url.short(), "LISTEN reconnect failed");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
