//! `xlreg.Node`: a member's identity (name, node ID, two RSA key pairs,
//! endpoints), in the same node-directory format as `xlreg join
//! --node-dir`, so a Python member and the CLI can use each other's
//! directories.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use xlreg::client::{NodeIdentity, NodeOptions};
use xlreg::testing::{KeyGen, KeyPool, LaunchError};
use xlreg::wire::NodeId;

use crate::errors::{guard, Failure};
use crate::testing::PoolSlot;

/// Where `Node.generate(key_pool=P)` takes keys: a slot of `P/nodes` (the
/// directory itself, then `live-1`, … while earlier nodes are alive), so
/// its keys are never those of another live node or of a cluster launched
/// on `P` in this process.
const NODE_POOL: &str = "nodes";

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
    /// The key-pool slot its keys came from, held while it (or a saved
    /// copy) is alive.
    slot: Option<Arc<PoolSlot>>,
}

impl PyNode {
    pub(crate) fn new(inner: NodeIdentity, created: bool) -> Self {
        PyNode {
            inner: Arc::new(inner),
            created,
            slot: None,
        }
    }
}

/// A node with keys from the pool slot `slot` (see [`NODE_POOL`]).
fn from_pool(opts: NodeOptions, slot: PoolSlot) -> Result<PyNode, Failure> {
    let pool = KeyPool::open(slot.dir()).map_err(|e| Failure::Launch(LaunchError::from(e)))?;
    let got = pool
        .take(2, opts.key_bits, KeyGen::Fast, 2, &|| {})
        .map_err(|e| Failure::Launch(LaunchError::from(e)))?;
    let [comms, sig]: [_; 2] = got
        .keys
        .try_into()
        .map_err(|_| Failure::Panic("the key pool gave a wrong number of keys".into()))?;
    let name = opts.name.unwrap_or_else(NodeIdentity::default_name);
    let endpoints = opts.endpoints.unwrap_or_default();
    let n = NodeIdentity::from_keys(&name, NodeId::random(), comms, sig, endpoints)?;
    Ok(PyNode {
        inner: Arc::new(n),
        created: true,
        slot: Some(Arc::new(slot)),
    })
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

    /// A new identity in memory (not saved): fresh node ID and keys. With
    /// `key_pool` (a test key-pool directory, as the fixtures use), the
    /// keys come from its subdirectory `nodes` instead of being generated
    /// (reused across runs); nodes alive at once in this process never
    /// share keys, with each other or with clusters launched on the pool.
    #[staticmethod]
    #[pyo3(signature = (name=None, endpoints=None, key_bits=2048, key_pool=None))]
    fn generate(
        py: Python<'_>,
        name: Option<String>,
        endpoints: Option<Vec<String>>,
        key_bits: u32,
        key_pool: Option<PathBuf>,
    ) -> PyResult<Self> {
        let opts = guard(|| node_options(name, endpoints, key_bits))?;
        match key_pool {
            None => py.detach(|| guard(|| Ok(PyNode::new(NodeIdentity::generate(&opts)?, true)))),
            Some(pool) => {
                let slot = PoolSlot::take(pool.join(NODE_POOL));
                py.detach(|| guard(|| from_pool(opts, slot)))
            }
        }
    }

    /// Save this identity into directory `dir` (created if needed) and
    /// return the saved identity.
    fn save(&self, py: Python<'_>, dir: PathBuf) -> PyResult<Self> {
        let mut n = (*self.inner).clone();
        py.detach(|| {
            guard(|| {
                n.save(&dir)?;
                Ok(PyNode {
                    slot: self.slot.clone(),
                    ..PyNode::new(n, false)
                })
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
