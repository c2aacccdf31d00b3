//! Test clusters in-process: a registry and a whole booted cluster in one
//! call, for `#[tokio::test]`s (like etcd's `embed` or Consul's `testutil`
//! server), and the building blocks of `xlreg up`.
//!
//! * [`LocalRegistry::start`]: an in-memory registry on a free loopback
//!   port, its regCred.dat in a temporary directory; stopped when dropped.
//! * [`LocalCluster::launch`]: a registry, a uniquely named cluster of `n`
//!   members, each member booted through the client library
//!   ([`crate::client::boot()`]) with two fresh RSA keys and real listening
//!   loopback endpoints; returns every member's [`ClusterView`]. Serve on
//!   a member's endpoint with [`LocalMember::take_listener`] (a
//!   `tokio::net::TcpListener`).
//! * [`keys`]: parallel key generation (a fast generator for test keys)
//!   and an on-disk [`KeyPool`].
//! * [`UpEnv`] (re-exported from [`crate::client::UpEnv`]): what `xlreg up
//!   -- CMD` tells each program it launches, and the one call such a
//!   program makes to join ([`UpEnv::boot`]).
//!
//! Members learn the whole cluster the moment the last one joins: the
//! client asks for the missing members and an xlreg registry holds that
//! GetCluster until they are all present (at most
//! [`ServerConfig::hold`], 1 s by default), instead of the Go client's
//! 50 ms polling.
//!
//! # Example
//!
//! ```
//! use xlreg::testing::LocalCluster;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // 3 members, 1024-bit test keys, 2 endpoints each.
//!     let cluster = LocalCluster::launch(3).await?;
//!     for m in &cluster.members {
//!         assert!(m.view.is_complete());
//!         assert_eq!(m.view.members.len(), 3);
//!         // The listening sockets behind the member's endpoints are yours.
//!         assert_eq!(m.listeners().count(), m.endpoints().len());
//!     }
//!     // Another client of the same registry:
//!     let regcred = cluster.regcred().clone();
//!     assert_eq!(regcred.endpoints.len(), 1);
//!     cluster.shutdown().await;
//!     Ok(())
//! }
//! ```

mod change;
pub mod faults;
pub mod keys;
#[cfg(feature = "postgres")]
pub mod postgres;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::boot::{boot_in_turn, create_cluster_as, JoinTurn};
use crate::client::node::{attrs, NodeIdentity};
use crate::client::{
    BootOptions, ClientError, ClientOptions, ClusterInfo, ClusterRef, ClusterSpec, ClusterView,
    MemberInfo, Session,
};
use crate::regcred::RegCred;
use crate::server::{Server, ServerConfig, ServerError, ServerIdentity};
use crate::wire::{NodeId, PrivateKey, Which};

/// Re-exported from [`crate::client::up_env`], where it lives so that a
/// member program needs only the `client` feature.
pub use crate::client::up_env::{env, UpEnv};
pub use faults::{Direction, Fault, FaultError, FaultEvent, FaultProxies, Faults};
pub use keys::{KeyGen, KeyPool, KeyPoolError};

/// Key size of the harness's members unless told otherwise: fast to make,
/// accepted by every registry (Go clients use 2048).
pub const DEFAULT_TEST_KEY_BITS: u32 = 1024;
/// Endpoints per member unless told otherwise: by the xlattice convention
/// \[0\] member-to-member, \[1\] client-to-member.
pub const DEFAULT_ENDPOINTS: u32 = 2;
/// Key size of the helpers' own identities (registry, admin, reader).
const AUX_KEY_BITS: u32 = 1024;

/// An in-process registry on a free 127.0.0.1 port, keeping everything in
/// memory; its regCred.dat is in a temporary directory removed on drop.
/// Dropping it asks the server to stop; [`LocalRegistry::stop`] waits.
pub struct LocalRegistry {
    server: Server,
    regcred_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for LocalRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalRegistry({})", self.server.local_addr())
    }
}

impl LocalRegistry {
    /// Start an ephemeral registry ([`ServerConfig::ephemeral`]: fresh
    /// 1024-bit identity, GetCluster held up to 1 s).
    pub async fn start() -> Result<Self, ServerError> {
        Self::start_with(ServerConfig::ephemeral()).await
    }

