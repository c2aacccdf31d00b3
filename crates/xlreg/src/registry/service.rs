//! The registry as a shared service for sessions (the `db.rs` of the
//! server): one writer thread decides and persists, many sessions read.
//!
//! Why a single writer: rules such as "a slot is used once" and "a name
//! exists once" are then decided in one order with no races (spec §16.25:
//! the Go server checks, then inserts, without a lock),
//! and the writer can group-commit: it drains every request that queued
//! while the previous transaction was being fsynced and commits them
//! together. A reply is sent only after its change is durable; readers
//! never see uncommitted members. GetCluster can be *held* until the
//! requested members exist, so members learn the full cluster the moment
//! the last one joins instead of polling.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::rules::{ClusterInfo, MemberRecord, Registry, RuleError, Selection};
use super::store::Store;
use crate::wire::{NodeId, Which};

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 1024;

/// Why a registry call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The request broke a rule; the text goes to the client.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// The store could not commit; nothing was changed.
    #[error("registry storage failure; request not applied")]
    Store(String),
    /// The service is shutting down.
    #[error("registry is shutting down")]
    Closed,
}

/// Which cluster a Join names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinTarget {
    /// The ClusterID bytes as received.
    Id(Vec<u8>),
    /// The ClusterName bytes as received.
    Name(Vec<u8>),
    /// Neither: the session's current cluster, if any.
    Current(Option<NodeId>),
}

#[derive(Debug)]
enum Op {
    Register {
        id: Option<NodeId>,
        sig_hash: [u8; 32],
    },
    Create {
        name: Vec<u8>,
        max_size: u32,
        attrs: u64,
        ep_count: u32,
    },
    Join {
        target: JoinTarget,
        record: MemberRecord,
        endpoints: usize,
    },
}

#[derive(Debug)]
enum Outcome {
    Registered(NodeId),
    Cluster(ClusterInfo),
    Joined(ClusterInfo, usize),
}

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Outcome, ServiceError>>,
}

/// The shared registry: cheap to call from many sessions.
pub struct RegistryService {
    state: Arc<Mutex<Registry>>,
    /// Requests for the writer thread; `None` once closed.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// No store to write (ephemeral): requests are applied and committed
    /// inline under the lock — there is nothing to wait for, so no thread.
    inline: bool,
    closed: std::sync::atomic::AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
    changed: Arc<watch::Sender<u64>>,
    store_path: String,
}

impl std::fmt::Debug for RegistryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistryService({})", self.store_path)
    }
}

