//! The registry on PostgreSQL: several `xlreg serve` processes, one
//! identity, one database, any of them able to serve any client.
//!
//! Why this shape: the single-process service decides every rule in
//! memory, which is only safe while one process owns the data. Here each
//! request is ONE PostgreSQL transaction: it locks what it needs (the
//! cluster row, `SELECT … FOR UPDATE`), loads those rows into a small
//! [`Registry`], lets the same rule functions decide ([`super::rules`]),
//! writes the resulting [`Change`]s and commits; only then is the reply
//! sent. Constraints and a trigger in the schema ([`schema`]) back the
//! rules up, and races between servers that the locks cannot cover (two
//! inserts of one new ID or name) end in a unique violation that is
//! retried, so the second racer sees the first one's row.
//!
//! Held GetCluster requests wait on LISTEN/NOTIFY ([`listen`]): a member
//! held on server A learns of the last join through server B the moment
//! B commits.

pub mod copy;
pub mod listen;
pub mod schema;
pub mod url;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::broadcast::error::RecvError;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

use super::rules::{Change, ClusterInfo, IdOwner, MemberRecord, Registry, RuleError, Selection};
use super::service::{JoinTarget, ServiceError};
use super::store::StoreError;
use crate::wire::{NodeId, Which};
use listen::{Event, Listener};
pub use url::DbUrl;

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
/// serialization failure, deadlock) or its connection.
const ATTEMPTS: usize = 6;

/// The registry backed by one PostgreSQL database.
pub struct PostgresBackend {
    pool: Pool,
    listener: Listener,
    own_id: NodeId,
    url: DbUrl,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresBackend({})", self.url)
    }
}

/// Why one attempt failed.
#[derive(Debug)]
enum Failure {
    /// No connection could be had.
    Pool(String),
    /// The database refused or lost the statement.
    Db(tokio_postgres::Error),
    /// The stored rows break an invariant.
    Corrupt(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Db(e)
    }
}

impl Failure {
    fn retryable(&self) -> bool {
        match self {
            Failure::Db(e) => {
                e.is_closed()
                    || matches!(
                        e.code(),
                        Some(c) if *c == SqlState::UNIQUE_VIOLATION
                            || *c == SqlState::T_R_SERIALIZATION_FAILURE
                            || *c == SqlState::T_R_DEADLOCK_DETECTED
                    )
            }
            Failure::Pool(_) | Failure::Corrupt(_) => false,
        }
    }

    fn text(&self) -> String {
        match self {
            Failure::Pool(m) | Failure::Corrupt(m) => m.clone(),
            Failure::Db(e) => match e.as_db_error() {
                Some(d) => format!("{}: {}", d.code().code(), d.message()),
                None => e.to_string(),
            },
        }
    }
}

type Attempt<T> = Result<Result<T, RuleError>, Failure>;

fn start_err(url: &DbUrl, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError {
        path: url.to_string(),
        msg: format!("{what}: {e}"),
    }
}

fn owner_of(kind: i16, sig: Option<Vec<u8>>) -> Result<IdOwner, Failure> {
    match (kind, sig) {
        (0, None) => Ok(IdOwner::Registry),
        (1, None) => Ok(IdOwner::Cluster),
        (2, Some(h)) if h.len() == 32 => Ok(IdOwner::Member(h.try_into().expect("32 bytes"))),
        (k, _) => Err(Failure::Corrupt(format!("ID row of kind {k} is invalid"))),
    }
}

fn node_id(raw: &[u8], what: &str) -> Result<NodeId, Failure> {
    NodeId::from_bytes(raw).map_err(|_| Failure::Corrupt(format!("{what} of {} bytes", raw.len())))
}

/// Columns: c.id, c.name, c.attrs, c.max_size, c.ep_count, m.idx,
/// m.member_id, m.name, m.token (member columns NULL for an empty cluster).
const CLUSTER_COLUMNS: &str = "c.id, c.name, c.attrs, c.max_size, c.ep_count,
     m.idx, m.member_id, m.name, m.token
     FROM xlreg_clusters c LEFT JOIN xlreg_members m ON m.cluster_id = c.id";