    /// Start a registry with `cfg` (its `regcred_path` defaults to a file
    /// in a temporary directory).
    pub async fn start_with(mut cfg: ServerConfig) -> Result<Self, ServerError> {
        let dir = tempfile::Builder::new()
            .prefix("xlreg-registry-")
            .tempdir()
            .map_err(|e| ServerError::RegCred(format!("cannot create a temporary dir: {e}")))?;
        let default_path = dir.path().join("regCred.dat");
        if cfg.regcred_path.is_none() {
            cfg.regcred_path = Some(default_path.clone());
        }
        let server = Server::start(cfg).await?;
        let regcred_path = server
            .regcred_path()
            .map(Path::to_path_buf)
            .unwrap_or(default_path);
        Ok(LocalRegistry {
            server,
            regcred_path,
            _dir: dir,
        })
    }

    /// The credentials clients need.
    pub fn regcred(&self) -> &RegCred {
        self.server.regcred()
    }

    /// Where regCred.dat was written (for programs and `xlreg` commands).
    pub fn regcred_path(&self) -> &Path {
        &self.regcred_path
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The server (registry inspection in tests).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Stop the server and wait until it has stopped.
    pub async fn stop(self) {
        self.server.shutdown().await;
    }
}

/// Something that happened while launching a cluster (for progress bars).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// This many keys are about to be loaded or generated.
    KeysNeeded(usize),
    /// One more key is ready.
    Key,
    /// All keys are ready: `reused` from the pool, `generated` now.
    KeysReady {
        /// Keys read from the pool.
        reused: usize,
        /// Keys generated in this run.
        generated: usize,
    },
    /// The cluster exists; members start joining.
    Created {
        /// Cluster ID.
        id: NodeId,
        /// Members expected.
        size: usize,
    },
    /// The registry accepted a member into slot `index` (seen by a
    /// watching reader; xlreg registries only).
    Joined {
        /// Slot.
        index: usize,
        /// Member name.
        name: String,
    },
    /// A member holds the complete view of the cluster.
    Booted {
        /// Member name.
        name: String,
    },
}

/// Receives [`Progress`] events, from any thread.
#[derive(Clone)]
pub struct Observer(pub Arc<dyn Fn(Progress) + Send + Sync>);

impl Observer {
    /// Wrap a closure.
    pub fn new(f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        Observer(Arc::new(f))
    }

    /// Send `p` to `o`, if there is one.
    pub fn emit(o: &Option<Observer>, p: Progress) {
        if let Some(o) = o {
            (o.0)(p);
        }
    }
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

/// How [`LocalCluster::launch_with`] builds the cluster. Start from
/// `LaunchOptions::default()` and change the fields you care about.
///
/// Defaults are chosen for tests, where speed matters more than key
/// strength: **1024-bit** member keys ([`DEFAULT_TEST_KEY_BITS`]) from the
/// fast generator, whereas `xlreg up` defaults to **2048-bit** keys (what
/// Go clients use; `xlreg up --key-bits 1024` matches this default).
///
/// | field | default |
/// |---|---|
/// | `size` | 3 |
/// | `endpoints` | 2 ([`DEFAULT_ENDPOINTS`]) |
/// | `key_bits` | 1024 ([`DEFAULT_TEST_KEY_BITS`]) |
/// | `key_gen` | [`KeyGen::Fast`] |
/// | `key_pool` | none: every key is generated |
/// | `threads` | all cores |
/// | `name` | `test-<8 random hex digits>` |
/// | `regcred` | none: an embedded in-memory registry is started |
/// | `boot` | [`BootOptions::default()`]: 30 s wait, 10 s connect and 15 s I/O timeouts |
/// | `observer` | none |
/// | `faults` | off |
#[derive(Clone, Debug)]
pub struct LaunchOptions {
    /// Members, 2..=64. Default 3.
    pub size: u32,
    /// Endpoints per member (the cluster's EndPointCount), 1..=16.
    /// Default 2: by convention \[0\] member-to-member, \[1\]
    /// client-to-member.
    pub endpoints: u32,
    /// RSA key size of the members' keys, 1024 or 2048. Default 1024
    /// (`xlreg up`: 2048).
    pub key_bits: u32,
    /// Key generator. Default [`KeyGen::Fast`].
    pub key_gen: KeyGen,
    /// Take member keys from this pool (see [`KeyPool`] for the policy).
    /// Default none.
    pub key_pool: Option<PathBuf>,
    /// Threads for key work. Default all cores.
    pub threads: usize,
    /// Cluster name. Default `test-<8 random hex digits>`.
    pub name: Option<String>,
    /// Use this registry instead of starting one. Default none: an
    /// embedded in-memory registry on a free loopback port.
    pub regcred: Option<RegCred>,
    /// How members boot (their wait, timeouts). Default
    /// [`BootOptions::default()`].
    pub boot: BootOptions,
    /// Progress events; with an observer, a reader also watches the joins.
    /// Default none.
    pub observer: Option<Observer>,
    /// Cluster lifetime after its last Join or GetCluster (an xlreg
    /// registry removes it then; `None`: the registry's default).
    pub ttl: Option<Duration>,
    /// Put a fault proxy between every two members so that a test can
    /// partition, cut, delay or slow links ([`LocalCluster::faults`]; see
    /// [`faults`] for what the members see). Default off: then nothing is
    /// started and the views are the registry's.
    pub faults: bool,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions {
            size: 3,
            endpoints: DEFAULT_ENDPOINTS,
            key_bits: DEFAULT_TEST_KEY_BITS,
            key_gen: KeyGen::Fast,
            key_pool: None,
            threads: keys::default_threads(),
            name: None,
            regcred: None,
            boot: BootOptions::default(),
            observer: None,
            ttl: None,
            faults: false,
        }
    }
}

