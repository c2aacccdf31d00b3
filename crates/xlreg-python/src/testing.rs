//! `xlreg.testing`'s Rust half: the in-process registry and clusters of
//! `xlreg::testing` on the shared background runtime, as context managers.
//! Changing a cluster while it runs (resize, evict, replace): [`change`].

mod change;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyDict;

use std::time::Duration;

use xlreg::client::{ClusterView, NodeIdentity};
use xlreg::server::ServerConfig;
use xlreg::testing::{LaunchOptions, LocalCluster, LocalRegistry};

use crate::errors::{guard, Failure};
use crate::flows::{boot_options, check_shape, seconds};
use crate::node::{node_options, PyNode};
use crate::regcred::{regcred_arg, PyRegCred};
use crate::runtime::{block_on, runtime};
use crate::view::{PyClusterInfo, PyClusterView};

/// Drop a value that may own runtime resources inside the runtime, so no
/// drop glue runs without one (e.g. when Python collects the object).
fn drop_in_runtime<T>(v: T) {
    let _g = runtime().enter();
    drop(v);
}

/// Key-pool slots in use by live clusters of this process, per pool
/// directory: slot 0 is the pool directory itself, slot `k` its
/// subdirectory `live-k`. A pool's keys are handed out in a fixed order,
/// so two clusters alive at once on one directory would get the same
/// keys, and "a member of another cluster is refused" could not be
/// tested; each live cluster takes the lowest free slot instead.
static LIVE_SLOTS: Mutex<BTreeMap<PathBuf, BTreeSet<usize>>> = Mutex::new(BTreeMap::new());

/// A key-pool slot, given back when dropped (at shutdown, or when the
/// launch failed).
pub(crate) struct PoolSlot {
    pool: PathBuf,
    slot: usize,
}

impl PoolSlot {
    pub(crate) fn take(pool: PathBuf) -> Self {
        let mut live = LIVE_SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        let used = live.entry(pool.clone()).or_default();
        let slot = (0..).find(|k| !used.contains(k)).unwrap_or(0);
        used.insert(slot);
        PoolSlot { pool, slot }
    }

    pub(crate) fn dir(&self) -> PathBuf {
        match self.slot {
            0 => self.pool.clone(),
            k => self.pool.join(format!("live-{k}")),
        }
    }
}

impl Drop for PoolSlot {
    fn drop(&mut self) {
        let mut live = LIVE_SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(used) = live.get_mut(&self.pool) {
            used.remove(&self.slot);
            if used.is_empty() {
                live.remove(&self.pool);
            }
        }
    }
}

/// A registry running in this process on a free 127.0.0.1 port, keeping
/// everything in memory (or, with `data_dir`, in SQLite there), with its
/// regCred.dat in a temporary directory (or in `data_dir`). A context
/// manager: leaving the block stops it.
#[pyclass(module = "xlreg.testing", name = "LocalRegistry")]
pub struct PyLocalRegistry {
    inner: Mutex<Option<LocalRegistry>>,
    cfg: ServerConfig,
    regcred: Mutex<Py<PyRegCred>>,
    regcred_path: Mutex<PathBuf>,
    address: String,
}

/// Optional seconds as a Duration, `None` staying `None`.
fn opt_seconds(what: &str, s: Option<f64>) -> Result<Option<Duration>, Failure> {
    s.map(|s| seconds(what, s)).transpose()
}

impl PyLocalRegistry {
    fn started(&self, py: Python<'_>, r: LocalRegistry) -> PyResult<()> {
        *self.regcred.lock().map_err(|_| poisoned())? =
            Py::new(py, PyRegCred::new(r.regcred().clone(), None))?;
        *self.regcred_path.lock().map_err(|_| poisoned())? = r.regcred_path().to_path_buf();
        *self.inner.lock().map_err(|_| poisoned())? = Some(r);
        Ok(())
    }
}

fn poisoned() -> PyErr {
    Failure::Panic("a LocalRegistry lock was poisoned".into()).into_pyerr()
}

