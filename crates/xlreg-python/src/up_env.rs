//! `xlreg.UpEnv`: what `xlreg up --size N -- CMD` tells each copy of the
//! program through `XLREG_*` variables, and booting from it — the start of
//! every member launched that way (see examples/python/ring.py).

use std::path::PathBuf;

use pyo3::prelude::*;

use xlreg::testing::UpEnv;

use crate::errors::{guard, Failure};
use crate::flows::boot_options;
use crate::node::PyNode;
use crate::regcred::PyRegCred;
use crate::runtime::block_on;
use crate::view::PyClusterView;

/// The environment `xlreg up --size N -- CMD` gives each member program
/// (`XLREG_REGCRED`, `XLREG_CLUSTER_ID`, `XLREG_ENDPOINTS`, ...).
#[pyclass(module = "xlreg", name = "UpEnv", frozen)]
pub struct PyUpEnv {
    inner: UpEnv,
}

#[pymethods]
impl PyUpEnv {
    /// Read the `XLREG_*` variables; raises `UsageError` naming a missing or
    /// malformed one.
    #[staticmethod]
    fn from_env() -> PyResult<Self> {
        guard(|| {
            UpEnv::from_env()
                .map(|inner| PyUpEnv { inner })
                .map_err(|e| Failure::Usage(e.to_string()))
        })
    }
    /// Path of the registry's regCred.dat.
    #[getter]
    fn regcred_path(&self) -> PathBuf {
        self.inner.regcred.clone()
    }
    /// Cluster name.
    #[getter]
    fn cluster_name(&self) -> String {
        self.inner.cluster_name.clone()
    }
    /// Cluster ID, hex.
    #[getter]
    fn cluster_id(&self) -> String {
        self.inner.cluster_id.to_hex()
    }
    /// Cluster size.
    #[getter]
    fn cluster_size(&self) -> u32 {
        self.inner.cluster_size
    }
    /// This member's name.
    #[getter]
    fn member_name(&self) -> String {
        self.inner.member_name.clone()
    }
    /// This member's slot (0-based; `up` joins member i into slot i).
    #[getter]
    fn member_index(&self) -> usize {
        self.inner.member_index
    }
    /// The endpoints reserved for this member, `host:port`.
    #[getter]
    fn endpoints(&self) -> Vec<String> {
        self.inner.endpoints.clone()
    }
    /// This member's node directory.
    #[getter]
    fn node_dir(&self) -> PathBuf {
        self.inner.node_dir.clone()
    }
    /// The endpoint sockets `xlreg up --listen-fds` passed this process,
    /// bound and listening (systemd socket activation), as
    /// `socket.socket` objects in endpoint order; `None` when none were
    /// passed (then bind `endpoints` yourself). The first call takes them.
    #[staticmethod]
    fn take_listeners(py: Python<'_>) -> PyResult<Option<Vec<Py<PyAny>>>> {
        let Some(ls) =
            guard(|| UpEnv::take_listeners().map_err(|e| Failure::Usage(e.to_string())))?
        else {
            return Ok(None);
        };
        let socket = py.import("socket")?.getattr("socket")?;
        let mut out = Vec::with_capacity(ls.len());
        for l in ls {
            let fd = std::os::fd::IntoRawFd::into_raw_fd(l);
            let kw = pyo3::types::PyDict::new(py);
            kw.set_item("fileno", fd)?;
            out.push(socket.call((), Some(&kw))?.unbind());
        }
        Ok(Some(out))
    }
    /// The registry credentials.
    fn regcred(&self) -> PyResult<PyRegCred> {
        guard(|| {
            let rc = self.inner.load_regcred()?;
            Ok(PyRegCred::new(rc, Some(self.inner.regcred.clone())))
        })
    }
    /// This member's identity, from (or created in) its node directory.
    fn node(&self, py: Python<'_>) -> PyResult<PyNode> {
        py.detach(|| guard(|| Ok(PyNode::new(self.inner.identity()?, false))))
    }
    /// Join the cluster and wait up to `wait` seconds for every member
    /// (`timeout`: seconds for connecting and each request, default 15).
    #[pyo3(
        signature = (wait=Some(30.0), *, timeout=None),
        text_signature = "($self, wait=30.0, *, timeout=None)"
    )]
    fn boot(
        &self,
        py: Python<'_>,
        wait: Option<f64>,
        timeout: Option<f64>,
    ) -> PyResult<PyClusterView> {
        let opts = guard(|| boot_options(wait, 0, timeout))?;
        let env = self.inner.clone();
        block_on(py, async move {
            let (_, view) = env.boot(&opts).await?;
            Ok(PyClusterView { inner: view })
        })
    }
    /// Awaitable `boot` (for asyncio; `xlreg.aio.boot_env` wraps it).
    #[pyo3(
        signature = (wait=Some(30.0), *, timeout=None),
        text_signature = "($self, wait=30.0, *, timeout=None)"
    )]
    fn boot_async<'py>(
        &self,
        py: Python<'py>,
        wait: Option<f64>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = guard(|| boot_options(wait, 0, timeout))?;
        let env = self.inner.clone();
        crate::runtime::awaitable(py, async move {
            let (_, view) = env.boot(&opts).await?;
            Ok(PyClusterView { inner: view })
        })
    }
    fn __repr__(&self) -> String {
        format!(
            "UpEnv(cluster_name={:?}, member_name={:?}, endpoints={:?})",
            self.inner.cluster_name, self.inner.member_name, self.inner.endpoints
        )
    }
}
