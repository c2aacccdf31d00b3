//! The one-call flows — `create_cluster`, `register`, `boot`,
//! `read_members` — blocking (GIL released while waiting) and as asyncio
//! awaitables (`*_async`, wrapped by `xlreg.aio`). Arguments are checked
//! here, before anything touches the network, so a bad one is a
//! `UsageError` naming it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;

use xlreg::client::{self, BootOptions, ClientOptions, ClusterRef, ClusterSpec, NodeIdentity};
use xlreg::regcred::RegCred;
use xlreg::wire::NodeId;

use crate::errors::{guard, Failure};
use crate::node::PyNode;
use crate::regcred::regcred_arg;
use crate::runtime::{awaitable, block_on};
use crate::view::{PyClusterInfo, PyClusterView, PyMemberList};

/// Longest wait or timeout accepted (a day): anything longer is a mistake.
const MAX_SECONDS: f64 = 86_400.0;

/// Seconds from Python as a Duration; `what` names the argument.
pub fn seconds(what: &str, s: f64) -> Result<Duration, Failure> {
    if !s.is_finite() || !(0.0..=MAX_SECONDS).contains(&s) {
        return Err(Failure::Usage(format!(
            "{what}={s}: must be a number of seconds between 0 and {MAX_SECONDS}"
        )));
    }
    Ok(Duration::from_secs_f64(s))
}

/// Client options with `timeout` (seconds) for connecting and each
/// request, when given.
pub fn client_options(timeout: Option<f64>) -> Result<ClientOptions, Failure> {
    let mut o = ClientOptions::default();
    if let Some(t) = timeout {
        let d = seconds("timeout", t)?;
        o.connect_timeout = d;
        o.io_timeout = d;
    }
    Ok(o)
}

/// A cluster ID from hex; `what` names the argument.
pub fn node_id(what: &str, hex: &str) -> Result<NodeId, Failure> {
    hex.parse()
        .map_err(|e| Failure::Usage(format!("{what}={hex:?}: {e}")))
}

/// Exactly one of `cluster` (a name) and `cluster_id` (hex).
pub fn cluster_ref(
    cluster: Option<String>,
    cluster_id: Option<String>,
) -> Result<ClusterRef, Failure> {
    match (cluster, cluster_id) {
        (Some(n), None) => Ok(ClusterRef::Name(n)),
        (None, Some(id)) => Ok(ClusterRef::Id(node_id("cluster_id", &id)?)),
        (Some(_), Some(_)) => Err(Failure::Usage(
            "give either cluster (a name) or cluster_id (hex), not both".into(),
        )),
        (None, None) => Err(Failure::Usage(
            "which cluster? give cluster=NAME or cluster_id=HEX".into(),
        )),
    }
}

/// The cluster to create, checked: arguments named as in Python first,
/// then the library's own checks (e.g. the name's length).
pub fn cluster_spec(name: &str, size: u32, endpoints: u32) -> Result<ClusterSpec, Failure> {
    check_shape(size, endpoints)?;
    let spec = ClusterSpec::new(name, size).endpoints(endpoints);
    spec.check().map_err(|e| Failure::Usage(e.to_string()))?;
    Ok(spec)
}

/// Check a cluster shape the registry would otherwise clamp or refuse.
pub fn check_shape(size: u32, endpoints: u32) -> Result<(), Failure> {
    if !(2..=64).contains(&size) {
        return Err(Failure::Usage(format!(
            "size={size}: a cluster has 2 to 64 members"
        )));
    }
    if !(1..=16).contains(&endpoints) {
        return Err(Failure::Usage(format!(
            "endpoints={endpoints}: members have 1 to 16 endpoints"
        )));
    }
    Ok(())
}

type Fut<T> = std::pin::Pin<Box<dyn Future<Output = Result<T, Failure>> + Send>>;

/// The administrator identity that creates clusters when the caller gives
/// none: made once per process (2048-bit keys, as the CLI's) and reused,
/// so `create_cluster` costs one registry round trip, not a key pair.
static ADMIN: tokio::sync::OnceCell<Arc<NodeIdentity>> = tokio::sync::OnceCell::const_new();

