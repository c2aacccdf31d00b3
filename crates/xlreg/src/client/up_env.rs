//! The environment `xlreg up -- CMD ARGS...` gives every program it
//! launches, and the one call such a program makes to join.
//!
//! `up` creates the cluster, writes each member's identity (name, fresh
//! node ID, two keys, endpoints on free loopback ports) into its node
//! directory, and starts one copy of the program per member with these
//! variables set. A Rust program calls [`UpEnv::from_env`] and
//! [`UpEnv::boot`]; any other program can run
//! `xlreg join --node-dir "$XLREG_NODE_DIR" --cluster-id "$XLREG_CLUSTER_ID"`
//! (`xlreg join` reads `XLREG_REGCRED` itself).

use std::path::PathBuf;

use crate::client::boot::boot;
use crate::client::node::{NodeIdentity, NodeOptions};
use crate::client::{BootOptions, ClientError, ClusterRef, ClusterView};
use crate::regcred::RegCred;
use crate::wire::NodeId;

/// Names of the variables.
pub mod env {
    /// Path of the registry's regCred.dat (`xlreg join` reads it too).
    pub const REGCRED: &str = "XLREG_REGCRED";
    /// Cluster name.
    pub const CLUSTER_NAME: &str = "XLREG_CLUSTER_NAME";
    /// Cluster ID, 40 hex digits.
    pub const CLUSTER_ID: &str = "XLREG_CLUSTER_ID";
    /// Number of members.
    pub const CLUSTER_SIZE: &str = "XLREG_CLUSTER_SIZE";
    /// This member's name (unique in the cluster).
    pub const MEMBER_NAME: &str = "XLREG_MEMBER_NAME";
    /// This member's slot, 0..size (`up` joins every member in launch
    /// order before starting the programs, so member `m03` is slot 3).
    pub const MEMBER_INDEX: &str = "XLREG_MEMBER_INDEX";
    /// This member's endpoints, `127.0.0.1:PORT` separated by commas: free
    /// ports for the program to listen on.
    pub const ENDPOINTS: &str = "XLREG_ENDPOINTS";
    /// Directory holding this member's identity (node.json and two keys),
    /// prepared by `up`.
    pub const NODE_DIR: &str = "XLREG_NODE_DIR";
    /// systemd socket activation (`up --listen-fds`): how many listening
    /// sockets were passed, from file descriptor 3 on.
    pub const LISTEN_FDS: &str = "LISTEN_FDS";
    /// systemd socket activation: the PID the sockets are meant for.
    pub const LISTEN_PID: &str = "LISTEN_PID";
    /// systemd socket activation: their names, `endpoint0:endpoint1:…`.
    pub const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";
    /// Set by `xlreg up --faults`: the endpoints this member dials for
    /// each peer (its fault proxies), `SLOT=EP,EP;SLOT=EP,EP`;
    /// [`UpEnv::boot`](super::UpEnv::boot) puts them into the view.
    pub const PEER_ENDPOINTS: &str = "XLREG_PEER_ENDPOINTS";
}

/// The first inherited descriptor in the socket-activation convention.
const LISTEN_FDS_START: i32 = 3;

static LISTENERS_TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Member attribute bit of the placeholder token `xlreg up` joins with to
/// reserve member i's slot i before starting the programs; the program's
/// own join replaces the token (and its slot stays). Never set it
/// yourself.
pub const UP_RESERVED: u64 = 1 << 40;

/// What `xlreg up` told this program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpEnv {
    /// regCred.dat path.
    pub regcred: PathBuf,
    /// Cluster name.
    pub cluster_name: String,
    /// Cluster ID.
    pub cluster_id: NodeId,
    /// Number of members.
    pub cluster_size: u32,
    /// This member's name.
    pub member_name: String,
    /// This member's slot in the cluster (and its launch number).
    pub member_index: usize,
    /// Endpoints to listen on.
    pub endpoints: Vec<String>,
    /// Identity directory.
    pub node_dir: PathBuf,
}

