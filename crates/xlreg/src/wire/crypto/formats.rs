//! Encodings of RSA keys: DER SubjectPublicKeyInfo (tokens), PEM (key
//! files, PKCS#1/PKCS#8/the Go empty-label form) and OpenSSH `ssh-rsa`
//! lines and blobs (regCred.dat), each parsed within [`KeyLimits`].

use openssl::pkey::{Id, PKey};
use openssl::rsa::Rsa;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::{ossl, KeyLimits, PrivateKey, PublicKey, WireError};

/// The `rsaEncryption` algorithm OID (1.2.840.113549.1.1.1).
const RSA_ENCRYPTION: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

impl PrivateKey {
    /// Load a private key from PEM: PKCS#1 (`RSA PRIVATE KEY`), PKCS#8
    /// (`PRIVATE KEY`), or the Go xlattice form with an empty label
    /// (`-----BEGIN -----`, PKCS#1 inside).
    pub fn from_pem(pem: &[u8]) -> Result<Self, WireError> {
        let text = String::from_utf8_lossy(pem);
        if text.contains("-----BEGIN -----") {
            let der = pem_body(&text, "")?;
            let rsa = Rsa::private_key_from_der(&der)
                .map_err(|e| WireError::BadKey(format!("empty-label PEM is not PKCS#1: {e}")))?;
            return Self::from_rsa(rsa);
        }
        let pkey = PKey::private_key_from_pem(pem)
            .map_err(|e| WireError::BadKey(format!("not a PEM private key: {e}")))?;
        if pkey.id() != Id::RSA {
            return Err(WireError::NotRsaKey);
        }
        Self::from_rsa(pkey.rsa().map_err(ossl("RSA key"))?)
    }

    /// PEM, PKCS#1 (`-----BEGIN RSA PRIVATE KEY-----`).
    pub fn to_pem_pkcs1(&self) -> String {
        let rsa = self.pkey.rsa().expect("RSA key");
        String::from_utf8(rsa.private_key_to_pem().expect("PEM encode")).expect("PEM is ASCII")
    }

    /// PEM, PKCS#8 (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pem_pkcs8(&self) -> String {
        String::from_utf8(self.pkey.private_key_to_pem_pkcs8().expect("PEM encode"))
            .expect("PEM is ASCII")
    }

    /// PEM with the empty label the Go xlattice configs use (PKCS#1 inside).
    pub fn to_pem_go(&self) -> String {
        let der = self
            .pkey
            .rsa()
            .expect("RSA")
            .private_key_to_der()
            .expect("DER");
        pem_wrap("", &der)
    }
}