pub(crate) async fn process_admin() -> Result<Arc<NodeIdentity>, Failure> {
    let admin = ADMIN
        .get_or_try_init(|| async {
            let n = client::ephemeral_identity(client::NodeOptions {
                name: Some("admin".into()),
                ..client::NodeOptions::default()
            })
            .await?;
            Ok::<_, Failure>(Arc::new(n))
        })
        .await?;
    Ok(admin.clone())
}

/// The cluster the registry returned must have the shape asked for,
/// unless the caller accepts an existing one (`exist_ok`).
fn check_created(
    info: &client::ClusterInfo,
    name: &str,
    size: u32,
    endpoints: u32,
    exist_ok: bool,
) -> Result<(), Failure> {
    if exist_ok || (info.max_size == size && info.endpoint_count == endpoints) {
        return Ok(());
    }
    Err(Failure::Exists {
        message: format!(
            "cluster {name:?} already exists with size {} and {} endpoint(s) per member, \
             not size {size} and {endpoints}; pass exist_ok=True to use it as it is",
            info.max_size, info.endpoint_count
        ),
        name: name.to_string(),
        max_size: info.max_size,
        endpoint_count: info.endpoint_count,
    })
}

#[allow(clippy::too_many_arguments)]
fn create_cluster_fut(
    regcred: &Bound<'_, PyAny>,
    name: String,
    size: u32,
    endpoints: u32,
    admin: Option<&Bound<'_, PyNode>>,
    exist_ok: bool,
    timeout: Option<f64>,
) -> PyResult<Fut<PyClusterInfo>> {
    let rc = regcred_arg(regcred)?;
    let admin = admin.map(|a| a.get().inner.clone());
    let (spec, opts) = guard(|| {
        Ok((
            cluster_spec(&name, size, endpoints)?,
            client_options(timeout)?,
        ))
    })?;
    Ok(Box::pin(async move {
        let admin = match admin {
            Some(a) => a,
            None => process_admin().await?,
        };
        let info = client::create_cluster_as(&rc, &admin, &spec, &opts).await?;
        check_created(&info, &name, size, endpoints, exist_ok)?;
        Ok(PyClusterInfo {
            inner: info,
            name: Some(name),
        })
    }))
}

fn register_fut(
    regcred: &Bound<'_, PyAny>,
    node: &Bound<'_, PyNode>,
    timeout: Option<f64>,
) -> PyResult<Fut<String>> {
    let rc = regcred_arg(regcred)?;
    let node = node.get().inner.clone();
    let opts = guard(|| client_options(timeout))?;
    Ok(Box::pin(async move {
        Ok(client::register(&rc, &node, &opts).await?.to_hex())
    }))
}

/// Boot options from the Python arguments.
pub fn boot_options(
    wait: Option<f64>,
    attrs: u64,
    timeout: Option<f64>,
) -> Result<BootOptions, Failure> {
    Ok(BootOptions {
        client: client_options(timeout)?,
        wait: wait.map(|w| seconds("wait", w)).transpose()?,
        attrs,
        ..BootOptions::default()
    })
}

#[allow(clippy::too_many_arguments)]
fn boot_fut(
    regcred: &Bound<'_, PyAny>,
    node: &Bound<'_, PyNode>,
    cluster: Option<String>,
    cluster_id: Option<String>,
    wait: Option<f64>,
    attrs: u64,
    timeout: Option<f64>,
) -> PyResult<Fut<PyClusterView>> {
    let rc = regcred_arg(regcred)?;
    let node = node.get().inner.clone();
    let (cref, opts) = guard(|| {
        Ok((
            cluster_ref(cluster, cluster_id)?,
            boot_options(wait, attrs, timeout)?,
        ))
    })?;
    Ok(Box::pin(boot_node(rc, node, cref, opts)))
}

/// Boot `node` into `cluster`.
pub async fn boot_node(
    rc: Arc<RegCred>,
    node: Arc<NodeIdentity>,
    cluster: ClusterRef,
    opts: BootOptions,
) -> Result<PyClusterView, Failure> {
    let view = client::boot(&rc, &cluster, &node, &opts).await?;
    Ok(PyClusterView { inner: view })
}

