//! Cryptographic primitives of the protocol (spec §3, §11.6), on OpenSSL:
//! RSA-OAEP with SHA-1 and an empty label for the Hello, AES-256-CBC with a
//! fresh IV per message and PKCS#7 padding for everything after it,
//! RSASSA-PKCS1-v1_5 with SHA-1 for member tokens; RSA public keys travel
//! as DER SubjectPublicKeyInfo and appear in regCred.dat as `ssh-rsa`
//! lines.
//!
//! Why OpenSSL: its RSA private-key operations are blinded and constant-time
//! (no open timing advisory, unlike some pure-Rust RSA versions), and its key
//! generation is fast — key generation dominates "a cluster in seconds".
//! Everything here is a plain function over bytes; no I/O.
//!
//! One concern per file: `keys.rs` holds the RSA keys, their operations
//! and the bounds a key must meet; `formats.rs` their encodings (SPKI DER,
//! PEM, OpenSSH); `aes.rs` AES-256-CBC sealing. Everything is re-exported
//! here, at the paths it always had.

use openssl::hash::{hash, MessageDigest};

use super::WireError;

mod aes;
mod formats;
mod keys;

pub use aes::*;
#[cfg(any(test, feature = "__test-vectors"))]
pub use formats::spki_der_from_parts;
pub use keys::*;

fn ossl(what: &str) -> impl FnOnce(openssl::error::ErrorStack) -> WireError + '_ {
    move |e| WireError::Crypto(format!("{what}: {e}"))
}

/// Fill `buf` with cryptographically secure random bytes.
pub fn random_bytes(buf: &mut [u8]) {
    openssl::rand::rand_bytes(buf).expect("the OpenSSL random generator failed");
}

/// Fresh random array.
pub fn random_array<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    random_bytes(&mut b);
    b
}

/// SHA-1 digest.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let d = hash(MessageDigest::sha1(), data).expect("SHA-1");
    let mut out = [0u8; 20];
    out.copy_from_slice(&d);
    out
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(openssl::sha::sha256(data))
}

/// Two 1024-bit key pairs generated once per test binary, for unit tests
/// that need keys but not fresh ones.
#[cfg(test)]
pub(crate) fn test_keys() -> &'static (PrivateKey, PrivateKey) {
    static K: std::sync::OnceLock<(PrivateKey, PrivateKey)> = std::sync::OnceLock::new();
    K.get_or_init(|| {
        (
            PrivateKey::generate(1024).unwrap(),
            PrivateKey::generate(1024).unwrap(),
        )
    })
}

/// The public halves of [`test_keys`].
#[cfg(test)]
pub(crate) fn test_public_keys() -> &'static (PublicKey, PublicKey) {
    static K: std::sync::OnceLock<(PublicKey, PublicKey)> = std::sync::OnceLock::new();
    K.get_or_init(|| (test_keys().0.public(), test_keys().1.public()))
}
