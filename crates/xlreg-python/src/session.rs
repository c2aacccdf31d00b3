//! `xlreg.Session` and the core of `xlreg.aio.Session`: one registry
//! session, one protocol step per call (register, create, join,
//! get_members, delete_cluster, bye), for tests that want to drive the
//! registry step by step. `Session` blocks (the GIL is released while
//! waiting); `_AsyncSession` returns awaitables, and python/xlreg/aio/
//! wraps it. Both build each step once ([`Steps`]). The library keeps the
//! client side of the registry's state machine, so a step out of order is
//! a `UsageError`, not a crash.

use std::future::Future;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use xlreg::client::{ClusterRef, Session};
use xlreg::wire::Which;

use crate::errors::{guard, usage, Failure};
use crate::flows::{client_options, cluster_ref, cluster_spec, node_id};
use crate::node::PyNode;
use crate::regcred::regcred_arg;
use crate::runtime::{awaitable, block_on};
use crate::view::{PyClusterInfo, PyMember};

/// Where a session is between steps.
enum Cell {
    /// Not connected yet (`xlreg.aio.Session` before `connect`).
    Unconnected,
    /// Connected, no step running.
    Idle(Box<Session>),
    /// A step holds the session.
    Busy,
    /// After `bye`, or a step that did not finish (interrupted, cancelled).
    Closed,
}

/// The session and the steps on it, each a `'static` future that takes
/// the session and puts it back when it completes (so a step interrupted
/// by Ctrl-C or cancelled leaves the session closed).
#[derive(Clone)]
struct Steps(Arc<Mutex<Cell>>);

fn lock(m: &Mutex<Cell>) -> std::sync::MutexGuard<'_, Cell> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Puts the session back, or marks it closed when the step was dropped.
struct Return {
    steps: Steps,
    session: Option<Session>,
}

impl Drop for Return {
    fn drop(&mut self) {
        *lock(&self.steps.0) = match self.session.take() {
            Some(s) => Cell::Idle(Box::new(s)),
            None => Cell::Closed,
        };
    }
}

type Step<T> = Result<T, Failure>;

/// Why a step cannot start in this state.
fn refusal(cell: &Cell) -> PyErr {
    usage(match cell {
        Cell::Unconnected => "the session is not connected (await connect() first)",
        Cell::Idle(_) => "the session is already connected",
        Cell::Busy => "the session is in use (another step is running)",
        Cell::Closed => "the session is closed (bye was called, or a step did not finish)",
    })
}

impl Steps {
    fn new(cell: Cell) -> Self {
        Steps(Arc::new(Mutex::new(cell)))
    }

    fn address(&self) -> Option<String> {
        match &*lock(&self.0) {
            Cell::Idle(s) => Some(s.addr().to_string()),
            _ => None,
        }
    }

    fn is_open(&self) -> bool {
        matches!(&*lock(&self.0), Cell::Idle(_) | Cell::Busy)
    }

    fn take(&self) -> PyResult<Session> {
        let mut g = lock(&self.0);
        match std::mem::replace(&mut *g, Cell::Busy) {
            Cell::Idle(s) => Ok(*s),
            other => {
                let e = refusal(&other);
                *g = other;
                Err(e)
            }
        }
    }

    /// Run `f` on the session as one step.
    fn step<T, F, Fut>(&self, f: F) -> PyResult<impl Future<Output = Step<T>> + Send + 'static>
    where
        T: Send + 'static,
        F: FnOnce(Session) -> Fut + Send + 'static,
        Fut: Future<Output = (Session, Step<T>)> + Send + 'static,
    {
        let s = self.take()?;
        let mut back = Return {
            steps: self.clone(),
            session: None,
        };
        Ok(async move {
            let (s, r) = f(s).await;
            back.session = Some(s);
            drop(back);
            r
        })
    }

    fn connect(
        &self,
        regcred: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<impl Future<Output = Step<()>> + Send + 'static> {
        let rc = regcred_arg(regcred)?;
        let opts = guard(|| client_options(timeout))?;
        {
            let mut g = lock(&self.0);
            if !matches!(*g, Cell::Unconnected) {
                return Err(refusal(&g));
            }
            *g = Cell::Busy;
        }
        let mut back = Return {
            steps: self.clone(),
            session: None,
        };
        Ok(async move {
            back.session = Some(Session::connect(&rc, &opts).await?);
            drop(back);
            Ok(())
        })
    }