impl UpEnv {
    /// Read the variables of this process.
    pub fn from_env() -> Result<Self, ClientError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Read the variables through `get` (for tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ClientError> {
        let var = |k: &str| {
            get(k).filter(|v| !v.is_empty()).ok_or_else(|| {
                ClientError::Usage(format!(
                    "{k} is not set: run this program under `xlreg up --size N -- PROGRAM`"
                ))
            })
        };
        let bad = |k: &str, why: String| ClientError::Usage(format!("{k}: {why}"));
        let id = var(env::CLUSTER_ID)?;
        Ok(UpEnv {
            regcred: var(env::REGCRED)?.into(),
            cluster_name: var(env::CLUSTER_NAME)?,
            cluster_id: id
                .parse()
                .map_err(|e| bad(env::CLUSTER_ID, format!("{e}")))?,
            cluster_size: var(env::CLUSTER_SIZE)?
                .parse()
                .map_err(|e| bad(env::CLUSTER_SIZE, format!("{e}")))?,
            member_name: var(env::MEMBER_NAME)?,
            member_index: var(env::MEMBER_INDEX)?
                .parse()
                .map_err(|e| bad(env::MEMBER_INDEX, format!("{e}")))?,
            endpoints: var(env::ENDPOINTS)?
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            node_dir: var(env::NODE_DIR)?.into(),
        })
    }

    /// The endpoint sockets `xlreg up --listen-fds` passed this process,
    /// already bound and listening (systemd socket activation: `LISTEN_FDS`
    /// descriptors from 3 on, `LISTEN_PID` this process), in endpoint
    /// order and in blocking mode (call `set_nonblocking(true)` before
    /// `tokio::net::TcpListener::from_std`). `None` when none were passed
    /// (then bind [`UpEnv::endpoints`] yourself). The first call takes
    /// them; later calls return `None`.
    pub fn take_listeners() -> Result<Option<Vec<std::net::TcpListener>>, ClientError> {
        use std::os::fd::FromRawFd;
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (Some(count), Some(pid)) = (var(env::LISTEN_FDS), var(env::LISTEN_PID)) else {
            return Ok(None);
        };
        let bad = |k: &str, why: String| ClientError::Usage(format!("{k}: {why}"));
        let pid: u32 = pid
            .parse()
            .map_err(|e| bad(env::LISTEN_PID, format!("{e}")))?;
        if pid != std::process::id() {
            // Meant for another process (e.g. our parent): not ours.
            return Ok(None);
        }
        let count: i32 = count
            .parse()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| bad(env::LISTEN_FDS, format!("{count:?} is not 1..=64")))?;
        if LISTENERS_TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(count as usize);
        for fd in LISTEN_FDS_START..LISTEN_FDS_START + count {
            // SAFETY: fstat/getsockopt only look at the descriptor.
            let listening = unsafe {
                let mut v: libc::c_int = 0;
                let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_ACCEPTCONN,
                    (&mut v as *mut libc::c_int).cast(),
                    &mut len,
                ) == 0
                    && v != 0
            };
            if !listening {
                return Err(bad(
                    env::LISTEN_FDS,
                    format!("descriptor {fd} is not a listening socket"),
                ));
            }
            // SAFETY: the descriptor was passed to this process (LISTEN_PID
            // is ours) for it to own, it is a listening socket, and the
            // flag above makes sure it is wrapped only once.
            let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            // Not inherited further by the programs this one starts.
            // SAFETY: plain fcntl on a descriptor we own.
            unsafe {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
            out.push(l);
        }
        Ok(Some(out))
    }

