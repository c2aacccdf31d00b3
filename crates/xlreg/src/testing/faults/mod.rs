//! Faults on demand in a test cluster: partition it, cut or slow a link,
//! lose packets, heal — from the test, in one line, without root.
//!
//! With [`LaunchOptions::faults`](super::LaunchOptions::faults) on, the
//! harness starts a small loopback proxy for every (member, peer,
//! endpoint) and gives each member a view of the cluster in which its
//! peers' endpoints are the ports of *its* proxies. A connection from
//! member a to member b therefore passes through a proxy that knows both
//! ends, and a fault is a rule in that proxy ([`rules`]): no `tc`, no
//! `iptables`, no namespaces. The faults act on the byte stream, so plain
//! TCP and the `xlreg::peer` TLS channel (which pins keys, not addresses)
//! pass a healthy proxy unchanged and stall or slow down as the fault
//! says.
//!
//! What a member sees: in `members[i].view`, every *other* member's
//! endpoints are `127.0.0.1:<proxy port>` and differ from what that member
//! registered (its own entry, and
//! [`LocalMember::endpoints`](super::LocalMember::endpoints), are the
//! registered ones). Two members see different ports for the same peer. With faults off nothing is
//! started and the views are the registry's.

pub mod nemesis;
mod proxy;
pub mod rules;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub use nemesis::{Nemesis, NemesisKind};
pub use rules::{Direction, Fault, FaultError, LinkRule, LOSS_RTO, LOSS_SYN_RTO};

pub(crate) use proxy::FaultNet;
use proxy::Links;

/// One change of the faults, with when it happened (see
/// [`Faults::log`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultEvent {
    /// When it was applied.
    pub at: SystemTime,
    /// What was applied; `None`: everything healed.
    pub fault: Option<Fault>,
}

/// The control handle of a cluster's faults (cheap to clone; every clone
/// controls the same cluster). Member numbers are slots: in a harness
/// cluster, the launch order (`m00` is 0).
///
/// Faults add up until [`Faults::heal`]; each takes effect at once, on
/// new connections and on the ones already open.
#[derive(Clone, Debug)]
pub struct Faults {
    links: Arc<Links>,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    faults: Vec<Fault>,
    log: Vec<FaultEvent>,
}

impl Faults {
    pub(super) fn new(n: usize) -> Self {
        Faults {
            links: Arc::new(Links::new(n)),
            state: Arc::default(),
        }
    }

    /// Start the proxies to `targets[member][endpoint]` (the registered
    /// endpoints, in slot order).
    pub(super) fn start_net(&self, targets: &[Vec<SocketAddr>]) -> std::io::Result<FaultNet> {
        FaultNet::start(self.links.clone(), targets)
    }

    /// Number of members.
    pub fn size(&self) -> usize {
        self.links.n
    }

    /// Apply `fault` on top of those in force.
    pub fn apply(&self, fault: Fault) -> Result<(), FaultError> {
        fault.check(self.links.n)?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        tracing::info!("fault: {fault:?}");
        st.faults.push(fault.clone());
        st.log.push(FaultEvent {
            at: SystemTime::now(),
            fault: Some(fault),
        });
        self.links.set(&rules::compute(self.links.n, &st.faults));
        Ok(())
    }

    /// Members in different groups cannot reach each other; a member in
    /// no group is isolated. `partition(&[&[0], &[1, 2]])` cuts 0 from 1
    /// and 2, both ways, and leaves 1↔2 alone.
    pub fn partition(&self, groups: &[&[usize]]) -> Result<(), FaultError> {
        self.apply(Fault::Partition(
            groups.iter().map(|g| g.to_vec()).collect(),
        ))
    }

    /// Member `i` reaches no one and no one reaches it.
    pub fn isolate(&self, i: usize) -> Result<(), FaultError> {
        self.apply(Fault::Isolate(i))
    }

    /// Stop the bytes from `from` to `to` ([`Direction::OneWay`]) or both
    /// ways ([`Direction::Both`]). New connections need both directions
    /// (as TCP's handshake does), so a one-way cut also holds new
    /// connections either way; on open ones, only `from`→`to` stalls.
    pub fn cut(&self, from: usize, to: usize, direction: Direction) -> Result<(), FaultError> {
        self.apply(Fault::Cut {
            from,
            to,
            direction,
        })
    }

    /// Bytes from `from` to `to` arrive `delay` later, plus up to `jitter`
    /// more at random (order kept). One way: a request/reply round trip
    /// from `from` takes `delay` longer.
    pub fn delay(
        &self,
        from: usize,
        to: usize,
        delay: Duration,
        jitter: Duration,
    ) -> Result<(), FaultError> {
        self.apply(Fault::Delay {
            from,
            to,
            delay,
            jitter,
        })
    }

    /// Each chunk of bytes from `from` to `to` is lost with `probability`
    /// and, as over TCP, arrives one retransmission timeout
    /// ([`LOSS_RTO`]) late; a lost connection attempt costs
    /// [`LOSS_SYN_RTO`]. (A byte stream cannot lose bytes without breaking
    /// the protocol on top, and neither does TCP.)
    pub fn drop(&self, from: usize, to: usize, probability: f64) -> Result<(), FaultError> {
        self.apply(Fault::Drop {
            from,
            to,
            probability,
        })
    }

    /// Remove every fault. Held bytes pass and delayed ones are released
    /// at once, on connections already open too.
    pub fn heal(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        tracing::info!("fault: heal");
        st.faults.clear();
        st.log.push(FaultEvent {
            at: SystemTime::now(),
            fault: None,
        });
        self.links.set(&rules::compute(self.links.n, &[]));
    }

    /// The faults in force, in the order applied.
    pub fn current(&self) -> Vec<Fault> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .faults
            .clone()
    }

    /// Every change so far, with its time.
    pub fn log(&self) -> Vec<FaultEvent> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .log
            .clone()
    }

    /// The rule of the bytes from `from` to `to` now (`None` for an
    /// unknown pair).
    pub fn link(&self, from: usize, to: usize) -> Option<LinkRule> {
        let n = self.links.n;
        (from < n && to < n).then(|| *self.links.rules[from * n + to].borrow())
    }
}
