//! Members talk securely with the keys they registered: mutually
//! authenticated TLS 1.3 between the members of a cluster.
//!
//! Why: registering two RSA public keys is only useful if a booted member
//! can use them to set up an encrypted, authenticated channel to a peer
//! without further help from the registry. This module is that channel,
//! built from standard parts only (OpenSSL's TLS 1.3, no home-made
//! cryptography), with no CA and no certificate files:
//!
//! * Each process makes a **self-signed X.509 certificate in memory** on a
//!   fresh ECDSA P-256 key ([`LocalCert`]): random serial, valid from 5
//!   minutes ago for [`CERT_VALIDITY`], never written to disk. An extension
//!   **binds that key to the member's registered sig key** (`delegation.rs`):
//!   the sig key signs it once per certificate, so a handshake costs no RSA
//!   private-key operation. The sig key is the one that *authenticates* a
//!   member — it already signs the member's token — and in TLS 1.3 the
//!   certificate key is only ever used to sign the handshake
//!   (CertificateVerify); the key exchange is ephemeral (X25519/ECDHE), so
//!   the comms key, which the protocol uses for encryption, would add
//!   nothing here.
//! * Each side **pins** the other: the peer certificate's key binding must
//!   be signed by a sig key from the
//!   [`ClusterView`](crate::client::ClusterView) the registry returned
//!   ([`Pins`]), for that certificate's key, and not have ended (or the
//!   certificate's key must be such a sig key itself, the first version's
//!   form). Which key signed tells the listener which member connected. A
//!   dialer pins exactly the member it meant to reach.
//! * The **cluster ID is bound into the handshake** by ALPN without being
//!   named: the dialer offers only `xlreg/2/<nonce><tag>` ([`alpn_protocol`]),
//!   a fresh random nonce and an HMAC-SHA-256 keyed with the cluster ID over
//!   it ([`cluster_binding_tag`]); the listener recomputes the tag and
//!   refuses anything else, so a node registered in two clusters with one
//!   key cannot be mistaken for a member of the other one, and an observer
//!   of the ClientHello learns neither the cluster ID nor which connections
//!   belong to the same cluster. (The first version, `xlreg/1/<id-hex>`,
//!   named the cluster in clear; it is refused.)
//! * TLS 1.3 only, no session tickets or resumption: every connection is
//!   checked against the current view (a resumed session would skip the
//!   certificate check), and with the P-256 certificate a full handshake
//!   is cheap already.
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
//! Pieces, one concern per file (private; everything public is at
//! `xlreg::peer::X`): `cert.rs` (the certificate), `delegation.rs` (the
//! key binding in it), `pin.rs` (the pinning rules, pure), `verified.rs`
//! (certificates whose signatures already checked out), `tls.rs` (the
//! OpenSSL contexts, usable from bindings and blocking code),
//! `handshake.rs` (driving a handshake over tokio and naming failures),
//! `listener.rs` ([`PeerListener`]), `connect.rs` ([`connect()`],
//! [`PeerConnector`]), `stream.rs` ([`PeerStream`]), `blocking.rs` (the
//! same over std sockets, for threads and bindings), `error.rs`
//! ([`PeerError`]).

pub(crate) mod blocking;
pub(crate) mod cert;
pub(crate) mod connect;
pub(crate) mod delegation;
pub(crate) mod error;
pub(crate) mod handshake;
pub(crate) mod listener;
pub(crate) mod pin;
pub(crate) mod stream;
pub(crate) mod tls;
pub(crate) mod verified;

use std::time::Duration;

use crate::wire::NodeId;

pub use blocking::{BlockingPeerListener, BlockingPeerStream};
pub use cert::{LocalCert, CERT_VALIDITY};
pub use connect::{connect, connect_anonymous, PeerConnector, RETRY_PAUSE};
pub use error::PeerError;
pub use listener::{PeerAcceptor, PeerListener, MAX_PENDING_HANDSHAKES};
pub use pin::{PinnedKey, Pins, Refusal};
pub use stream::{Peer, PeerStream};

/// Plumbing the workspace's peer tests drive directly (raw contexts, the
/// acceptance byte, the key-binding extension). Not API: only with the
/// private feature `__test-vectors`, and may change in any release.
#[cfg(feature = "__test-vectors")]
#[doc(hidden)]
pub mod internals {
    pub use super::delegation::binding_extension;
    pub use super::handshake::{acceptance, NOT_TLS_ANSWER};
    pub use super::pin::UNKNOWN_CLUSTER;
    pub use super::tls::{client_context, client_ssl};
}

/// The byte a listener sends after it has accepted a dialer.
pub const ACCEPTED: u8 = 0x01;

/// How far back a new certificate's validity starts, for peers whose clock
/// is a little behind ours (here, not in `cert.rs`, because the pin
/// checks use it too).
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// How long a handshake (including the [`ACCEPTED`] byte) may take unless
/// told otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Prefix of the ALPN protocol name that binds a connection to a cluster;
/// a random nonce and a keyed hash of the cluster ID follow, in hex
/// ([`alpn_protocol`]).
pub const ALPN_PREFIX: &str = "xlreg/2/";

