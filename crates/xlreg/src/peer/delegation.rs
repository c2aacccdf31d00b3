//! Cheap handshakes: the member's certificate is on a fast key (ECDSA
//! P-256, made when the certificate is made) and carries, in an extension,
//! a signature by the member's **registered sig key** over that key — the
//! way libp2p's TLS handshake binds a certificate to a peer's identity key
//! (libp2p/specs, tls/tls.md).
//!
//! Why: in TLS 1.3 the certificate key signs every handshake
//! (CertificateVerify). With the RSA sig key as the certificate key that is
//! one RSA private-key operation per handshake on each side; with the
//! binding it is one RSA signature per certificate lifetime, and each
//! handshake costs an ECDSA signature and a few verifications.
//!
//! The extension ([`KEY_BINDING_OID`], not critical) holds one DER OCTET
//! STRING whose content is:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version, 1 |
//! | 8 | end of the binding, Unix seconds, big-endian |
//! | 32 | SHA-256 of the registered sig key's SubjectPublicKeyInfo DER |
//! | rest | RSA-PSS SHA-256 signature (salt = digest length) by that key |
//!
//! The signature covers [`BINDING_LABEL`], the version, the end, the
//! signer's hash and the certificate's own SubjectPublicKeyInfo DER. A
//! peer accepts the certificate when the signer is a pinned (registered)
//! key, the signature verifies with it, the binding has not ended, and the
//! certificate itself passes the usual checks (self-signed by its key,
//! valid now).

use std::time::{SystemTime, UNIX_EPOCH};

use foreign_types::ForeignTypeRef;
use openssl::asn1::{Asn1Object, Asn1OctetStringRef};
use openssl::hash::MessageDigest;
use openssl::pkey::{HasPublic, PKeyRef, Private};
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};
use openssl::x509::X509Ref;

/// The extension's OID: a UUID-derived OID (ITU-T X.667, arc 2.25), which
/// needs no registration.
pub const KEY_BINDING_OID: &str = "2.25.130738377897727324131961753871655835527";

/// Domain separation of the signed message.
pub const BINDING_LABEL: &[u8] = b"xlreg peer certificate key binding v1\0";

const VERSION: u8 = 1;
const HEADER: usize = 1 + 8 + 32;
/// Largest extension content accepted (a 16384-bit RSA signature and the
/// header fit).
const MAX_CONTENT: usize = HEADER + 2048;

/// A parsed binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyBinding {
    /// End of the binding, Unix seconds.
    pub not_after: u64,
    /// SHA-256 of the signer's SPKI DER.
    pub signer_sha256: [u8; 32],
    /// The signature.
    pub signature: Vec<u8>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn message(not_after: u64, signer_sha256: &[u8; 32], cert_spki: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(BINDING_LABEL.len() + HEADER + cert_spki.len());
    m.extend_from_slice(BINDING_LABEL);
    m.push(VERSION);
    m.extend_from_slice(&not_after.to_be_bytes());
    m.extend_from_slice(signer_sha256);
    m.extend_from_slice(cert_spki);
    m
}

fn sha256(data: &[u8]) -> Result<[u8; 32], openssl::error::ErrorStack> {
    let d = openssl::hash::hash(MessageDigest::sha256(), data)?;
    let mut out = [0u8; 32];
    out.copy_from_slice(&d);
    Ok(out)
}

/// The extension's content (a DER OCTET STRING): `signer` (the registered
/// sig key) binds the certificate key `cert_spki` until `not_after`.
pub fn sign_binding(
    signer: &PKeyRef<Private>,
    cert_spki: &[u8],
    not_after: SystemTime,
) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let signer_sha256 = sha256(&signer.public_key_to_der()?)?;
    let end = unix(not_after);
    let mut s = Signer::new(MessageDigest::sha256(), signer)?;
    s.set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS)?;
    s.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
    s.update(&message(end, &signer_sha256, cert_spki))?;
    let sig = s.sign_to_vec()?;
    let mut content = Vec::with_capacity(HEADER + sig.len());
    content.push(VERSION);
    content.extend_from_slice(&end.to_be_bytes());
    content.extend_from_slice(&signer_sha256);
    content.extend_from_slice(&sig);
    Ok(der_octet_string(&content))
}

