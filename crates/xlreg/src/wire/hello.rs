//! The handshake (spec §4–5): the client's Hello — 44 bytes (key1, salt,
//! version) RSA-OAEP-SHA-1-encrypted to the registry's comms key — and the
//! server's 64-byte HelloReply — IV and AES-256-CBC under key1 of 44 bytes
//! carrying the session key key2, a salt and the server's version.
//!
//! The version fields are how this crate negotiates its extensions without
//! disturbing Go peers: a Go client sends version 0 and a Go server always
//! answers 1.9.24, so "both sides said ≥ 2.0" can only happen between xlreg
//! peers (see [`Framing`](super::Framing)).

use super::crypto::{aes_cbc_open, aes_cbc_seal, random_array, PrivateKey, PublicKey};
use super::types::DecimalVersion;
use super::WireError;

/// Plaintext length of Hello and HelloReply.
pub const PLAINTEXT_LEN: usize = 44;
/// Exact wire length of a HelloReply: IV (16) + one 48-byte CBC ciphertext.
pub const HELLO_REPLY_LEN: usize = 64;
/// The version the Go server always sends: "1.9.24".
pub const GO_SERVER_VERSION: DecimalVersion = DecimalVersion::new(1, 9, 24, 0);

/// The client's Hello (44-byte plaintext: key1 ‖ salt1 ‖ version1 LE).
#[derive(Clone, PartialEq, Eq)]
pub struct Hello {
    /// AES-256 key protecting only the HelloReply.
    pub key1: [u8; 32],
    /// Random, ignored by servers.
    pub salt1: [u8; 8],
    /// The client's proposed version.
    pub version: DecimalVersion,
}

impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hello(version {}, keys redacted)", self.version)
    }
}

impl Hello {
    /// A fresh Hello with random key1 and salt1.
    pub fn new(version: DecimalVersion) -> Self {
        Hello {
            key1: random_array(),
            salt1: random_array(),
            version,
        }
    }

    /// The 44-byte plaintext.
    pub fn to_plaintext(&self) -> [u8; PLAINTEXT_LEN] {
        let mut p = [0u8; PLAINTEXT_LEN];
        p[..32].copy_from_slice(&self.key1);
        p[32..40].copy_from_slice(&self.salt1);
        p[40..].copy_from_slice(&self.version.to_wire());
        p
    }

    /// Parse a plaintext; anything but exactly 44 bytes (for example the
    /// legacy 60-byte layout) is refused.
    pub fn from_plaintext(p: &[u8]) -> Result<Self, WireError> {
        if p.len() != PLAINTEXT_LEN {
            return Err(WireError::BadHelloPlaintext(p.len()));
        }
        Ok(Hello {
            key1: p[..32].try_into().expect("32"),
            salt1: p[32..40].try_into().expect("8"),
            version: DecimalVersion::from_wire(p[40..44].try_into().expect("4")),
        })
    }

    /// Encrypt for the registry's comms key (RSA-OAEP-SHA1). The result is
    /// as long as the key's modulus.
    pub fn seal(&self, server_ck: &PublicKey) -> Result<Vec<u8>, WireError> {
        server_ck.oaep_encrypt(&self.to_plaintext())
    }

    /// Decrypt and parse a Hello with the registry's private comms key.
    pub fn open(server_ck: &PrivateKey, ciphertext: &[u8]) -> Result<Self, WireError> {
        Self::from_plaintext(&server_ck.oaep_decrypt(ciphertext)?)
    }
}

/// The server's HelloReply (44-byte plaintext: key2 ‖ salt2 ‖ version2 LE).
#[derive(Clone, PartialEq, Eq)]
pub struct HelloReply {
    /// The session key for every later message, both directions.
    pub key2: [u8; 32],
    /// Random, unused.
    pub salt2: [u8; 8],
    /// The server's version.
    pub version: DecimalVersion,
}

impl std::fmt::Debug for HelloReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HelloReply(version {}, keys redacted)", self.version)
    }
}

impl HelloReply {
    /// A fresh reply with a random session key.
    pub fn new(version: DecimalVersion) -> Self {
        HelloReply {
            key2: random_array(),
            salt2: random_array(),
            version,
        }
    }

    /// The 44-byte plaintext.
    pub fn to_plaintext(&self) -> [u8; PLAINTEXT_LEN] {
        let mut p = [0u8; PLAINTEXT_LEN];
        p[..32].copy_from_slice(&self.key2);
        p[32..40].copy_from_slice(&self.salt2);
        p[40..].copy_from_slice(&self.version.to_wire());
        p
    }

    /// Seal under key1 with a fresh random IV: exactly 64 bytes.
    pub fn seal(&self, key1: &[u8; 32]) -> Vec<u8> {
        self.seal_iv(key1, &random_array())
    }

    /// Seal with a given IV. Only for reproducing test vectors: a fixed IV
    /// must never be used on a real connection.
    #[cfg(feature = "__test-vectors")]
    #[doc(hidden)]
    pub fn seal_with_iv(&self, key1: &[u8; 32], iv: &[u8; 16]) -> Vec<u8> {
        self.seal_iv(key1, iv)
    }

    fn seal_iv(&self, key1: &[u8; 32], iv: &[u8; 16]) -> Vec<u8> {
        let mut wire = iv.to_vec();
        wire.extend(aes_cbc_seal(key1, iv, &self.to_plaintext()));
        debug_assert_eq!(wire.len(), HELLO_REPLY_LEN);
        wire
    }

    /// Open a HelloReply: the wire must be exactly 64 bytes, the padding
    /// strict, the plaintext 44 bytes.
    pub fn open(key1: &[u8; 32], wire: &[u8]) -> Result<Self, WireError> {
        if wire.len() != HELLO_REPLY_LEN {
            return Err(WireError::BadHelloReplyLength(wire.len()));
        }
        let iv: [u8; 16] = wire[..16].try_into().expect("16");
        let p = aes_cbc_open(key1, &iv, &wire[16..])?;
        if p.len() != PLAINTEXT_LEN {
            return Err(WireError::BadHelloPlaintext(p.len()));
        }
        Ok(HelloReply {
            key2: p[..32].try_into().expect("32"),
            salt2: p[32..40].try_into().expect("8"),
            version: DecimalVersion::from_wire(p[40..44].try_into().expect("4")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip_through_rsa() {
        let k = PrivateKey::generate(1024).unwrap();
        let h = Hello::new(DecimalVersion::new(2, 0, 0, 0));
        let ct = h.seal(&k.public()).unwrap();
        assert_eq!(ct.len(), 128);
        assert_eq!(Hello::open(&k, &ct).unwrap(), h);
    }

    #[test]
    fn hello_decoder_rejects_wrong_plaintext_lengths() {
        for n in [0, 43, 45, 60] {
            assert!(matches!(
                Hello::from_plaintext(&vec![0; n]),
                Err(WireError::BadHelloPlaintext(m)) if m == n
            ));
        }
    }

    #[test]
    fn hello_reply_is_64_bytes_and_strict() {
        let key1 = [7u8; 32];
        let r = HelloReply::new(GO_SERVER_VERSION);
        let w = r.seal(&key1);
        assert_eq!(w.len(), 64);
        assert_eq!(HelloReply::open(&key1, &w).unwrap(), r);
        assert!(HelloReply::open(&key1, &w[..63]).is_err());
        assert!(HelloReply::open(&key1, &[w.as_slice(), &[0u8; 16]].concat()).is_err());
        assert!(HelloReply::open(&[8u8; 32], &w).is_err());
    }
}