impl PublicKey {
    /// Parse a DER SubjectPublicKeyInfo holding an RSA key within the
    /// default [`KeyLimits`]. The DER must be strict (canonical lengths and
    /// integers, no trailing bytes); other algorithms (e.g. EC) are
    /// [`WireError::NotRsaKey`].
    ///
    /// Decoded with the `spki`/`pkcs1` DER crates rather than OpenSSL 3's
    /// generic decoder, which costs ~0.2 ms per key — more than the RSA
    /// decryption of a whole Hello.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, WireError> {
        Self::from_spki_der_limited(der, &KeyLimits::default())
    }

    /// [`PublicKey::from_spki_der`] with explicit limits; the key's shape
    /// is checked before any RSA arithmetic.
    pub fn from_spki_der_limited(der: &[u8], limits: &KeyLimits) -> Result<Self, WireError> {
        use spki::der::Decode;
        if der.is_empty() {
            return Err(WireError::BadKey("public key is absent or empty".into()));
        }
        let bad = |why: String| WireError::BadKey(format!("not a DER SubjectPublicKeyInfo: {why}"));
        let info = spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|e| bad(e.to_string()))?;
        if info.algorithm.oid != RSA_ENCRYPTION {
            return Err(WireError::NotRsaKey);
        }
        match info.algorithm.parameters {
            Some(p) if p.is_null() => {}
            _ => return Err(bad("rsaEncryption parameters must be NULL".into())),
        }
        let bits = info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| bad("key bit string has unused bits".into()))?;
        let rsa = pkcs1::RsaPublicKey::from_der(bits).map_err(|e| bad(format!("RSA key: {e}")))?;
        let k = Self::from_components(
            rsa.modulus.as_bytes(),
            rsa.public_exponent.as_bytes(),
            limits,
        )?;
        if *k.der != *der {
            return Err(bad("non-canonical encoding".into()));
        }
        Ok(k)
    }

    /// DER SubjectPublicKeyInfo (294 bytes for 2048-bit keys, 162 for 1024).
    pub fn to_spki_der(&self) -> Vec<u8> {
        self.der.to_vec()
    }

    /// The SPKI DER without copying.
    pub fn spki_der(&self) -> &[u8] {
        &self.der
    }

    /// Parse a PEM `PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY` (PKCS#1) within
    /// the default [`KeyLimits`].
    pub fn from_pem(pem: &[u8]) -> Result<Self, WireError> {
        let rsa = if String::from_utf8_lossy(pem).contains("BEGIN RSA PUBLIC KEY") {
            Rsa::public_key_from_pem_pkcs1(pem)
        } else {
            Rsa::public_key_from_pem(pem)
        }
        .map_err(|e| WireError::BadKey(format!("not a PEM RSA public key: {e}")))?;
        KeyLimits::default().check(&rsa.n().to_vec(), &rsa.e().to_vec())?;
        Ok(Self::from_pkey(
            PKey::from_rsa(rsa).map_err(ossl("wrap public"))?,
        ))
    }

    /// PEM `-----BEGIN PUBLIC KEY-----` (SPKI, 64-column base64).
    pub fn to_pem(&self) -> String {
        String::from_utf8(self.pkey.public_key_to_pem().expect("PEM")).expect("ASCII")
    }

    /// The RFC 4253 `ssh-rsa` blob: string "ssh-rsa", mpint e, mpint n.
    pub fn to_ssh_blob(&self) -> Vec<u8> {
        let rsa = self.pkey.rsa().expect("RSA");
        let mut out = Vec::with_capacity(self.size() + 32);
        put_ssh_string(&mut out, b"ssh-rsa");
        put_ssh_mpint(&mut out, &rsa.e().to_vec());
        put_ssh_mpint(&mut out, &rsa.n().to_vec());
        out
    }

    /// The OpenSSH one-line form `ssh-rsa <base64>` (no comment, no newline).
    pub fn to_ssh_line(&self) -> String {
        format!("ssh-rsa {}", B64.encode(self.to_ssh_blob()))
    }

    /// Parse an OpenSSH authorized_keys-style line: optional options, then
    /// `ssh-rsa <base64>`, then an optional comment.
    pub fn from_ssh_line(line: &str) -> Result<Self, WireError> {
        let bad = |why: String| WireError::BadKey(format!("ssh-rsa key: {why}"));
        let toks: Vec<&str> = line.split_whitespace().collect();
        let pos = toks
            .iter()
            .position(|t| *t == "ssh-rsa")
            .ok_or_else(|| bad("no `ssh-rsa` key type found".into()))?;
        let b64 = toks
            .get(pos + 1)
            .ok_or_else(|| bad("base64 key data missing after `ssh-rsa`".into()))?;
        let blob = B64
            .decode(b64)
            .map_err(|e| bad(format!("bad base64: {e}")))?;
        Self::from_ssh_blob(&blob)
    }

    /// Parse the RFC 4253 blob (within the default [`KeyLimits`]).
    pub fn from_ssh_blob(blob: &[u8]) -> Result<Self, WireError> {
        let bad = |why: &str| WireError::BadKey(format!("ssh-rsa key: {why}"));
        let mut rest = blob;
        let kind = get_ssh_string(&mut rest).ok_or_else(|| bad("truncated key type"))?;
        if kind != b"ssh-rsa" {
            return Err(bad("key type inside the blob is not ssh-rsa"));
        }
        let e = get_ssh_string(&mut rest).ok_or_else(|| bad("truncated exponent"))?;
        let n = get_ssh_string(&mut rest).ok_or_else(|| bad("truncated modulus"))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the modulus"));
        }
        if e.first().is_some_and(|b| b & 0x80 != 0) || n.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(bad("negative number"));
        }
        Self::from_components(n, e, &KeyLimits::default())
            .map_err(|e| bad(&e.to_string().replace("bad key: ", "")))
    }
}

/// DER SubjectPublicKeyInfo of an `rsaEncryption` key with the given
/// big-endian modulus and exponent, encoded without any check: for tests
/// that send keys no honest member would.
#[cfg(any(test, feature = "__test-vectors"))]
#[doc(hidden)]
pub fn spki_der_from_parts(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = body.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let len = n.to_be_bytes();
            let skip = len.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (len.len() - skip) as u8);
            out.extend_from_slice(&len[skip..]);
        }
        out.extend_from_slice(body);
        out
    }
    fn uint(n: &[u8]) -> Vec<u8> {
        let n = &n[n.iter().take_while(|&&b| b == 0).count()..];
        let mut body = Vec::with_capacity(n.len() + 1);
        if n.first().is_none_or(|b| b & 0x80 != 0) {
            body.push(0);
        }
        body.extend_from_slice(n);
        tlv(0x02, &body)
    }
    let rsa = tlv(0x30, &[uint(modulus), uint(exponent)].concat());
    let alg = tlv(
        0x30,
        &[
            &[
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
            ][..],
            &[0x05, 0x00],
        ]
        .concat(),
    );
    let bits = tlv(0x03, &[&[0u8][..], &rsa].concat());
    tlv(0x30, &[alg, bits].concat())
}
fn put_ssh_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn put_ssh_mpint(out: &mut Vec<u8>, magnitude: &[u8]) {
    let pad = magnitude.first().is_some_and(|b| b & 0x80 != 0);
    out.extend_from_slice(&((magnitude.len() + pad as usize) as u32).to_be_bytes());
    if pad {
        out.push(0);
    }
    out.extend_from_slice(magnitude);
}

