//! LISTEN/NOTIFY: how a GetCluster held on one server learns that the
//! last member joined through another, without polling the table.
//!
//! One dedicated connection per server LISTENs on [`CHANNEL`]; every
//! notification (cluster ID and its member count after the commit) wakes
//! the watchers of that cluster ([`Listener::subscribe`]). When the
//! connection drops, the task reconnects with backoff, LISTENs again and
//! wakes every watcher ([`Event::Resync`]) so each held request re-reads
//! its cluster: nothing committed while it was not listening is missed.
//!
//! LISTEN is an optimisation, not a requirement: with `xlreg_listen=off`
//! in the URL, or when the database refuses LISTEN (engines that speak
//! PostgreSQL's protocol without it), the same connection polls instead
//! ([`poll`](super::poll)): every `xlreg_poll_ms` it reads the member
//! count of each watched cluster and wakes the watchers of those that
//! changed, so held GetClusters still complete, at most one interval late.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use super::poll;
use super::schema::CHANNEL;
use super::url::DbUrl;
use super::watchers::{
    parse_payload, Event, First, Watchers, APPLICATION_NAME, BACKOFF_MAX, BACKOFF_MIN,
};
use crate::wire::NodeId;

/// The listening task's handle: dropping it stops the task.
pub struct Listener {
    watchers: Arc<Watchers>,
    listening: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Start listening (or polling, as the URL's `xlreg_listen` asks);
    /// returns once the first LISTEN (or poll connection) is in place, or
    /// with the error of the first connection attempt. A LISTEN the
    /// database refuses is not an error: the task polls instead.
    pub async fn start(url: DbUrl) -> Result<Listener, tokio_postgres::Error> {
        let watchers = Arc::new(Watchers::default());
        let listening = Arc::new(AtomicBool::new(false));
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(run(
            url,
            watchers.clone(),
            listening.clone(),
            Some(first_tx),
        ));
        match first_rx.await {
            Ok(Err(e)) => {
                task.abort();
                Err(e)
            }
            _ => Ok(Listener {
                watchers,
                listening,
                task,
            }),
        }
    }

    /// A receiver that changes whenever a join to `cluster` commits (on
    /// any server of the group), and after the LISTEN connection was lost.
    pub fn subscribe(&self, cluster: &NodeId) -> watch::Receiver<u64> {
        self.watchers.subscribe(cluster)
    }

    /// How many times `cluster`'s watchers were woken so far, if it has
    /// any: a read started after seeing generation `g` includes every join
    /// whose notification counted in `g`.
    pub fn generation(&self, cluster: &NodeId) -> Option<u64> {
        self.watchers.generation(cluster)
    }

    /// Does this server hear other servers' changes right now (its LISTEN,
    /// or its polling, connection is up)?
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }
}

async fn run(
    url: DbUrl,
    events: Arc<Watchers>,
    listening: Arc<AtomicBool>,
    mut first: Option<First>,
) {
    if !url.watch().listen {
        tracing::info!(db = %url.short(), every = ?url.watch().poll, "LISTEN off (xlreg_listen=off): polling for changes");
        return poll::run(url, events, listening, first).await;
    }
    let mut backoff = BACKOFF_MIN;
    let mut config = url.config().clone();
    // Named, so an operator (or a test) can tell it from the pool's.
    config.application_name(APPLICATION_NAME);
    loop {
        match config.connect(NoTls).await {
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
                                    events2.wake(&ev);
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
                        events.wake(&Event::Resync);
                        let _ = pump.await;
                        listening.store(false, Ordering::Relaxed);
                        events.wake(&Event::Resync);
                    }
                    // The database refuses LISTEN itself (not a lost
                    // connection): poll instead, for good.
                    Err(e) if e.as_db_error().is_some() => {
                        pump.abort();
                        tracing::warn!(
                            db = %url.short(),
                            error = %e,
                            every = ?url.watch().poll,
                            "the database refuses LISTEN: polling for changes instead"
                        );
                        drop(client);
                        return poll::run(url, events, listening, first).await;
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
