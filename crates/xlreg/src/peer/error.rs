//! Everything that can go wrong on a peer channel. Each error names the
//! address and, when known, the member; a refusal says which side refused
//! and why, so both ends of a failed handshake can tell what happened.

use std::time::Duration;

use super::pin::Refusal;

/// A peer channel failure.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// A socket operation failed.
    #[error("{what} {addr}: {source}")]
    Io {
        /// What was being done (`connecting to member 2 (m02) at`, …).
        what: String,
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The handshake did not finish in time.
    #[error("timed out after {after:?} {what} {addr}")]
    Timeout {
        /// What we were waiting for.
        what: String,
        /// The address.
        addr: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The peer sent something that is not a TLS handshake (e.g. a
    /// plain-TCP client).
    #[error("refused {addr}: it does not speak TLS (first byte {first_byte:#04x}, a TLS handshake starts with 0x16)")]
    NotTls {
        /// The peer's address.
        addr: String,
        /// The first byte it sent.
        first_byte: u8,
    },
    /// We refused the peer.
    #[error("refused {addr}: {why}")]
    Refused {
        /// The peer's address.
        addr: String,
        /// Why.
        #[source]
        why: Refusal,
    },
    /// The peer refused us (it sent a TLS alert, or closed the connection
    /// instead of accepting).
    #[error("{peer} refused us: {why}")]
    RefusedByPeer {
        /// The peer (`member 2 (m02) at 127.0.0.1:4000`).
        peer: String,
        /// What its alert means.
        why: String,
    },
    /// Another TLS failure (OpenSSL's text).
    #[error("TLS with {addr} failed {what}: {detail}")]
    Tls {
        /// What was being done.
        what: String,
        /// The address.
        addr: String,
        /// OpenSSL's error text.
        detail: String,
    },
    /// OpenSSL refused to set up a context or connection (before any
    /// peer was involved).
    #[error("setting up TLS ({what}): {detail}")]
    Setup {
        /// What was being set up.
        what: String,
        /// OpenSSL's error text.
        detail: String,
    },
    /// The certificate could not be made.
    #[error("making the TLS certificate: {0}")]
    Certificate(String),
    /// The caller asked for something that cannot be done (no such
    /// member, no such endpoint, an incomplete view).
    #[error("{0}")]
    Usage(String),
}

impl PeerError {
    /// The refusal, when we refused the peer.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            PeerError::Refused { why, .. } => Some(why),
            _ => None,
        }
    }

    /// True when the peer refused us.
    pub fn is_refused_by_peer(&self) -> bool {
        matches!(self, PeerError::RefusedByPeer { .. })
    }
}

/// For code that works in `std::io::Result` (stream adapters, bindings):
/// the text is kept, and the kind says what happened — `TimedOut`,
/// `PermissionDenied` for a refusal either way, `InvalidData` for a peer
/// that does not speak TLS, `InvalidInput` for a usage error, the OS kind
/// for a socket error.
impl From<PeerError> for std::io::Error {
    fn from(e: PeerError) -> Self {
        use std::io::ErrorKind as K;
        let kind = match &e {
            PeerError::Io { source, .. } => source.kind(),
            PeerError::Timeout { .. } => K::TimedOut,
            PeerError::NotTls { .. } => K::InvalidData,
            PeerError::Refused { .. } | PeerError::RefusedByPeer { .. } => K::PermissionDenied,
            PeerError::Usage(_) => K::InvalidInput,
            PeerError::Tls { .. } | PeerError::Setup { .. } | PeerError::Certificate(_) => K::Other,
        };
        std::io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_the_text_and_say_what_happened() {
        let e: std::io::Error = PeerError::RefusedByPeer {
            peer: "member 1 (m01) at 127.0.0.1:1".into(),
            why: "it presented no certificate".into(),
        }
        .into();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("member 1 (m01)"), "{e}");
        let e: std::io::Error = PeerError::NotTls {
            addr: "127.0.0.1:2".into(),
            first_byte: b'G',
        }
        .into();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        let e: std::io::Error = PeerError::Timeout {
            what: "x".into(),
            addr: "y".into(),
            after: Duration::from_secs(1),
        }
        .into();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    }
}
