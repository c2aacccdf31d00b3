//! Requests and PostgreSQL backends for the registry tests, written once:
//! the tests of `tests/postgres*.rs` build the same Creates, Joins and
//! GetClusters and connect the same backends.

use std::sync::Arc;
use std::time::Duration;

use xlreg::registry::postgres::{DbUrl, PoolOptions, PostgresBackend};
use xlreg::registry::{ClusterTarget, Create, GetCluster, Join, MemberRecord, Policy};
use xlreg::testing::postgres::TestDb;
use xlreg::wire::{NodeId, Which};

/// The registry ID every backend of a test database shares.
pub fn own_id() -> NodeId {
    NodeId::from_bytes(&[0xee; 20]).unwrap()
}

/// Member `i`: a distinct ID (from `i`), name `m{i}` and token.
pub fn rec(i: u32) -> MemberRecord {
    let mut id = [0u8; 20];
    id[..4].copy_from_slice(&i.to_le_bytes());
    id[19] = 1;
    MemberRecord {
        id: NodeId::from_bytes(&id).unwrap(),
        name: format!("m{i}").into_bytes().into(),
        token: format!("token-of-m{i}").into_bytes().into(),
    }
}

/// Create `name` for `max_size` members with one endpoint each.
pub fn create(name: &[u8], max_size: u32) -> Create {
    Create {
        name: name.to_vec(),
        max_size,
        attrs: 0,
        ep_count: 1,
        ttl_ms: None,
        owner: None,
    }
}

/// Create `name` (2 members) with the TTL `ttl_ms`.
pub fn create_ttl(name: &str, ttl_ms: Option<u64>) -> Create {
    Create {
        ttl_ms,
        ..create(name.as_bytes(), 2)
    }
}

/// `record` joins the cluster `c`.
pub fn join(c: NodeId, record: MemberRecord) -> Join {
    Join {
        cluster: ClusterTarget::Id(c),
        record,
        endpoints: 1,
    }
}

/// `record` joins the cluster named `name`.
pub fn join_named(name: &[u8], record: MemberRecord) -> Join {
    Join {
        cluster: ClusterTarget::Name(name.into()),
        record,
        endpoints: 1,
    }
}

/// GetCluster of `c`, every member, held up to `hold`.
pub fn held(c: NodeId, hold: Duration) -> GetCluster {
    GetCluster {
        cluster: ClusterTarget::Id(c),
        which: Which::ALL,
        budget: 1 << 20,
        hold,
    }
}

/// A backend on `url` (identity [`own_id`]) deciding with `policy`.
pub async fn connect(url: &DbUrl, policy: Policy) -> Arc<PostgresBackend> {
    Arc::new(
        PostgresBackend::connect(url, own_id(), &PoolOptions::default(), policy)
            .await
            .unwrap(),
    )
}

/// `n` backends ("servers") on the test database, each with `policy`.
pub async fn backends(db: &TestDb, n: usize, policy: Policy) -> Vec<Arc<PostgresBackend>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(connect(db.url(), policy).await);
    }
    out
}
