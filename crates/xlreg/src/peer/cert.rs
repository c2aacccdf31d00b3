//! The member's TLS certificate: self-signed, made in memory, short-lived,
//! never written to disk. By default ([`LocalCert::generate`]) its key is a
//! fresh ECDSA P-256 key bound to the member's registered sig key by a
//! signature in an extension ([`super::delegation`]), so that handshakes
//! cost no RSA private-key operation; [`LocalCert::generate_with`] makes
//! the older form, whose key is the sig key itself (both are accepted).
//!
//! Why self-signed and not CA-issued: trust comes from pinning the key the
//! registry listed (see [`super::pin`]), so a CA would add a second trust
//! root without adding a check. The certificate only carries the key (its
//! subject names the member for logs and humans).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Integer, Asn1OctetString, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509Builder, X509Extension, X509NameBuilder, X509};

use super::delegation::{binding_oid, sign_binding};

use super::{PeerError, CLOCK_SKEW};
use crate::client::NodeIdentity;
use crate::wire::PrivateKey;

/// How long a certificate made by [`LocalCert::generate`] is valid. A
/// [`PeerListener`](super::PeerListener) makes a new one when half of it
/// has passed.
pub const CERT_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// A certificate and the private key it was made from.
#[derive(Clone)]
pub struct LocalCert {
    cert: X509,
    key: PKey<Private>,
}

impl std::fmt::Debug for LocalCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LocalCert({:?}, valid until {})",
            self.cert.subject_name(),
            self.cert.not_after()
        )
    }
}

fn cert_err(what: &str) -> impl FnOnce(openssl::error::ErrorStack) -> PeerError + '_ {
    move |e| PeerError::Certificate(format!("{what}: {e}"))
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

impl LocalCert {
    /// The certificate of `node`: a fresh ECDSA P-256 key bound to its sig
    /// key ([`bound_with`](Self::bound_with)), subject CN = its name, valid
    /// from [`CLOCK_SKEW`] ago for [`CERT_VALIDITY`].
    pub fn generate(node: &NodeIdentity) -> Result<Self, PeerError> {
        let now = SystemTime::now();
        Self::bound_with(
            &node.sig_key,
            &node.name,
            now - CLOCK_SKEW,
            now + CERT_VALIDITY,
        )
    }

    /// A certificate on a fresh ECDSA P-256 key carrying the key binding
    /// (`delegation.rs`): `sig_key` (the registered sig key) signs the
    /// certificate key once, until `not_after`; the certificate is
    /// self-signed by the P-256 key, which also signs each handshake.
    pub fn bound_with(
        sig_key: &PrivateKey,
        name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Self, PeerError> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(cert_err("P-256"))?;
        let ec = EcKey::generate(&group).map_err(cert_err("P-256 key"))?;
        let pkey = PKey::from_ec_key(ec).map_err(cert_err("P-256 key"))?;
        let spki = pkey.public_key_to_der().map_err(cert_err("P-256 key"))?;
        let binding = sign_binding(sig_key.openssl_pkey(), &spki, not_after)
            .map_err(cert_err("signing the key binding with the sig key"))?;
        Self::with_key_binding(pkey, name, not_before, not_after, Some(&binding))
    }

    /// A certificate on `pkey`, self-signed, carrying `binding` (the DER
    /// content of the key-binding extension) as it is. The building block
    /// of [`bound_with`](Self::bound_with); tests make forged bindings
    /// with it.
    pub fn with_key_binding(
        pkey: PKey<Private>,
        name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
        binding: Option<&[u8]>,
    ) -> Result<Self, PeerError> {
        let ext = match binding {
            None => None,
            Some(der) => {
                let oid = binding_oid().map_err(cert_err("key binding OID"))?;
                let v = Asn1OctetString::new_from_bytes(der).map_err(cert_err("key binding"))?;
                Some(
                    X509Extension::new_from_der(&oid, false, &v)
                        .map_err(cert_err("key binding"))?,
                )
            }
        };
        Self::build(pkey, name, not_before, not_after, ext)
    }

