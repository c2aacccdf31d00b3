//! Turning a byte stream into whole session messages (spec §2.2).
//!
//! The xlReg protocol has no framing: a Go peer treats one `read()` as one
//! message. We never trust single reads. In [`Framing::Legacy`] (any Go
//! peer) bytes are accumulated until the whole buffer opens cleanly: a
//! plausible length, strict padding, valid protobuf and, for ClusterMembers,
//! as many tokens as `Which` has bits. Because the protocol is lockstep the
//! peer sends nothing more until we answer, so a buffer that opens cleanly
//! is the whole message.
//!
//! Between two xlreg peers that both proposed version ≥ 2.0 in the
//! handshake, [`Framing::LengthPrefixed`] puts a 4-byte big-endian length
//! before each sealed message. That lifts the 16 KiB limit and makes
//! reassembly exact. A Go peer never negotiates it.

use super::hello::GO_SERVER_VERSION;
use super::msg::{Tag, XlRegMsg};
use super::seal::{plausible_sealed_len, SessionKey};
use super::types::DecimalVersion;
use super::WireError;

/// The largest message a Go peer can receive in one read.
pub const LEGACY_MAX_MESSAGE: usize = 16 * 1024;
/// The largest sealed message accepted in length-prefixed mode.
pub const FRAMED_MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// The version xlreg peers propose/answer to switch on length-prefixed
/// framing (and the extensions that come with it).
pub const EXT_VERSION: DecimalVersion = DecimalVersion::new(2, 0, 0, 0);

/// How session messages are delimited on the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// The Go protocol: no delimiter, ≤ 16 KiB, one write per message.
    Legacy,
    /// xlreg extension: 4-byte big-endian length, then the sealed message.
    LengthPrefixed,
}

impl Framing {
    /// Server side: what to answer in the HelloReply for the client's
    /// proposed version, and the framing that follows.
    pub fn server_negotiate(client_version: DecimalVersion) -> (Framing, DecimalVersion) {
        if client_version.major() >= EXT_VERSION.major() {
            (Framing::LengthPrefixed, EXT_VERSION)
        } else {
            (Framing::Legacy, GO_SERVER_VERSION)
        }
    }

    /// Client side: the framing after the handshake.
    pub fn client_negotiate(proposed: DecimalVersion, server_reply: DecimalVersion) -> Framing {
        if proposed.major() >= EXT_VERSION.major() && server_reply.major() >= EXT_VERSION.major() {
            Framing::LengthPrefixed
        } else {
            Framing::Legacy
        }
    }

    /// The largest sealed message this framing carries.
    pub fn max_message(self) -> usize {
        match self {
            Framing::Legacy => LEGACY_MAX_MESSAGE,
            Framing::LengthPrefixed => FRAMED_MAX_MESSAGE,
        }
    }

    /// Seal and frame a message: the bytes to send in one write.
    pub fn encode(self, key: &SessionKey, msg: &XlRegMsg) -> Vec<u8> {
        self.encode_body(key, &msg.to_bytes())
    }

    /// Seal and frame an already-encoded protobuf body.
    pub fn encode_body(self, key: &SessionKey, body: &[u8]) -> Vec<u8> {
        match self {
            Framing::Legacy => key.seal_body(body),
            Framing::LengthPrefixed => {
                // Prefix, IV and ciphertext written in place: no copy of
                // the sealed body.
                let len = crate::wire::seal::sealed_len(body.len());
                let mut out = Vec::with_capacity(len + 4);
                out.extend_from_slice(&(len as u32).to_be_bytes());
                key.seal_body_into(body, &mut out);
                debug_assert_eq!(out.len(), len + 4);
                out
            }
        }
    }
}

/// Accumulates received bytes and yields whole messages.
#[derive(Debug)]
pub struct Reassembler {
    framing: Framing,
    buf: Vec<u8>,
    max: usize,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new(framing: Framing) -> Self {
        Self::with_limit(framing, framing.max_message())
    }

    /// An empty reassembler refusing messages over `max` bytes (never more
    /// than the framing allows). Servers use a small limit: requests are
    /// small, and a bound keeps a hostile peer from using memory.
    pub fn with_limit(framing: Framing, max: usize) -> Self {
        Reassembler {
            framing,
            buf: Vec::new(),
            max: max.min(framing.max_message()),
        }
    }

