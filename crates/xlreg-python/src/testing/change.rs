//! `LocalCluster.resize/evict/replace` in Python: the Rust harness's
//! changes (`xlreg::testing::LocalCluster::{resize, evict, replace}`, each
//! done once every member's watch saw it) run on the shared runtime with
//! the GIL released, then the Python side's members and cluster info are
//! brought up to date with what the Rust cluster now holds.
//!
//! Why a separate step: the Rust futures must not touch Python objects
//! (they run on runtime threads, see `crate::exit`), so they hand back
//! plain Rust values ([`Snapshot`]) and the calling thread, holding the
//! GIL, turns them into `LocalMember` objects. A member that stays keeps
//! its Python object (and listeners not taken yet); only its view changes.

use std::net::TcpListener;
use std::sync::Arc;

use pyo3::prelude::*;
use xlreg::client::{ClusterInfo, ClusterView, NodeIdentity};
use xlreg::testing::{LaunchError, LocalCluster, LocalMember};

use super::{poisoned, PyLocalCluster, PyLocalMember};
use crate::errors::Failure;
use crate::runtime::block_on;
use crate::view::PyClusterInfo;

/// The shared cell holding the Rust cluster (taken by `shutdown`).
pub(crate) type Cell = Arc<tokio::sync::Mutex<Option<LocalCluster>>>;

/// One change to make.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Change {
    Resize(u32),
    Evict(usize),
    Replace(usize),
}

/// A member of the Rust cluster after a change, with the listening
/// sockets Python has not received yet (a new member's), blocking.
pub(crate) struct MemberState {
    pub identity: NodeIdentity,
    pub view: ClusterView,
    pub listeners: Vec<TcpListener>,
}

/// The Rust cluster after a change.
pub(crate) struct Snapshot {
    pub info: ClusterInfo,
    pub members: Vec<MemberState>,
}

/// Member `m`'s listeners not taken yet, in blocking mode (plain Python
/// code expects blocking sockets).
pub(crate) fn blocking_listeners(m: &mut LocalMember) -> Result<Vec<TcpListener>, Failure> {
    let mut out = Vec::new();
    for i in 0..m.endpoints().len() {
        if let Some(l) = m.take_std_listener(i) {
            l.set_nonblocking(false).map_err(|e| {
                Failure::Launch(LaunchError::Io(format!(
                    "making the listener of {} blocking: {e}",
                    m.identity.name
                )))
            })?;
            out.push(l);
        }
    }
    Ok(out)
}

/// Make `change` on the cluster in `cell` (blocking, GIL released) and
/// return the version it reached and the cluster afterwards.
pub(crate) fn run(py: Python<'_>, cell: &Cell, change: Change) -> PyResult<(u64, Snapshot)> {
    let cell = cell.clone();
    block_on(py, async move {
        let mut g = cell.lock().await;
        let Some(c) = g.as_mut() else {
            return Err(Failure::Usage("this LocalCluster was shut down".into()));
        };
        let version = match change {
            Change::Resize(n) => c.resize(n).await?,
            Change::Evict(slot) => c.evict(slot).await?,
            Change::Replace(slot) => c.replace(slot).await?.view.version(),
        };
        let mut members = Vec::with_capacity(c.members.len());
        for m in &mut c.members {
            members.push(MemberState {
                listeners: blocking_listeners(m)?,
                identity: m.identity.clone(),
                view: m.view.clone(),
            });
        }
        let info = c.info.clone();
        Ok((version, Snapshot { info, members }))
    })
}

/// Bring the Python side up to date with `s`: members that stay keep
/// their objects and get their new views, new members get new objects,
/// and members no longer in the cluster are dropped (their listeners not
/// taken yet close, as a stopped member's sockets would). Members end up
/// in slot order.
pub(crate) fn apply(py: Python<'_>, c: &PyLocalCluster, s: Snapshot) -> PyResult<()> {
    let old = c.members(py)?;
    let mut members = s.members;
    members.sort_by_key(|m| m.view.self_index);
    let mut next = Vec::with_capacity(members.len());
    for m in members {
        let kept = old
            .iter()
            .find(|p| p.borrow(py).node.get().inner.id == m.identity.id);
        match kept {
            Some(p) => {
                p.borrow(py).set_view(py, m.view)?;
                next.push(p.clone_ref(py));
            }
            None => next.push(Py::new(
                py,
                PyLocalMember::new(py, m.identity, m.view, m.listeners)?,
            )?),
        }
    }
    for p in &old {
        let id = p.borrow(py).node.get().inner.id;
        if !next.iter().any(|n| n.borrow(py).node.get().inner.id == id) {
            p.borrow(py).close_listeners();
        }
    }
    let name = c.info.lock().map_err(|_| poisoned())?.get().name.clone();
    let info = Py::new(
        py,
        PyClusterInfo {
            inner: s.info,
            name,
        },
    )?;
    *c.info.lock().map_err(|_| poisoned())? = info;
    *c.members.lock().map_err(|_| poisoned())? = next;
    Ok(())
}
