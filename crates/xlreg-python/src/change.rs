//! Clusters that change, for Python: `xlreg.resize`, `xlreg.evict`,
//! `xlreg.leave` (blocking, and as awaitables for `xlreg.aio`) and
//! `xlreg.watch` (`xlreg.Watch`, an iterator of `ClusterView`s; its
//! `next_async` drives `xlreg.aio.watch`, an async generator).
//!
//! Why a file of its own: these are the negotiated xlreg extensions of
//! `xlreg::client::change`; this only converts arguments and runs the
//! library's futures on the shared runtime, like `flows`.

use std::sync::Arc;

use pyo3::prelude::*;

use xlreg::client::{self, ClientOptions, ClusterRef, MemberRef, NodeIdentity};
use xlreg::regcred::RegCred;

use crate::errors::{guard, Failure};
use crate::flows::{client_options, cluster_ref, process_admin};
use crate::node::PyNode;
use crate::regcred::regcred_arg;
use crate::runtime::{awaitable, block_on, runtime};
use crate::view::PyClusterView;

type Fut<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, Failure>> + Send>>;

/// What every change names: the registry, the cluster and the options.
struct Target {
    rc: Arc<RegCred>,
    cluster: ClusterRef,
    opts: ClientOptions,
}

fn target(
    regcred: &Bound<'_, PyAny>,
    cluster: Option<String>,
    cluster_id: Option<String>,
    timeout: Option<f64>,
) -> PyResult<Target> {
    let rc = regcred_arg(regcred)?;
    let (cluster, opts) =
        guard(|| Ok((cluster_ref(cluster, cluster_id)?, client_options(timeout)?)))?;
    Ok(Target { rc, cluster, opts })
}

/// The owner: `admin`, else the identity `xlreg.create_cluster` uses when
/// given none (made once per process).
async fn owner(admin: Option<Arc<NodeIdentity>>) -> Result<Arc<NodeIdentity>, Failure> {
    match admin {
        Some(a) => Ok(a),
        None => process_admin().await,
    }
}

/// A member given as a slot (`int`) or a name (`str`).
fn member_arg(member: &Bound<'_, PyAny>) -> PyResult<MemberRef> {
    if let Ok(i) = member.extract::<usize>() {
        return Ok(MemberRef::Index(i));
    }
    if let Ok(s) = member.extract::<String>() {
        if s.is_empty() {
            return Err(crate::errors::usage(
                "member='': give a member name or a slot index",
            ));
        }
        return Ok(MemberRef::Name(s));
    }
    Err(crate::errors::usage(format!(
        "member={}: give a member name (str) or a slot index (int >= 0)",
        member.repr().map(|r| r.to_string()).unwrap_or_default()
    )))
}

fn resize_fut(
    regcred: &Bound<'_, PyAny>,
    size: u32,
    cluster: Option<String>,
    cluster_id: Option<String>,
    admin: Option<&Bound<'_, PyNode>>,
    timeout: Option<f64>,
) -> PyResult<Fut<u64>> {
    let t = target(regcred, cluster, cluster_id, timeout)?;
    guard(|| {
        xlreg::limits::check_cluster_size(size)
            .map_err(|e| Failure::Usage(format!("size={size}: {e}")))
    })?;
    let admin = admin.map(|a| a.get().inner.clone());
    Ok(Box::pin(async move {
        let admin = owner(admin).await?;
        Ok(client::resize(&t.rc, &t.cluster, size, &admin, &t.opts).await?)
    }))
}

/// Resize the cluster (`cluster` name or `cluster_id`) to `size` members
/// as its creator `admin` (default: the identity `create_cluster` uses
/// when given none); returns the cluster's version after the change.
/// Growing always works; shrinking only over empty slots (the
/// `RegistryError` names the member in the way). xlreg registries only: a
/// Go registry is refused (`UsageError`) before anything is sent.
#[pyfunction]
#[pyo3(signature = (regcred, size, cluster=None, *, cluster_id=None, admin=None, timeout=None))]
pub fn resize(
    py: Python<'_>,
    regcred: &Bound<'_, PyAny>,
    size: u32,
    cluster: Option<String>,
    cluster_id: Option<String>,
    admin: Option<&Bound<'_, PyNode>>,
    timeout: Option<f64>,
) -> PyResult<u64> {
    let f = resize_fut(regcred, size, cluster, cluster_id, admin, timeout)?;
    block_on(py, f)
}