/// Why a cluster could not be launched; each says what was being done.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The options make no sense.
    #[error("{0}")]
    Usage(String),
    /// The embedded registry did not start.
    #[error("starting the registry")]
    Registry(#[from] ServerError),
    /// Keys could not be loaded or generated.
    #[error(transparent)]
    Keys(#[from] KeyPoolError),
    /// A client flow failed; the [`ClientError`] is the `source()`.
    #[error("{what}")]
    Client {
        /// What was being done.
        what: String,
        /// The failure.
        #[source]
        err: ClientError,
    },
    /// Sockets or files.
    #[error("{0}")]
    Io(String),
    /// Members disagree about the cluster (a registry bug).
    #[error("inconsistent cluster views: {0}")]
    Inconsistent(String),
}

fn client_err(what: impl Into<String>) -> impl FnOnce(ClientError) -> LaunchError {
    move |err| LaunchError::Client {
        what: what.into(),
        err,
    }
}

/// Time spent launching.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Loading and generating keys (members', and the helpers': registry,
    /// admin, reader).
    pub keygen: Duration,
    /// From creating the cluster until every member holds the complete
    /// view.
    pub formation: Duration,
    /// Everything, from the call to the return.
    pub total: Duration,
}

impl Timings {
    /// `{"keygen_s","formation_s","total_s"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "keygen_s": self.keygen.as_secs_f64(),
            "formation_s": self.formation.as_secs_f64(),
            "total_s": self.total.as_secs_f64(),
        })
    }
}

/// One booted member of a [`LocalCluster`].
///
/// Each of its endpoints is a socket already listening on 127.0.0.1, bound
/// before the member joined (so peers that learn the endpoint can connect
/// at once). Serve on one with [`LocalMember::take_listener`] (a
/// [`tokio::net::TcpListener`](https://docs.rs/tokio/1/tokio/net/struct.TcpListener.html)) or [`LocalMember::take_std_listener`]; the
/// sockets not taken close with the member.
#[derive(Debug)]
pub struct LocalMember {
    /// Its identity (name, ID, private keys, endpoints).
    pub identity: NodeIdentity,
    /// What it learned when it booted.
    pub view: ClusterView,
    /// Non-blocking listening sockets, in endpoint order; `None` once taken.
    listeners: Vec<Option<std::net::TcpListener>>,
}

impl LocalMember {
    /// Its slot in the cluster (join order).
    pub fn index(&self) -> usize {
        self.view.self_index
    }

