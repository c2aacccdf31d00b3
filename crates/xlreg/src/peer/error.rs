//! Everything that can go wrong on a peer channel. Each error names the
//! address and, when known, the member; a refusal says which side refused
//! and why, so both ends of a failed handshake can tell what happened.
//!
//! The crate's convention (see [`crate::ErrorChain`]): an error either
//! prints its cause or returns it from [`std::error::Error::source`], never
//! both, so `{:#}` and `ErrorChain` print each text once. Here only
//! [`PeerError::Io`] has a source (the OS error); a refusal's reason *is*
//! the message, so [`PeerError::Refused`] prints it and has no source (read
//! it structured with [`PeerError::refusal`]).

use std::time::Duration;

use super::pin::Refusal;

/// A peer channel failure.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// A socket operation failed. The OS error is the
    /// [`source`](std::error::Error::source), not part of this message.
    #[error("{what} {addr}")]
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
    /// We refused the peer. The reason is part of this message (and not a
    /// [`source`](std::error::Error::source)); [`PeerError::refusal`] gives
    /// it structured.
    #[error("refused {addr}: {why}")]
    Refused {
        /// The peer's address.
        addr: String,
        /// Why.
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

    /// The first link of `e`'s chain (its message or a source's) whose text
    /// repeats in an earlier link, if any: what `{:#}` and
    /// [`ErrorChain`](crate::ErrorChain) would print twice. For tests of the
    /// error convention.
    pub(crate) fn repeated_cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
        let mut texts = vec![e.to_string()];
        let mut cause = e.source();
        while let Some(c) = cause {
            let t = c.to_string();
            if !t.is_empty() && texts.iter().any(|earlier| earlier.contains(&t)) {
                return Some(t);
            }
            texts.push(t);
            cause = c.source();
        }
        None
    }

    /// One of each variant, with a cause where the variant has one.
    fn every_variant() -> Vec<PeerError> {
        let os = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        vec![
            PeerError::Io {
                what: "connecting to".into(),
                addr: "127.0.0.1:1".into(),
                source: os(),
            },
            PeerError::Timeout {
                what: "connecting to".into(),
                addr: "127.0.0.1:1".into(),
                after: Duration::from_secs(1),
            },
            PeerError::NotTls {
                addr: "127.0.0.1:1".into(),
                first_byte: b'G',
            },
            PeerError::Refused {
                addr: "127.0.0.1:1".into(),
                why: Refusal::BadSelfSignature,
            },
            PeerError::RefusedByPeer {
                peer: "member 1 (m01)".into(),
                why: "it found our certificate expired".into(),
            },
            PeerError::Tls {
                what: "in the handshake".into(),
                addr: "127.0.0.1:1".into(),
                detail: "bad record mac".into(),
            },
            PeerError::Setup {
                what: "ALPN".into(),
                detail: "x".into(),
            },
            PeerError::Certificate("x".into()),
            PeerError::Usage("no member 7".into()),
        ]
    }

    #[test]
    fn no_variant_prints_its_cause_twice() {
        for e in every_variant() {
            assert_eq!(repeated_cause(&e), None, "{e:?}");
            let io: std::io::Error = e.into();
            assert_eq!(repeated_cause(&io), None, "{io:?}");
        }
        let e = &every_variant()[0];
        assert_eq!(
            crate::ErrorChain(e).to_string(),
            format!(
                "connecting to 127.0.0.1:1: {}",
                std::io::Error::from(std::io::ErrorKind::ConnectionRefused)
            )
        );
        let e = &every_variant()[3];
        assert!(e.to_string().contains("not self-signed"), "{e}");
        assert!(std::error::Error::source(e).is_none());
    }

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