    /// A certificate for `key` with the given validity (tests make expired
    /// ones with this). The serial is 128 random bits, the signature
    /// SHA-256 with the key itself.
    pub fn generate_with(
        key: &PrivateKey,
        name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Self, PeerError> {
        Self::build(
            key.openssl_pkey().clone(),
            name,
            not_before,
            not_after,
            None,
        )
    }

    fn build(
        pkey: PKey<Private>,
        name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
        ext: Option<X509Extension>,
    ) -> Result<Self, PeerError> {
        let mut subject = X509NameBuilder::new().map_err(cert_err("name"))?;
        // CN is limited to 64 characters by X.520; the name is informative.
        let cn: String = name.chars().take(64).collect();
        let cn = if cn.is_empty() {
            "xlreg member".into()
        } else {
            cn
        };
        subject
            .append_entry_by_text("CN", &cn)
            .map_err(cert_err("subject name"))?;
        let subject = subject.build();
        let mut b = X509Builder::new().map_err(cert_err("certificate builder"))?;
        b.set_version(2).map_err(cert_err("version"))?;
        let mut serial = BigNum::new().map_err(cert_err("serial"))?;
        serial
            .rand(128, MsbOption::MAYBE_ZERO, false)
            .map_err(cert_err("serial"))?;
        let serial = Asn1Integer::from_bn(&serial).map_err(cert_err("serial"))?;
        b.set_serial_number(&serial).map_err(cert_err("serial"))?;
        b.set_subject_name(&subject).map_err(cert_err("subject"))?;
        b.set_issuer_name(&subject).map_err(cert_err("issuer"))?;
        b.set_pubkey(&pkey).map_err(cert_err("public key"))?;
        let nb = Asn1Time::from_unix(unix(not_before) as _).map_err(cert_err("not before"))?;
        let na = Asn1Time::from_unix(unix(not_after) as _).map_err(cert_err("not after"))?;
        b.set_not_before(&nb).map_err(cert_err("not before"))?;
        b.set_not_after(&na).map_err(cert_err("not after"))?;
        if let Some(ext) = ext {
            b.append_extension(ext).map_err(cert_err("key binding"))?;
        }
        b.sign(&pkey, MessageDigest::sha256())
            .map_err(cert_err("self-signing"))?;
        Ok(LocalCert {
            cert: b.build(),
            key: pkey,
        })
    }

    /// The certificate.
    pub fn cert(&self) -> &X509 {
        &self.cert
    }

    /// Whether the certificate carries a key binding (its key is not the
    /// sig key itself).
    pub fn is_bound(&self) -> bool {
        matches!(
            super::delegation::binding_extension(&self.cert),
            Ok(Some(_))
        )
    }

    /// The private key of the certificate (the P-256 key of a bound
    /// certificate, else the sig key).
    pub fn key(&self) -> &PKey<Private> {
        &self.key
    }

    /// The certificate in PEM (for bindings that build their own TLS
    /// context, e.g. Python's `ssl`).
    pub fn cert_pem(&self) -> Result<String, PeerError> {
        let pem = self.cert.to_pem().map_err(cert_err("PEM encoding"))?;
        String::from_utf8(pem).map_err(|e| PeerError::Certificate(e.to_string()))
    }

    /// The private key in PKCS#8 PEM, for the same bindings. Keep it in
    /// memory: the point of this module is that no key file is written.
    pub fn key_pem(&self) -> Result<String, PeerError> {
        let pem = self
            .key
            .private_key_to_pem_pkcs8()
            .map_err(cert_err("PEM encoding"))?;
        String::from_utf8(pem).map_err(|e| PeerError::Certificate(e.to_string()))
    }

    /// True once half of the certificate's validity has passed (or its
    /// dates cannot be read).
    pub fn needs_renewal(&self) -> bool {
        let secs = |d: openssl::asn1::TimeDiff| i64::from(d.days) * 86_400 + i64::from(d.secs);
        let Ok(now) = Asn1Time::days_from_now(0) else {
            return true;
        };
        let nb = self.cert.not_before();
        match (nb.diff(self.cert.not_after()), nb.diff(&now)) {
            (Ok(span), Ok(elapsed)) => 2 * secs(elapsed) > secs(span),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::crypto::test_keys;

    #[test]
    fn certificate_carries_the_sig_key_and_a_fresh_serial() {
        let key = &test_keys().1;
        let now = SystemTime::now();
        let a = LocalCert::generate_with(key, "m01", now, now + CERT_VALIDITY).unwrap();
        let b = LocalCert::generate_with(key, "m01", now, now + CERT_VALIDITY).unwrap();
        let spki = a.cert().public_key().unwrap().public_key_to_der().unwrap();
        assert_eq!(spki, key.public().spki_der());
        assert_ne!(
            a.cert().serial_number().to_bn().unwrap(),
            b.cert().serial_number().to_bn().unwrap()
        );
        // Self-signed: its own key verifies it.
        assert!(a.cert().verify(&a.cert().public_key().unwrap()).unwrap());
        let cn = a.cert().subject_name().entries().next().unwrap();
        assert_eq!(cn.data().to_string().unwrap(), "m01");
        assert!(a
            .cert_pem()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!a.needs_renewal());
        let old = LocalCert::generate_with(key, "m01", now - 3 * HOUR, now + HOUR).unwrap();
        assert!(old.needs_renewal());
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_bound_certificate_is_on_a_fresh_p256_key_signed_by_itself() {
        let key = &test_keys().1;
        let now = SystemTime::now();
        let a = LocalCert::bound_with(key, "m01", now, now + CERT_VALIDITY).unwrap();
        let b = LocalCert::bound_with(key, "m01", now, now + CERT_VALIDITY).unwrap();
        assert!(a.is_bound());
        assert_eq!(a.key().id(), openssl::pkey::Id::EC);
        let spki = |c: &LocalCert| c.cert().public_key().unwrap().public_key_to_der().unwrap();
        assert_ne!(spki(&a), spki(&b));
        assert_ne!(spki(&a), key.public().spki_der());
        assert!(a.cert().verify(&a.cert().public_key().unwrap()).unwrap());
        let direct = LocalCert::generate_with(key, "m01", now, now + CERT_VALIDITY).unwrap();
        assert!(!direct.is_bound());
    }

    #[test]
    fn validity_is_what_was_asked() {
        let key = &test_keys().1;
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let c = LocalCert::generate_with(key, "x", t0, t0 + Duration::from_secs(60)).unwrap();
        let want = Asn1Time::from_unix(1_000_000_060).unwrap();
        assert_eq!(
            c.cert().not_after().compare(&want).unwrap(),
            std::cmp::Ordering::Equal
        );
    }
}