fn lock(m: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    // A panic while holding the lock cannot leave the registry half-updated
    // in a way that matters more than losing the server, so keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RegistryService {
    /// Load the registry from `store` and start the writer thread.
    pub fn start(store: Store, own_id: NodeId) -> Result<Arc<Self>, super::StoreError> {
        let registry = store.load(own_id)?;
        let store_path = store.path().to_string();
        let inline = store.is_none();
        let state = Arc::new(Mutex::new(registry));
        let (changed, _) = watch::channel(0u64);
        let changed = Arc::new(changed);
        let (jobs, writer) = if inline {
            (None, None)
        } else {
            let (tx, rx) = mpsc::channel::<Job>();
            let state = state.clone();
            let changed = changed.clone();
            let writer = std::thread::Builder::new()
                .name("xlreg-store".into())
                .spawn(move || writer_loop(store, state, rx, changed))
                .expect("spawn store thread");
            (Some(tx), Some(writer))
        };
        Ok(Arc::new(RegistryService {
            state,
            jobs: Mutex::new(jobs),
            inline,
            closed: std::sync::atomic::AtomicBool::new(false),
            writer: Mutex::new(writer),
            changed,
            store_path,
        }))
    }

    /// Path of the database.
    pub fn store_path(&self) -> &str {
        &self.store_path
    }

    async fn submit(&self, op: Op) -> Result<Outcome, ServiceError> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(ServiceError::Closed);
        }
        if self.inline {
            let mut reg = lock(&self.state);
            let r = apply(&mut reg, &op);
            if !reg.commit().is_empty() {
                self.changed.send_modify(|v| *v += 1);
            }
            return r.map_err(ServiceError::Rule);
        }
        let (reply, rx) = oneshot::channel();
        {
            let guard = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            let tx = guard.as_ref().ok_or(ServiceError::Closed)?;
            tx.send(Job { op, reply })
                .map_err(|_| ServiceError::Closed)?;
        }
        rx.await.map_err(|_| ServiceError::Closed)?
    }

    /// Register a member ID (or get a fresh one) for a sig key hash.
    pub async fn register(
        &self,
        id: Option<NodeId>,
        sig_hash: [u8; 32],
    ) -> Result<NodeId, ServiceError> {
        match self.submit(Op::Register { id, sig_hash }).await? {
            Outcome::Registered(id) => Ok(id),
            o => unreachable!("register answered {o:?}"),
        }
    }

    /// Create a cluster (idempotent by name).
    pub async fn create(
        &self,
        name: Vec<u8>,
        max_size: u32,
        attrs: u64,
        ep_count: u32,
    ) -> Result<ClusterInfo, ServiceError> {
        match self
            .submit(Op::Create {
                name,
                max_size,
                attrs,
                ep_count,
            })
            .await?
        {
            Outcome::Cluster(c) => Ok(c),
            o => unreachable!("create answered {o:?}"),
        }
    }

    /// Join a cluster; returns its facts and the member's slot.
    pub async fn join(
        &self,
        target: JoinTarget,
        record: MemberRecord,
        endpoints: usize,
    ) -> Result<(ClusterInfo, usize), ServiceError> {
        match self
            .submit(Op::Join {
                target,
                record,
                endpoints,
            })
            .await?
        {
            Outcome::Joined(c, i) => Ok((c, i)),
            o => unreachable!("join answered {o:?}"),
        }
    }

    /// GetCluster. With `hold`, wait (at most that long) until every
    /// requested index below the cluster's size has a committed member.
    pub async fn get(
        &self,
        cluster_id: Option<&[u8]>,
        which: Which,
        budget: usize,
        hold: Option<Duration>,
    ) -> Result<Selection, RuleError> {
        let mut rx = self.changed.subscribe();
        let deadline = hold.map(|h| tokio::time::Instant::now() + h);
        loop {
            {
                let reg = lock(&self.state);
                let c = reg.visible_cluster(cluster_id)?;
                let done = match deadline {
                    None => true,
                    Some(d) => c.satisfies(which) || tokio::time::Instant::now() >= d,
                };
                if done {
                    return reg.select(cluster_id, which, budget);
                }
            }
            let d = deadline.expect("holding implies a deadline");
            match tokio::time::timeout_at(d, rx.changed()).await {
                Ok(Ok(())) => {}
                // Deadline passed or writer gone: answer with what there is.
                Ok(Err(_)) | Err(_) => {
                    let reg = lock(&self.state);
                    return reg.select(cluster_id, which, budget);
                }
            }
        }
    }

    /// Run `f` on the committed registry (listings, tests, stats).
    pub fn with_registry<R>(&self, f: impl FnOnce(&Registry) -> R) -> R {
        f(&lock(&self.state))
    }

    /// Stop accepting requests, let the writer finish what is queued, and
    /// wait for it. Idempotent.
    pub fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        drop(self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(h) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }
}

impl Drop for RegistryService {
    fn drop(&mut self) {
        self.close();
    }
}

fn apply(reg: &mut Registry, op: &Op) -> Result<Outcome, RuleError> {
    match op {
        Op::Register { id, sig_hash } => reg.register(*id, *sig_hash).map(Outcome::Registered),
        Op::Create {
            name,
            max_size,
            attrs,
            ep_count,
        } => reg
            .create(name, *max_size, *attrs, *ep_count)
            .map(Outcome::Cluster),
        Op::Join {
            target,
            record,
            endpoints,
        } => {
            let cid = match target {
                JoinTarget::Id(raw) => reg.resolve(Some(raw), None)?,
                JoinTarget::Name(n) => reg.resolve(None, Some(n))?,
                JoinTarget::Current(Some(c)) => *c,
                JoinTarget::Current(None) => return Err(RuleError::MissingCluster),
            };
            let (info, idx) = reg.join(&cid, record.clone(), *endpoints)?;
            Ok(Outcome::Joined(info, idx))
        }
    }
}