    /// Its endpoints (`host:port`), in order: what the other members see.
    pub fn endpoints(&self) -> &[String] {
        &self.identity.endpoints
    }

    /// The listening sockets not taken yet, in endpoint order (to read an
    /// address or `try_clone` one). They are in non-blocking mode.
    pub fn listeners(&self) -> impl Iterator<Item = &std::net::TcpListener> {
        self.listeners.iter().flatten()
    }

    /// Take the socket listening on endpoint `i` as a
    /// [`tokio::net::TcpListener`](https://docs.rs/tokio/1/tokio/net/struct.TcpListener.html), ready to `accept().await`. Call it from
    /// inside a tokio runtime; outside one, or for an endpoint that does
    /// not exist or was already taken, it is an error naming the endpoint.
    pub fn take_listener(&mut self, i: usize) -> std::io::Result<tokio::net::TcpListener> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(std::io::Error::other(format!(
                "take_listener({i}) of member {} called outside a tokio runtime; \
                 use take_std_listener there",
                self.identity.name
            )));
        }
        let l = self.take_std_listener(i).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "member {} has no listener {i} to take (endpoints: {}; each can be \
                     taken once)",
                    self.identity.name,
                    self.identity.endpoints.len()
                ),
            )
        })?;
        tokio::net::TcpListener::from_std(l)
    }

    /// Take the socket listening on endpoint `i` as a
    /// [`std::net::TcpListener`] in **non-blocking** mode (what
    /// `tokio::net::TcpListener::from_std` and other event loops need; call
    /// `set_nonblocking(false)` to accept on a plain thread). `None` if
    /// there is no endpoint `i` or it was taken already.
    pub fn take_std_listener(&mut self, i: usize) -> Option<std::net::TcpListener> {
        self.listeners.get_mut(i).and_then(Option::take)
    }
}

/// A registry (unless an external one was used) and a fully formed cluster.
#[derive(Debug)]
pub struct LocalCluster {
    registry: Option<LocalRegistry>,
    regcred: RegCred,
    /// Cluster name.
    pub name: String,
    /// Cluster ID, size, EndPointCount (from the CreateReply).
    pub info: ClusterInfo,
    /// The members in launch order (`m00`, `m01`, …); their slots are in
    /// `view.self_index`.
    pub members: Vec<LocalMember>,
    /// Where the time went.
    pub timings: Timings,
    /// Member keys reused from the pool.
    pub keys_reused: usize,
    /// Member keys generated in this launch.
    pub keys_generated: usize,
    /// The fault control and its proxies (with [`LaunchOptions::faults`]).
    faults: Option<(Faults, faults::FaultNet)>,
    /// The identity that created the cluster (its owner: resize, evict).
    admin: NodeIdentity,
}

impl LocalCluster {
    /// Launch a registry and a cluster of `size` members with the default
    /// [`LaunchOptions`].
    pub async fn launch(size: u32) -> Result<Self, LaunchError> {
        Self::launch_with(LaunchOptions {
            size,
            ..LaunchOptions::default()
        })
        .await
    }