    fn register(
        &self,
        node: &Bound<'_, PyNode>,
        attrs: u64,
    ) -> PyResult<impl Future<Output = Step<String>> + Send + 'static> {
        let node = node.get().inner.clone();
        self.step(move |mut s| async move {
            let r = s.register(&node, attrs).await;
            (s, r.map(|id| id.to_hex()).map_err(Failure::from))
        })
    }

    fn create(
        &self,
        name: String,
        size: u32,
        endpoints: u32,
    ) -> PyResult<impl Future<Output = Step<PyClusterInfo>> + Send + 'static> {
        let spec = guard(|| cluster_spec(&name, size, endpoints))?;
        self.step(move |mut s| async move {
            let r = s.create(&spec).await;
            let r = r.map(|inner| PyClusterInfo {
                inner,
                name: Some(name),
            });
            (s, r.map_err(Failure::from))
        })
    }

    fn join(
        &self,
        cluster: Option<String>,
        cluster_id: Option<String>,
    ) -> PyResult<impl Future<Output = Step<PyClusterInfo>> + Send + 'static> {
        let cref = guard(|| cluster_ref(cluster, cluster_id))?;
        self.step(move |mut s| async move {
            let r = s.join(&cref).await;
            let name = match &cref {
                ClusterRef::Name(n) => Some(n.clone()),
                ClusterRef::Id(_) => None,
            };
            let r = r.map(|inner| PyClusterInfo { inner, name });
            (s, r.map_err(Failure::from))
        })
    }

    fn get_members(
        &self,
        cluster_id: String,
        indexes: Option<Vec<usize>>,
    ) -> PyResult<impl Future<Output = Step<Vec<PyMember>>> + Send + 'static> {
        let (id, which) = guard(|| {
            let id = node_id("cluster_id", &cluster_id)?;
            let which = match indexes {
                None => Which::ALL,
                Some(ix) => {
                    let mut w = Which(0);
                    for i in ix {
                        if i >= 64 {
                            return Err(Failure::Usage(format!(
                                "indexes: {i} is not a member index (0 to 63)"
                            )));
                        }
                        w.insert(i);
                    }
                    w
                }
            };
            Ok((id, which))
        })?;
        self.step(move |mut s| async move {
            let r = s.get_members(&id, which).await;
            let r = r.map(|m| {
                m.members
                    .into_iter()
                    .map(|inner| PyMember { inner })
                    .collect()
            });
            (s, r.map_err(Failure::from))
        })
    }

    fn delete_cluster(
        &self,
        cluster: Option<String>,
        cluster_id: Option<String>,
    ) -> PyResult<impl Future<Output = Step<()>> + Send + 'static> {
        let cref = guard(|| cluster_ref(cluster, cluster_id))?;
        self.step(move |mut s| async move {
            let r = s.delete_cluster(&cref).await;
            (s, r.map_err(Failure::from))
        })
    }

    /// Bye and close; nothing when not connected or already closed.
    fn bye(&self) -> PyResult<impl Future<Output = Step<()>> + Send + 'static> {
        let s = {
            let mut g = lock(&self.0);
            match std::mem::replace(&mut *g, Cell::Closed) {
                Cell::Idle(s) => Some(s),
                Cell::Busy => {
                    *g = Cell::Busy;
                    return Err(refusal(&g));
                }
                _ => None,
            }
        };
        Ok(async move {
            match s {
                Some(s) => Ok(s.bye().await?),
                None => Ok(()),
            }
        })
    }
}

/// A connected registry session (Hello done). Use it as a context manager:
/// leaving the `with` block says Bye (or just closes after a failure).
#[pyclass(module = "xlreg", name = "Session")]
pub struct PySession {
    steps: Steps,
    address: String,
}

#[pymethods]
impl PySession {
    /// Connect to the registry of `regcred` (an `xlreg.RegCred` or a path)
    /// and complete the Hello handshake.
    #[new]
    #[pyo3(signature = (regcred, *, timeout=None))]
    fn new(py: Python<'_>, regcred: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<Self> {
        let steps = Steps::new(Cell::Unconnected);
        block_on(py, steps.connect(regcred, timeout)?)?;
        Ok(PySession {
            address: steps.address().unwrap_or_default(),
            steps,
        })
    }

    /// The registry address.
    #[getter]
    fn address(&self) -> String {
        self.address.clone()
    }

    /// True until `bye` (or leaving the `with` block).
    #[getter]
    fn is_open(&self) -> bool {
        self.steps.is_open()
    }

