//! The registry on PostgreSQL: several `xlreg serve` processes, one
//! identity, one database, any of them able to serve any client.
//!
//! Why this shape: the single-process service decides every rule in
//! memory, which is only safe while one process owns the data. Here each
//! request is decided in ONE PostgreSQL transaction: it locks what it
//! needs (the cluster row, `SELECT … FOR UPDATE`), loads those rows into a
//! small [`Registry`] (`rows.rs`), lets the same rule functions decide
//! ([`Registry::decide`]), writes the resulting [`Change`]s (`write.rs`) and
//! commits; only then is the reply sent. Joins of one cluster that arrive
//! together on one server share a transaction (group commit). ID and
//! cluster rows never change once written, so Register and Create decide
//! on a plain read and write with one statement. Constraints and a trigger
//! in the schema (`schema.rs`) back the rules up, and races between servers
//! that the locks cannot cover (two inserts of one new ID or name) end in
//! a unique violation that is retried, so the second racer sees the first
//! one's row.
//!
//! Held GetCluster requests wait on LISTEN/NOTIFY (`listen.rs`): a member
//! held on server A learns of the last join through server B the moment
//! B commits. Without LISTEN (`xlreg_listen=off`, or a database that
//! refuses it) they are woken by polling (`poll.rs`), one interval late at
//! most. Transactions that lose a race are retried with jittered backoff
//! (`retry.rs`).
//!
//! The files are private; everything public is at
//! `xlreg::registry::postgres::X`.

mod copy;
mod failure;
mod listen;
mod poll;
mod retry;
mod rows;
mod schema;
mod url;
mod watchers;
mod write;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::watch;
use tokio_postgres::NoTls;

use super::backend::{Backend, BackendError, BoxFuture};
use super::listing::{Listing, ListingOrder, ListingPage};
use super::request::{
    Answer, ClusterTarget, Create, GetCluster, Join, Members, Register, Request,
    Watch as WatchRequest, Watched,
};
use super::rules::{Change, IdOwner, Policy, Registry};
use super::store::{StoreCause, StoreError};
use crate::wire::NodeId;
pub use copy::{copy_registry, counts_of, CopyCounts, CopyError};
use failure::Failure;
use listen::Listener;
use rows::{
    cluster_row, expiry_params, live, load_cluster_rows, load_grouped, load_history, node_id,
    owner_of, restore, target_key, CHANGE_COLUMNS, CLUSTER_COLUMNS, CLUSTER_ONLY_COLUMNS,
    HISTORY_COLUMNS, JOIN_COLUMNS,
};
pub use schema::{SchemaError, CHANNEL};
pub use url::{redact, DbUrl, UrlError, Watch, DEFAULT_POLL};
pub use watchers::APPLICATION_NAME;

/// The schema's migrations, for the workspace's tests. Not API.
#[doc(hidden)]
pub use schema::MIGRATIONS;
use write::{commit_changes, write_autocommit};

/// Arbitrary key of the transaction-level advisory lock every Create of a
/// new name takes when `max_clusters` is set ([`Inner::create_counted`]).
const CLUSTER_COUNT_LOCK: i64 = 0x786c_7265_675f_6d63; // "xlreg_mc"

/// How the pool talks to the database.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// Most connections this server opens (besides the LISTEN one).
    pub max_connections: usize,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time a request waits for a free connection before failing.
    pub wait_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_connections: 16,
            connect_timeout: Duration::from_secs(3),
            wait_timeout: Duration::from_secs(5),
        }
    }
}

/// Attempts for a transaction that lost a race (unique violation,
/// serialization failure, deadlock) or its connection; between them a
/// jittered exponential backoff ([`retry::backoff`]: 2.5–5 ms, then
/// doubling, at most 500 ms; under 1.2 s over all eight retries).
const ATTEMPTS: usize = 9;

/// One read of a cluster shared by the held requests woken by the same
/// notification (keyed by [`Listener::generation`]).
type SharedRead = Arc<tokio::sync::OnceCell<Arc<Registry>>>;

/// Most clusters with a shared read kept; past it the map is cleared.
const SHARED_READS_MAX: usize = 256;

/// The registry backed by one PostgreSQL database. Cheap to share: the
/// state lives behind an `Arc`.
pub struct PostgresBackend {
    inner: Arc<Inner>,
}

/// Most often a GetCluster stores its cluster's last activity (ms).
const TOUCH_EVERY_MS: u64 = 1000;

