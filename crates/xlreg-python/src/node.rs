//! `xlreg.Node`: a member's identity (name, node ID, two RSA key pairs,
//! endpoints), in the same node-directory format as `xlreg join
//! --node-dir`, so a Python member and the CLI can use each other's
//! directories.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use xlreg::client::{NodeIdentity, NodeOptions};

use crate::errors::{guard, Failure};

/// Smallest and largest RSA key accepted from Python: below 1024 the
/// registry refuses the token; above 4096 one key takes many seconds.
const KEY_BITS: std::ops::RangeInclusive<u32> = 1024..=4096;

/// A member's identity: name, node ID, comms and signature RSA keys,
/// endpoints. Load or create it in a directory to keep the same ID across
/// restarts; `generate` makes one in memory.
#[pyclass(module = "xlreg", name = "Node", frozen)]
pub struct PyNode {
    pub(crate) inner: Arc<NodeIdentity>,
    created: bool,
}

impl PyNode {
    pub(crate) fn new(inner: NodeIdentity, created: bool) -> Self {
        PyNode {
            inner: Arc::new(inner),
            created,
        }
    }
}

pub(crate) fn node_options(
    name: Option<String>,
    endpoints: Option<Vec<String>>,
    key_bits: u32,
) -> Result<NodeOptions, Failure> {
    if !KEY_BITS.contains(&key_bits) {
        return Err(Failure::Usage(format!(
            "key_bits={key_bits}: must be between {} and {}",
            KEY_BITS.start(),
            KEY_BITS.end()
        )));
    }
    Ok(NodeOptions {
        name,
        endpoints,
        key_bits,
    })
}

#[pymethods]
impl PyNode {
    /// The identity kept in directory `dir` (`node.json`, `comms_key.pem`,
    /// `sig_key.pem`), created there with new keys if missing. `name` and
    /// `endpoints`, when given, replace the stored ones. Raises `NodeError`
    /// when the directory holds something unusable.
    #[staticmethod]
    #[pyo3(signature = (dir, name=None, endpoints=None, key_bits=2048))]
    fn load_or_create(
        py: Python<'_>,
        dir: PathBuf,
        name: Option<String>,
        endpoints: Option<Vec<String>>,
        key_bits: u32,
    ) -> PyResult<Self> {
        let opts = guard(|| node_options(name, endpoints, key_bits))?;
        py.detach(|| {
            guard(|| {
                let (n, created) = NodeIdentity::load_or_create(&dir, &opts)?;
                Ok(PyNode::new(n, created))
            })
        })
    }

    /// The identity kept in directory `dir`; raises `NodeError` if there is
    /// none or it is unusable.
    #[staticmethod]
    fn load(py: Python<'_>, dir: PathBuf) -> PyResult<Self> {
        py.detach(|| guard(|| Ok(PyNode::new(NodeIdentity::load(&dir)?, false))))
    }

    /// A new identity in memory (not saved): fresh node ID and keys.
    #[staticmethod]
    #[pyo3(signature = (name=None, endpoints=None, key_bits=2048))]
    fn generate(
        py: Python<'_>,
        name: Option<String>,
        endpoints: Option<Vec<String>>,
        key_bits: u32,
    ) -> PyResult<Self> {
        let opts = guard(|| node_options(name, endpoints, key_bits))?;
        py.detach(|| guard(|| Ok(PyNode::new(NodeIdentity::generate(&opts)?, true))))
    }

    /// Save this identity into directory `dir` (created if needed) and
    /// return the saved identity.
    fn save(&self, py: Python<'_>, dir: PathBuf) -> PyResult<Self> {
        let mut n = (*self.inner).clone();
        py.detach(|| {
            guard(|| {
                n.save(&dir)?;
                Ok(PyNode::new(n, false))
            })
        })
    }

    /// The node ID, lowercase hex.
    #[getter]
    fn id(&self) -> String {
        self.inner.id.to_hex()
    }

    /// The member name.
    #[getter]
    fn name(&self) -> String {
        self.inner.name.clone()
    }

    /// The endpoints it registers, `host:port`.
    #[getter]
    fn endpoints(&self) -> Vec<String> {
        self.inner.endpoints.clone()
    }

    /// Its comms public key, SPKI PEM: peers encrypt to it.
    #[getter]
    fn comms_key_pem(&self) -> String {
        self.inner.comms_key.public().to_pem()
    }

    /// Its signature public key, SPKI PEM.
    #[getter]
    fn sig_key_pem(&self) -> String {
        self.inner.sig_key.public().to_pem()
    }

    /// Its comms private key, PKCS#8 PEM (`cryptography`'s
    /// `load_pem_private_key(..., password=None)` reads it): decrypt what
    /// peers encrypted to `comms_key_pem` with it.
    #[getter]
    fn comms_private_key_pem(&self) -> String {
        self.inner.comms_key.to_pem_pkcs8()
    }

    /// Its signature private key, PKCS#8 PEM.
    #[getter]
    fn sig_private_key_pem(&self) -> String {
        self.inner.sig_key.to_pem_pkcs8()
    }

    /// RSA key size in bits.
    #[getter]
    fn key_bits(&self) -> u32 {
        self.inner.comms_key.bits()
    }

    /// `{"comms_key_sha256": ..., "sig_key_sha256": ...}` of the public keys.
    #[getter]
    fn fingerprints<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        crate::view::fingerprints(
            py,
            &self.inner.comms_key.public(),
            &self.inner.sig_key.public(),
        )
    }

    /// The directory it is kept in (None for a generated, unsaved one).
    #[getter]
    fn dir(&self) -> Option<PathBuf> {
        self.inner.dir().map(|p| p.to_path_buf())
    }

    /// True if `load_or_create` had to create it (or it was generated).
    #[getter]
    fn created(&self) -> bool {
        self.created
    }

    fn __repr__(&self) -> String {
        format!(
            "Node(name={:?}, id={:?}, endpoints={:?})",
            self.inner.name,
            self.inner.id.to_hex(),
            self.inner.endpoints
        )
    }
}