    /// Launch a cluster as `opts` says.
    pub async fn launch_with(opts: LaunchOptions) -> Result<Self, LaunchError> {
        let t0 = Instant::now();
        check_shape(opts.size, opts.endpoints)?;
        let n = opts.size as usize;
        let name = opts.name.clone().unwrap_or_else(|| unique_name("test"));
        let watch = opts.observer.is_some();
        // Keys: 2 per member; aux: admin (2), registry (2), reader (2).
        let aux = 2 + if opts.regcred.is_none() { 2 } else { 0 } + if watch { 2 } else { 0 };
        let src = KeySource::from_opts(&opts);
        let obs = opts.observer.clone();
        let keys = tokio::task::spawn_blocking(move || src.acquire(2 * n, aux, &obs));
        let listeners = bind_all(n, opts.endpoints as usize)?;
        let mut keys = keys
            .await
            .map_err(|e| LaunchError::Io(format!("key generation task: {e}")))??;
        let keygen = t0.elapsed();

        let registry = match &opts.regcred {
            Some(_) => None,
            None => {
                let identity = ServerIdentity {
                    id: NodeId::random(),
                    comms: keys.aux.pop().expect("aux key"),
                    sig: keys.aux.pop().expect("aux key"),
                };
                let cfg = ServerConfig {
                    identity: Some(identity),
                    ..ServerConfig::ephemeral()
                };
                Some(LocalRegistry::start_with(cfg).await?)
            }
        };
        let regcred = match (&opts.regcred, &registry) {
            (Some(rc), _) => rc.clone(),
            (None, Some(r)) => r.regcred().clone(),
            (None, None) => unreachable!("a registry was started"),
        };
        let ident = client_err("making member identities");
        let admin = member_identity(
            "admin",
            keys.aux.pop().expect("aux key"),
            keys.aux.pop().expect("aux key"),
            vec![],
        )
        .map_err(ident)?;
        let reader = match watch {
            true => Some(
                member_identity(
                    &unique_name("reader"),
                    keys.aux.pop().expect("aux key"),
                    keys.aux.pop().expect("aux key"),
                    vec![],
                )
                .map_err(client_err("making the reader identity"))?,
            ),
            false => None,
        };
        let mut it = keys.member.into_iter();
        let nodes = listeners
            .iter()
            .enumerate()
            .map(|(i, ls)| {
                let (c, s) = (it.next().expect("key"), it.next().expect("key"));
                member_identity(&member_name(i), c, s, endpoints_of(ls))
            })
            .collect::<Result<Vec<NodeIdentity>, _>>()
            .map_err(client_err("making member identities"))?;

        let t1 = Instant::now();
        let spec = ClusterSpec::new(name.clone(), opts.size)
            .endpoints(opts.endpoints)
            .ttl(opts.ttl);
        let info = create(&regcred, &admin, &spec, &opts.boot.client).await?;
        Observer::emit(
            &opts.observer,
            Progress::Created {
                id: info.id,
                size: n,
            },
        );
        let watcher = reader.map(|reader| {
            let (rc, client, obs) = (
                regcred.clone(),
                opts.boot.client.clone(),
                opts.observer.clone(),
            );
            let deadline = Instant::now() + opts.boot.wait.unwrap_or(Duration::from_secs(30));
            tokio::spawn(async move {
                let r = watch_joins(&rc, &info.id, n, &reader, &client, deadline, |m| {
                    Observer::emit(
                        &obs,
                        Progress::Joined {
                            index: m.index,
                            name: m.name.clone(),
                        },
                    )
                })
                .await;
                if let Err(e) = r {
                    tracing::debug!("watching the joins: {}", crate::ErrorChain(&e));
                }
            })
        });
        let views = boot_all(&regcred, info.id, &nodes, &opts.boot, &opts.observer).await;
        if let Some(w) = watcher {
            if views.is_err() {
                w.abort();
            }
            let _ = w.await;
        }
        let mut views = views?;
        let formation = t1.elapsed();
        for v in &mut views {
            v.cluster_name = Some(name.clone());
        }
        check_views(&views, n)?;
        let faults = match opts.faults {
            true => Some(start_faults(&mut views)?),
            false => None,
        };
        let members = nodes
            .into_iter()
            .zip(listeners)
            .zip(views)
            .map(|((identity, listeners), view)| LocalMember {
                identity,
                view,
                listeners: listeners.into_iter().map(Some).collect(),
            })
            .collect();
        Ok(LocalCluster {
            registry,
            regcred,
            name,
            info,
            members,
            timings: Timings {
                keygen,
                formation,
                total: t0.elapsed(),
            },
            keys_reused: keys.reused,
            keys_generated: keys.generated,
            faults,
            admin,
        })
    }

    /// The fault control of a cluster launched with
    /// [`LaunchOptions::faults`] (`None` without). Clones control the same
    /// cluster; the proxies stop with the cluster.
    ///
    /// ```
    /// # use xlreg::testing::{LaunchOptions, LocalCluster};
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cluster = LocalCluster::launch_with(LaunchOptions { faults: true, ..Default::default() }).await?;
    /// let faults = cluster.faults().expect("launched with faults");
    /// faults.partition(&[&[0], &[1, 2]])?; // 0 reaches no one, 1 <-> 2 still talk
    /// assert_eq!(faults.current().len(), 1);
    /// faults.heal();
    /// # Ok(()) }
    /// ```
    pub fn faults(&self) -> Option<&Faults> {
        self.faults.as_ref().map(|(f, _)| f)
    }