/// Most joins of one cluster decided in one transaction.
const MAX_JOIN_BATCH: usize = 256;

type JoinReply = tokio::sync::oneshot::Sender<Result<Answer, BackendError>>;

/// Joins of one cluster waiting for the transaction in progress.
#[derive(Default)]
struct JoinQueue {
    waiting: Vec<(Join, JoinReply)>,
}

struct Inner {
    pool: Pool,
    /// Joins waiting per cluster; a cluster with an entry has a task
    /// draining it ([`Inner::drain_joins`]).
    join_queues: std::sync::Mutex<std::collections::HashMap<ClusterTarget, JoinQueue>>,
    listener: Listener,
    /// Held GetClusters woken together read their cluster once.
    shared_reads: std::sync::Mutex<std::collections::HashMap<NodeId, (u64, SharedRead)>>,
    own_id: NodeId,
    /// TTLs and limits, applied by the rules on every request.
    policy: Policy,
    url: DbUrl,
    closed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresBackend({})", self.inner.url)
    }
}

type Attempt<T> = Result<Result<T, super::RuleError>, Failure>;

fn start_err(
    url: &DbUrl,
    action: &str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::new(url.to_string(), action, StoreCause::Other(Box::new(e)))
}

impl Inner {
    /// Connect, create or migrate the schema, claim the database for the
    /// registry identity `own_id` (a database keeps one identity: every
    /// server of a group shares it), and start listening.
    pub async fn connect(
        url: &DbUrl,
        own_id: NodeId,
        opts: &PoolOptions,
        policy: Policy,
    ) -> Result<Inner, StoreError> {
        let mut config = url.config().clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(opts.connect_timeout);
        }
        config.application_name("xlreg");
        // A reply follows a commit that is on disk, whatever the server's
        // default: nothing acknowledged may be lost to a database crash.
        let mut options = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} -c synchronous_commit=on"),
            _ => "-c synchronous_commit=on".to_string(),
        };
        if !url.watch().notify {
            // Read by the member trigger (schema migration 3).
            options.push_str(" -c xlreg.notify=off");
        }
        config.options(&options);
        let url = url.with_config(config.clone());
        let (mut client, conn) = config
            .connect(NoTls)
            .await
            .map_err(|e| start_err(&url, "cannot connect", e))?;
        let conn_task = tokio::spawn(conn);
        let version = schema::migrate(&mut client)
            .await
            .map_err(|e| start_err(&url, "cannot prepare the schema", e))?;
        client
            .execute(
                "INSERT INTO xlreg_ids(id, kind) VALUES ($1, 0) ON CONFLICT DO NOTHING",
                &[&own_id.as_bytes()],
            )
            .await
            .map_err(|e| start_err(&url, "cannot record the registry ID", e))?;
        let owner: Vec<u8> = client
            .query_one("SELECT id FROM xlreg_ids WHERE kind = 0", &[])
            .await
            .map_err(|e| start_err(&url, "cannot read the registry ID", e))?
            .get(0);
        if owner != own_id.as_bytes() {
            return Err(StoreError::new(
                url.to_string(),
                "belongs to another registry",
                StoreCause::Malformed(format!(
                    "its registry ID is {}, this server's is {own_id}; every server of a group \
                     must share one identity (copy the data dir's identity, or --adopt)",
                    hex::encode(&owner)
                )),
            ));
        }
        drop(client);
        conn_task.abort();
        let mgr = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(opts.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.wait_timeout))
            .create_timeout(Some(opts.connect_timeout))
            .recycle_timeout(Some(opts.connect_timeout))
            .build()
            .map_err(|e| start_err(&url, "cannot build the connection pool", e))?;
        let listener = Listener::start(url.clone())
            .await
            .map_err(|e| start_err(&url, "cannot LISTEN", e))?;
        tracing::info!(db = %url.short(), schema = version, "registry store: PostgreSQL");
        Ok(Inner {
            pool,
            join_queues: Default::default(),
            listener,
            shared_reads: Default::default(),
            own_id,
            policy,
            url,
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// An empty registry deciding with this server's policy, now.
    fn fresh(&self) -> Registry {
        let mut reg = Registry::new(self.own_id);
        reg.set_policy(self.policy);
        reg.set_now(super::unix_now_ms());
        reg
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Failure> {
        self.pool
            .get()
            .await
            .map_err(|e| Failure::Pool(format!("no database connection: {e}")))
    }

    /// Run `attempt` until it succeeds, fails for good, or runs out of
    /// retries; a reply is only produced after a commit.
    async fn retrying<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, BackendError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Attempt<T>>,
    {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(BackendError::Closed);
        }
        let mut n = 0;
        loop {
            match attempt().await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(rule)) => return Err(BackendError::Rule(rule)),
                Err(f) if f.retryable() && n + 1 < ATTEMPTS => {
                    tracing::debug!(op = what, error = %f.text(), attempt = n, "retrying transaction");
                    tokio::time::sleep(retry::backoff(n)).await;
                    n += 1;
                }
                Err(f) => {
                    tracing::error!(op = what, db = %self.url.short(), error = %f.text(), "storage failure; request not applied");
                    return Err(f.into_store_error(&self.url, what).into());
                }
            }
        }
    }

    /// Run `body` inside BEGIN … COMMIT/ROLLBACK on one pooled connection;
    /// on any failure the transaction is rolled back before the connection
    /// goes back to the pool (a broken one is dropped by the pool's check).
    async fn in_transaction<'c, T, Fut>(
        &self,
        client: &'c deadpool_postgres::Object,
        body: impl FnOnce(&'c deadpool_postgres::Object) -> Fut,
    ) -> Attempt<T>
    where
        Fut: std::future::Future<Output = Attempt<T>>,
    {
        let r = body(client).await;
        if r.is_err() {
            let _ = client.batch_execute("ROLLBACK").await;
        }
        r
    }

    /// Member registration. ID rows are only ever inserted, never changed,
    /// so the rule decides on a plain read of the ID's row; a fresh claim
    /// is one INSERT, and a racing claim of the same ID through another
    /// server loses on the primary key and is decided again on the
    /// winner's row. A known ID costs one statement and no commit.
    async fn register_once(&self, req: &Register) -> Attempt<Answer> {
        let client = self.client().await?;
        let mut reg = self.fresh();
        if let Some(id) = req.id {
            let st = client
                .prepare_cached("SELECT kind, sig_sha256 FROM xlreg_ids WHERE id = $1")
                .await?;
            if let Some(row) = client.query_opt(&st, &[&id.as_bytes()]).await? {
                match owner_of(row.get(0), row.get(1))? {
                    // The registry's own ID is already known to `reg`.
                    IdOwner::Registry => {}
                    owner => restore(&mut reg, Change::NewId { id, owner })?,
                }
            }
        }
        let answer = match reg.decide(Request::Register(req.clone())) {
            Ok(a) => a,
            Err(rule) => return Ok(Err(rule)),
        };
        write_autocommit(&client, reg.pending()).await?;
        Ok(Ok(answer))
    }

    /// Create, idempotent by name. Cluster rows never change, so an
    /// existing name is answered from a plain read; a new cluster is
    /// written in one transaction, and two servers creating one name at
    /// once both insert, one loses on the unique name, retries, and finds
    /// the other's cluster.
    ///
    /// With `max_clusters`, a Create that would make a new cluster is
    /// decided again in [`Inner::create_counted`], which counts the live
    /// clusters under a lock.
    async fn create_once(&self, req: &Create) -> Attempt<Answer> {
        let client = self.client().await?;
        let mut reg = self.fresh();
        let st = client
            .prepare_cached(&format!(
                "SELECT {CLUSTER_ONLY_COLUMNS} FROM xlreg_clusters c WHERE c.name = $1"
            ))
            .await?;
        if let Some(r) = client.query_opt(&st, &[&&req.name[..]]).await? {
            restore(&mut reg, cluster_row(&r)?)?;
        }
        let answer = match reg.decide(Request::Create(req.clone())) {
            Ok(a) => a,
            Err(rule) => return Ok(Err(rule)),
        };
        let creates = reg
            .pending()
            .iter()
            .any(|c| matches!(c, Change::NewCluster { .. }));
        if creates && self.policy.max_clusters.is_some() {
            return self.create_counted(&client, req).await;
        }
        // A Create of a live name restarts its TTL clock: stored now.
        reg.persist_activity(1);
        write_autocommit(&client, reg.pending()).await?;
        Ok(Ok(answer))
    }

    /// A Create of a new name under `max_clusters`: one transaction takes
    /// [`CLUSTER_COUNT_LOCK`] (every server's Create of a new name takes it,
    /// so they are decided one at a time across the group), then reads the
    /// name again and counts the live clusters (an expired one that no
    /// sweep removed yet does not count), and the rules decide with that
    /// count ([`Registry::set_unloaded_clusters`]): `registry limit
    /// reached` at the limit. Creates of existing names, joins and reads
    /// never take the lock.
    async fn create_counted(
        &self,
        client: &deadpool_postgres::Object,
        req: &Create,
    ) -> Attempt<Answer> {
        self.in_transaction(client, |client| async move {
            // Every statement is prepared before the pipeline: one that
            // still had to be prepared would be sent after the others.
            let lock = client
                .prepare_cached("SELECT pg_advisory_xact_lock($1)")
                .await?;
            let read = client
                .prepare_cached(&format!(
                    "SELECT {CLUSTER_ONLY_COLUMNS} FROM xlreg_clusters c WHERE c.name = $1"
                ))
                .await?;
            let count = client
                .prepare_cached(&format!(
                    "SELECT count(*) FROM xlreg_clusters c WHERE {} AND c.name <> $4",
                    live()
                ))
                .await?;
            let mut reg = self.fresh();
            let now_ms = super::unix_now_ms();
            reg.set_now(now_ms);
            let (eph, ttl, now) = expiry_params(&self.policy, now_ms as i64);
            let name = &req.name[..];
            // Pipelined; under READ COMMITTED the two reads, sent after the
            // lock, see every Create committed before it was granted.
            type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
            let lock_params: [Param; 1] = [&CLUSTER_COUNT_LOCK];
            let read_params: [Param; 1] = [&name];
            let count_params: [Param; 4] = [&eph, &ttl, &now, &name];
            let (_, _, row, n) = tokio::try_join!(
                client.batch_execute("BEGIN"),
                client.execute(&lock, &lock_params),
                client.query_opt(&read, &read_params),
                client.query_one(&count, &count_params),
            )?;
            if let Some(r) = row {
                restore(&mut reg, cluster_row(&r)?)?;
            }
            let n: i64 = n.get(0);
            reg.set_unloaded_clusters(n.max(0) as usize);
            let answer = match reg.decide(Request::Create(req.clone())) {
                Ok(a) => a,
                Err(rule) => {
                    client.batch_execute("ROLLBACK").await?;
                    return Ok(Err(rule));
                }
            };
            reg.persist_activity(1);
            commit_changes(client, reg.pending()).await?;
            Ok(Ok(answer))
        })
        .await
    }

    /// Queue `req` behind the joins of its cluster; the first one in
    /// starts a task that decides them in batches ([`Inner::drain_joins`]).
    async fn join(self: &Arc<Self>, req: Join) -> Result<Answer, BackendError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let key = req.cluster.clone();
        let start = {
            let mut m = self.join_queues.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = !m.contains_key(&key);
            m.entry(key.clone()).or_default().waiting.push((req, tx));
            fresh
        };
        if start {
            // A task of its own: a client that hangs up mid-request must
            // not cancel the others' joins.
            tokio::spawn(self.clone().drain_joins(key));
        }
        rx.await.unwrap_or(Err(BackendError::Closed))
    }

    /// Decide the queued joins of one cluster, a batch per transaction,
    /// until none are left: like the single-process service's group
    /// commit, joins that arrive while one transaction commits share the
    /// next one (one row lock and one WAL flush for many members).
    async fn drain_joins(self: Arc<Self>, key: ClusterTarget) {
        loop {
            let batch: Vec<(Join, JoinReply)> = {
                let mut m = self.join_queues.lock().unwrap_or_else(|p| p.into_inner());
                let Some(q) = m.get_mut(&key) else { return };
                if q.waiting.is_empty() {
                    m.remove(&key);
                    return;
                }
                let n = q.waiting.len().min(MAX_JOIN_BATCH);
                q.waiting.drain(..n).collect()
            };
            let reqs: Vec<&Join> = batch.iter().map(|(r, _)| r).collect();
            let r = self.retrying("join", || self.join_batch_once(&reqs)).await;
            match r {
                Ok(results) => {
                    for ((_, tx), r) in batch.into_iter().zip(results) {
                        let _ = tx.send(r.map_err(BackendError::Rule));
                    }
                }
                Err(e) => {
                    for (_, tx) in batch {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// One transaction deciding `reqs` (all naming one cluster) in order:
    /// the cluster row is locked, so joins through any number of servers
    /// are decided one batch at a time. Pipelined: BEGIN, the lock and the
    /// member read in one round trip, the writes and COMMIT in another.
    async fn join_batch_once(
        &self,
        reqs: &[&Join],
    ) -> Attempt<Vec<Result<Answer, super::RuleError>>> {
        let client = self.client().await?;
        self.in_transaction(&client, |client| async move {
            // Under READ COMMITTED a statement sees what committed before
            // it started, so the member read (run once the lock is granted)
            // sees every earlier join; a join inside the locking statement
            // would see the rows from before the wait.
            let (col, key) = target_key(&reqs[0].cluster);
            let lock = client
                .prepare_cached(&format!(
                    "SELECT 1 FROM xlreg_clusters WHERE {col} = $1 FOR UPDATE"
                ))
                .await?;
            let read = client
                .prepare_cached(&format!(
                    "SELECT {JOIN_COLUMNS} WHERE c.{col} = $1 ORDER BY m.idx"
                ))
                .await?;
            // The IDs joining: their own tokens are read, to tell a
            // re-join with the same token (no change) from a new one.
            let joining: Vec<&[u8]> = reqs.iter().map(|r| r.record.id.as_bytes()).collect();
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&key, &joining];
            let (_, _, rows) = tokio::try_join!(
                client.batch_execute("BEGIN"),
                client.query(&lock, &params[..1]),
                client.query(&read, &params)
            )?;
            let mut reg = self.fresh();
            load_cluster_rows(&mut reg, &rows)?;
            let results = reqs
                .iter()
                .map(|req| reg.decide(Request::Join((*req).clone())))
                .collect();
            // A Join restarts the cluster's TTL clock, stored with it.
            reg.persist_activity(1);
            // The trigger NOTIFYs the other servers at commit.
            commit_changes(client, reg.pending()).await?;
            Ok(Ok(results))
        })
        .await
    }

    /// Change one cluster as a whole: a Delete by one of its members or an
    /// operator's DeleteByName of `target`, a Resize, an Evict or a Leave.
    /// Like a join batch, the cluster row is locked first, so these and
    /// the joins of any server are decided one after the other; the rules
    /// decide on the locked rows. A NOTIFY at commit wakes the requests
    /// held on every server: for a delete one sent here (they read again
    /// and get `cannot find cluster`), for the others the history row's
    /// trigger (schema migration 5).
    async fn change_once(&self, req: &Request, target: &ClusterTarget) -> Attempt<Answer> {
        let client = self.client().await?;
        self.in_transaction(&client, |client| async move {
            let (col, key) = target_key(target);
            let lock = client
                .prepare_cached(&format!(
                    "SELECT 1 FROM xlreg_clusters WHERE {col} = $1 FOR UPDATE"
                ))
                .await?;
            let read = client
                .prepare_cached(&format!(
                    "SELECT {CHANGE_COLUMNS} WHERE c.{col} = $1 ORDER BY m.idx"
                ))
                .await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&key];
            let (_, _, rows) = tokio::try_join!(
                client.batch_execute("BEGIN"),
                client.query(&lock, &params),
                client.query(&read, &params)
            )?;
            let mut reg = self.fresh();
            load_cluster_rows(&mut reg, &rows)?;
            let (answer, id) = match reg.decide(req.clone()) {
                Ok(a @ Answer::Deleted(id)) => (a, id),
                Ok(a) => {
                    // Nothing to write (a resize to the same size) makes
                    // this a ROLLBACK.
                    commit_changes(client, reg.pending()).await?;
                    return Ok(Ok(a));
                }
                Err(rule) => {
                    client.batch_execute("ROLLBACK").await?;
                    return Ok(Err(rule));
                }
            };
            if self.url.watch().notify {
                let notify = client.prepare_cached("SELECT pg_notify($1, $2)").await?;
                client
                    .query(&notify, &[&schema::CHANNEL, &watchers::payload(&id, 0)])
                    .await?;
            }
            commit_changes(client, reg.pending()).await?;
            Ok(Ok(answer))
        })
        .await
    }

    /// Read one cluster (one statement: one consistent snapshot) into a
    /// [`Registry`] holding just it.
    async fn read_cluster(&self, target: &ClusterTarget) -> Result<Registry, Failure> {
        let client = self.client().await?;
        let (col, key) = target_key(target);
        let st = client
            .prepare_cached(&format!(
                "SELECT {CLUSTER_COLUMNS} WHERE c.{col} = $1 ORDER BY m.idx"
            ))
            .await?;
        let rows = client.query(&st, &[&key]).await?;
        let mut reg = self.fresh();
        load_cluster_rows(&mut reg, &rows)?;
        Ok(reg)
    }

    /// [`Inner::change_once`], retried.
    async fn change(
        &self,
        what: &str,
        target: ClusterTarget,
        req: Request,
    ) -> Result<Answer, BackendError> {
        self.retrying(what, || self.change_once(&req, &target))
            .await
    }

    /// Watch now: one read of the cluster, decided by the rules (holding
    /// is [`crate::registry::perform_held`]'s, woken by [`Listener`]).
    async fn watch_once(&self, req: &WatchRequest) -> Attempt<Watched> {
        let reg = self.read_cluster(&req.cluster).await?;
        Ok(reg.watch(req))
    }

    /// GetCluster now. A held request (`hold` > 0) of a watched cluster
    /// shares its read with the others woken by the same notification:
    /// when the last of 64 members joins, the 63 waiting on this server
    /// cost one query, not 63. It is never older than the notifications
    /// its caller was woken by; an unheld request always reads afresh.
    async fn get_once(&self, req: &GetCluster) -> Attempt<Members> {
        if let (false, ClusterTarget::Id(id)) = (req.hold.is_zero(), &req.cluster) {
            if let Some(gen) = self.listener.generation(id) {
                let cell = {
                    let mut map = self.shared_reads.lock().unwrap_or_else(|p| p.into_inner());
                    if map.len() >= SHARED_READS_MAX {
                        map.clear();
                    }
                    let e = map.entry(*id).or_insert_with(|| (gen, Default::default()));
                    if e.0 != gen {
                        *e = (gen, Default::default());
                    }
                    e.1.clone()
                };
                let reg = cell
                    .get_or_try_init(|| async {
                        self.read_cluster(&req.cluster).await.map(Arc::new)
                    })
                    .await?;
                return self.answer_read(reg, req).await;
            }
        }
        let reg = self.read_cluster(&req.cluster).await?;
        self.answer_read(&reg, req).await
    }

    /// The answer to GetCluster `req` from `reg` (as read), with the
    /// cluster's last activity stored when its TTL clock matters: a read
    /// restarts it (as on the in-process store). Stored at most every
    /// [`TOUCH_EVERY_MS`] (or a quarter of its TTL, if shorter).
    async fn answer_read(&self, reg: &Registry, req: &GetCluster) -> Attempt<Members> {
        let now = super::unix_now_ms();
        let m = match reg.members(req) {
            Ok(m) => m,
            Err(rule) => return Ok(Err(rule)),
        };
        if let Some(c) = reg.cluster(&m.cluster_id) {
            if let Some(ttl) = reg.ttl_of(c) {
                if now.saturating_sub(c.last_active_ms) >= TOUCH_EVERY_MS.min(ttl / 4) {
                    let client = self.client().await?;
                    let (sql, v) = write::change_sql(&Change::Touch {
                        id: m.cluster_id,
                        at_ms: now,
                    });
                    let st = client.prepare_cached(sql).await?;
                    let p: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = v
                        .iter()
                        .map(|b| &**b as &(dyn tokio_postgres::types::ToSql + Sync))
                        .collect();
                    client.execute(&st, &p).await?;
                }
            }
        }
        Ok(Ok(m))
    }

    /// The sweep: remove at most `limit` expired clusters in one
    /// transaction. The candidates are locked `FOR UPDATE SKIP LOCKED`, so
    /// servers sweeping at once each take other clusters (no double work)
    /// and a cluster being joined right now is left for the next sweep;
    /// the rules decide which of the locked ones are expired
    /// ([`Registry::decide`] of [`Request::Expire`]). A NOTIFY per
    /// cluster wakes the GetClusters held on every server at commit: they
    /// read again and get `cannot find cluster`. Activity needs no storing
    /// here: every request stores its own.
    async fn expire_once(&self, limit: usize) -> Attempt<Answer> {
        let policy = self.policy;
        let client = self.client().await?;
        self.in_transaction(&client, |client| async move {
            let mut reg = self.fresh();
            let now = super::unix_now_ms() as i64;
            let params = expiry_params(&policy, now);
            let pick = client
                .prepare_cached(&format!(
                    "SELECT {CLUSTER_ONLY_COLUMNS} FROM xlreg_clusters c WHERE NOT {live}
                     ORDER BY c.last_active_ms LIMIT $4 FOR UPDATE SKIP LOCKED",
                    live = live()
                ))
                .await?;
            let limit_param = limit.min(i64::MAX as usize) as i64;
            client.batch_execute("BEGIN").await?;
            let rows = client
                .query(&pick, &[&params.0, &params.1, &params.2, &limit_param])
                .await?;
            for r in &rows {
                restore(&mut reg, cluster_row(r)?)?;
            }
            let answer = match reg.decide(Request::Expire(limit)) {
                Ok(a) => a,
                Err(rule) => {
                    client.batch_execute("ROLLBACK").await?;
                    return Ok(Err(rule));
                }
            };
            let gone: Vec<String> = reg
                .pending()
                .iter()
                .filter_map(|ch| match ch {
                    Change::DeleteCluster { id } => Some(watchers::payload(id, 0)),
                    _ => None,
                })
                .collect();
            if !gone.is_empty() && self.url.watch().notify {
                let notify = client
                    .prepare_cached("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                    .await?;
                client.query(&notify, &[&schema::CHANNEL, &gone]).await?;
            }
            commit_changes(client, reg.pending()).await?;
            Ok(Ok(answer))
        })
        .await
    }

    /// One page of the live clusters, read in one REPEATABLE READ
    /// snapshot: the page's cluster rows (at most the page size, by an
    /// index), their members, and the totals.
    async fn listing(&self, page: &ListingPage) -> Result<Listing, BackendError> {
        self.retrying("listing", || async {
            let mut client = self.client().await?;
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let now = super::unix_now_ms() as i64;
            let (eph, def, now) = expiry_params(&self.policy, now);
            let limit = page.bounded_limit() as i64;
            let live = live();
            let select = |cond: &str, order: &str| {
                format!(
                    "SELECT c.id, c.name FROM xlreg_clusters c WHERE {live} AND {cond}
                     ORDER BY {order} LIMIT $4"
                )
            };
            let ids = match &page.order {
                ListingOrder::ByName { after } => {
                    let after = after.clone().unwrap_or_default();
                    tx.query(
                        &select("c.name > $5", "c.name"),
                        &[&eph, &def, &now, &(limit + 1), &after],
                    )
                    .await?
                }
                ListingOrder::RecentlyActive => {
                    tx.query(
                        &select("true", "c.last_active_ms DESC, c.name"),
                        &[&eph, &def, &now, &limit],
                    )
                    .await?
                }
                ListingOrder::Named(name) => {
                    tx.query(
                        &select("c.name = $5", "c.name"),
                        &[&eph, &def, &now, &limit, name],
                    )
                    .await?
                }
            };
            // A ByName page reads one row more than it holds: is there a next?
            let held = &ids[..ids.len().min(limit as usize)];
            let next = (ids.len() > held.len())
                .then(|| held.last().map(|r| r.get::<_, &[u8]>(1).to_vec()))
                .flatten();
            let order = held
                .iter()
                .map(|r| node_id(r.get::<_, &[u8]>(0), "cluster ID"))
                .collect::<Result<Vec<_>, _>>()?;
            let raw: Vec<&[u8]> = order.iter().map(|id| id.as_bytes()).collect();
            let rows = tx
                .query(
                    &format!("SELECT {CLUSTER_COLUMNS} WHERE c.id = ANY($1) ORDER BY c.id, m.idx"),
                    &[&raw],
                )
                .await?;
            let mut reg = self.fresh();
            load_grouped(&mut reg, &rows)?;
            // At most HISTORY_LEN rows per cluster of the page.
            let past = tx
                .query(
                    &format!(
                        "SELECT {HISTORY_COLUMNS} WHERE h.cluster_id = ANY($1)
                         ORDER BY h.cluster_id, h.version"
                    ),
                    &[&raw],
                )
                .await?;
            load_history(&mut reg, &past)?;
            let totals = tx
                .query_one(
                    &format!(
                        "SELECT count(*), coalesce(sum((SELECT count(*) FROM xlreg_members m
                                                        WHERE m.cluster_id = c.id)), 0)::bigint
                         FROM xlreg_clusters c WHERE {live}"
                    ),
                    &[&eph, &def, &now],
                )
                .await?;
            tx.commit().await?;
            Ok(Ok(Listing {
                registry: reg,
                clusters: order,
                total_clusters: totals.get::<_, i64>(0) as usize,
                total_members: totals.get::<_, i64>(1) as usize,
                next,
            }))
        })
        .await
    }

    async fn snapshot(&self) -> Result<Registry, BackendError> {
        self.retrying("snapshot", || async {
            let mut client = self.client().await?;
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let mut reg = self.fresh();
            for r in tx
                .query(
                    "SELECT id, kind, sig_sha256 FROM xlreg_ids WHERE kind = 2",
                    &[],
                )
                .await?
            {
                let id = node_id(r.get::<_, &[u8]>(0), "ID")?;
                let owner = owner_of(r.get(1), r.get(2))?;
                restore(&mut reg, Change::NewId { id, owner })?;
            }
            let rows = tx
                .query(
                    &format!("SELECT {CLUSTER_COLUMNS} ORDER BY c.id, m.idx"),
                    &[],
                )
                .await?;
            load_grouped(&mut reg, &rows)?;
            tx.commit().await?;
            Ok(Ok(reg))
        })
        .await
    }

    async fn counts(&self) -> Result<(u64, u64, u64), BackendError> {
        self.retrying("counts", || async {
            let client = self.client().await?;
            let r = client
                .query_one(
                    "SELECT (SELECT count(*) FROM xlreg_ids WHERE kind = 2),
                            (SELECT count(*) FROM xlreg_clusters),
                            (SELECT count(*) FROM xlreg_members)",
                    &[],
                )
                .await?;
            Ok(Ok((
                r.get::<_, i64>(0) as u64,
                r.get::<_, i64>(1) as u64,
                r.get::<_, i64>(2) as u64,
            )))
        })
        .await
    }
}