fn get_ssh_string<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    if rest.len() < 4 {
        return None;
    }
    let n = u32::from_be_bytes(rest[..4].try_into().ok()?) as usize;
    let body = rest.get(4..4 + n)?;
    *rest = &rest[4 + n..];
    Some(body)
}

/// Wrap DER in PEM with the given label and 64-column base64.
pub fn pem_wrap(label: &str, der: &[u8]) -> String {
    let b = B64.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// Extract and decode the body of the first PEM block with `label`.
pub fn pem_body(text: &str, label: &str) -> Result<Vec<u8>, WireError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| WireError::BadKey(format!("missing `{begin}`")))?
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .ok_or_else(|| WireError::BadKey(format!("missing `{end}`")))?
        + start;
    let b64: String = text[start..stop].split_whitespace().collect();
    B64.decode(b64)
        .map_err(|e| WireError::BadKey(format!("bad base64 in PEM block: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::crypto::*;

    fn key() -> &'static PrivateKey {
        &test_keys().0
    }

    #[test]
    fn pem_formats_round_trip() {
        let k = key();
        for pem in [k.to_pem_pkcs1(), k.to_pem_pkcs8(), k.to_pem_go()] {
            let back = PrivateKey::from_pem(pem.as_bytes()).unwrap();
            assert_eq!(back.public(), k.public(), "{}", &pem[..30]);
        }
        let p = k.public();
        assert_eq!(PublicKey::from_pem(p.to_pem().as_bytes()).unwrap(), p);
        assert_eq!(PublicKey::from_spki_der(&p.to_spki_der()).unwrap(), p);
        assert_eq!(PublicKey::from_ssh_line(&p.to_ssh_line()).unwrap(), p);
        assert_eq!(p.to_spki_der().len(), 162);
    }

    #[test]
    fn ssh_line_accepts_options_and_comment() {
        let p = key().public();
        let line = format!("no-pty,command=\"x\" {} jdd@paloalto\r", p.to_ssh_line());
        assert_eq!(PublicKey::from_ssh_line(&line).unwrap(), p);
        assert!(PublicKey::from_ssh_line("ssh-rsa").is_err());
        assert!(PublicKey::from_ssh_line("ssh-rsa !!!").is_err());
        assert!(PublicKey::from_ssh_line("ssh-ed25519 AAAA").is_err());
    }

    #[test]
    fn ssh_blob_rejects_even_or_wide_exponent() {
        let p = key().public();
        let rsa = p.pkey.rsa().unwrap();
        for e in [
            &[0x01, 0x00, 0x00][..],
            &[0x01][..],
            &[0x01, 0x00, 0x00, 0x00, 0x01][..],
        ] {
            let mut blob = Vec::new();
            put_ssh_string(&mut blob, b"ssh-rsa");
            put_ssh_mpint(&mut blob, e);
            put_ssh_mpint(&mut blob, &rsa.n().to_vec());
            assert!(PublicKey::from_ssh_blob(&blob).is_err(), "{e:?}");
        }
        let mut blob = p.to_ssh_blob();
        blob.push(0);
        assert!(PublicKey::from_ssh_blob(&blob).is_err());
    }

    /// An odd modulus of exactly `bits` bits (not a product of primes:
    /// the shape check must refuse it before any arithmetic).
    fn modulus(bits: usize) -> Vec<u8> {
        let mut n = vec![0xffu8; bits.div_ceil(8)];
        if bits % 8 != 0 {
            n[0] = (1u8 << (bits % 8)) - 1;
        }
        n
    }

    #[test]
    fn spki_builder_matches_openssl_for_a_real_key() {
        let p = key().public();
        let rsa = p.pkey.rsa().unwrap();
        assert_eq!(
            spki_der_from_parts(&rsa.n().to_vec(), &rsa.e().to_vec()),
            p.to_spki_der()
        );
    }

    #[test]
    fn ssh_and_pem_public_keys_obey_the_same_bounds() {
        let mut blob = Vec::new();
        put_ssh_string(&mut blob, b"ssh-rsa");
        put_ssh_mpint(&mut blob, &[1, 0, 1]);
        put_ssh_mpint(&mut blob, &modulus(4104));
        let err = PublicKey::from_ssh_blob(&blob).unwrap_err().to_string();
        assert!(err.contains("above the limit of 4096 bits"), "{err}");
        let pem = pem_wrap(
            "PUBLIC KEY",
            &spki_der_from_parts(&modulus(8192), &[1, 0, 1]),
        );
        let err = PublicKey::from_pem(pem.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("above the limit of 4096 bits"), "{err}");
    }

    #[test]
    fn non_rsa_spki_is_an_error_not_a_panic() {
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let der = PKey::from_ec_key(ec).unwrap().public_key_to_der().unwrap();
        assert!(matches!(
            PublicKey::from_spki_der(&der),
            Err(WireError::NotRsaKey)
        ));
        assert!(PublicKey::from_spki_der(&[]).is_err());
        assert!(PublicKey::from_spki_der(&[0x30, 0x03, 1, 2, 3]).is_err());
        let mut trailing = key().public().to_spki_der();
        trailing.push(0);
        assert!(PublicKey::from_spki_der(&trailing).is_err());
    }
}
