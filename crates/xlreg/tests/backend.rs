//! A second registry backend, written outside the crate against the public
//! [`Backend`] trait, serving real clients through an unchanged server.
//!
//! It works the way a shared database must (see `xlreg::registry`'s module
//! docs): per request it takes the "transaction" lock, loads only the rows
//! that request touches into a partial `Registry`, runs the same rule
//! functions, and appends the resulting `Change`s before answering.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use xlreg::client::{boot, create_cluster_as};
use xlreg::client::{BootOptions, ClientOptions, ClusterRef, ClusterSpec};
use xlreg::registry::{
    Answer, Backend, BackendError, BoxFuture, Change, ClusterTarget, IdOwner, Registry, Request,
    RuleError, StoreError,
};
use xlreg::server::{Server, ServerConfig};
use xlreg::testing::{keys, member_identity};
use xlreg::wire::NodeId;

/// The rows of a pretend database: every change ever committed.
#[derive(Debug)]
struct RowsBackend {
    own_id: NodeId,
    rows: Mutex<Vec<Change>>,
    changed: watch::Sender<u64>,
    transactions: AtomicUsize,
}

/// The cluster named by `target` in `rows`: its ID row, its row and its
/// members' rows, in commit order.
fn cluster_rows(rows: &[Change], target: &ClusterTarget) -> Vec<Change> {
    let id = rows.iter().find_map(|c| match (c, target) {
        (Change::NewCluster { id, .. }, ClusterTarget::Id(want)) if id == want => Some(*id),
        (Change::NewCluster { id, name, .. }, ClusterTarget::Name(want)) if name == want => {
            Some(*id)
        }
        _ => None,
    });
    let Some(id) = id else { return Vec::new() };
    rows.iter()
        .filter(|c| match c {
            Change::NewId { id: i, .. } => *i == id,
            other => other.cluster() == Some(&id),
        })
        .cloned()
        .collect()
}

impl RowsBackend {
    fn new(own_id: NodeId) -> Self {
        RowsBackend {
            own_id,
            rows: Mutex::new(Vec::new()),
            changed: watch::channel(0).0,
            transactions: AtomicUsize::new(0),
        }
    }

    /// One transaction: lock, load the rows `pick` selects into a partial
    /// registry, decide with the rules, write the changes, wake holders.
    fn transaction<T>(
        &self,
        pick: impl FnOnce(&[Change]) -> Vec<Change>,
        decide: impl FnOnce(&mut Registry) -> Result<T, RuleError>,
    ) -> Result<T, BackendError> {
        self.transactions.fetch_add(1, Ordering::Relaxed);
        let mut rows = self.rows.lock().unwrap();
        let mut reg = Registry::new(self.own_id);
        for ch in pick(&rows) {
            reg.restore_change(ch)
                .map_err(|e| StoreError::new("rows", "load", e))?;
        }
        let out = decide(&mut reg)?;
        let changes = reg.commit();
        if !changes.is_empty() {
            rows.extend(changes);
            self.changed.send_modify(|v| *v += 1);
        }
        Ok(out)
    }
}

/// The rows a request touches: what a database would lock and load.
fn rows_for(rows: &[Change], req: &Request) -> Vec<Change> {
    match req {
        Request::Register(r) => rows
            .iter()
            .filter(|c| matches!(c, Change::NewId { id, .. } if Some(*id) == r.id))
            .cloned()
            .collect(),
        Request::Create(c) => cluster_rows(rows, &ClusterTarget::Name(c.name[..].into())),
        Request::DeleteByName(name) => cluster_rows(rows, &ClusterTarget::Name(name[..].into())),
        Request::Join(j) => cluster_rows(rows, &j.cluster),
        Request::GetCluster(g) => cluster_rows(rows, &g.cluster),
        Request::Delete(d) => cluster_rows(rows, &d.cluster),
        Request::Resize(r) => cluster_rows(rows, &r.cluster),
        Request::Evict(e) => cluster_rows(rows, &e.cluster),
        Request::Leave(l) => cluster_rows(rows, &l.cluster),
        Request::Watch(w) => cluster_rows(rows, &w.cluster),
        // The sweep reads everything (a database would read by an index).
        Request::Expire(_) => rows.to_vec(),
    }
}

impl Backend for RowsBackend {
    fn perform(&self, req: Request) -> BoxFuture<'_, Result<Answer, BackendError>> {
        let r = self.transaction(|rows| rows_for(rows, &req), |reg| reg.decide(req.clone()));
        Box::pin(std::future::ready(r))
    }

    fn subscribe(&self, _cluster: &NodeId) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    fn location(&self) -> String {
        "<rows>".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_written_outside_the_crate_serves_a_cluster_through_the_unchanged_server() {
    let backend: Arc<RowsBackend> = Arc::new(RowsBackend::new(NodeId::random()));
    let b = backend.clone();
    let cfg = ServerConfig {
        hold: Duration::from_secs(10),
        ..ServerConfig::ephemeral()
    };
    let server = Server::start_with_backend(cfg, move |own_id, _policy| async move {
        // The backend was made before the identity: take its ID now.
        assert_ne!(own_id, b.own_id);
        Ok(b as Arc<dyn Backend>)
    })
    .await
    .unwrap();
    let rc = server.regcred().clone();

    let ks = keys::generate_keys(8, 1024, keys::KeyGen::Fast, 2, &|| {}).unwrap();
    let mut ks = ks.into_iter();
    let mut node = |name: &str| {
        member_identity(
            name,
            ks.next().unwrap(),
            ks.next().unwrap(),
            vec!["127.0.0.1:9".into()],
        )
        .unwrap()
    };
    let admin = node("admin");
    let info = create_cluster_as(
        &rc,
        &admin,
        &ClusterSpec::new("rows", 3).endpoints(1),
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    let again = create_cluster_as(
        &rc,
        &admin,
        &ClusterSpec::new("rows", 5).endpoints(1),
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(again.id, info.id, "Create is idempotent by name here too");
    // Three members boot concurrently; the first two wait in held
    // GetClusters woken through `subscribe`.
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let n = node(&format!("m{i}"));
            let rc = rc.clone();
            tokio::spawn(async move {
                boot(
                    &rc,
                    &ClusterRef::Name("rows".into()),
                    &n,
                    &BootOptions::default(),
                )
                .await
            })
        })
        .collect();
    let mut views = Vec::new();
    for t in tasks {
        views.push(t.await.unwrap().unwrap());
    }
    let mut slots: Vec<usize> = views.iter().map(|v| v.self_index).collect();
    slots.sort();
    assert_eq!(slots, vec![0, 1, 2], "each slot given once");
    for v in &views {
        assert!(v.is_complete());
        assert_eq!(v.members, views[0].members);
        assert_eq!(v.cluster_id, info.id);
    }
    let rows = backend.rows.lock().unwrap().clone();
    let members = rows
        .iter()
        .filter(|c| matches!(c, Change::NewMember { cluster, .. } if *cluster == info.id))
        .count();
    assert_eq!(members, 3, "the rows hold what the members were told");
    assert!(rows.iter().any(|c| matches!(
        c,
        Change::NewId {
            owner: IdOwner::Member(_),
            ..
        }
    )));
    assert!(backend.transactions.load(Ordering::Relaxed) >= 3 + 3 + 2);
    server.shutdown().await;
}