impl PostgresBackend {
    /// Connect, create or migrate the schema, claim the database for the
    /// registry identity `own_id` (a database keeps one identity: every
    /// server of a group shares it), and start listening. `policy` (TTLs,
    /// limits) applies to every request this server decides; every server
    /// of a group should be given the same.
    pub async fn connect(
        url: &DbUrl,
        own_id: NodeId,
        opts: &PoolOptions,
        policy: Policy,
    ) -> Result<PostgresBackend, StoreError> {
        Ok(PostgresBackend {
            inner: Arc::new(Inner::connect(url, own_id, opts, policy).await?),
        })
    }

    /// The database, password redacted.
    pub fn url(&self) -> &DbUrl {
        &self.inner.url
    }

    /// Is the LISTEN connection up (held requests hear other servers)?
    pub fn is_listening(&self) -> bool {
        self.inner.listener.is_listening()
    }

    /// Everything in the database as a [`Registry`] (listings, copies,
    /// checks), read in one REPEATABLE READ snapshot.
    pub async fn snapshot(&self) -> Result<Registry, BackendError> {
        self.inner.snapshot().await
    }

    /// Row counts: (member-owned IDs, clusters, members).
    pub async fn counts(&self) -> Result<(u64, u64, u64), BackendError> {
        self.inner.counts().await
    }
}

