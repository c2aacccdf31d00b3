//! [`ServerConfig`]: everything `xlreg serve` can be told, and what it
//! derives from it (the store to open, the policy every store applies).
//! Apart from the server so that the per-connection code can read it
//! without importing the accept loop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::identity::ServerIdentity;
use crate::registry::{Policy, StoreConfig};

/// Default listen address (the Go server's production port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:56789";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "xlreg-data";

/// Everything `xlreg serve` can be told.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// `host:port` written into regCred.dat (default: the bound address).
    pub advertise: Option<String>,
    /// Further `host:port`s written into regCred.dat after `advertise`:
    /// the other servers of a group sharing one database, so xlreg
    /// clients can fail over (Go clients use the first line only).
    pub advertise_more: Vec<String>,
    /// Data directory; `None` keeps everything in memory (ephemeral).
    pub data_dir: Option<PathBuf>,
    /// Where the registry is kept; `None`: SQLite in `data_dir`, or
    /// memory without one ([`StoreConfig::for_data_dir`]).
    pub store: Option<StoreConfig>,
    /// Where to write regCred.dat; default `DATA_DIR/regCred.dat`
    /// (ephemeral servers write none unless told).
    pub regcred_path: Option<PathBuf>,
    /// Registry name in regCred.dat.
    pub name: String,
    /// Key size for a newly created identity.
    pub key_bits: u32,
    /// Largest RSA modulus, in bits, accepted in a member's token
    /// (`MIN_MODULUS_BITS..=ABSOLUTE_MAX_MODULUS_BITS`; default 4096).
    pub max_key_bits: u32,
    /// Take over the identity of a Go server from its `reg.config`.
    pub adopt: Option<PathBuf>,
    /// Refuse to start when the data directory or a private key file is
    /// accessible by group/others (otherwise: a warning).
    pub strict_perms: bool,
    /// Use this identity instead of loading or generating one.
    pub identity: Option<ServerIdentity>,
    /// Most concurrent connections; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time allowed for the Hello.
    pub handshake_timeout: Duration,
    /// Time allowed between requests.
    pub idle_timeout: Duration,
    /// Time allowed for the rest of a message once it started, and for
    /// writing a reply.
    pub message_timeout: Duration,
    /// How long a GetCluster may be held waiting for requested members
    /// (zero: answer at once, like the Go server).
    pub hold: Duration,
    /// Allow GetCluster after Member without Join.
    pub allow_anonymous_reads: bool,
    /// Largest ClusterMembers reply to a legacy (Go) client, bytes on the
    /// wire; Go clients read at most 16384.
    pub legacy_reply_limit: usize,
    /// Lifetime of a cluster whose creator set none, counted from its last
    /// Join or GetCluster (`None`: never expires).
    pub cluster_ttl: Option<Duration>,
    /// Lifetime of a cluster created with the Ephemeral attribute bit and
    /// no TTL of its own (`None`: as `cluster_ttl`).
    pub ephemeral_ttl: Option<Duration>,
    /// Most clusters (`None`: no limit).
    pub max_clusters: Option<usize>,
    /// Most Member requests per source address per hour (`None`: no limit).
    pub max_registrations_per_hour: Option<u32>,
    /// How often expired clusters are removed from the store.
    pub sweep_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            advertise: None,
            advertise_more: Vec::new(),
            data_dir: Some(PathBuf::from(DEFAULT_DATA_DIR)),
            store: None,
            regcred_path: None,
            name: "xlReg".into(),
            key_bits: 2048,
            max_key_bits: crate::wire::crypto::DEFAULT_MAX_MODULUS_BITS,
            adopt: None,
            strict_perms: false,
            identity: None,
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            message_timeout: Duration::from_secs(10),
            hold: Duration::from_secs(1),
            allow_anonymous_reads: true,
            legacy_reply_limit: crate::wire::framing::LEGACY_MAX_MESSAGE,
            cluster_ttl: None,
            ephemeral_ttl: None,
            max_clusters: None,
            max_registrations_per_hour: None,
            sweep_interval: Duration::from_secs(1),
        }
    }
}

impl ServerConfig {
    /// The store this server opens: [`ServerConfig::store`], else SQLite
    /// in the data directory, else memory.
    pub fn store_config(&self) -> StoreConfig {
        self.store
            .clone()
            .unwrap_or_else(|| StoreConfig::for_data_dir(self.data_dir.as_deref()))
    }

    /// The TTLs and limits every store of this server decides with (TTLs
    /// clamped like a client's, to [`crate::limits::MAX_TTL_SECS`]).
    pub fn policy(&self) -> Policy {
        Policy {
            cluster_ttl_ms: self.cluster_ttl.map(crate::limits::clamp_ttl),
            ephemeral_ttl_ms: self.ephemeral_ttl.map(crate::limits::clamp_ttl),
            max_clusters: self.max_clusters,
        }
    }

    /// An in-memory registry on a free loopback port with a fresh 1024-bit
    /// identity: for tests and `xlreg up`.
    pub fn ephemeral() -> Self {
        ServerConfig {
            listen: "127.0.0.1:0".parse().expect("valid"),
            data_dir: None,
            key_bits: 1024,
            ..Default::default()
        }
    }

    /// A persistent registry in `dir` on a free loopback port, with the
    /// identity `xlreg serve` would create (2048-bit keys).
    pub fn persistent(dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            listen: "127.0.0.1:0".parse().expect("valid"),
            data_dir: Some(dir.into()),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_TTL_SECS;

    #[test]
    fn policy_clamps_configured_ttls_to_the_registry_ceiling_and_keeps_milliseconds() {
        let cfg = ServerConfig {
            cluster_ttl: Some(Duration::from_secs(MAX_TTL_SECS + 3600)),
            ephemeral_ttl: Some(Duration::from_millis(1500)),
            max_clusters: Some(7),
            ..ServerConfig::ephemeral()
        };
        let p = cfg.policy();
        assert_eq!(p.cluster_ttl_ms, Some(MAX_TTL_SECS * 1000));
        assert_eq!(p.ephemeral_ttl_ms, Some(1500));
        assert_eq!(p.max_clusters, Some(7));
        let none = ServerConfig::ephemeral().policy();
        assert_eq!((none.cluster_ttl_ms, none.ephemeral_ttl_ms), (None, None));
    }
}
