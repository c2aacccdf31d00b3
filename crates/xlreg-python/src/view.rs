//! What a member learns: `xlreg.ClusterView`, `xlreg.Member`,
//! `xlreg.ClusterInfo`, `xlreg.MemberList`. Read-only snapshots; the JSON
//! is the library's, so `to_json()` prints what `xlreg join --json` does.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use xlreg::client::{ClusterInfo, ClusterView, MemberInfo, MemberList};
use xlreg::wire::PublicKey;

/// One member of a cluster: index, name, node ID, endpoints and public
/// keys (SPKI PEM, ready for `cryptography`'s `load_pem_public_key`).
#[pyclass(module = "xlreg", name = "Member", frozen)]
#[derive(Clone)]
pub struct PyMember {
    pub(crate) inner: MemberInfo,
}

#[pymethods]
impl PyMember {
    /// Its slot in the cluster (join order, from 0).
    #[getter]
    fn index(&self) -> usize {
        self.inner.index
    }
    /// Member name.
    #[getter]
    fn name(&self) -> String {
        self.inner.name.clone()
    }
    /// Node ID, lowercase hex.
    #[getter]
    fn id(&self) -> String {
        self.inner.id.to_hex()
    }
    /// Member attribute bits.
    #[getter]
    fn attrs(&self) -> u64 {
        self.inner.attrs
    }
    /// Endpoints, `host:port`, as registered.
    #[getter]
    fn endpoints(&self) -> Vec<String> {
        self.inner.endpoints.clone()
    }
    /// Comms public key, SPKI PEM: encrypt to this member with it.
    #[getter]
    fn comms_key_pem(&self) -> String {
        self.inner.comms_key.to_pem()
    }
    /// Signature public key, SPKI PEM: verify this member's signatures.
    #[getter]
    fn sig_key_pem(&self) -> String {
        self.inner.sig_key.to_pem()
    }
    /// SHA-256 of the comms key's SPKI DER, hex.
    #[getter]
    fn comms_key_sha256(&self) -> String {
        self.inner.comms_key.fingerprint()
    }
    /// SHA-256 of the signature key's SPKI DER, hex.
    #[getter]
    fn sig_key_sha256(&self) -> String {
        self.inner.sig_key.fingerprint()
    }
    /// `{"comms_key_sha256": ..., "sig_key_sha256": ...}`.
    #[getter]
    fn fingerprints<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        fingerprints(py, &self.inner.comms_key, &self.inner.sig_key)
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyMember>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }
    fn __repr__(&self) -> String {
        format!(
            "Member(index={}, name={:?}, id={:?}, endpoints={:?})",
            self.inner.index,
            self.inner.name,
            self.inner.id.to_hex(),
            self.inner.endpoints
        )
    }
}

/// An optional string as Python shows it: `None` or a quoted string.
/// `{"comms_key_sha256": ..., "sig_key_sha256": ...}`: SHA-256 of each
/// key's SPKI DER, hex — the same dict for members and registries.
pub(crate) fn fingerprints<'py>(
    py: Python<'py>,
    comms: &PublicKey,
    sig: &PublicKey,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("comms_key_sha256", comms.fingerprint())?;
    d.set_item("sig_key_sha256", sig.fingerprint())?;
    Ok(d)
}

pub(crate) fn opt_repr(o: &Option<String>) -> String {
    match o {
        Some(s) => format!("{s:?}"),
        None => "None".into(),
    }
}

fn members(ms: &[MemberInfo]) -> Vec<PyMember> {
    ms.iter().map(|m| PyMember { inner: m.clone() }).collect()
}

/// Everything a booted member knows about its cluster.
#[pyclass(module = "xlreg", name = "ClusterView", frozen)]
pub struct PyClusterView {
    pub(crate) inner: ClusterView,
}