impl Backend for PostgresBackend {
    fn perform(&self, req: Request) -> BoxFuture<'_, Result<Answer, BackendError>> {
        let i = &self.inner;
        let what = req.op_name();
        Box::pin(async move {
            match req {
                Request::Register(r) => i.retrying(what, || i.register_once(&r)).await,
                Request::Create(c) => i.retrying(what, || i.create_once(&c)).await,
                Request::Join(j) => i.join(j).await,
                Request::GetCluster(g) => i
                    .retrying(what, || i.get_once(&g))
                    .await
                    .map(Answer::Members),
                Request::DeleteByName(name) => {
                    let target = ClusterTarget::Name(name[..].into());
                    i.change(what, target, Request::DeleteByName(name)).await
                }
                Request::Delete(d) => i.change(what, d.cluster.clone(), d.into()).await,
                Request::Resize(r) => i.change(what, r.cluster.clone(), r.into()).await,
                Request::Evict(e) => i.change(what, e.cluster.clone(), e.into()).await,
                Request::Leave(l) => i.change(what, l.cluster.clone(), l.into()).await,
                Request::Watch(w) => i
                    .retrying(what, || i.watch_once(&w))
                    .await
                    .map(Answer::Watched),
                Request::Expire(limit) => i.retrying(what, || i.expire_once(limit)).await,
            }
        })
    }

    fn subscribe(&self, cluster: &NodeId) -> watch::Receiver<u64> {
        self.inner.listener.subscribe(cluster)
    }

    fn listing(&self, page: ListingPage) -> BoxFuture<'_, Result<Listing, BackendError>> {
        Box::pin(async move { self.inner.listing(&page).await })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.inner
                .closed
                .store(true, std::sync::atomic::Ordering::Release);
            self.inner.pool.close();
        })
    }

    fn location(&self) -> String {
        self.inner.url.to_string()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        let i = &self.inner;
        Box::pin(async move {
            i.retrying("ping", || async {
                i.client().await?.batch_execute("SELECT 1").await?;
                Ok(Ok(()))
            })
            .await
        })
    }
}