/// The prefix of the first version of the channel, which named the cluster
/// ID in clear (`xlreg/1/<cluster-id-hex>`); it is refused now, as a
/// connection bound to no cluster.
pub const ALPN_PREFIX_V1: &str = "xlreg/1/";

/// Bytes of the nonce and of the tag in the ALPN name.
pub const BINDING_NONCE_LEN: usize = 16;
const BINDING_TAG_LEN: usize = 16;
const BINDING_LABEL: &[u8] = b"xlreg peer cluster binding v2";

/// The keyed hash that binds a connection to `cluster_id` without naming
/// it: HMAC-SHA-256 keyed with the cluster ID over a label and the
/// dialer's nonce, cut to 16 bytes.
pub fn cluster_binding_tag(cluster_id: &NodeId, nonce: &[u8]) -> [u8; 16] {
    let mut out = [0u8; BINDING_TAG_LEN];
    // HMAC-SHA-256 with a 20-byte key cannot fail in OpenSSL; an
    // all-zero tag would only make the handshake fail, never pass.
    if let Ok(tag) = hmac_sha256(cluster_id.as_bytes(), &[BINDING_LABEL, nonce]) {
        out.copy_from_slice(&tag[..BINDING_TAG_LEN]);
    }
    out
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let key = openssl::pkey::PKey::hmac(key)?;
    let mut s = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)?;
    for p in parts {
        s.update(p)?;
    }
    s.sign_to_vec()
}

/// The ALPN protocol name with which a dialer binds a connection to a
/// cluster: `xlreg/2/<nonce-hex><tag-hex>`, a fresh random nonce and
/// [`cluster_binding_tag`] over it (72 bytes). A passive observer sees
/// neither the cluster ID nor which connections belong to one cluster
/// (the nonce differs each time); the listener recomputes the tag with
/// its own cluster ID and refuses a mismatch.
pub fn alpn_protocol(cluster_id: &NodeId) -> Vec<u8> {
    let mut nonce = [0u8; BINDING_NONCE_LEN];
    if openssl::rand::rand_bytes(&mut nonce).is_err() {
        // Without randomness the binding still holds (the tag is keyed
        // with the cluster ID); only unlinkability is lost.
        nonce = [0; BINDING_NONCE_LEN];
    }
    alpn_protocol_with_nonce(cluster_id, &nonce)
}

/// [`alpn_protocol`] with a given nonce (tests, reproducible examples).
pub fn alpn_protocol_with_nonce(cluster_id: &NodeId, nonce: &[u8; BINDING_NONCE_LEN]) -> Vec<u8> {
    let tag = cluster_binding_tag(cluster_id, nonce);
    format!("{ALPN_PREFIX}{}{}", hex::encode(nonce), hex::encode(tag)).into_bytes()
}

/// Whether the ALPN name `name` binds the connection to `cluster_id`
/// (compared in constant time).
pub fn alpn_binds(name: &[u8], cluster_id: &NodeId) -> bool {
    let Some(rest) = name.strip_prefix(ALPN_PREFIX.as_bytes()) else {
        return false;
    };
    if rest.len() != 2 * (BINDING_NONCE_LEN + BINDING_TAG_LEN) {
        return false;
    }
    let (Ok(nonce), Ok(tag)) = (
        hex::decode(&rest[..2 * BINDING_NONCE_LEN]),
        hex::decode(&rest[2 * BINDING_NONCE_LEN..]),
    ) else {
        return false;
    };
    openssl::memcmp::eq(&cluster_binding_tag(cluster_id, &nonce), &tag)
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
    fn alpn_binds_the_cluster_without_naming_it() {
        let id = NodeId::from_bytes(&[0xab; 20]).unwrap();
        let other = NodeId::from_bytes(&[0xac; 20]).unwrap();
        let p = alpn_protocol(&id);
        assert_eq!(p.len(), ALPN_PREFIX.len() + 64);
        assert!(p.starts_with(b"xlreg/2/"));
        assert!(!String::from_utf8_lossy(&p).contains(&id.to_hex()));
        assert!(alpn_binds(&p, &id));
        assert!(!alpn_binds(&p, &other));
        // A fresh nonce each time: connections of one cluster look unrelated.
        assert_ne!(alpn_protocol(&id), p);
        // Deterministic for a given nonce; any changed byte breaks it.
        let n = [7u8; BINDING_NONCE_LEN];
        let fixed = alpn_protocol_with_nonce(&id, &n);
        assert_eq!(fixed, alpn_protocol_with_nonce(&id, &n));
        for i in ALPN_PREFIX.len()..fixed.len() {
            let mut bad = fixed.clone();
            bad[i] = if bad[i] == b'0' { b'1' } else { b'0' };
            assert!(!alpn_binds(&bad, &id), "byte {i}");
        }
        assert!(!alpn_binds(&fixed[..fixed.len() - 2], &id));
        let v1 = format!("{ALPN_PREFIX_V1}{}", id.to_hex());
        assert!(!alpn_binds(v1.as_bytes(), &id));
        let w = alpn_wire(&id);
        assert_eq!(w[0] as usize, p.len());
        assert!(alpn_binds(&w[1..], &id));
    }
}