fn writer_loop(
    mut store: Store,
    state: Arc<Mutex<Registry>>,
    rx: mpsc::Receiver<Job>,
    changed: Arc<watch::Sender<u64>>,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let (results, changes) = {
            let mut reg = lock(&state);
            let results: Vec<_> = jobs.iter().map(|j| apply(&mut reg, &j.op)).collect();
            (results, reg.pending().to_vec())
        };
        let stored = if changes.is_empty() {
            Ok(())
        } else {
            store.apply(&changes)
        };
        {
            let mut reg = lock(&state);
            match &stored {
                Ok(()) => {
                    reg.commit();
                }
                Err(e) => {
                    tracing::error!(error = %e, requests = jobs.len(), "store commit failed; batch rolled back");
                    reg.rollback();
                }
            }
        }
        if !changes.is_empty() && stored.is_ok() {
            changed.send_modify(|v| *v += 1);
        }
        for (job, res) in jobs.into_iter().zip(results) {
            let out = match (&stored, res) {
                (_, Err(rule)) => Err(ServiceError::Rule(rule)),
                (Ok(()), Ok(o)) => Ok(o),
                (Err(e), Ok(_)) => Err(ServiceError::Store(e.to_string())),
            };
            let _ = job.reply.send(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u32) -> MemberRecord {
        let mut id = [0u8; 20];
        id[..4].copy_from_slice(&i.to_le_bytes());
        MemberRecord {
            id: NodeId::from_bytes(&id).unwrap(),
            name: format!("m{i}").into_bytes().into(),
            token: format!("t{i}").into_bytes().into(),
        }
    }

    fn svc() -> Arc<RegistryService> {
        RegistryService::start(
            Store::in_memory().unwrap(),
            NodeId::from_bytes(&[0xee; 20]).unwrap(),
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_joins_never_share_a_slot() {
        let s = svc();
        let c = s.create(b"c".to_vec(), 64, 0, 1).await.unwrap().id;
        let mut tasks = Vec::new();
        for i in 0..80 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.join(JoinTarget::Id(c.as_bytes().to_vec()), rec(i), 1)
                    .await
            }));
        }
        let mut slots = Vec::new();
        let mut full = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok((_, i)) => slots.push(i),
                Err(ServiceError::Rule(RuleError::Full)) => full += 1,
                Err(e) => panic!("{e}"),
            }
        }
        slots.sort();
        assert_eq!(slots, (0..64).collect::<Vec<_>>());
        assert_eq!(full, 16);
    }

    #[tokio::test]
    async fn held_get_returns_when_the_last_member_joins() {
        let s = svc();
        let c = s.create(b"c".to_vec(), 2, 0, 1).await.unwrap().id;
        s.join(JoinTarget::Current(Some(c)), rec(0), 1)
            .await
            .unwrap();
        let s2 = s.clone();
        let started = std::time::Instant::now();
        let getter = tokio::spawn(async move {
            s2.get(
                Some(c.as_bytes()),
                Which::ALL,
                1 << 20,
                Some(Duration::from_secs(10)),
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !getter.is_finished(),
            "held while the cluster is incomplete"
        );
        s.join(JoinTarget::Current(Some(c)), rec(1), 1)
            .await
            .unwrap();
        let sel = getter.await.unwrap().unwrap();
        assert_eq!(sel.which, Which(0b11));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn held_get_gives_up_at_the_bound() {
        let s = svc();
        let c = s.create(b"c".to_vec(), 3, 0, 1).await.unwrap().id;
        s.join(JoinTarget::Current(Some(c)), rec(0), 1)
            .await
            .unwrap();
        let sel = s
            .get(
                Some(c.as_bytes()),
                Which::ALL,
                1 << 20,
                Some(Duration::from_millis(50)),
            )
            .await
            .unwrap();
        assert_eq!(sel.which, Which(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_ephemeral_registry_applies_inline_with_the_same_rules() {
        let s = RegistryService::start(Store::none(), NodeId::from_bytes(&[0xee; 20]).unwrap())
            .unwrap();
        let c = s.create(b"c".to_vec(), 2, 0, 1).await.unwrap().id;
        let mut tasks = Vec::new();
        for i in 0..5 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.join(JoinTarget::Id(c.as_bytes().to_vec()), rec(i), 1)
                    .await
            }));
        }
        let ok = futures_count(tasks).await;
        assert_eq!(ok, 2, "two slots, five racers");
        let sel = s
            .get(Some(c.as_bytes()), Which::ALL, 1 << 20, None)
            .await
            .unwrap();
        assert_eq!(sel.which, Which(0b11));
        s.close();
        assert_eq!(
            s.create(b"d".to_vec(), 3, 0, 1).await,
            Err(ServiceError::Closed)
        );
    }

    async fn futures_count(
        tasks: Vec<tokio::task::JoinHandle<Result<(ClusterInfo, usize), ServiceError>>>,
    ) -> usize {
        let mut n = 0;
        for t in tasks {
            n += t.await.unwrap().is_ok() as usize;
        }
        n
    }

    #[tokio::test]
    async fn closed_service_refuses_requests() {
        let s = svc();
        s.close();
        assert_eq!(
            s.create(b"c".to_vec(), 3, 0, 1).await,
            Err(ServiceError::Closed)
        );
    }
}
