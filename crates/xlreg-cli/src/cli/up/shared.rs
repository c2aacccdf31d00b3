//! `up --regcred`: a shared registry. Its cluster gets a TTL by default,
//! and is deleted when up stops (unless `--keep`), so test runs do not
//! pile up clusters there.

use std::time::Duration;

use xlreg::client::NodeIdentity;
use xlreg::client::Session;
use xlreg::client::{ClientOptions, ClusterRef};
use xlreg::regcred::RegCred;
use xlreg::wire::NodeId;

use super::args::UpArgs;

/// Default lifetime of an `up` cluster on a shared registry (--regcred).
pub const SHARED_REGISTRY_TTL: Duration = Duration::from_secs(3600);

/// The TTL to ask for: --ttl, else [`SHARED_REGISTRY_TTL`] on a shared
/// registry, else none.
pub(super) fn cluster_ttl(a: &UpArgs) -> Option<Duration> {
    match a.ttl {
        Some(t) => t.0,
        None if a.regcred.is_some() => Some(SHARED_REGISTRY_TTL),
        None => None,
    }
}

/// Delete the cluster from the shared registry as one of its members (an
/// xlreg registry allows that to members, through the negotiated
/// DeleteCluster extension; a Go registry cannot, and its cluster stays).
/// A failure is a warning: the cluster's TTL removes it later anyway.
pub(super) async fn delete_from_shared(
    rc: &RegCred,
    member: &NodeIdentity,
    id: NodeId,
    name: &str,
) {
    let go = async {
        let mut s = Session::connect(rc, &ClientOptions::default()).await?;
        s.register(member, 0).await?;
        s.delete_cluster(&ClusterRef::Id(id)).await?;
        s.bye().await
    };
    match go.await {
        Ok(()) => eprintln!("xlreg up: deleted cluster {name} from the shared registry"),
        Err(e) => eprintln!(
            "xlreg up: warning: cluster {name} left on the shared registry ({e}); \
             its TTL removes it"
        ),
    }
}