    /// Register `node` (Member → MemberOK) with attribute bits `attrs`;
    /// returns the node ID (hex) the registry confirmed.
    #[pyo3(signature = (node, attrs=0))]
    fn register(&self, py: Python<'_>, node: &Bound<'_, PyNode>, attrs: u64) -> PyResult<String> {
        block_on(py, self.steps.register(node, attrs)?)
    }

    /// Create cluster `name` (Create → CreateReply); the registry returns
    /// the existing cluster if the name is taken.
    #[pyo3(signature = (name, size, endpoints=1))]
    fn create(
        &self,
        py: Python<'_>,
        name: String,
        size: u32,
        endpoints: u32,
    ) -> PyResult<PyClusterInfo> {
        block_on(py, self.steps.create(name, size, endpoints)?)
    }

    /// Join a cluster by `cluster` name or `cluster_id` (Join → JoinReply).
    #[pyo3(signature = (cluster=None, *, cluster_id=None))]
    fn join(
        &self,
        py: Python<'_>,
        cluster: Option<String>,
        cluster_id: Option<String>,
    ) -> PyResult<PyClusterInfo> {
        block_on(py, self.steps.join(cluster, cluster_id)?)
    }

    /// The members of cluster `cluster_id` at `indexes` (default: all)
    /// that are present (GetCluster → ClusterMembers).
    #[pyo3(signature = (cluster_id, indexes=None))]
    fn get_members(
        &self,
        py: Python<'_>,
        cluster_id: String,
        indexes: Option<Vec<usize>>,
    ) -> PyResult<Vec<PyMember>> {
        block_on(py, self.steps.get_members(cluster_id, indexes)?)
    }

    /// Delete cluster `cluster` (by name) or `cluster_id` (an xlreg
    /// extension: a Go registry cannot). The registry allows it to a
    /// member of the cluster: register as one first (or right after
    /// `create`).
    #[pyo3(signature = (cluster=None, *, cluster_id=None))]
    fn delete_cluster(
        &self,
        py: Python<'_>,
        cluster: Option<String>,
        cluster_id: Option<String>,
    ) -> PyResult<()> {
        block_on(py, self.steps.delete_cluster(cluster, cluster_id)?)
    }

    /// Say Bye and close. Calling it again does nothing.
    fn bye(&self, py: Python<'_>) -> PyResult<()> {
        block_on(py, self.steps.bye()?)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let r = self.bye(py);
        // Do not hide the exception that ended the block behind a failed Bye.
        if exc_type.is_none_or(|t| t.is_none()) {
            r?;
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "Session(address={:?}, open={})",
            self.address,
            self.is_open()
        )
    }
}

/// The core of `xlreg.aio.Session` (python/xlreg/aio/session.py): the same
/// steps as `Session`, each returning an awaitable.
#[pyclass(module = "xlreg._xlreg", name = "_AsyncSession", frozen)]
pub struct PyAsyncSession {
    steps: Steps,
}

#[pymethods]
impl PyAsyncSession {
    #[new]
    fn new() -> Self {
        PyAsyncSession {
            steps: Steps::new(Cell::Unconnected),
        }
    }

    #[getter]
    fn address(&self) -> Option<String> {
        self.steps.address()
    }

    #[getter]
    fn is_open(&self) -> bool {
        self.steps.is_open()
    }

    #[pyo3(signature = (regcred, timeout=None))]
    fn connect<'py>(
        &self,
        py: Python<'py>,
        regcred: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.steps.connect(regcred, timeout)?)
    }

    fn register<'py>(
        &self,
        py: Python<'py>,
        node: &Bound<'_, PyNode>,
        attrs: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.steps.register(node, attrs)?)
    }

    fn create<'py>(
        &self,
        py: Python<'py>,
        name: String,
        size: u32,
        endpoints: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.steps.create(name, size, endpoints)?)
    }

    fn join<'py>(
        &self,
        py: Python<'py>,
        cluster: Option<String>,
        cluster_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.steps.join(cluster, cluster_id)?)
    }

    fn get_members<'py>(
        &self,
        py: Python<'py>,
        cluster_id: String,
        indexes: Option<Vec<usize>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.steps.get_members(cluster_id, indexes)?)
    }

    fn delete_cluster<'py>(
        &self,
        py: Python<'py>,
        cluster: Option<String>,
        cluster_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.steps.delete_cluster(cluster, cluster_id)?)
    }

    fn bye<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.steps.bye()?)
    }
}
