//! `xlreg.Session`: one registry session, one protocol step per call
//! (register, create, join, get_members, bye), for tests that want to
//! drive the registry step by step. Blocking; the GIL is released while
//! waiting. The library keeps the client side of the registry's state
//! machine, so a step out of order is a `UsageError`, not a crash.

use std::sync::Mutex;

use pyo3::prelude::*;

use xlreg::client::{ClusterRef, Session};
use xlreg::wire::Which;

use crate::errors::{guard, Failure};
use crate::flows::{client_options, cluster_ref, cluster_spec, node_id};
use crate::node::PyNode;
use crate::regcred::regcred_arg;
use crate::runtime::block_on;
use crate::view::{PyClusterInfo, PyMember};

/// A connected registry session (Hello done). Use it as a context manager:
/// leaving the `with` block says Bye (or just closes after a failure).
#[pyclass(module = "xlreg", name = "Session")]
pub struct PySession {
    inner: Mutex<Option<Session>>,
    address: String,
}

impl PySession {
    /// Run one step with the session moved into the future and back.
    fn step<T, F, Fut>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Session) -> Fut,
        Fut: std::future::Future<Output = (Session, Result<T, Failure>)> + Send + 'static,
    {
        let s = self
            .inner
            .lock()
            .map_err(|_| crate::errors::usage("the session is in use by another thread"))?
            .take()
            .ok_or_else(|| crate::errors::usage("the session is closed (bye was called)"))?;
        let slot = std::sync::Arc::new(Mutex::new(None));
        let back = slot.clone();
        let fut = f(s);
        let r = block_on(py, async move {
            let (s, r) = fut.await;
            *back.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
            r
        });
        let returned = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Ok(mut g) = self.inner.lock() {
            *g = returned;
        }
        r
    }
}

#[pymethods]
impl PySession {
    /// Connect to the registry of `regcred` (an `xlreg.RegCred` or a path)
    /// and complete the Hello handshake.
    #[new]
    #[pyo3(signature = (regcred, *, timeout=None))]
    fn new(py: Python<'_>, regcred: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<Self> {
        let rc = regcred_arg(regcred)?;
        let opts = guard(|| client_options(timeout))?;
        let s = block_on(py, async move { Ok(Session::connect(&rc, &opts).await?) })?;
        Ok(PySession {
            address: s.addr().to_string(),
            inner: Mutex::new(Some(s)),
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
        self.inner.lock().map(|g| g.is_some()).unwrap_or(false)
    }

    /// Register `node` (Member → MemberOK) with attribute bits `attrs`;
    /// returns the node ID (hex) the registry confirmed.
    #[pyo3(signature = (node, attrs=0))]
    fn register(&self, py: Python<'_>, node: &Bound<'_, PyNode>, attrs: u64) -> PyResult<String> {
        let node = node.get().inner.clone();
        self.step(py, move |mut s| async move {
            let r = s.register(&node, attrs).await;
            (s, r.map(|id| id.to_hex()).map_err(Failure::from))
        })
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
        let spec = guard(|| cluster_spec(&name, size, endpoints))?;
        self.step(py, move |mut s| async move {
            let r = s.create(&spec).await;
            (
                s,
                r.map(|inner| PyClusterInfo {
                    inner,
                    name: Some(name),
                })
                .map_err(Failure::from),
            )
        })
    }

    /// Join a cluster by `cluster` name or `cluster_id` (Join → JoinReply).
    #[pyo3(signature = (cluster=None, *, cluster_id=None))]
    fn join(
        &self,
        py: Python<'_>,
        cluster: Option<String>,
        cluster_id: Option<String>,
    ) -> PyResult<PyClusterInfo> {
        let cref = guard(|| cluster_ref(cluster, cluster_id))?;
        self.step(py, move |mut s| async move {
            let r = s.join(&cref).await;
            let name = match &cref {
                ClusterRef::Name(n) => Some(n.clone()),
                ClusterRef::Id(_) => None,
            };
            (
                s,
                r.map(|inner| PyClusterInfo { inner, name })
                    .map_err(Failure::from),
            )
        })
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
        self.step(py, move |mut s| async move {
            let r = s.get_members(&id, which).await;
            (
                s,
                r.map(|m| {
                    m.members
                        .into_iter()
                        .map(|inner| PyMember { inner })
                        .collect()
                })
                .map_err(Failure::from),
            )
        })
    }

    /// Say Bye and close. Calling it again does nothing.
    fn bye(&self, py: Python<'_>) -> PyResult<()> {
        let s = match self.inner.lock() {
            Ok(mut g) => g.take(),
            Err(_) => None,
        };
        match s {
            None => Ok(()),
            Some(s) => block_on(py, async move { Ok(s.bye().await?) }),
        }
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
