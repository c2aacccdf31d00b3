//! Certificates whose signatures already checked out, remembered by the
//! SHA-256 of their DER, so that a peer's repeated handshakes skip the
//! ECDSA self-signature and RSA-PSS key-binding verifications.
//!
//! Why this is safe: what is remembered is only what a signature
//! verification proved about exact bytes — "this certificate is signed by
//! its own key", "this binding of this certificate key verifies with the
//! sig key whose SPKI is S, until T". Those are pure functions of the
//! certificate's DER (named by its SHA-256) and of S, so re-checking them
//! could never give another answer. Everything that depends on the current
//! view or the time is decided on every handshake by
//! [`Pins::check_cert`](super::Pins::check_cert): whether S (or the
//! certificate key) is pinned *now*, whether the certificate and the
//! binding are still valid *now*. Possession of the certificate's private
//! key is proven by TLS itself in every handshake (CertificateVerify),
//! which this does not touch. Refusals are never remembered.
//!
//! Bounded: at most [`CAPACITY`] entries per process; when full, the cache
//! is emptied and refills with the certificates in use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use openssl::hash::MessageDigest;
use openssl::x509::X509Ref;

/// Most certificates remembered at once (a few hundred bytes each).
pub const CAPACITY: usize = 1024;

/// What the signature checks of one certificate proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proven {
    /// The certificate's key, SPKI DER.
    pub spki: Vec<u8>,
    /// Its key binding, if the key was accepted through one.
    pub binding: Option<ProvenBinding>,
}

/// A key binding whose signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenBinding {
    /// The sig key that signed it, SPKI DER.
    pub signer_spki: Vec<u8>,
    /// Its end, Unix seconds.
    pub not_after: u64,
}

type Cache = Mutex<HashMap<[u8; 32], Arc<Proven>>>;

fn cache() -> &'static Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The key of a certificate in the cache: SHA-256 of its DER.
pub fn digest(cert: &X509Ref) -> Option<[u8; 32]> {
    let d = cert.digest(MessageDigest::sha256()).ok()?;
    d.as_ref().try_into().ok()
}

/// What was proven about the certificate with this digest, if anything.
pub fn get(digest: &[u8; 32]) -> Option<Arc<Proven>> {
    let c = cache().lock().unwrap_or_else(|p| p.into_inner());
    c.get(digest).cloned()
}

/// Remember what was proven about the certificate with this digest.
pub fn put(digest: [u8; 32], p: Arc<Proven>) {
    let mut c = cache().lock().unwrap_or_else(|p| p.into_inner());
    if c.len() >= CAPACITY {
        c.clear();
    }
    c.insert(digest, p);
}