/// Load the rows of one cluster (see [`CLUSTER_COLUMNS`]) into `reg`;
/// returns its ID and member count, or `None` when there were no rows.
fn load_cluster_rows(reg: &mut Registry, rows: &[Row]) -> Result<Option<(NodeId, usize)>, Failure> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let id = node_id(first.get::<_, &[u8]>(0), "cluster ID")?;
    let info = ClusterInfo {
        id,
        max_size: first.get::<_, i32>(3) as u32,
        attrs: first.get::<_, i64>(2) as u64,
        ep_count: first.get::<_, i32>(4) as u32,
    };
    let name: Box<[u8]> = first.get::<_, &[u8]>(1).into();
    let mut members = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(idx) = r.get::<_, Option<i32>>(5) else {
            continue;
        };
        if idx as usize != members.len() {
            return Err(Failure::Corrupt(format!(
                "cluster {id} has slot {idx} where slot {} was expected",
                members.len()
            )));
        }
        members.push(MemberRecord {
            id: node_id(r.get::<_, &[u8]>(6), "member ID")?,
            name: r.get::<_, &[u8]>(7).into(),
            token: r.get::<_, &[u8]>(8).into(),
        });
    }
    let n = members.len();
    reg.load_cluster(info, name, members);
    Ok(Some((id, n)))
}

impl PostgresBackend {
    /// Connect, create or migrate the schema, claim the database for the
    /// registry identity `own_id` (a database keeps one identity: every
    /// server of a group shares it), and start listening.
    pub async fn connect(
        url: &DbUrl,
        own_id: NodeId,
        opts: &PoolOptions,
    ) -> Result<PostgresBackend, StoreError> {
        let mut config = url.config().clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(opts.connect_timeout);
        }
        config.application_name("xlreg");
        let url = DbUrl::from_parts(config.clone(), url.to_string());
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
            return Err(start_err(
                &url,
                "belongs to another registry",
                format!(
                    "its registry ID is {}, this server's is {own_id}; every server of a group \
                     must share one identity (copy the data dir's identity, or --adopt)",
                    hex::encode(&owner)
                ),
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
        Ok(PostgresBackend {
            pool,
            listener,
            own_id,
            url,
        })
    }

    /// The database, password redacted.
    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    /// Is the LISTEN connection up (held requests hear other servers)?
    pub fn is_listening(&self) -> bool {
        self.listener.is_listening()
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Failure> {
        self.pool
            .get()
            .await
            .map_err(|e| Failure::Pool(format!("no database connection: {e}")))
    }

    /// Run `attempt` until it succeeds, fails for good, or runs out of
    /// retries; a reply is only produced after a commit.
    async fn retrying<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, ServiceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Attempt<T>>,
    {
        let mut last = None;
        for n in 0..ATTEMPTS {
            match attempt().await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(rule)) => return Err(ServiceError::Rule(rule)),
                Err(f) if f.retryable() && n + 1 < ATTEMPTS => {
                    tracing::debug!(op = what, error = %f.text(), attempt = n, "retrying transaction");
                    if n > 0 {
                        tokio::time::sleep(Duration::from_millis(5 << n)).await;
                    }
                    last = Some(f);
                }
                Err(f) => {
                    last = Some(f);
                    break;
                }
            }
        }
        let text = last.map(|f| f.text()).unwrap_or_default();
        tracing::error!(op = what, db = %self.url.short(), error = %text, "storage failure; request not applied");
        Err(ServiceError::Store(format!("{what}: {text}")))
    }

    /// Member registration (see [`Registry::register`]), decided in one
    /// transaction; the ID's owner row is the proof.
    pub async fn register(
        &self,
        id: Option<NodeId>,
        sig_hash: [u8; 32],
    ) -> Result<NodeId, ServiceError> {
        self.retrying("register", || self.register_once(id, sig_hash))
            .await
    }

