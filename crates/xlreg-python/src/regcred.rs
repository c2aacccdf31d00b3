//! `xlreg.RegCred`: the registry credentials (regCred.dat), read and
//! written by the Rust reader/writer so Python reads every file the Go
//! server writes, with the same line-numbered errors.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use xlreg::regcred::RegCred;

use crate::errors::{guard, Failure};

/// Registry credentials: the registry's name, ID, public keys, endpoints
/// and version, as in a `regCred.dat` file.
#[pyclass(module = "xlreg", name = "RegCred", frozen)]
pub struct PyRegCred {
    pub(crate) inner: Arc<RegCred>,
    path: Option<PathBuf>,
}

impl PyRegCred {
    pub(crate) fn new(inner: RegCred, path: Option<PathBuf>) -> Self {
        PyRegCred {
            inner: Arc::new(inner),
            path,
        }
    }
}

/// A `RegCred` object, or a path to a regCred.dat file to load.
pub fn regcred_arg(obj: &Bound<'_, PyAny>) -> PyResult<Arc<RegCred>> {
    if let Ok(rc) = obj.cast::<PyRegCred>() {
        return Ok(rc.get().inner.clone());
    }
    let path: PathBuf = obj.extract().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "regcred must be an xlreg.RegCred or the path of a regCred.dat file, not {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "this object".into())
        ))
    })?;
    guard(|| Ok(Arc::new(RegCred::load(&path)?)))
}

#[pymethods]
impl PyRegCred {
    /// Read and parse a regCred.dat file. Raises `RegCredError` (with
    /// `.path` and `.line`) when it cannot be read or parsed.
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        guard(|| Ok(PyRegCred::new(RegCred::load(&path)?, Some(path.clone()))))
    }

    /// Parse the text of a regCred.dat file. Raises `RegCredError` (with
    /// `.line`).
    #[staticmethod]
    fn parse(text: &str) -> PyResult<Self> {
        guard(|| {
            Ok(PyRegCred::new(
                RegCred::parse(text).map_err(Failure::RegCredText)?,
                None,
            ))
        })
    }

    /// Write the file exactly as the Go server does (atomically).
    fn save(&self, path: PathBuf) -> PyResult<()> {
        guard(|| Ok(self.inner.save(&path)?))
    }

    /// The file's text in the Go server's format.
    fn to_text(&self) -> String {
        self.inner.to_go_format()
    }

    /// The registry's name (a Go registry writes `xlReg`).
    #[getter]
    fn name(&self) -> String {
        self.inner.name.clone()
    }

    /// The registry's node ID, lowercase hex.
    #[getter]
    fn id(&self) -> String {
        self.inner.id.to_hex()
    }

    /// Endpoints as `host:port`; clients connect to the first.
    #[getter]
    fn endpoints(&self) -> Vec<String> {
        self.inner.endpoints.clone()
    }

    /// Where clients connect (the first endpoint), or None.
    #[getter]
    fn address(&self) -> Option<String> {
        self.inner.endpoints.first().cloned()
    }

    /// The registry software version, e.g. `1.9.24`.
    #[getter]
    fn version(&self) -> String {
        self.inner.version.to_string()
    }

    /// The registry's comms public key, SPKI PEM (`cryptography`'s
    /// `load_pem_public_key` reads it).
    #[getter]
    fn comms_key_pem(&self) -> String {
        self.inner.comms_key.to_pem()
    }

    /// The registry's signature public key, SPKI PEM.
    #[getter]
    fn sig_key_pem(&self) -> String {
        self.inner.sig_key.to_pem()
    }

    /// `{"comms_key_sha256": ..., "sig_key_sha256": ...}`: SHA-256 of each
    /// key's SPKI DER, hex (as `xlreg cred show` prints).
    #[getter]
    fn fingerprints<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        crate::view::fingerprints(py, &self.inner.comms_key, &self.inner.sig_key)
    }

    /// The file this was loaded from, if any.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.path.clone()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyRegCred>()
            .is_ok_and(|o| *o.get().inner == *self.inner)
    }

    fn __repr__(&self) -> String {
        format!(
            "RegCred(name={:?}, id={:?}, endpoints={:?}, version={:?})",
            self.inner.name,
            self.inner.id.to_hex(),
            self.inner.endpoints,
            self.inner.version.to_string()
        )
    }
}