#[pymethods]
impl PyClusterView {
    /// Cluster ID, lowercase hex.
    #[getter]
    fn cluster_id(&self) -> String {
        self.inner.cluster_id.to_hex()
    }
    /// Cluster name (None when the member joined by ID and never learned it).
    #[getter]
    fn cluster_name(&self) -> Option<String> {
        self.inner.cluster_name.clone()
    }
    /// Maximum number of members.
    #[getter]
    fn max_size(&self) -> u32 {
        self.inner.max_size
    }
    /// Endpoints per member the cluster was created with.
    #[getter]
    fn endpoint_count(&self) -> u32 {
        self.inner.endpoint_count
    }
    /// Cluster attribute bits.
    #[getter]
    fn attrs(&self) -> u64 {
        self.inner.attrs
    }
    /// This member's index (a watcher that is not a member: a number no
    /// member has, and `me` raises).
    #[getter]
    fn self_index(&self) -> usize {
        self.inner.self_index
    }
    /// The cluster's version when the registry said it (views from
    /// `xlreg.watch`), else 0 (a boot). Later views have greater ones.
    #[getter]
    fn version(&self) -> u64 {
        self.inner.version
    }
    /// This member's own entry (a booted view always has it).
    #[getter]
    fn me(&self) -> PyResult<PyMember> {
        self.inner
            .self_member()
            .map(|m| PyMember { inner: m.clone() })
            .ok_or_else(|| {
                crate::errors::Failure::Panic(format!(
                    "the view of cluster {} lacks its own member {}",
                    self.inner.cluster_id, self.inner.self_index
                ))
                .into_pyerr()
            })
    }
    /// Every member, ascending by index.
    #[getter]
    fn members(&self) -> Vec<PyMember> {
        members(&self.inner.members)
    }
    /// The members other than this one, ascending by index.
    #[getter]
    fn peers(&self) -> Vec<PyMember> {
        self.inner
            .peers()
            .map(|m| PyMember { inner: m.clone() })
            .collect()
    }
    /// True when all `max_size` members are present.
    #[getter]
    fn is_complete(&self) -> bool {
        self.inner.is_complete()
    }
    /// The member with this index, or None.
    fn member(&self, index: usize) -> Option<PyMember> {
        self.inner
            .member(index)
            .map(|m| PyMember { inner: m.clone() })
    }
    /// The JSON document `xlreg join --json` prints (keys as SHA-256
    /// fingerprints).
    fn to_json(&self) -> String {
        self.inner.to_json_string()
    }
    fn __len__(&self) -> usize {
        self.inner.members.len()
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyClusterView>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }
    fn __repr__(&self) -> String {
        format!(
            "ClusterView(cluster_id={:?}, cluster_name={}, members={}/{}, self_index={})",
            self.inner.cluster_id.to_hex(),
            opt_repr(&self.inner.cluster_name),
            self.inner.members.len(),
            self.inner.max_size,
            self.inner.self_index
        )
    }
}

/// A cluster as the registry describes it after Create or Join.
#[pyclass(module = "xlreg", name = "ClusterInfo", frozen)]
pub struct PyClusterInfo {
    pub(crate) inner: ClusterInfo,
    pub(crate) name: Option<String>,
}

#[pymethods]
impl PyClusterInfo {
    /// Cluster ID, lowercase hex.
    #[getter]
    fn id(&self) -> String {
        self.inner.id.to_hex()
    }
    /// Cluster name, when known.
    #[getter]
    fn name(&self) -> Option<String> {
        self.name.clone()
    }
    /// Maximum number of members (the registry clamps it to 2..=64).
    #[getter]
    fn max_size(&self) -> u32 {
        self.inner.max_size
    }
    /// Endpoints each member is expected to register.
    #[getter]
    fn endpoint_count(&self) -> u32 {
        self.inner.endpoint_count
    }
    /// Cluster attribute bits.
    #[getter]
    fn attrs(&self) -> u64 {
        self.inner.attrs
    }
    fn __repr__(&self) -> String {
        format!(
            "ClusterInfo(id={:?}, name={}, max_size={}, endpoint_count={})",
            self.inner.id.to_hex(),
            opt_repr(&self.name),
            self.inner.max_size,
            self.inner.endpoint_count
        )
    }
}

/// The members of a cluster as read without joining it.
#[pyclass(module = "xlreg", name = "MemberList", frozen)]
pub struct PyMemberList {
    pub(crate) inner: MemberList,
}

#[pymethods]
impl PyMemberList {
    /// Cluster ID, lowercase hex.
    #[getter]
    fn cluster_id(&self) -> String {
        self.inner.cluster_id.to_hex()
    }
    /// The members present, ascending by index.
    #[getter]
    fn members(&self) -> Vec<PyMember> {
        members(&self.inner.members)
    }
    /// The JSON document `xlreg members --json` prints.
    fn to_json(&self) -> String {
        self.inner.to_json_string()
    }
    fn __len__(&self) -> usize {
        self.inner.members.len()
    }
    fn __repr__(&self) -> String {
        format!(
            "MemberList(cluster_id={:?}, members={})",
            self.inner.cluster_id.to_hex(),
            self.inner.members.len()
        )
    }
}