    /// The embedded registry (`None` when launched against another one).
    pub fn registry(&self) -> Option<&LocalRegistry> {
        self.registry.as_ref()
    }

    /// The registry's credentials.
    pub fn regcred(&self) -> &RegCred {
        &self.regcred
    }

    /// Cluster ID.
    pub fn id(&self) -> NodeId {
        self.info.id
    }

    /// The view of the member in slot 0 (all views are checked to agree).
    pub fn view(&self) -> &ClusterView {
        let m = self
            .members
            .iter()
            .find(|m| m.index() == 0)
            .unwrap_or(&self.members[0]);
        &m.view
    }

    /// Every member's view, in launch order.
    pub fn views(&self) -> impl Iterator<Item = &ClusterView> {
        self.members.iter().map(|m| &m.view)
    }

    /// Close the members' sockets and stop the embedded registry.
    pub async fn shutdown(self) {
        drop(self.members);
        if let Some(r) = self.registry {
            r.stop().await;
        }
    }
}

/// Start the fault proxies for a checked, complete set of views and give
/// each member a view in which its peers' endpoints are its proxies.
fn start_faults(views: &mut [ClusterView]) -> Result<(Faults, faults::FaultNet), LaunchError> {
    let n = views.len();
    let mut targets = vec![vec![]; n];
    for m in &views[0].members {
        targets[m.index] = m
            .endpoints
            .iter()
            .map(|e| {
                e.parse::<SocketAddr>().map_err(|err| {
                    LaunchError::Usage(format!(
                        "faults need IP:port endpoints; member {} registered {e:?}: {err}",
                        m.name
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
    }
    let faults = Faults::new(n);
    let net = faults
        .start_net(&targets)
        .map_err(|e| LaunchError::Io(format!("starting the fault proxies: {e}")))?;
    for v in views.iter_mut() {
        let me = v.self_index;
        for m in v.members.iter_mut().filter(|m| m.index != me) {
            for (k, ep) in m.endpoints.iter_mut().enumerate() {
                if let Some(a) = net.addrs[me][m.index][k] {
                    *ep = a.to_string();
                }
            }
        }
    }
    Ok((faults, net))
}

/// Refuse sizes the registry would clamp and endpoint counts it refuses.
pub fn check_shape(size: u32, endpoints: u32) -> Result<(), LaunchError> {
    crate::limits::check_cluster_size(size)
        .map_err(|e| LaunchError::Usage(format!("cluster {e}")))?;
    crate::limits::check_endpoint_count(endpoints).map_err(|e| LaunchError::Usage(e.to_string()))
}

/// `<prefix>-<8 random hex digits>`.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        hex::encode(crate::wire::crypto::random_array::<4>())
    )
}

/// The name of the `i`-th member of a launched cluster: `m00`, `m01`, ….
pub fn member_name(i: usize) -> String {
    format!("m{i:02}")
}

/// Where member keys come from.
#[derive(Clone, Debug)]
pub struct KeySource {
    /// Member key size.
    pub bits: u32,
    /// Generator.
    pub gen: KeyGen,
    /// Pool directory for member keys.
    pub pool: Option<PathBuf>,
    /// Threads.
    pub threads: usize,
}

/// Keys delivered by [`KeySource::acquire`].
#[derive(Debug)]
pub struct Keys {
    /// Member keys, pairwise distinct.
    pub member: Vec<PrivateKey>,
    /// Fresh 1024-bit keys for helpers (registry, admin, reader).
    pub aux: Vec<PrivateKey>,
    /// Member keys reused from the pool.
    pub reused: usize,
    /// Member keys generated now.
    pub generated: usize,
}

impl KeySource {
    fn from_opts(o: &LaunchOptions) -> Self {
        KeySource {
            bits: o.key_bits,
            gen: o.key_gen,
            pool: o.key_pool.clone(),
            threads: o.threads,
        }
    }

    /// `members` member keys and `aux` helper keys, on all threads (call
    /// from a blocking context). Emits [`Progress::KeysNeeded`],
    /// [`Progress::Key`] per key and [`Progress::KeysReady`].
    pub fn acquire(
        &self,
        members: usize,
        aux: usize,
        observer: &Option<Observer>,
    ) -> Result<Keys, KeyPoolError> {
        Observer::emit(observer, Progress::KeysNeeded(members + aux));
        let tick = || Observer::emit(observer, Progress::Key);
        let (member, aux, reused, generated) = match &self.pool {
            Some(dir) => {
                let got =
                    KeyPool::open(dir)?.take(members, self.bits, self.gen, self.threads, &tick)?;
                let aux =
                    keys::generate_keys(aux, AUX_KEY_BITS, KeyGen::Fast, self.threads, &tick)?;
                (got.keys, aux, got.reused, got.generated)
            }
            None => {
                let sizes: Vec<u32> = std::iter::repeat_n(self.bits, members)
                    .chain(std::iter::repeat_n(AUX_KEY_BITS, aux))
                    .collect();
                let mut all = keys::generate_sized(&sizes, self.gen, self.threads, &tick)?;
                let aux = all.split_off(members);
                (all, aux, 0, members)
            }
        };
        Observer::emit(observer, Progress::KeysReady { reused, generated });
        Ok(Keys {
            member,
            aux,
            reused,
            generated,
        })
    }
}

/// A member identity with a fresh random node ID and no directory, from
/// keys made elsewhere.
pub fn member_identity(
    name: &str,
    comms_key: PrivateKey,
    sig_key: PrivateKey,
    endpoints: Vec<String>,
) -> Result<NodeIdentity, ClientError> {
    NodeIdentity::from_keys(name, NodeId::random(), comms_key, sig_key, endpoints)
}

/// `count` listening sockets on 127.0.0.1, free ports, in non-blocking
/// mode (so that `tokio::net::TcpListener::from_std` accepts them).
pub fn bind_endpoints(count: usize) -> Result<Vec<std::net::TcpListener>, LaunchError> {
    (0..count)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| LaunchError::Io(format!("cannot listen on 127.0.0.1: {e}")))
        })
        .collect()
}

fn bind_all(n: usize, k: usize) -> Result<Vec<Vec<std::net::TcpListener>>, LaunchError> {
    (0..n).map(|_| bind_endpoints(k)).collect()
}

/// `host:port` of each listener.
pub fn endpoints_of(ls: &[std::net::TcpListener]) -> Vec<String> {
    ls.iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "127.0.0.1:0".into())
        })
        .collect()
}

