//! `xlreg.testing`'s Rust half: the in-process registry and clusters of
//! `xlreg::testing` on the shared background runtime, as context managers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use std::time::Duration;

use xlreg::server::ServerConfig;
use xlreg::testing::{LaunchError, LaunchOptions, LocalCluster, LocalRegistry};

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
    view: Py<PyClusterView>,
    listeners: Mutex<Vec<std::net::TcpListener>>,
}

#[pymethods]
impl PyLocalMember {
    /// Its identity (name, ID, keys, endpoints).
    #[getter]
    fn node(&self, py: Python<'_>) -> Py<PyNode> {
        self.node.clone_ref(py)
    }
    /// What it learned when it booted.
    #[getter]
    fn view(&self, py: Python<'_>) -> Py<PyClusterView> {
        self.view.clone_ref(py)
    }
    /// Its slot in the cluster.
    #[getter]
    fn index(&self, py: Python<'_>) -> usize {
        self.view.borrow(py).inner.self_index
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
    fn __repr__(&self, py: Python<'_>) -> String {
        let n = self.node.get();
        format!(
            "LocalMember(index={}, name={:?}, endpoints={:?})",
            self.view.borrow(py).inner.self_index,
            n.inner.name,
            n.inner.endpoints
        )
    }
}

/// A registry (unless `regcred` names another one) and a cluster of
/// `size` members, all booted, each with listening sockets on its
/// endpoints. A context manager: leaving the block closes the sockets and
/// stops the registry.
#[pyclass(module = "xlreg.testing", name = "LocalCluster")]
pub struct PyLocalCluster {
    inner: Mutex<Option<LocalCluster>>,
    members: Vec<Py<PyLocalMember>>,
    info: Py<PyClusterInfo>,
    regcred: Py<PyRegCred>,
    regcred_path: Option<PathBuf>,
    address: String,
    timings: (f64, f64, f64),
    keys: (usize, usize),
    slot: Mutex<Option<PoolSlot>>,
}

#[pymethods]
impl PyLocalCluster {
    /// Launch: start a registry (or use `regcred`), make keys (`key_bits`,
    /// taken from the key-pool directory `key_pool` when given; clusters
    /// alive at once in this process never share keys: the second one
    /// uses the pool's subdirectory `live-1`, and so on), create a
    /// cluster of `size` members with `endpoints` endpoints each, and boot
    /// every member, waiting up to `wait` seconds.
    #[new]
    #[pyo3(signature = (size, endpoints=2, key_bits=1024, key_pool=None, *, name=None, regcred=None, wait=30.0))]
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
                ..LaunchOptions::default()
            })
        })?;
        let mut c = block_on(
            py,
            async move { Ok(LocalCluster::launch_with(opts).await?) },
        )?;
        let mut members = Vec::with_capacity(c.members.len());
        for m in &mut c.members {
            // Plain blocking sockets, as Python code expects by default.
            let mut listeners = Vec::new();
            for i in 0..m.endpoints().len() {
                if let Some(l) = m.take_std_listener(i) {
                    l.set_nonblocking(false).map_err(|e| {
                        Failure::Launch(LaunchError::Io(format!(
                            "making the listener of {} blocking: {e}",
                            m.identity.name
                        )))
                    })?;
                    listeners.push(l);
                }
            }
            members.push(Py::new(
                py,
                PyLocalMember {
                    node: Py::new(py, PyNode::new(m.identity.clone(), true))?,
                    view: Py::new(
                        py,
                        PyClusterView {
                            inner: m.view.clone(),
                        },
                    )?,
                    listeners: Mutex::new(listeners),
                },
            )?);
        }
        let registry = c.registry();
        Ok(PyLocalCluster {
            members,
            info: Py::new(
                py,
                PyClusterInfo {
                    inner: c.info.clone(),
                    name: Some(c.name.clone()),
                },
            )?,
            regcred: Py::new(py, PyRegCred::new(c.regcred().clone(), None))?,
            regcred_path: registry.map(|r| r.regcred_path().to_path_buf()),
            address: c.regcred().endpoints.first().cloned().unwrap_or_default(),
            timings: (
                c.timings.keygen.as_secs_f64(),
                c.timings.formation.as_secs_f64(),
                c.timings.total.as_secs_f64(),
            ),
            keys: (c.keys_reused, c.keys_generated),
            inner: Mutex::new(Some(c)),
            slot: Mutex::new(slot),
        })
    }

    /// The members in launch order (`m00`, `m01`, ...).
    #[getter]
    fn members(&self, py: Python<'_>) -> Vec<Py<PyLocalMember>> {
        self.members.iter().map(|m| m.clone_ref(py)).collect()
    }
    /// Every member's view, in launch order.
    #[getter]
    fn views(&self, py: Python<'_>) -> Vec<Py<PyClusterView>> {
        self.members
            .iter()
            .map(|m| m.borrow(py).view.clone_ref(py))
            .collect()
    }
    /// The cluster (ID, name, size, endpoint count).
    #[getter]
    fn info(&self, py: Python<'_>) -> Py<PyClusterInfo> {
        self.info.clone_ref(py)
    }
    /// Cluster ID, hex.
    #[getter]
    fn cluster_id(&self) -> String {
        self.info.get().inner.id.to_hex()
    }
    /// Cluster name.
    #[getter]
    fn cluster_name(&self) -> Option<String> {
        self.info.get().name.clone()
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
    /// its keys back to the key pool). Idempotent.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        if let Ok(mut g) = self.slot.lock() {
            g.take();
        }
        let c = self.inner.lock().ok().and_then(|mut g| g.take());
        match c {
            None => Ok(()),
            Some(c) => block_on(py, async move {
                c.shutdown().await;
                Ok(())
            }),
        }
    }
    fn __len__(&self) -> usize {
        self.members.len()
    }
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        self.shutdown(py)
    }
    fn __repr__(&self) -> String {
        format!(
            "LocalCluster(name={}, size={}, address={:?})",
            crate::view::opt_repr(&self.info.get().name),
            self.members.len(),
            self.address
        )
    }
}

impl Drop for PyLocalCluster {
    fn drop(&mut self) {
        if let Ok(g) = self.inner.get_mut() {
            if let Some(c) = g.take() {
                drop_in_runtime(c);
            }
        }
    }
}