    /// The variables as `(name, value)` pairs, for launching a program.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            (env::REGCRED, self.regcred.display().to_string()),
            (env::CLUSTER_NAME, self.cluster_name.clone()),
            (env::CLUSTER_ID, self.cluster_id.to_hex()),
            (env::CLUSTER_SIZE, self.cluster_size.to_string()),
            (env::MEMBER_NAME, self.member_name.clone()),
            (env::MEMBER_INDEX, self.member_index.to_string()),
            (env::ENDPOINTS, self.endpoints.join(",")),
            (env::NODE_DIR, self.node_dir.display().to_string()),
        ]
    }

    /// The member's identity from its node directory (created there if
    /// missing), with the name and endpoints given.
    pub fn identity(&self) -> Result<NodeIdentity, ClientError> {
        let opts = NodeOptions {
            name: Some(self.member_name.clone()),
            endpoints: Some(self.endpoints.clone()),
            ..NodeOptions::default()
        };
        NodeIdentity::load_or_create(&self.node_dir, &opts).map(|(n, _)| n)
    }

    /// The registry credentials.
    pub fn load_regcred(&self) -> Result<RegCred, ClientError> {
        RegCred::load(&self.regcred)
            .map_err(|e| ClientError::RegCred(crate::ErrorChain(&e).to_string()))
    }

    /// Join the cluster and wait for every member: the member's identity,
    /// and its view (with the cluster name filled in).
    ///
    /// `up` holds every slot from the start ([`UP_RESERVED`]), so the
    /// cluster is complete at once; this also waits (within `opts.wait`)
    /// until every other program has joined too, so that a booted member
    /// knows its peers are up.
    pub async fn boot(
        &self,
        opts: &BootOptions,
    ) -> Result<(NodeIdentity, ClusterView), ClientError> {
        let start = std::time::Instant::now();
        let regcred = self.load_regcred()?;
        let node = self.identity()?;
        let mut view = boot(&regcred, &ClusterRef::Id(self.cluster_id), &node, opts).await?;
        view.cluster_name = Some(self.cluster_name.clone());
        let peers = match std::env::var(env::PEER_ENDPOINTS) {
            Ok(spec) if !spec.is_empty() => Some(parse_peer_endpoints(&spec)?),
            _ => None,
        };
        let reserved = |ms: &[crate::client::MemberInfo]| {
            ms.iter()
                .filter(|m| m.attrs & UP_RESERVED != 0)
                .map(|m| m.index)
                .collect::<Vec<_>>()
        };
        if let (Some(wait), false) = (opts.wait, reserved(&view.members).is_empty()) {
            let reader = crate::client::ephemeral_identity(NodeOptions {
                name: Some(format!("{}-reader", self.member_name)),
                endpoints: None,
                key_bits: 1024,
            })
            .await?;
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let list =
                    crate::client::read_members(&regcred, &self.cluster_id, &reader, &opts.client)
                        .await?;
                let missing = reserved(&list.members);
                if missing.is_empty() && list.members.len() == view.members.len() {
                    view.members = list.members;
                    break;
                }
                if start.elapsed() >= wait {
                    return Err(ClientError::IncompleteCluster {
                        cluster: format!("{:?}", self.cluster_name),
                        have: view.members.len() - missing.len(),
                        want: view.members.len(),
                        missing,
                        waited: start.elapsed(),
                    });
                }
            }
        }
        if let Some(peers) = peers {
            let me = view.self_index;
            for m in view.members.iter_mut().filter(|m| m.index != me) {
                if let Some(eps) = peers.get(&m.index) {
                    m.endpoints = eps.clone();
                }
            }
        }
        Ok((node, view))
    }
}

/// `SLOT=EP,EP;SLOT=EP,EP` (see [`env::PEER_ENDPOINTS`]).
fn parse_peer_endpoints(
    spec: &str,
) -> Result<std::collections::HashMap<usize, Vec<String>>, ClientError> {
    let bad = |why: String| ClientError::Usage(format!("{}: {why}", env::PEER_ENDPOINTS));
    let mut out = std::collections::HashMap::new();
    for part in spec.split(';').filter(|p| !p.is_empty()) {
        let (slot, eps) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("{part:?} is not SLOT=ENDPOINT,...")))?;
        let slot: usize = slot
            .parse()
            .map_err(|_| bad(format!("{slot:?} is not a slot number")))?;
        out.insert(slot, eps.split(',').map(String::from).collect());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn peer_endpoints_parse_and_bad_ones_are_named() {
        let m = parse_peer_endpoints("1=127.0.0.1:5,127.0.0.1:6;2=127.0.0.1:7").unwrap();
        assert_eq!(m[&1], vec!["127.0.0.1:5", "127.0.0.1:6"]);
        assert_eq!(m[&2], vec!["127.0.0.1:7"]);
        let e = parse_peer_endpoints("x=1").unwrap_err().to_string();
        assert!(
            e.contains("XLREG_PEER_ENDPOINTS") && e.contains("\"x\""),
            "{e}"
        );
        assert!(parse_peer_endpoints("1:2").is_err());
    }

    #[test]
    fn vars_round_trip_and_missing_ones_are_named() {
        let e = UpEnv {
            regcred: "/tmp/x/regCred.dat".into(),
            cluster_name: "up-1".into(),
            cluster_id: NodeId::from_bytes(&[7; 20]).unwrap(),
            cluster_size: 3,
            member_name: "m01".into(),
            member_index: 1,
            endpoints: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
            node_dir: "/tmp/x/nodes/m01".into(),
        };
        let m: HashMap<&str, String> = e.vars().into_iter().collect();
        assert_eq!(m[env::ENDPOINTS], "127.0.0.1:1,127.0.0.1:2");
        let back = UpEnv::from_lookup(|k| m.get(k).cloned()).unwrap();
        assert_eq!(back, e);
        let err = UpEnv::from_lookup(|k| (k != env::NODE_DIR).then(|| m[k].clone())).unwrap_err();
        assert!(
            err.to_string().contains("XLREG_NODE_DIR is not set"),
            "{err}"
        );
        let err = UpEnv::from_lookup(|k| {
            Some(if k == env::CLUSTER_ID {
                "zz".into()
            } else {
                m[k].clone()
            })
        })
        .unwrap_err();
        assert!(err.to_string().contains("XLREG_CLUSTER_ID"), "{err}");
    }
}
