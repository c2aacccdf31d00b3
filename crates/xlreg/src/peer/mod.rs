//! Members talk securely with the keys they registered: mutually
//! authenticated TLS 1.3 between the members of a cluster.
//!
//! Why: registering two RSA public keys is only useful if a booted member
//! can use them to set up an encrypted, authenticated channel to a peer
//! without further help from the registry. This module is that channel,
//! built from standard parts only (OpenSSL's TLS 1.3, no home-made
//! cryptography), with no CA and no certificate files:
//!
//! * Each process makes a **self-signed X.509 certificate in memory** from
//!   the member's registered **sig key** ([`LocalCert`]): fresh random
//!   serial, valid from 5 minutes ago for [`CERT_VALIDITY`], never written
//!   to disk. The sig key is the one that *authenticates* a member — it
//!   already signs the member's token — and in TLS 1.3 the certificate key
//!   is only ever used to sign the handshake (CertificateVerify); the key
//!   exchange is ephemeral (X25519/ECDHE), so the comms key, which the
//!   protocol uses for encryption, would add nothing here.
//! * Each side **pins** the other: the peer certificate's
//!   SubjectPublicKeyInfo DER must equal, byte for byte, a sig key from the
//!   [`ClusterView`](crate::client::ClusterView) the registry returned
//!   ([`Pins`]). Which key matched tells the listener which member
//!   connected. A dialer pins exactly the member it meant to reach.
//! * The **cluster ID is bound into the handshake** by ALPN: the dialer
//!   offers only `xlreg/1/<cluster-id-hex>` ([`alpn_protocol`]) and the
//!   listener refuses anything else, so a node registered in two clusters
//!   with one key cannot be mistaken for a member of the other one.
//! * TLS 1.3 only, no session tickets (every connection is fully
//!   authenticated).
//! * After its handshake the listener sends one byte, [`ACCEPTED`], once it
//!   has pinned the dialer; [`connect()`] returns only after reading it. In
//!   TLS 1.3 a client finishes its handshake before the server has checked
//!   the client's certificate, so without this byte a refused dialer would
//!   only learn of the refusal at its first read.
//!
//! What is authenticated: that the peer holds the private sig key the
//! registry lists for that member of that cluster. What is not: the
//! registry itself is trusted to hand out the right keys (whoever controls
//! the registry, or the regCred file, can add members); endpoints are not
//! authenticated (anyone can answer on them, but nobody without the key
//! completes the handshake); traffic analysis (sizes, timing) is not
//! hidden.
//!
//! Pieces: [`cert`] (the certificate), [`pin`] (the pinning rules, pure),
//! [`tls`] (the OpenSSL contexts, usable from bindings and blocking code),
//! [`handshake`] (driving a handshake over tokio and naming failures),
//! [`listener`] ([`PeerListener`]), [`connect`](mod@connect) ([`connect()`],
//! [`PeerConnector`]), [`stream`] ([`PeerStream`]), [`blocking`] (the same
//! over std sockets, for threads and bindings), [`error`] ([`PeerError`]).

pub mod blocking;
pub mod cert;
pub mod connect;
pub mod error;
pub mod handshake;
pub mod listener;
pub mod pin;
pub mod stream;
pub mod tls;

use std::time::Duration;

use crate::wire::NodeId;

pub use blocking::{BlockingPeerListener, BlockingPeerStream};
pub use cert::{LocalCert, CERT_VALIDITY};
pub use connect::{connect, connect_anonymous, PeerConnector, RETRY_PAUSE};
pub use error::PeerError;
pub use listener::{PeerAcceptor, PeerListener};
pub use pin::{Pins, Refusal};
pub use stream::{Peer, PeerStream};

/// The byte a listener sends after it has accepted a dialer.
pub const ACCEPTED: u8 = 0x01;

/// How long a handshake (including the [`ACCEPTED`] byte) may take unless
/// told otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Prefix of the ALPN protocol name; the cluster ID in hex follows.
pub const ALPN_PREFIX: &str = "xlreg/1/";

/// The ALPN protocol name that binds a connection to a cluster:
/// `xlreg/1/<cluster-id-hex>` (48 bytes for a 20-byte ID).
pub fn alpn_protocol(cluster_id: &NodeId) -> Vec<u8> {
    format!("{ALPN_PREFIX}{}", cluster_id.to_hex()).into_bytes()
}

/// The same name in ALPN wire format (one length byte, then the name), as
/// `SSL_set_alpn_protos` wants it.
pub fn alpn_wire(cluster_id: &NodeId) -> Vec<u8> {
    let p = alpn_protocol(cluster_id);
    let mut w = Vec::with_capacity(p.len() + 1);
    w.push(p.len() as u8);
    w.extend_from_slice(&p);
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_names_the_cluster_in_hex_with_a_length_prefix() {
        let id = NodeId::from_bytes(&[0xab; 20]).unwrap();
        let p = alpn_protocol(&id);
        assert_eq!(p, format!("xlreg/1/{}", "ab".repeat(20)).into_bytes());
        let w = alpn_wire(&id);
        assert_eq!(w[0] as usize, p.len());
        assert_eq!(&w[1..], &p[..]);
    }
}