#[pymethods]
impl PyLocalRegistry {
    /// Start the registry (1024-bit registry key). `data_dir`: keep the
    /// identity and clusters there (SQLite), so `restart()` (or a later
    /// registry on the same directory) finds them; default in memory.
    /// `hold`: seconds a GetCluster may be held until the requested
    /// members joined (default 1.0; 0 answers at once, like Go).
    /// `cluster_ttl` / `ephemeral_ttl`: seconds a cluster lives after its
    /// last Join or GetCluster (default: forever).
    #[new]
    #[pyo3(signature = (*, data_dir=None, hold=None, cluster_ttl=None, ephemeral_ttl=None))]
    fn new(
        py: Python<'_>,
        data_dir: Option<PathBuf>,
        hold: Option<f64>,
        cluster_ttl: Option<f64>,
        ephemeral_ttl: Option<f64>,
    ) -> PyResult<Self> {
        let mut cfg = ServerConfig::ephemeral();
        guard(|| {
            if let Some(d) = &data_dir {
                cfg.regcred_path = Some(d.join("regCred.dat"));
                cfg.data_dir = data_dir.clone();
            }
            if let Some(h) = opt_seconds("hold", hold)? {
                cfg.hold = h;
            }
            cfg.cluster_ttl = opt_seconds("cluster_ttl", cluster_ttl)?;
            cfg.ephemeral_ttl = opt_seconds("ephemeral_ttl", ephemeral_ttl)?;
            Ok(())
        })?;
        let c = cfg.clone();
        let r = block_on(py, async move { Ok(LocalRegistry::start_with(c).await?) })?;
        // A restart listens on the same address, so the regCred stays valid.
        cfg.listen = r.addr();
        Ok(PyLocalRegistry {
            regcred: Mutex::new(Py::new(py, PyRegCred::new(r.regcred().clone(), None))?),
            regcred_path: Mutex::new(r.regcred_path().to_path_buf()),
            address: r.addr().to_string(),
            inner: Mutex::new(Some(r)),
            cfg,
        })
    }

    /// Stop the registry (if running) and start it again on the same
    /// address and data directory: its clusters survive (a test of a
    /// registry restart). Needs `data_dir` (an in-memory registry would
    /// come back empty, with another identity).
    fn restart(&self, py: Python<'_>) -> PyResult<()> {
        if self.cfg.data_dir.is_none() {
            return Err(crate::errors::usage(
                "restart() needs a LocalRegistry(data_dir=...): an in-memory registry \
                 would come back empty and with another identity",
            ));
        }
        self.stop(py)?;
        let c = self.cfg.clone();
        let r = block_on(py, async move { Ok(LocalRegistry::start_with(c).await?) })?;
        self.started(py, r)
    }

    /// The data directory (None: in memory).
    #[getter]
    fn data_dir(&self) -> Option<PathBuf> {
        self.cfg.data_dir.clone()
    }

    /// The registry credentials.
    #[getter]
    fn regcred(&self, py: Python<'_>) -> PyResult<Py<PyRegCred>> {
        Ok(self.regcred.lock().map_err(|_| poisoned())?.clone_ref(py))
    }

    /// Where its regCred.dat is (for programs and `xlreg` commands).
    #[getter]
    fn regcred_path(&self) -> PyResult<PathBuf> {
        Ok(self.regcred_path.lock().map_err(|_| poisoned())?.clone())
    }

    /// `127.0.0.1:port`.
    #[getter]
    fn address(&self) -> String {
        self.address.clone()
    }

    /// True until `stop`.
    #[getter]
    fn running(&self) -> bool {
        self.inner.lock().map(|g| g.is_some()).unwrap_or(false)
    }

    /// Stop the registry and wait until it has stopped. Idempotent.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let r = self.inner.lock().ok().and_then(|mut g| g.take());
        match r {
            None => Ok(()),
            Some(r) => block_on(py, async move {
                r.stop().await;
                Ok(())
            }),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        self.stop(py)
    }

