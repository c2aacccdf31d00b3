//! Sealing session messages (spec §6): `IV(16) ‖ AES-256-CBC(key2, IV, PKCS7(body))`
//! with a fresh IV per message and no chaining across messages.

use super::crypto::{aes_cbc_open, aes_cbc_seal_into, random_array, BLOCK};
use super::msg::XlRegMsg;
use super::WireError;

/// The AES-256 session key (key2), used in both directions.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(pub [u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(redacted)")
    }
}

/// Smallest possible sealed message: IV + one block.
pub const MIN_SEALED_LEN: usize = 32;

/// Wire length of a sealed body of `body_len` bytes.
pub fn sealed_len(body_len: usize) -> usize {
    BLOCK + (body_len / BLOCK + 1) * BLOCK
}

/// Could `len` bytes be one sealed message? (≥ 32 and block-aligned after
/// the IV.)
pub fn plausible_sealed_len(len: usize) -> bool {
    len >= MIN_SEALED_LEN && (len - BLOCK) % BLOCK == 0
}

impl SessionKey {
    /// Seal raw protobuf bytes with a fresh random IV.
    pub fn seal_body(&self, body: &[u8]) -> Vec<u8> {
        self.seal_body_iv(&random_array(), body)
    }

    /// Seal with a given IV. Only for reproducing test vectors: reusing an
    /// IV leaks data.
    #[cfg(feature = "__test-vectors")]
    #[doc(hidden)]
    pub fn seal_body_with_iv(&self, iv: &[u8; 16], body: &[u8]) -> Vec<u8> {
        self.seal_body_iv(iv, body)
    }

    fn seal_body_iv(&self, iv: &[u8; 16], body: &[u8]) -> Vec<u8> {
        let mut wire = Vec::with_capacity(sealed_len(body.len()));
        self.seal_body_iv_into(iv, body, &mut wire);
        wire
    }

    /// Seal raw protobuf bytes with a fresh random IV, appending IV and
    /// ciphertext to `out` (after a length prefix, say) without a copy.
    pub fn seal_body_into(&self, body: &[u8], out: &mut Vec<u8>) {
        self.seal_body_iv_into(&random_array(), body, out)
    }

    fn seal_body_iv_into(&self, iv: &[u8; 16], body: &[u8], out: &mut Vec<u8>) {
        out.reserve(sealed_len(body.len()));
        out.extend_from_slice(iv);
        aes_cbc_seal_into(&self.0, iv, body, out);
    }

    /// Open a sealed message to its protobuf bytes. Lengths that cannot be a
    /// sealed message (the Go server's crash triggers) are errors.
    pub fn open_body(&self, wire: &[u8]) -> Result<Vec<u8>, WireError> {
        if !plausible_sealed_len(wire.len()) {
            return Err(WireError::BadCiphertextLength(wire.len()));
        }
        let iv: [u8; 16] = wire[..BLOCK].try_into().expect("16");
        aes_cbc_open(&self.0, &iv, &wire[BLOCK..])
    }

    /// Encode and seal a message.
    pub fn seal(&self, msg: &XlRegMsg) -> Vec<u8> {
        self.seal_body(&msg.to_bytes())
    }

    /// Open and decode a message.
    pub fn open(&self, wire: &[u8]) -> Result<XlRegMsg, WireError> {
        XlRegMsg::from_bytes(&self.open_body(wire)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_and_unaligned_messages_are_errors() {
        let k = SessionKey([1; 32]);
        for n in [0, 1, 5, 15, 16, 17, 31, 33, 47] {
            assert!(k.open_body(&vec![0u8; n]).is_err(), "{n}");
        }
    }

    #[test]
    fn sealed_lengths() {
        assert_eq!(sealed_len(2), 32);
        assert_eq!(sealed_len(16), 48);
        assert_eq!(SessionKey([1; 32]).seal(&XlRegMsg::bye()).len(), 32);
    }

    proptest! {
        #[test]
        fn seal_open_round_trips(body in proptest::collection::vec(any::<u8>(), 0..2000),
                                 key in any::<[u8; 32]>()) {
            let k = SessionKey(key);
            let w = k.seal_body(&body);
            prop_assert_eq!(w.len(), sealed_len(body.len()));
            prop_assert_eq!(k.open_body(&w).unwrap(), body);
        }

        #[test]
        fn open_never_panics(wire in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = SessionKey([9; 32]).open(&wire);
        }
    }
}