fn read_members_fut(
    regcred: &Bound<'_, PyAny>,
    cluster: Option<String>,
    cluster_id: Option<String>,
    reader: Option<&Bound<'_, PyNode>>,
    timeout: Option<f64>,
) -> PyResult<Fut<PyMemberList>> {
    let rc = regcred_arg(regcred)?;
    let reader = reader.map(|r| r.get().inner.clone());
    let (cref, opts) = guard(|| Ok((cluster_ref(cluster, cluster_id)?, client_options(timeout)?)))?;
    Ok(Box::pin(async move {
        let reader = match reader {
            Some(r) => r,
            // The process's shared reader, made on the first read.
            None => Arc::new(client::reader_identity().await?),
        };
        let list = client::read_cluster(&rc, &cref, &reader, &opts).await?;
        Ok(PyMemberList { inner: list })
    }))
}

/// Create the cluster `name` with room for `size` members, each
/// registering `endpoints` endpoints, as the administrator `admin` (a
/// `Node`; default: an identity made once per process and reused). If the
/// name exists with another size or endpoint count, raises
/// `ClusterExistsError` unless `exist_ok` (then returns the existing
/// cluster, as the registry does). `timeout`: seconds for connecting and
/// each request (default 15).
#[pyfunction]
#[pyo3(signature = (regcred, name, size, endpoints=1, *, admin=None, exist_ok=false, timeout=None))]
#[allow(clippy::too_many_arguments)]
pub fn create_cluster(
    py: Python<'_>,
    regcred: &Bound<'_, PyAny>,
    name: String,
    size: u32,
    endpoints: u32,
    admin: Option<&Bound<'_, PyNode>>,
    exist_ok: bool,
    timeout: Option<f64>,
) -> PyResult<PyClusterInfo> {
    let f = create_cluster_fut(regcred, name, size, endpoints, admin, exist_ok, timeout)?;
    block_on(py, f)
}

/// Awaitable `create_cluster`.
#[pyfunction]
#[pyo3(signature = (regcred, name, size, endpoints=1, *, admin=None, exist_ok=false, timeout=None))]
#[allow(clippy::too_many_arguments)]
pub fn create_cluster_async<'py>(
    py: Python<'py>,
    regcred: &Bound<'py, PyAny>,
    name: String,
    size: u32,
    endpoints: u32,
    admin: Option<&Bound<'py, PyNode>>,
    exist_ok: bool,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = create_cluster_fut(regcred, name, size, endpoints, admin, exist_ok, timeout)?;
    awaitable(py, f)
}

/// Register `node` without joining a cluster; returns the node ID (hex)
/// the registry confirmed. `timeout`: seconds for connecting and each
/// request (default 15).
#[pyfunction]
#[pyo3(signature = (regcred, node, *, timeout=None))]
pub fn register(
    py: Python<'_>,
    regcred: &Bound<'_, PyAny>,
    node: &Bound<'_, PyNode>,
    timeout: Option<f64>,
) -> PyResult<String> {
    let f = register_fut(regcred, node, timeout)?;
    block_on(py, f)
}

/// Awaitable `register`.
#[pyfunction]
#[pyo3(signature = (regcred, node, *, timeout=None))]
pub fn register_async<'py>(
    py: Python<'py>,
    regcred: &Bound<'py, PyAny>,
    node: &Bound<'py, PyNode>,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = register_fut(regcred, node, timeout)?;
    awaitable(py, f)
}

/// Boot a member: register `node`, join the cluster (by `cluster` name or
/// `cluster_id`), wait up to `wait` seconds for every member, say bye.
/// Returns the complete view or raises `IncompleteClusterError`.
/// `wait=None` returns right after joining with the members known then.
/// The deadline is exact: a registry that holds requests is asked to
/// answer by then. `timeout`: seconds for connecting and each request
/// (default 15).
#[pyfunction]
#[pyo3(
    signature = (regcred, node, cluster=None, *, cluster_id=None, wait=Some(30.0), attrs=0, timeout=None),
    text_signature = "(regcred, node, cluster=None, *, cluster_id=None, wait=30.0, attrs=0, timeout=None)"
)]
#[allow(clippy::too_many_arguments)]
pub fn boot(
    py: Python<'_>,
    regcred: &Bound<'_, PyAny>,
    node: &Bound<'_, PyNode>,
    cluster: Option<String>,
    cluster_id: Option<String>,
    wait: Option<f64>,
    attrs: u64,
    timeout: Option<f64>,
) -> PyResult<PyClusterView> {
    let f = boot_fut(regcred, node, cluster, cluster_id, wait, attrs, timeout)?;
    block_on(py, f)
}