/// Awaitable `resize`.
#[pyfunction]
#[pyo3(signature = (regcred, size, cluster=None, *, cluster_id=None, admin=None, timeout=None))]
pub fn resize_async<'py>(
    py: Python<'py>,
    regcred: &Bound<'py, PyAny>,
    size: u32,
    cluster: Option<String>,
    cluster_id: Option<String>,
    admin: Option<&Bound<'py, PyNode>>,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = resize_fut(regcred, size, cluster, cluster_id, admin, timeout)?;
    awaitable(py, f)
}

fn evict_fut(
    regcred: &Bound<'_, PyAny>,
    member: &Bound<'_, PyAny>,
    cluster: Option<String>,
    cluster_id: Option<String>,
    admin: Option<&Bound<'_, PyNode>>,
    timeout: Option<f64>,
) -> PyResult<Fut<u64>> {
    let t = target(regcred, cluster, cluster_id, timeout)?;
    let member = member_arg(member)?;
    let admin = admin.map(|a| a.get().inner.clone());
    Ok(Box::pin(async move {
        let admin = owner(admin).await?;
        Ok(client::evict(&t.rc, &t.cluster, &member, &admin, &t.opts).await?)
    }))
}

/// Evict `member` (a slot index, `int`, or a member name, `str`) from the
/// cluster as its creator `admin` (as for `resize`); returns the cluster's
/// version after the change. The slot is free for the next member to
/// join; the others keep theirs.
#[pyfunction]
#[pyo3(signature = (regcred, member, cluster=None, *, cluster_id=None, admin=None, timeout=None))]
pub fn evict(
    py: Python<'_>,
    regcred: &Bound<'_, PyAny>,
    member: &Bound<'_, PyAny>,
    cluster: Option<String>,
    cluster_id: Option<String>,
    admin: Option<&Bound<'_, PyNode>>,
    timeout: Option<f64>,
) -> PyResult<u64> {
    let f = evict_fut(regcred, member, cluster, cluster_id, admin, timeout)?;
    block_on(py, f)
}

/// Awaitable `evict`.
#[pyfunction]
#[pyo3(signature = (regcred, member, cluster=None, *, cluster_id=None, admin=None, timeout=None))]
pub fn evict_async<'py>(
    py: Python<'py>,
    regcred: &Bound<'py, PyAny>,
    member: &Bound<'py, PyAny>,
    cluster: Option<String>,
    cluster_id: Option<String>,
    admin: Option<&Bound<'py, PyNode>>,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = evict_fut(regcred, member, cluster, cluster_id, admin, timeout)?;
    awaitable(py, f)
}

fn leave_fut(
    regcred: &Bound<'_, PyAny>,
    node: &Bound<'_, PyNode>,
    cluster: Option<String>,
    cluster_id: Option<String>,
    timeout: Option<f64>,
) -> PyResult<Fut<u64>> {
    let t = target(regcred, cluster, cluster_id, timeout)?;
    let node = node.get().inner.clone();
    Ok(Box::pin(async move {
        Ok(client::leave(&t.rc, &t.cluster, &node, &t.opts).await?)
    }))
}

/// The member `node` leaves the cluster (its slot becomes free); returns
/// the cluster's version after the change.
#[pyfunction]
#[pyo3(signature = (regcred, node, cluster=None, *, cluster_id=None, timeout=None))]
pub fn leave(
    py: Python<'_>,
    regcred: &Bound<'_, PyAny>,
    node: &Bound<'_, PyNode>,
    cluster: Option<String>,
    cluster_id: Option<String>,
    timeout: Option<f64>,
) -> PyResult<u64> {
    let f = leave_fut(regcred, node, cluster, cluster_id, timeout)?;
    block_on(py, f)
}