    async fn register_once(&self, id: Option<NodeId>, sig_hash: [u8; 32]) -> Attempt<NodeId> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut reg = Registry::new(self.own_id);
        if let Some(id) = id {
            let st = tx
                .prepare_cached("SELECT kind, sig_sha256 FROM xlreg_ids WHERE id = $1")
                .await?;
            if let Some(row) = tx.query_opt(&st, &[&id.as_bytes()]).await? {
                reg.load_id(id, owner_of(row.get(0), row.get(1))?);
            }
        }
        let decided = match reg.register(id, sig_hash) {
            Ok(v) => v,
            Err(rule) => return Ok(Err(rule)),
        };
        write_changes(&tx, reg.pending()).await?;
        tx.commit().await?;
        Ok(Ok(decided))
    }

    /// Create a cluster, or return the one of that name (idempotent): two
    /// servers creating one name at once give one cluster.
    pub async fn create(
        &self,
        name: Vec<u8>,
        max_size: u32,
        attrs: u64,
        ep_count: u32,
    ) -> Result<ClusterInfo, ServiceError> {
        self.retrying("create", || {
            self.create_once(&name, max_size, attrs, ep_count)
        })
        .await
    }

    async fn create_once(
        &self,
        name: &[u8],
        max_size: u32,
        attrs: u64,
        ep_count: u32,
    ) -> Attempt<ClusterInfo> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut reg = Registry::new(self.own_id);
        if !name.is_empty() {
            let st = tx
                .prepare_cached(
                    "SELECT id, name, attrs, max_size, ep_count FROM xlreg_clusters WHERE name = $1",
                )
                .await?;
            if let Some(r) = tx.query_opt(&st, &[&name]).await? {
                let info = ClusterInfo {
                    id: node_id(r.get::<_, &[u8]>(0), "cluster ID")?,
                    max_size: r.get::<_, i32>(3) as u32,
                    attrs: r.get::<_, i64>(2) as u64,
                    ep_count: r.get::<_, i32>(4) as u32,
                };
                reg.load_cluster(info, r.get::<_, &[u8]>(1).into(), Vec::new());
            }
        }
        let info = match reg.create(name, max_size, attrs, ep_count) {
            Ok(v) => v,
            Err(rule) => return Ok(Err(rule)),
        };
        if reg.pending().is_empty() {
            return Ok(Ok(info));
        }
        write_changes(&tx, reg.pending()).await?;
        tx.commit().await?;
        Ok(Ok(info))
    }

    /// Join a cluster: the cluster row is locked, so joins of one cluster
    /// through any number of servers are decided one at a time.
    pub async fn join(
        &self,
        target: JoinTarget,
        record: MemberRecord,
        endpoints: usize,
    ) -> Result<(ClusterInfo, usize), ServiceError> {
        self.retrying("join", || self.join_once(&target, &record, endpoints))
            .await
    }

    async fn join_once(
        &self,
        target: &JoinTarget,
        record: &MemberRecord,
        endpoints: usize,
    ) -> Attempt<(ClusterInfo, usize)> {
        let mut reg = Registry::new(self.own_id);
        let (by_id, by_name): (Option<&[u8]>, Option<&[u8]>) = match target {
            JoinTarget::Id(raw) => (Some(raw), None),
            JoinTarget::Name(n) => (None, Some(n)),
            JoinTarget::Current(Some(c)) => (Some(c.as_bytes()), None),
            JoinTarget::Current(None) => return Ok(Err(RuleError::MissingCluster)),
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Lock the cluster row, then read its members in a second statement:
        // under READ COMMITTED a statement sees what committed before it
        // started, so the member read (sent in the same round trip, run
        // after the lock is granted) sees every earlier join. A join in the
        // locking statement itself would see the rows as of before the wait.
        let key: Option<(&str, &[u8])> = match (by_id, by_name) {
            (Some(raw), _) if NodeId::from_bytes(raw).is_ok() => Some(("id", raw)),
            (None, Some(n)) if !n.is_empty() => Some(("name", n)),
            _ => None,
        };
        let rows = match key {
            Some((col, v)) => {
                let lock = tx
                    .prepare_cached(&format!(
                        "SELECT 1 FROM xlreg_clusters WHERE {col} = $1 FOR UPDATE"
                    ))
                    .await?;
                let read = tx
                    .prepare_cached(&format!(
                        "SELECT {CLUSTER_COLUMNS} WHERE c.{col} = $1 ORDER BY m.idx"
                    ))
                    .await?;
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&v];
                let (_, rows) =
                    tokio::try_join!(tx.query(&lock, &params), tx.query(&read, &params))?;
                rows
            }
            None => Vec::new(),
        };
        load_cluster_rows(&mut reg, &rows)?;
        let cid = match reg.resolve(by_id, by_name) {
            Ok(c) => c,
            Err(rule) => return Ok(Err(rule)),
        };
        let decided = match reg.join(&cid, record.clone(), endpoints) {
            Ok(v) => v,
            Err(rule) => return Ok(Err(rule)),
        };
        if reg.pending().is_empty() {
            // A re-join with the same token: nothing to write.
            return Ok(Ok(decided));
        }
        write_changes(&tx, reg.pending()).await?;
        tx.commit().await?;
        Ok(Ok(decided))
    }

    /// The ClusterID a GetCluster reads (see [`Registry::get_target`]):
    /// looks the name up only when no ID was sent.
    pub async fn get_target(
        &self,
        cluster_id: Option<Vec<u8>>,
        cluster_name: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, ServiceError> {
        let name = match (&cluster_id, cluster_name) {
            (None, Some(n)) => n,
            _ => return Ok(cluster_id),
        };
        self.retrying("get", || async {
            let client = self.client().await?;
            let st = client
                .prepare_cached(
                    "SELECT id, attrs, max_size, ep_count FROM xlreg_clusters WHERE name = $1",
                )
                .await?;
            let mut reg = Registry::new(self.own_id);
            if let Some(r) = client.query_opt(&st, &[&name]).await? {
                let info = ClusterInfo {
                    id: node_id(r.get::<_, &[u8]>(0), "cluster ID")?,
                    max_size: r.get::<_, i32>(2) as u32,
                    attrs: r.get::<_, i64>(1) as u64,
                    ep_count: r.get::<_, i32>(3) as u32,
                };
                reg.load_cluster(info, name.into(), Vec::new());
            }
            Ok(reg.get_target(None, Some(name)))
        })
        .await
    }

    /// Read one cluster into a fresh [`Registry`] (empty when unknown).
    async fn read_cluster(&self, raw: &[u8]) -> Result<(Registry, usize), Failure> {
        let mut reg = Registry::new(self.own_id);
        if NodeId::from_bytes(raw).is_err() {
            return Ok((reg, 0));
        }
        let client = self.client().await?;
        let st = client
            .prepare_cached(&format!(
                "SELECT {CLUSTER_COLUMNS} WHERE c.id = $1 ORDER BY m.idx"
            ))
            .await?;
        let rows = client.query(&st, &[&raw]).await?;
        let n = load_cluster_rows(&mut reg, &rows)?.map_or(0, |(_, n)| n);
        Ok((reg, n))
    }

    async fn select_now(
        &self,
        cluster_id: Option<&[u8]>,
        which: Which,
        budget: usize,
    ) -> Result<Selection, ServiceError> {
        self.retrying("get", || async {
            let (reg, _) = match cluster_id {
                Some(raw) => self.read_cluster(raw).await?,
                None => (Registry::new(self.own_id), 0),
            };
            Ok(reg.select(cluster_id, which, budget))
        })
        .await
    }

    /// GetCluster. With `hold`, wait (at most that long) until every
    /// requested index below the cluster's size has a committed member —
    /// joined through this server or any other of the group.
    pub async fn get(
        &self,
        cluster_id: Option<&[u8]>,
        which: Which,
        budget: usize,
        hold: Option<Duration>,
    ) -> Result<Selection, ServiceError> {
        let Some(hold) = hold else {
            return self.select_now(cluster_id, which, budget).await;
        };
        let deadline = tokio::time::Instant::now() + hold;
        // Subscribe before reading: a join committed after the read is heard.
        let mut events = self.listener.subscribe();
        loop {
            let read = match cluster_id {
                Some(raw) => self.read_cluster(raw).await,
                None => Ok((Registry::new(self.own_id), 0)),
            };
            let (reg, _) = match read {
                Ok(r) => r,
                Err(_) => return self.select_now(cluster_id, which, budget).await,
            };
            let c = reg.visible_cluster(cluster_id).map_err(ServiceError::Rule)?;
            if c.satisfies(which) || tokio::time::Instant::now() >= deadline {
                return reg
                    .select(cluster_id, which, budget)
                    .map_err(ServiceError::Rule);
            }
            let (cid, max) = (c.id, c.max_size as usize);
            let wanted = which.and(Which::low_n(max));
            // Wait for a count that satisfies the request, or a resync.
            loop {
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Ok(Ok(Event::Joined { cluster, count })) => {
                        if cluster == cid && wanted.minus(Which::low_n(count)).is_empty() {
                            break;
                        }
                    }
                    Ok(Ok(Event::Resync)) | Ok(Err(RecvError::Lagged(_))) => break,
                    Ok(Err(RecvError::Closed)) | Err(_) => {
                        return self.select_now(cluster_id, which, budget).await
                    }
                }
            }
        }
    }

    /// Everything in the database as a [`Registry`] (listings, copies,
    /// checks). Reads in one REPEATABLE READ snapshot.
    pub async fn snapshot(&self) -> Result<Registry, ServiceError> {
        self.retrying("snapshot", || async {
            let mut client = self.client().await?;
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let mut reg = Registry::new(self.own_id);
            for r in tx
                .query("SELECT id, kind, sig_sha256 FROM xlreg_ids WHERE kind <> 0", &[])
                .await?
            {
                let id = node_id(r.get::<_, &[u8]>(0), "ID")?;
                reg.load_id(id, owner_of(r.get(1), r.get(2))?);
            }
            let rows = tx
                .query(&format!("SELECT {CLUSTER_COLUMNS} ORDER BY c.id, m.idx"), &[])
                .await?;
            let mut start = 0;
            while start < rows.len() {
                let id: &[u8] = rows[start].get(0);
                let end = rows[start..]
                    .iter()
                    .position(|r| r.get::<_, &[u8]>(0) != id)
                    .map_or(rows.len(), |i| start + i);
                load_cluster_rows(&mut reg, &rows[start..end])?;
                start = end;
            }
            tx.commit().await?;
            Ok(Ok(reg))
        })
        .await
    }

    /// Row counts: (member-owned IDs, clusters, members).
    pub async fn counts(&self) -> Result<(u64, u64, u64), ServiceError> {
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

/// Write the changes one request decided, inside its transaction.
async fn write_changes(tx: &deadpool_postgres::Transaction<'_>, changes: &[Change]) -> Result<(), Failure> {
    for ch in changes {
        match ch {
            Change::NewId { id, owner } => {
                let (kind, sig): (i16, Option<&[u8]>) = match owner {
                    IdOwner::Registry => (0, None),
                    IdOwner::Cluster => (1, None),
                    IdOwner::Member(h) => (2, Some(h)),
                };
                let st = tx
                    .prepare_cached("INSERT INTO xlreg_ids(id, kind, sig_sha256) VALUES ($1, $2, $3)")
                    .await?;
                tx.execute(&st, &[&id.as_bytes(), &kind, &sig]).await?;
            }
            Change::NewCluster {
                id,
                name,
                attrs,
                max_size,
                ep_count,
            } => {
                let st = tx
                    .prepare_cached(
                        "INSERT INTO xlreg_clusters(id, name, attrs, max_size, ep_count)
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .await?;
                tx.execute(
                    &st,
                    &[
                        &id.as_bytes(),
                        &&name[..],
                        &(*attrs as i64),
                        &(*max_size as i32),
                        &(*ep_count as i32),
                    ],
                )
                .await?;
            }
            Change::NewMember {
                cluster,
                index,
                record,
            } => {
                let st = tx
                    .prepare_cached(
                        "INSERT INTO xlreg_members(cluster_id, idx, member_id, name, token)
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .await?;
                tx.execute(
                    &st,
                    &[
                        &cluster.as_bytes(),
                        &(*index as i32),
                        &record.id.as_bytes(),
                        &&record.name[..],
                        &&record.token[..],
                    ],
                )
                .await?;
            }
            Change::ReplaceMember {
                cluster,
                index,
                record,
            } => {
                let st = tx
                    .prepare_cached(
                        "UPDATE xlreg_members SET token = $3 WHERE cluster_id = $1 AND idx = $2",
                    )
                    .await?;
                let n = tx
                    .execute(
                        &st,
                        &[&cluster.as_bytes(), &(*index as i32), &&record.token[..]],
                    )
                    .await?;
                if n != 1 {
                    return Err(Failure::Corrupt(format!(
                        "re-join of slot {index} of cluster {cluster} updated {n} rows"
                    )));
                }
            }
        }
    }
    Ok(())
}