/// DER of an OCTET STRING holding `content` (shorter than 64 KiB).
fn der_octet_string(content: &[u8]) -> Vec<u8> {
    let n = content.len();
    let mut out = vec![0x04];
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// The content of a DER OCTET STRING, or `None` if `der` is not exactly
/// one (minimal-length) OCTET STRING.
fn parse_der_octet_string(der: &[u8]) -> Option<&[u8]> {
    let (n, body) = match der {
        [0x04, l @ 0..=0x7f, rest @ ..] => (*l as usize, rest),
        [0x04, 0x81, l @ 0x80..=0xff, rest @ ..] => (*l as usize, rest),
        [0x04, 0x82, hi, lo, rest @ ..] if *hi != 0 => ((*hi as usize) << 8 | *lo as usize, rest),
        _ => return None,
    };
    (body.len() == n).then_some(body)
}

/// Parse the extension's DER content.
pub fn parse_binding(der: &[u8]) -> Result<KeyBinding, String> {
    let c = parse_der_octet_string(der).ok_or("the key binding is not one DER OCTET STRING")?;
    if c.len() <= HEADER || c.len() > MAX_CONTENT {
        return Err(format!("the key binding has {} bytes", c.len()));
    }
    if c[0] != VERSION {
        return Err(format!(
            "the key binding has version {}, not {VERSION}",
            c[0]
        ));
    }
    let mut end = [0u8; 8];
    end.copy_from_slice(&c[1..9]);
    let mut signer_sha256 = [0u8; 32];
    signer_sha256.copy_from_slice(&c[9..HEADER]);
    Ok(KeyBinding {
        not_after: u64::from_be_bytes(end),
        signer_sha256,
        signature: c[HEADER..].to_vec(),
    })
}

impl KeyBinding {
    /// Whether `signer` (a registered sig key) signed this binding of
    /// `cert_spki`.
    pub fn verify<T: HasPublic>(&self, signer: &PKeyRef<T>, cert_spki: &[u8]) -> bool {
        let check = || -> Result<bool, openssl::error::ErrorStack> {
            let mut v = Verifier::new(MessageDigest::sha256(), signer)?;
            v.set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS)?;
            v.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
            v.update(&message(self.not_after, &self.signer_sha256, cert_spki))?;
            v.verify(&self.signature)
        };
        check().unwrap_or(false)
    }

    /// Whether the binding has ended at `now`.
    pub fn ended(&self, now: SystemTime) -> bool {
        unix(now) > self.not_after
    }
}

/// The extension object, for building certificates.
pub fn binding_oid() -> Result<Asn1Object, openssl::error::ErrorStack> {
    Asn1Object::from_str(KEY_BINDING_OID)
}

/// The DER content of the key-binding extension of `cert`: `Ok(None)` if
/// it has none, an error if it has it more than once.
pub fn binding_extension(cert: &X509Ref) -> Result<Option<Vec<u8>>, String> {
    let oid = binding_oid().map_err(|e| e.to_string())?;
    // SAFETY: `cert` and `oid` are live OpenSSL objects for the whole
    // block; X509_get_ext_by_OBJ and X509_get_ext only read the
    // certificate and return an index or a pointer into it (not owned by
    // us, valid while `cert` is); X509_EXTENSION_get_data returns a
    // pointer into the extension, which we copy out before the block ends.
    // The openssl crate has no safe call for an arbitrary extension.
    unsafe {
        let x = cert.as_ptr();
        let i = openssl_sys::X509_get_ext_by_OBJ(x, oid.as_ptr(), -1);
        if i < 0 {
            return Ok(None);
        }
        if openssl_sys::X509_get_ext_by_OBJ(x, oid.as_ptr(), i) >= 0 {
            return Err("it carries the key binding more than once".into());
        }
        let ext = openssl_sys::X509_get_ext(x, i);
        if ext.is_null() {
            return Err("its key binding is unreadable".into());
        }
        let data = openssl_sys::X509_EXTENSION_get_data(ext);
        if data.is_null() {
            return Err("its key binding is unreadable".into());
        }
        Ok(Some(Asn1OctetStringRef::from_ptr(data).as_slice().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::crypto::test_keys;
    use std::time::Duration;

    #[test]
    fn der_octet_strings_round_trip_and_bad_ones_are_refused() {
        for n in [0usize, 1, 127, 128, 255, 256, 300, 2000] {
            let c = vec![7u8; n];
            assert_eq!(parse_der_octet_string(&der_octet_string(&c)), Some(&c[..]));
        }
        assert_eq!(parse_der_octet_string(&[0x04, 0x02, 1]), None); // short
        assert_eq!(parse_der_octet_string(&[0x04, 0x01, 1, 2]), None); // trailing
        assert_eq!(parse_der_octet_string(&[0x30, 0x01, 1]), None); // not an OCTET STRING
        assert_eq!(parse_der_octet_string(&[0x04, 0x81, 0x01, 1]), None); // not minimal
        assert_eq!(parse_der_octet_string(&[]), None);
    }

    #[test]
    fn a_binding_verifies_only_with_its_signer_for_its_key_and_time() {
        let (other, signer) = (&test_keys().0, &test_keys().1);
        let end = SystemTime::now() + Duration::from_secs(3600);
        let spki = b"certificate key".to_vec();
        let der = sign_binding(signer.openssl_pkey(), &spki, end).unwrap();
        let b = parse_binding(&der).unwrap();
        assert!(b.verify(signer.openssl_pkey(), &spki));
        assert!(!b.verify(other.openssl_pkey(), &spki));
        assert!(!b.verify(signer.openssl_pkey(), b"another key"));
        assert!(!b.ended(SystemTime::now()));
        assert!(b.ended(end + Duration::from_secs(2)));
        // A later end, claimed without a new signature, does not verify.
        let mut longer = b.clone();
        longer.not_after += 86_400;
        assert!(!longer.verify(signer.openssl_pkey(), &spki));
        // Bad versions and sizes are named.
        let mut c = parse_der_octet_string(&der).unwrap().to_vec();
        c[0] = 9;
        assert!(parse_binding(&der_octet_string(&c))
            .unwrap_err()
            .contains("version 9"));
        assert!(parse_binding(&der_octet_string(&c[..HEADER])).is_err());
    }
}