/// Awaitable `boot`.
#[pyfunction]
#[pyo3(
    signature = (regcred, node, cluster=None, *, cluster_id=None, wait=Some(30.0), attrs=0, timeout=None),
    text_signature = "(regcred, node, cluster=None, *, cluster_id=None, wait=30.0, attrs=0, timeout=None)"
)]
#[allow(clippy::too_many_arguments)]
pub fn boot_async<'py>(
    py: Python<'py>,
    regcred: &Bound<'py, PyAny>,
    node: &Bound<'py, PyNode>,
    cluster: Option<String>,
    cluster_id: Option<String>,
    wait: Option<f64>,
    attrs: u64,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = boot_fut(regcred, node, cluster, cluster_id, wait, attrs, timeout)?;
    awaitable(py, f)
}

/// Read a cluster's members without joining it (by `cluster` name or
/// `cluster_id`; by name needs an xlreg registry). `reader` is the
/// identity to register with (default: a throw-away one). `timeout`:
/// seconds for connecting and each request (default 15).
#[pyfunction]
#[pyo3(signature = (regcred, cluster=None, *, cluster_id=None, reader=None, timeout=None))]
pub fn read_members(
    py: Python<'_>,
    regcred: &Bound<'_, PyAny>,
    cluster: Option<String>,
    cluster_id: Option<String>,
    reader: Option<&Bound<'_, PyNode>>,
    timeout: Option<f64>,
) -> PyResult<PyMemberList> {
    let f = read_members_fut(regcred, cluster, cluster_id, reader, timeout)?;
    block_on(py, f)
}

/// Awaitable `read_members`.
#[pyfunction]
#[pyo3(signature = (regcred, cluster=None, *, cluster_id=None, reader=None, timeout=None))]
pub fn read_members_async<'py>(
    py: Python<'py>,
    regcred: &Bound<'py, PyAny>,
    cluster: Option<String>,
    cluster_id: Option<String>,
    reader: Option<&Bound<'py, PyNode>>,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let f = read_members_fut(regcred, cluster, cluster_id, reader, timeout)?;
    awaitable(py, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage_text<T: std::fmt::Debug>(r: Result<T, Failure>) -> String {
        match r {
            Err(Failure::Usage(m)) => m,
            other => panic!("expected a usage failure, got {other:?}"),
        }
    }

    #[test]
    fn seconds_accepts_zero_to_a_day_and_names_the_argument_otherwise() {
        assert_eq!(seconds("wait", 0.0).unwrap(), Duration::ZERO);
        assert_eq!(seconds("wait", 1.5).unwrap(), Duration::from_millis(1500));
        assert!(usage_text(seconds("wait", -1.0)).starts_with("wait=-1"));
        assert!(usage_text(seconds("timeout", f64::NAN)).starts_with("timeout=NaN"));
        assert!(usage_text(seconds("wait", 1e9)).contains("86400"));
    }

    #[test]
    fn cluster_ref_wants_exactly_one_of_name_and_id() {
        let id = "ab".repeat(20);
        assert_eq!(
            cluster_ref(Some("c".into()), None).unwrap(),
            ClusterRef::Name("c".into())
        );
        assert_eq!(
            cluster_ref(None, Some(id.clone()))
                .unwrap()
                .id()
                .unwrap()
                .to_hex(),
            id
        );
        assert!(usage_text(cluster_ref(Some("c".into()), Some(id))).contains("not both"));
        assert!(usage_text(cluster_ref(None, None)).contains("which cluster"));
        assert!(usage_text(cluster_ref(None, Some("zz".into()))).starts_with("cluster_id=\"zz\""));
    }

    #[test]
    fn check_shape_refuses_what_the_registry_would_clamp() {
        assert!(check_shape(2, 1).is_ok() && check_shape(64, 16).is_ok());
        assert!(usage_text(check_shape(1, 1)).starts_with("size=1"));
        assert!(usage_text(check_shape(65, 1)).starts_with("size=65"));
        assert!(usage_text(check_shape(3, 0)).starts_with("endpoints=0"));
        assert!(usage_text(check_shape(3, 17)).starts_with("endpoints=17"));
    }
}