    fn __repr__(&self) -> String {
        format!(
            "LocalRegistry(address={:?}, running={})",
            self.address,
            self.running()
        )
    }
}

impl Drop for PyLocalRegistry {
    fn drop(&mut self) {
        if let Ok(g) = self.inner.get_mut() {
            if let Some(r) = g.take() {
                drop_in_runtime(r);
            }
        }
    }
}

/// One booted member of a `LocalCluster`: its identity, its view, and
/// listening sockets bound to its endpoints.
#[pyclass(module = "xlreg.testing", name = "LocalMember")]
pub struct PyLocalMember {
    node: Py<PyNode>,
    /// Replaced when a change of the cluster reaches this member.
    view: Mutex<Py<PyClusterView>>,
    listeners: Mutex<Vec<std::net::TcpListener>>,
}

impl PyLocalMember {
    fn new(
        py: Python<'_>,
        identity: NodeIdentity,
        view: ClusterView,
        listeners: Vec<std::net::TcpListener>,
    ) -> PyResult<Self> {
        Ok(PyLocalMember {
            node: Py::new(py, PyNode::new(identity, true))?,
            view: Mutex::new(Py::new(py, PyClusterView { inner: view })?),
            listeners: Mutex::new(listeners),
        })
    }

    fn set_view(&self, py: Python<'_>, view: ClusterView) -> PyResult<()> {
        let v = Py::new(py, PyClusterView { inner: view })?;
        *self.view.lock().map_err(|_| poisoned())? = v;
        Ok(())
    }

    /// Close the listeners not taken yet (the member left the cluster).
    fn close_listeners(&self) {
        if let Ok(mut g) = self.listeners.lock() {
            g.clear();
        }
    }
}

#[pymethods]
impl PyLocalMember {
    /// Its identity (name, ID, keys, endpoints).
    #[getter]
    fn node(&self, py: Python<'_>) -> Py<PyNode> {
        self.node.clone_ref(py)
    }
    /// What it learned when it booted, or, after a change made through
    /// the `LocalCluster` (resize, evict, replace), what its watch saw.
    #[getter]
    fn view(&self, py: Python<'_>) -> PyResult<Py<PyClusterView>> {
        Ok(self.view.lock().map_err(|_| poisoned())?.clone_ref(py))
    }
    /// Its slot in the cluster.
    #[getter]
    fn index(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.view(py)?.get().inner.self_index)
    }
    /// Its endpoints, `host:port`.
    #[getter]
    fn endpoints(&self) -> Vec<String> {
        self.node.get().inner.endpoints.clone()
    }
    /// The listening sockets bound to its endpoints (in order), as
    /// `socket.socket` objects, handed over once: a second call returns
    /// an empty list. Until taken, the ports stay reserved.
    fn take_listeners<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        use std::os::fd::IntoRawFd;
        let ls: Vec<std::net::TcpListener> = match self.listeners.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(_) => Vec::new(),
        };
        let socket = py.import("socket")?.getattr("socket")?;
        ls.into_iter()
            .map(|l| {
                let fd = l.into_raw_fd();
                let kw = PyDict::new(py);
                kw.set_item("fileno", fd)?;
                socket.call((), Some(&kw))
            })
            .collect()
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let n = self.node.get();
        Ok(format!(
            "LocalMember(index={}, name={:?}, endpoints={:?})",
            self.index(py)?,
            n.inner.name,
            n.inner.endpoints
        ))
    }
}