    /// Add received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes held that are not yet a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, `Ok(None)` if more bytes are needed, or an
    /// error when the bytes can never become a valid message.
    pub fn try_next(&mut self, key: &SessionKey) -> Result<Option<XlRegMsg>, WireError> {
        match self.framing {
            Framing::Legacy => {
                if self.buf.len() > self.max {
                    return Err(WireError::MessageTooLong {
                        len: self.buf.len(),
                        max: self.max,
                    });
                }
                if !plausible_sealed_len(self.buf.len()) {
                    return Ok(None);
                }
                match key.open(&self.buf) {
                    Ok(m) if m.tag() != Some(Tag::ClusterMembers) || m.tokens_match_which() => {
                        self.buf.clear();
                        Ok(Some(m))
                    }
                    _ => Ok(None),
                }
            }
            Framing::LengthPrefixed => {
                if self.buf.len() < 4 {
                    return Ok(None);
                }
                let len = u32::from_be_bytes(self.buf[..4].try_into().expect("4")) as usize;
                if len > self.max {
                    return Err(WireError::MessageTooLong { len, max: self.max });
                }
                if self.buf.len() < 4 + len {
                    return Ok(None);
                }
                let msg = key.open(&self.buf[4..4 + len]);
                self.buf.drain(..4 + len);
                msg.map(Some)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::msg::Token;
    use crate::wire::types::{NodeId, Which};
    use proptest::prelude::*;

    fn big_reply() -> XlRegMsg {
        let t = Token {
            name: Some(b"m".to_vec()),
            comms_key: Some(vec![5; 300]),
            ..Default::default()
        };
        XlRegMsg::cluster_members(&[1; 20], Which(0b111), vec![t.clone(), t.clone(), t])
    }

    #[test]
    fn negotiation_only_between_xlreg_peers() {
        let go_client = DecimalVersion(0);
        assert_eq!(
            Framing::server_negotiate(go_client),
            (Framing::Legacy, GO_SERVER_VERSION)
        );
        assert_eq!(
            Framing::server_negotiate(EXT_VERSION),
            (Framing::LengthPrefixed, EXT_VERSION)
        );
        assert_eq!(
            Framing::client_negotiate(EXT_VERSION, GO_SERVER_VERSION),
            Framing::Legacy
        );
        assert_eq!(
            Framing::client_negotiate(EXT_VERSION, EXT_VERSION),
            Framing::LengthPrefixed
        );
    }

    #[test]
    fn legacy_truncated_cluster_members_waits_for_the_rest() {
        let key = SessionKey([4; 32]);
        let full = big_reply();
        // A prefix that happens to be a valid message with fewer tokens than
        // Which says must not be taken as the message.
        let mut short = full.clone();
        short.tokens.pop();
        let mut r = Reassembler::new(Framing::Legacy);
        r.push(&Framing::Legacy.encode(&key, &short));
        assert!(r.try_next(&key).unwrap().is_none());
    }

    #[test]
    fn legacy_oversized_garbage_is_an_error() {
        let key = SessionKey([4; 32]);
        let mut r = Reassembler::new(Framing::Legacy);
        r.push(&vec![0u8; LEGACY_MAX_MESSAGE + 1]);
        assert!(matches!(
            r.try_next(&key),
            Err(WireError::MessageTooLong { .. })
        ));
    }

    #[test]
    fn framed_huge_length_is_an_error() {
        let key = SessionKey([4; 32]);
        let mut r = Reassembler::new(Framing::LengthPrefixed);
        r.push(&u32::MAX.to_be_bytes());
        assert!(r.try_next(&key).is_err());
    }

    proptest! {
        #[test]
        fn any_split_reassembles(cuts in proptest::collection::vec(1usize..200, 0..40),
                                 framed in any::<bool>()) {
            let key = SessionKey([4; 32]);
            let framing = if framed { Framing::LengthPrefixed } else { Framing::Legacy };
            let msgs = [XlRegMsg::join_by_id(&NodeId::from_bytes(&[3; 20]).unwrap()), big_reply(), XlRegMsg::bye()];
            for m in &msgs {
                let wire = framing.encode(&key, m);
                let mut r = Reassembler::new(framing);
                let mut pos = 0;
                let mut got = None;
                for c in cuts.iter().copied().chain(std::iter::repeat(wire.len())) {
                    let end = (pos + c).min(wire.len());
                    r.push(&wire[pos..end]);
                    pos = end;
                    if let Some(x) = r.try_next(&key).unwrap() {
                        got = Some(x);
                        break;
                    }
                    prop_assert!(pos < wire.len(), "whole message did not decode");
                }
                prop_assert_eq!(pos, wire.len(), "message taken before it was complete");
                prop_assert_eq!(got.as_ref(), Some(m));
                prop_assert_eq!(r.buffered(), 0);
            }
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400), framed in any::<bool>()) {
            let key = SessionKey([4; 32]);
            let mut r = Reassembler::new(if framed { Framing::LengthPrefixed } else { Framing::Legacy });
            r.push(&data);
            let _ = r.try_next(&key);
        }
    }
}