/// `count` distinct free loopback ports for a program to bind later: all
/// bound at once, read, closed.
/// Another process could take one in between (a small race).
pub fn free_ports(count: usize) -> Result<Vec<u16>, LaunchError> {
    let ls = bind_endpoints(count)?;
    ls.iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(|e| LaunchError::Io(format!("local address: {e}")))
        })
        .collect()
}

/// Create the cluster as `admin`; refuse an existing cluster of another
/// shape.
pub async fn create(
    regcred: &RegCred,
    admin: &NodeIdentity,
    spec: &ClusterSpec,
    client: &ClientOptions,
) -> Result<ClusterInfo, LaunchError> {
    let name = &spec.name;
    let info = create_cluster_as(regcred, admin, spec, client)
        .await
        .map_err(client_err(format!("creating cluster {name:?}")))?;
    if info.max_size != spec.size || info.endpoint_count != spec.endpoints {
        return Err(LaunchError::Usage(format!(
            "cluster {name:?} already exists with {} members of {} endpoint(s); \
             choose another name",
            info.max_size, info.endpoint_count
        )));
    }
    Ok(info)
}

/// Boot every node into `cluster` concurrently, joining in `nodes` order
/// (into a new cluster, node i gets slot i); views in `nodes` order.
pub async fn boot_all(
    regcred: &RegCred,
    cluster: NodeId,
    nodes: &[NodeIdentity],
    opts: &BootOptions,
    observer: &Option<Observer>,
) -> Result<Vec<ClusterView>, LaunchError> {
    let mut set = tokio::task::JoinSet::new();
    // Register in parallel, join in order: member i (named `m<i>`) gets
    // slot i of the new cluster.
    let turns = JoinTurn::queue(nodes.len());
    for ((i, node), turn) in nodes.iter().enumerate().zip(turns) {
        let (rc, node, opts, obs) = (
            regcred.clone(),
            node.clone(),
            opts.clone(),
            observer.clone(),
        );
        set.spawn(async move {
            let r = boot_in_turn(&rc, &ClusterRef::Id(cluster), &node, &opts, turn).await;
            if r.is_ok() {
                Observer::emit(
                    &obs,
                    Progress::Booted {
                        name: node.name.clone(),
                    },
                );
            }
            (
                i,
                r.map_err(client_err(format!("booting member {}", node.name))),
            )
        });
    }
    let mut views: Vec<Option<ClusterView>> = vec![None; nodes.len()];
    while let Some(r) = set.join_next().await {
        let (i, v) = r.map_err(|e| LaunchError::Io(format!("member task: {e}")))?;
        views[i] = Some(v?); // dropping `set` aborts the other boots
    }
    Ok(views
        .into_iter()
        .map(|v| v.expect("every task reported"))
        .collect())
}