/// A registry (unless `regcred` names another one) and a cluster of
/// `size` members, all booted, each with listening sockets on its
/// endpoints. A context manager: leaving the block closes the sockets and
/// stops the registry.
#[pyclass(module = "xlreg.testing", name = "LocalCluster")]
pub struct PyLocalCluster {
    /// Locked by a change for as long as it runs; `shutdown` takes it.
    inner: change::Cell,
    /// In slot order; replaced by a change.
    members: Mutex<Vec<Py<PyLocalMember>>>,
    info: Mutex<Py<PyClusterInfo>>,
    regcred: Py<PyRegCred>,
    regcred_path: Option<PathBuf>,
    address: String,
    timings: (f64, f64, f64),
    keys: (usize, usize),
    slot: Mutex<Option<PoolSlot>>,
    /// With `faults=True`: the control of the fault proxies.
    faults: Option<xlreg::testing::Faults>,
}

#[pymethods]
impl PyLocalCluster {
    /// Launch: start a registry (or use `regcred`), make keys (`key_bits`,
    /// taken from the key-pool directory `key_pool` when given; clusters
    /// alive at once in this process never share keys: the second one
    /// uses the pool's subdirectory `live-1`, and so on), create a
    /// cluster of `size` members with `endpoints` endpoints each, and boot
    /// every member, waiting up to `wait` seconds. With `faults=True`, a
    /// proxy sits between every two members (see `partition`).
    #[new]
    #[pyo3(signature = (size, endpoints=2, key_bits=1024, key_pool=None, *, name=None, regcred=None, wait=30.0, faults=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        size: u32,
        endpoints: u32,
        key_bits: u32,
        key_pool: Option<PathBuf>,
        name: Option<String>,
        regcred: Option<&Bound<'_, PyAny>>,
        wait: f64,
        faults: bool,
    ) -> PyResult<Self> {
        let rc = regcred.map(regcred_arg).transpose()?;
        let slot = key_pool.map(PoolSlot::take);
        let key_pool = slot.as_ref().map(PoolSlot::dir);
        let opts = guard(|| {
            check_shape(size, endpoints)?;
            node_options(None, None, key_bits)?;
            Ok(LaunchOptions {
                size,
                endpoints,
                key_bits,
                key_pool,
                name,
                regcred: rc.map(|r| (*r).clone()),
                boot: boot_options(Some(wait), 0, None)?,
                faults,
                ..LaunchOptions::default()
            })
        })?;
        let mut c = block_on(
            py,
            async move { Ok(LocalCluster::launch_with(opts).await?) },
        )?;
        let mut members = Vec::with_capacity(c.members.len());
        for m in &mut c.members {
            let listeners = change::blocking_listeners(m).map_err(Failure::into_pyerr)?;
            members.push(Py::new(
                py,
                PyLocalMember::new(py, m.identity.clone(), m.view.clone(), listeners)?,
            )?);
        }
        let registry = c.registry();
        Ok(PyLocalCluster {
            members: Mutex::new(members),
            info: Mutex::new(Py::new(
                py,
                PyClusterInfo {
                    inner: c.info.clone(),
                    name: Some(c.name.clone()),
                },
            )?),
            regcred: Py::new(py, PyRegCred::new(c.regcred().clone(), None))?,
            regcred_path: registry.map(|r| r.regcred_path().to_path_buf()),
            address: c.regcred().endpoints.first().cloned().unwrap_or_default(),
            timings: (
                c.timings.keygen.as_secs_f64(),
                c.timings.formation.as_secs_f64(),
                c.timings.total.as_secs_f64(),
            ),
            keys: (c.keys_reused, c.keys_generated),
            faults: c.faults().cloned(),
            inner: Arc::new(tokio::sync::Mutex::new(Some(c))),
            slot: Mutex::new(slot),
        })
    }

    /// The members in slot order (at launch `m00`, `m01`, ...; after an
    /// `evict` its slot is skipped, see `member_in`).
    #[getter]
    fn members(&self, py: Python<'_>) -> PyResult<Vec<Py<PyLocalMember>>> {
        Ok(self
            .members
            .lock()
            .map_err(|_| poisoned())?
            .iter()
            .map(|m| m.clone_ref(py))
            .collect())
    }
    /// Every member's view, in slot order.
    #[getter]
    fn views(&self, py: Python<'_>) -> PyResult<Vec<Py<PyClusterView>>> {
        self.members(py)?
            .iter()
            .map(|m| m.borrow(py).view(py))
            .collect()
    }
    /// The cluster (ID, name, size, endpoint count); after a `resize`, the
    /// new size.
    #[getter]
    fn info(&self, py: Python<'_>) -> PyResult<Py<PyClusterInfo>> {
        Ok(self.info.lock().map_err(|_| poisoned())?.clone_ref(py))
    }
    /// Cluster ID, hex.
    #[getter]
    fn cluster_id(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.info(py)?.get().inner.id.to_hex())
    }
    /// Cluster name.
    #[getter]
    fn cluster_name(&self, py: Python<'_>) -> PyResult<Option<String>> {
        Ok(self.info(py)?.get().name.clone())
    }
    /// The member in `slot`, or None (an empty slot, or none that big).
    fn member_in(&self, py: Python<'_>, slot: usize) -> PyResult<Option<Py<PyLocalMember>>> {
        for m in self.members(py)? {
            if m.borrow(py).index(py)? == slot {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }
    /// Resize the cluster to `size` members as its creator and return the
    /// new version. Growing boots a new member (`m03`, `m04`, ... by slot,
    /// fresh keys, listening sockets) into each new slot; shrinking works
    /// only when the slots from `size` up are empty, else `RegistryError`
    /// naming the member in the way (evict it first). Returns once every
    /// member's watch saw the change: `members` and each member's `view`
    /// are then the new membership. A cluster launched with `faults=True`
    /// refuses (`UsageError`: its proxies are placed for the launch's
    /// members).
    fn resize(&self, py: Python<'_>, size: u32) -> PyResult<u64> {
        self.change(py, change::Change::Resize(size))
    }
    /// Stop the member in `slot` (its listeners not taken yet close; a
    /// program serving on taken ones is the test's to stop) and evict it
    /// as the cluster's creator: the slot is free for the next member to
    /// join, the others keep theirs. Returns the new version once every
    /// remaining member's watch saw it. `UsageError` for an empty slot or
    /// a cluster with `faults=True`.
    fn evict(&self, py: Python<'_>, slot: usize) -> PyResult<u64> {
        self.change(py, change::Change::Evict(slot))
    }
    /// Replace the member in `slot`: stop it and evict it (as `evict`),
    /// boot a new member (new node ID, keys and listening endpoints, named
    /// like `m01r5`) that takes the same slot, and wait until every
    /// member's watch saw it. The others keep their IDs and slots. Returns
    /// the newcomer.
    fn replace(&self, py: Python<'_>, slot: usize) -> PyResult<Py<PyLocalMember>> {
        self.change(py, change::Change::Replace(slot))?;
        self.member_in(py, slot)?.ok_or_else(|| {
            Failure::Panic(format!(
                "the replacement of slot {slot} is not in the cluster"
            ))
            .into_pyerr()
        })
    }
    /// The registry's credentials.
    #[getter]
    fn regcred(&self, py: Python<'_>) -> Py<PyRegCred> {
        self.regcred.clone_ref(py)
    }
    /// The embedded registry's regCred.dat (None with an external registry).
    #[getter]
    fn regcred_path(&self) -> Option<PathBuf> {
        self.regcred_path.clone()
    }
    /// The registry's address.
    #[getter]
    fn address(&self) -> String {
        self.address.clone()
    }
    /// Seconds spent: `{"keygen_s", "formation_s", "total_s"}`.
    #[getter]
    fn timings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("keygen_s", self.timings.0)?;
        d.set_item("formation_s", self.timings.1)?;
        d.set_item("total_s", self.timings.2)?;
        Ok(d)
    }
    /// Member keys reused from the key pool.
    #[getter]
    fn keys_reused(&self) -> usize {
        self.keys.0
    }
    /// Member keys generated by this launch.
    #[getter]
    fn keys_generated(&self) -> usize {
        self.keys.1
    }
    /// Close the members' sockets and stop the embedded registry (and give
    /// its keys back to the key pool). Idempotent; waits for a change in
    /// progress (another thread's `resize`) to end first.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        if let Ok(mut g) = self.slot.lock() {
            g.take();
        }
        let cell = self.inner.clone();
        block_on(py, async move {
            let c = cell.lock().await.take();
            if let Some(c) = c {
                c.shutdown().await;
            }
            Ok(())
        })
    }
    /// Members in different groups cannot reach each other; a member in
    /// no group reaches no one (`partition([[0], [1, 2]])`). Needs
    /// `faults=True`; faults add up until `heal()`.
    fn partition(&self, groups: Vec<Vec<usize>>) -> PyResult<()> {
        crate::faults::partition(self.faults.as_ref(), groups)
    }
    /// Member `i` reaches no one and no one reaches it.
    fn isolate(&self, i: usize) -> PyResult<()> {
        crate::faults::apply(self.faults.as_ref(), xlreg::testing::Fault::Isolate(i))
    }
    /// Stop the bytes between `i` and `j` (only `i` -> `j` with `one_way`).
    #[pyo3(signature = (i, j, one_way=false))]
    fn cut(&self, i: usize, j: usize, one_way: bool) -> PyResult<()> {
        crate::faults::cut(self.faults.as_ref(), i, j, one_way)
    }
    /// Bytes from `i` to `j` arrive `seconds` (+ up to `jitter`) later.
    #[pyo3(signature = (i, j, seconds, jitter=0.0))]
    fn delay(&self, i: usize, j: usize, seconds: f64, jitter: f64) -> PyResult<()> {
        crate::faults::delay(self.faults.as_ref(), i, j, seconds, jitter)
    }
    /// Each chunk from `i` to `j` is lost with `probability` (and, as over
    /// TCP, arrives one 200 ms retransmission timeout late).
    fn drop(&self, i: usize, j: usize, probability: f64) -> PyResult<()> {
        crate::faults::apply(
            self.faults.as_ref(),
            xlreg::testing::Fault::Drop {
                from: i,
                to: j,
                probability,
            },
        )
    }
    /// Remove every fault, on open connections too.
    fn heal(&self) -> PyResult<()> {
        crate::faults::heal(self.faults.as_ref())
    }
    /// The faults in force, in the words of `xlreg fault`
    /// (`["partition 0,1 2"]`).
    fn current(&self) -> PyResult<Vec<String>> {
        crate::faults::current(self.faults.as_ref())
    }
    /// Start a nemesis: every `every` seconds a fault of `kind`
    /// (`"partition-halves"` or `"isolate-one"`) chosen from `seed`
    /// alone, then a heal; `stop()` on the result ends it.
    fn nemesis(&self, kind: &str, every: f64, seed: u64) -> PyResult<crate::faults::PyNemesis> {
        crate::faults::nemesis(self.faults.as_ref(), kind, every, seed)
    }
    fn __len__(&self) -> usize {
        self.members.lock().map(|m| m.len()).unwrap_or(0)
    }
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        self.shutdown(py)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "LocalCluster(name={}, size={}, address={:?})",
            crate::view::opt_repr(&self.cluster_name(py)?),
            self.__len__(),
            self.address
        ))
    }
}

impl PyLocalCluster {
    /// Make `what` (blocking, GIL released), then bring `members` and
    /// `info` up to date; returns the version every member saw.
    fn change(&self, py: Python<'_>, what: change::Change) -> PyResult<u64> {
        let (version, snapshot) = change::run(py, &self.inner, what)?;
        change::apply(py, self, snapshot)?;
        Ok(version)
    }
}

impl Drop for PyLocalCluster {
    fn drop(&mut self) {
        // A change still running (its caller interrupted) holds the lock
        // and a reference: the cluster is then dropped in that task.
        if let Ok(mut g) = self.inner.try_lock() {
            if let Some(c) = g.take() {
                drop_in_runtime(c);
            }
        }
    }
}