/// Awaitable `leave`.
#[pyfunction]
#[pyo3(signature = (regcred, node, cluster=None, *, cluster_id=None, timeout=None))]
pub fn leave_async<'py>(
    py: Python<'py>,
    regcred: &Bound<'py, PyAny>,
    node: &Bound<'py, PyNode>,
    cluster: Option<String>,
    cluster_id: Option<String>,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = leave_fut(regcred, node, cluster, cluster_id, timeout)?;
    awaitable(py, f)
}

type Shared = Arc<tokio::sync::Mutex<Option<client::Watch>>>;
type Version = Arc<std::sync::atomic::AtomicU64>;

/// A watch of a cluster: iterate it for each new version, as a
/// `ClusterView` with its `version`, in ascending order; the iteration
/// ends when the cluster is deleted or expires. Each step waits (GIL
/// released, Ctrl-C honoured) on a request the registry holds until the
/// cluster changes: no polling. Made by `xlreg.watch`; a context manager
/// (leaving it closes the watch).
#[pyclass(module = "xlreg", name = "Watch", frozen)]
pub struct PyWatch {
    inner: Shared,
    version: Version,
}

/// The next view of `w`: `None` at the end (or once closed).
async fn next_view(w: Shared, version: Version) -> Result<Option<PyClusterView>, Failure> {
    let mut g = w.lock().await;
    let Some(watch) = g.as_mut() else {
        return Ok(None);
    };
    match watch.next().await {
        Some(Ok(view)) => {
            version.store(view.version(), std::sync::atomic::Ordering::Relaxed);
            Ok(Some(PyClusterView { inner: view }))
        }
        Some(Err(e)) => {
            g.take();
            Err(e.into())
        }
        None => {
            g.take();
            Ok(None)
        }
    }
}

#[pymethods]
impl PyWatch {
    /// The last version seen (or `since`).
    #[getter]
    fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyClusterView>> {
        block_on(py, next_view(self.inner.clone(), self.version.clone()))
    }
    /// An awaitable of the next view, or None at the end (what
    /// `xlreg.aio.watch` iterates).
    fn next_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, next_view(self.inner.clone(), self.version.clone()))
    }
    /// Stop watching (closes the connection). Idempotent.
    fn close(&self) {
        let w = self.inner.clone();
        runtime().spawn(async move {
            w.lock().await.take();
        });
    }
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.close()
    }
    fn __repr__(&self) -> String {
        format!("Watch(version={})", self.version())
    }
}

impl Drop for PyWatch {
    fn drop(&mut self) {
        let w = self.inner.clone();
        runtime().spawn(async move {
            w.lock().await.take();
        });
    }
}

/// Watch the cluster (`cluster` name or `cluster_id`) change: returns a
/// `Watch` to iterate (`for view in xlreg.watch(rc, "demo"):`). The first
/// view is the cluster as it is now (or, with `since`, the first version
/// after it). `node`: watch as this node (a member: views then have its
/// `self_index`); default a reader identity made once per process.
/// Watching a cluster that does not exist raises `RegistryError`.
#[pyfunction]
#[pyo3(signature = (regcred, cluster=None, *, cluster_id=None, node=None, since=0, timeout=None))]
pub fn watch(
    py: Python<'_>,
    regcred: &Bound<'_, PyAny>,
    cluster: Option<String>,
    cluster_id: Option<String>,
    node: Option<&Bound<'_, PyNode>>,
    since: u64,
    timeout: Option<f64>,
) -> PyResult<PyWatch> {
    let t = target(regcred, cluster, cluster_id, timeout)?;
    let node = node.map(|n| n.get().inner.clone());
    let w = block_on(py, async move {
        let watcher = match node {
            Some(n) => (*n).clone(),
            None => client::reader_identity().await?,
        };
        Ok(client::Watch::new(&t.rc, t.cluster, watcher, t.opts).since(since))
    })?;
    Ok(PyWatch {
        inner: Arc::new(tokio::sync::Mutex::new(Some(w))),
        version: Arc::new(since.into()),
    })
}
