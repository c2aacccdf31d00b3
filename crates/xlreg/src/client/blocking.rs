//! Blocking versions of the one-call flows, for scripts and programs
//! without an async runtime.
//!
//! Each call builds a small single-threaded tokio runtime for its duration.
//! Calling these from inside an async runtime would deadlock or panic in
//! tokio, so that case is detected and returned as
//! [`ClientError::Usage`]; use the async functions of
//! [`client`](super) there.

use std::future::Future;

use super::boot::{self, BootOptions};
use super::connection::ClientOptions;
use super::node::{NodeIdentity, NodeOptions};
use super::session::{ClusterInfo, ClusterRef, ClusterSpec};
use super::view::{ClusterView, MemberList};
use super::ClientError;
use crate::regcred::RegCred;
use crate::wire::NodeId;

fn run<T>(f: impl Future<Output = Result<T, ClientError>>) -> Result<T, ClientError> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(ClientError::Usage(
            "xlreg::client::blocking called from inside an async runtime; \
             use the async xlreg::client functions there"
                .into(),
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Usage(format!("cannot start a tokio runtime: {e}")))?;
    rt.block_on(f)
}

/// Blocking [`boot::create_cluster`].
pub fn create_cluster(
    regcred: &RegCred,
    spec: &ClusterSpec,
    opts: &ClientOptions,
) -> Result<ClusterInfo, ClientError> {
    run(boot::create_cluster(regcred, spec, opts))
}

/// Blocking [`boot::register`].
pub fn register(
    regcred: &RegCred,
    node: &NodeIdentity,
    opts: &ClientOptions,
) -> Result<NodeId, ClientError> {
    run(boot::register(regcred, node, opts))
}

/// Blocking [`boot::boot`].
pub fn boot(
    regcred: &RegCred,
    cluster: &ClusterRef,
    node: &NodeIdentity,
    opts: &BootOptions,
) -> Result<ClusterView, ClientError> {
    run(boot::boot(regcred, cluster, node, opts))
}

/// Blocking [`boot::read_cluster`].
pub fn read_cluster(
    regcred: &RegCred,
    cluster: &ClusterRef,
    reader: &NodeIdentity,
    opts: &ClientOptions,
) -> Result<MemberList, ClientError> {
    run(boot::read_cluster(regcred, cluster, reader, opts))
}

/// Blocking [`reader_identity`](super::reader_identity): the process's
/// shared reader identity, made on first use.
pub fn reader_identity() -> Result<NodeIdentity, ClientError> {
    run(boot::reader_identity())
}

/// Blocking [`boot::ephemeral_identity`]: a fresh in-memory identity.
pub fn ephemeral_identity(opts: NodeOptions) -> Result<NodeIdentity, ClientError> {
    NodeIdentity::generate(&opts)
}

/// Blocking [`boot::read_members`].
pub fn read_members(
    regcred: &RegCred,
    cluster_id: &NodeId,
    reader: &NodeIdentity,
    opts: &ClientOptions,
) -> Result<MemberList, ClientError> {
    run(boot::read_members(regcred, cluster_id, reader, opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocking_call_inside_a_runtime_is_a_usage_error_not_a_panic() {
        let r = run(async { Ok(1) });
        assert!(matches!(r, Err(ClientError::Usage(_))));
    }

    #[test]
    fn blocking_call_outside_a_runtime_runs() {
        assert_eq!(run(async { Ok(7) }).unwrap(), 7);
    }
}
