//! The member token and its signature (spec §9.1).
//!
//! The signature is RSASSA-PKCS1-v1_5/SHA-1 by the member's sig key over
//! `Name ‖ Attrs (u64 LE) ‖ CommsKey DER ‖ SigKey DER ‖ MyEnds…`, with no
//! separators and without the ID. Verification works on the exact bytes
//! received, so a token is never re-encoded before it is checked.

use super::crypto::{KeyLimits, PrivateKey, PublicKey};
use super::msg::Token;
use super::types::NodeId;
use super::WireError;

/// The exact byte string M that the member signs.
pub fn digest_input(t: &Token) -> Vec<u8> {
    let mut m = Vec::with_capacity(
        t.name.as_ref().map_or(0, Vec::len)
            + 8
            + t.comms_key.as_ref().map_or(0, Vec::len)
            + t.sig_key.as_ref().map_or(0, Vec::len)
            + t.my_ends.iter().map(Vec::len).sum::<usize>(),
    );
    m.extend_from_slice(t.name.as_deref().unwrap_or_default());
    m.extend_from_slice(&t.attrs.unwrap_or(0).to_le_bytes());
    m.extend_from_slice(t.comms_key.as_deref().unwrap_or_default());
    m.extend_from_slice(t.sig_key.as_deref().unwrap_or_default());
    for e in &t.my_ends {
        m.extend_from_slice(e);
    }
    m
}

/// Build a signed Member token from a node's parts.
pub fn signed_token(
    name: &str,
    attrs: u64,
    id: Option<&NodeId>,
    comms_key: &PublicKey,
    sig_key: &PrivateKey,
    endpoints: &[String],
) -> Result<Token, WireError> {
    let mut t = Token {
        name: Some(name.as_bytes().to_vec()),
        attrs: Some(attrs),
        id: id.map(|i| i.as_bytes().to_vec()),
        comms_key: Some(comms_key.to_spki_der()),
        sig_key: Some(sig_key.public().to_spki_der()),
        my_ends: endpoints.iter().map(|e| e.as_bytes().to_vec()).collect(),
        dig_sig: None,
    };
    t.dig_sig = Some(sig_key.sign_sha1(&digest_input(&t))?);
    Ok(t)
}

/// A token whose keys parsed and whose signature verified.
#[derive(Clone, Debug)]
pub struct VerifiedToken {
    /// The ID the member asked for (`None`: the registry assigns one).
    pub id: Option<NodeId>,
    /// Parsed comms key.
    pub comms_key: PublicKey,
    /// Parsed sig key.
    pub sig_key: PublicKey,
    /// The token as received, minus DigSig: what other members will get.
    pub token: Token,
}

/// Check a Member token in the Go server's order: parse both keys, verify
/// the signature, then check the ID length. Error texts match the Go server
/// where it has one (spec §10.1). Keys must be within the default
/// [`KeyLimits`].
pub fn verify_token(t: &Token) -> Result<VerifiedToken, WireError> {
    verify_token_limited(t, &KeyLimits::default())
}

/// [`verify_token`] with explicit key limits: both keys' shapes are
/// checked before the signature costs any RSA arithmetic.
pub fn verify_token_limited(t: &Token, limits: &KeyLimits) -> Result<VerifiedToken, WireError> {
    let comms_key =
        PublicKey::from_spki_der_limited(t.comms_key.as_deref().unwrap_or_default(), limits)?;
    let sig_key =
        PublicKey::from_spki_der_limited(t.sig_key.as_deref().unwrap_or_default(), limits)?;
    let sig = t.dig_sig.as_deref().unwrap_or_default();
    sig_key.verify_sha1(&digest_input(t), sig)?;
    let id = match &t.id {
        None => None,
        Some(b) => Some(NodeId::from_bytes(b)?),
    };
    let mut token = t.clone();
    token.dig_sig = None;
    Ok(VerifiedToken {
        id,
        comms_key,
        sig_key,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> &'static (PrivateKey, PrivateKey) {
        crate::wire::crypto::test_keys()
    }

    #[test]
    fn tampered_or_unsigned_tokens_are_refused() {
        let (ck, sk) = keys();
        let eps = vec!["127.0.0.1:1".to_string()];
        let t = signed_token("n", 1, None, &ck.public(), sk, &eps).unwrap();
        assert!(verify_token(&t).is_ok());
        let mut bad = t.clone();
        bad.my_ends[0] = b"127.0.0.1:2".to_vec();
        assert!(matches!(verify_token(&bad), Err(WireError::BadSignature)));
        let mut unsigned = t.clone();
        unsigned.dig_sig = None;
        assert!(matches!(
            verify_token(&unsigned),
            Err(WireError::BadSignature)
        ));
        let mut nokey = t.clone();
        nokey.comms_key = None;
        assert!(matches!(verify_token(&nokey), Err(WireError::BadKey(_))));
        // Re-signed by another key than the one in the token.
        let mut forged = t;
        forged.dig_sig = Some(ck.sign_sha1(&digest_input(&forged)).unwrap());
        assert!(matches!(
            verify_token(&forged),
            Err(WireError::BadSignature)
        ));
    }

    #[test]
    fn id_of_wrong_length_is_refused_after_signature() {
        let (ck, sk) = keys();
        let mut t = signed_token("n", 0, None, &ck.public(), sk, &[]).unwrap();
        t.id = Some(vec![]); // ID is not signed
        assert!(matches!(
            verify_token(&t),
            Err(WireError::BadNodeIdLength(0))
        ));
        t.id = Some(vec![1; 21]);
        assert_eq!(
            verify_token(&t).unwrap_err().to_string(),
            "bad length for nodeID"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn sign_verify_round_trips(name in ".{0,20}", attrs in any::<u64>(),
                                   eps in proptest::collection::vec("[a-z0-9.:]{0,20}", 0..4),
                                   id in proptest::option::of(any::<[u8; 20]>())) {
            let (ck, sk) = keys();
            let id = id.map(|b| NodeId::from_bytes(&b).unwrap());
            let t = signed_token(&name, attrs, id.as_ref(), &ck.public(), sk, &eps).unwrap();
            let v = verify_token(&t).unwrap();
            prop_assert_eq!(v.id, id);
            prop_assert_eq!(v.token.dig_sig, None);
        }
    }
}