/// Check that the views describe one complete cluster: same ID, size and
/// members (IDs, names, keys, endpoints) in every view, and each member's
/// `self_index` a different slot.
pub fn check_views(views: &[ClusterView], size: usize) -> Result<(), LaunchError> {
    let bad = |m: String| Err(LaunchError::Inconsistent(m));
    let Some(first) = views.first() else {
        return bad("no views".into());
    };
    let mut slots = vec![false; size];
    for (i, v) in views.iter().enumerate() {
        if !v.is_complete() || v.members.len() != size {
            return bad(format!(
                "view {i} holds {} of {size} members",
                v.members.len()
            ));
        }
        if v.cluster_id != first.cluster_id || v.max_size != first.max_size {
            return bad(format!("view {i} describes another cluster"));
        }
        if v.members != first.members {
            return bad(format!("view {i} lists other members than view 0"));
        }
        match slots.get_mut(v.self_index) {
            Some(s) if !*s => *s = true,
            _ => {
                return bad(format!(
                    "view {i} claims slot {} twice or out of range",
                    v.self_index
                ))
            }
        }
    }
    Ok(())
}

/// Watch members join `cluster` without joining it: a reader session asks
/// for the next missing slot, which an xlreg registry holds until that
/// member arrives (a registry that answers at once is asked again after
/// 50 ms). Calls `on_join` per member in slot order; returns all `size`
/// members, or [`ClientError::IncompleteCluster`] at `deadline`. A Go
/// registry refuses reads without a join (`invalid msg type for current
/// state`).
pub async fn watch_joins(
    regcred: &RegCred,
    cluster: &NodeId,
    size: usize,
    reader: &NodeIdentity,
    client: &ClientOptions,
    deadline: Instant,
    mut on_join: impl FnMut(&MemberInfo),
) -> Result<Vec<MemberInfo>, ClientError> {
    let start = Instant::now();
    let mut s = Session::connect(regcred, client).await?;
    let r = async {
        s.register(reader, attrs::SOLO | attrs::EPHEMERAL).await?;
        let mut have: Vec<MemberInfo> = Vec::with_capacity(size);
        while have.len() < size {
            if Instant::now() >= deadline {
                return Err(ClientError::IncompleteCluster {
                    cluster: cluster.to_hex(),
                    have: have.len(),
                    want: size,
                    missing: (have.len()..size).collect(),
                    waited: start.elapsed(),
                });
            }
            let next = have.len();
            let t = Instant::now();
            let mut want = Which(0);
            want.insert(next);
            let reply = s.get_members(cluster, want).await?;
            match reply.members.into_iter().find(|m| m.index == next) {
                Some(m) => {
                    on_join(&m);
                    have.push(m);
                }
                None if t.elapsed() < Duration::from_millis(50) => {
                    tokio::time::sleep_until((t + Duration::from_millis(50)).min(deadline)).await;
                }
                None => {}
            }
        }
        Ok(have)
    }
    .await;
    let _ = s.bye().await;
    r
}
