//! The xlReg wire protocol, sans-IO: crypto, handshake, session sealing,
//! protobuf messages, member tokens and stream reassembly.
//!
//! Nothing in here touches a socket; the server and client are thin tokio
//! layers over these functions, and every piece is tested against the
//! reference vectors of `shared/spec/testdata`.

// One concern per file; the files are private and the public surface is
// the list below, every item at one path (`xlreg::wire::X`).
pub(crate) mod crypto;
pub(crate) mod framing;
pub(crate) mod hello;
pub(crate) mod msg;
pub(crate) mod seal;
pub(crate) mod token;
pub(crate) mod types;

pub use crypto::{
    random_array, random_bytes, KeyLimits, PrivateKey, PublicKey, ABSOLUTE_MAX_MODULUS_BITS,
    DEFAULT_MAX_MODULUS_BITS, MAX_PUBLIC_EXPONENT, MIN_MODULUS_BITS,
};
pub use framing::{Framing, Reassembler, EXT_VERSION, FRAMED_MAX_MESSAGE, LEGACY_MAX_MESSAGE};
pub use hello::{Hello, HelloReply, GO_SERVER_VERSION};
pub use msg::{Evictee, Tag, Token, XlRegMsg, STORAGE_FAILURE};
pub use seal::SessionKey;
pub use token::{digest_input, signed_token, verify_token, verify_token_limited, VerifiedToken};
pub use types::{check_endpoint, DecimalVersion, NodeId, Which};

/// Plumbing that the workspace's vector tests and fuzz targets drive
/// directly (raw AES, sealed sizes, an unchecked SPKI builder). Not API:
/// only with the private feature `__test-vectors`, and may change in any
/// release.
#[cfg(feature = "__test-vectors")]
#[doc(hidden)]
pub mod internals {
    pub use super::crypto::{
        aes_cbc_open, aes_cbc_raw, aes_cbc_seal, sha1, spki_der_from_parts, AesMode,
    };
    pub use super::seal::{plausible_sealed_len, sealed_len};
}

/// Everything that can be wrong with bytes on the wire or key material.
/// Display texts equal the Go server's ErrDesc strings where one exists.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WireError {
    /// An ID that is not 20 or 32 bytes (Go text).
    #[error("bad length for nodeID")]
    BadNodeIdLength(usize),
    /// Text that is not hex.
    #[error("bad hex: {0}")]
    BadHex(String),
    /// A malformed `a.b.c.d` version string.
    #[error("badly formated VERSION: {0:?}")]
    BadVersion(String),
    /// A malformed `host:port`.
    #[error("bad endpoint {0}")]
    BadEndpoint(String),
    /// An OpenSSL failure.
    #[error("crypto failure: {0}")]
    Crypto(String),
    /// Key material that does not parse.
    #[error("bad key: {0}")]
    BadKey(String),
    /// A well-formed key that is not RSA.
    #[error("x509: public key is not an RSA key")]
    NotRsaKey,
    /// OAEP decryption failed.
    #[error("hello: RSA-OAEP decryption failed")]
    Decrypt,
    /// A Hello ciphertext that is not as long as the modulus.
    #[error("hello: ciphertext is {got} bytes, expected {expected}")]
    BadHelloLength {
        /// Modulus length.
        expected: usize,
        /// Received length.
        got: usize,
    },
    /// A Hello/HelloReply plaintext that is not 44 bytes.
    #[error("hello: plaintext is {0} bytes, expected 44")]
    BadHelloPlaintext(usize),
    /// A HelloReply that is not 64 bytes.
    #[error("hello reply: {0} bytes on the wire, expected 64")]
    BadHelloReplyLength(usize),
    /// A ciphertext whose length cannot be a sealed message.
    #[error("ciphertext of {0} bytes is not IV + whole AES blocks")]
    BadCiphertextLength(usize),
    /// PKCS#7 padding that is not strictly valid.
    #[error("incorrectly padded data")]
    BadPadding,
    /// Protobuf decoding failed.
    #[error("protobuf: {0}")]
    Protobuf(String),
    /// A signature that does not verify (Go text).
    #[error("crypto/rsa: verification error")]
    BadSignature,
    /// A message larger than the framing allows.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLong {
        /// Length seen.
        len: usize,
        /// Limit.
        max: usize,
    },
}
