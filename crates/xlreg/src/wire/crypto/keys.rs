//! RSA keys (spec §3): generation, the public half, OAEP for the Hello,
//! PKCS#1 v1.5 signatures for tokens, and the bounds ([`KeyLimits`]) a key
//! from a peer or a file must meet before any arithmetic.

use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::Signer;

use super::{ossl, sha1, sha256_hex, WireError};

/// Smallest RSA modulus accepted anywhere, in bits.
pub const MIN_MODULUS_BITS: u32 = 1024;
/// Default largest RSA modulus accepted from a peer or a file, in bits
/// (`xlreg serve --max-key-bits` raises it for the registry).
pub const DEFAULT_MAX_MODULUS_BITS: u32 = 4096;
/// The ceiling of any configurable modulus bound, in bits.
pub const ABSOLUTE_MAX_MODULUS_BITS: u32 = 16384;
/// Largest RSA public exponent accepted (the Go library's own limit,
/// 2³¹−1): the cost of a signature check grows with the exponent's length.
pub const MAX_PUBLIC_EXPONENT: u64 = (1 << 31) - 1;

/// Which RSA public keys are worth any arithmetic.
///
/// Checked on the encoded numbers before OpenSSL sees them, so a hostile
/// key (a 16 384-bit modulus, an exponent as long as the modulus) costs a
/// byte count, not a ten-millisecond signature check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyLimits {
    /// Largest modulus, in bits (at least [`MIN_MODULUS_BITS`]).
    pub max_modulus_bits: u32,
}

impl Default for KeyLimits {
    fn default() -> Self {
        KeyLimits {
            max_modulus_bits: DEFAULT_MAX_MODULUS_BITS,
        }
    }
}

impl KeyLimits {
    /// Limits with the given largest modulus; refuses a bound outside
    /// `MIN_MODULUS_BITS..=ABSOLUTE_MAX_MODULUS_BITS`.
    pub fn with_max_bits(max_modulus_bits: u32) -> Result<Self, WireError> {
        if !(MIN_MODULUS_BITS..=ABSOLUTE_MAX_MODULUS_BITS).contains(&max_modulus_bits) {
            return Err(WireError::BadKey(format!(
                "largest key size {max_modulus_bits} bits is outside \
                 {MIN_MODULUS_BITS}..={ABSOLUTE_MAX_MODULUS_BITS}"
            )));
        }
        Ok(KeyLimits { max_modulus_bits })
    }

    /// Check a key given as big-endian unsigned modulus and exponent bytes
    /// (leading zeros allowed): modulus `MIN_MODULUS_BITS..=max`, exponent
    /// odd, at least 3 and at most [`MAX_PUBLIC_EXPONENT`]. The error text
    /// names the limit that was broken.
    pub fn check(&self, modulus: &[u8], exponent: &[u8]) -> Result<(), WireError> {
        let n_bits = be_bits(modulus);
        if n_bits < MIN_MODULUS_BITS as usize {
            return Err(WireError::BadKey(format!(
                "RSA modulus of {n_bits} bits is below the minimum of {MIN_MODULUS_BITS} bits"
            )));
        }
        if n_bits > self.max_modulus_bits as usize {
            return Err(WireError::BadKey(format!(
                "RSA modulus of {n_bits} bits is above the limit of {} bits",
                self.max_modulus_bits
            )));
        }
        let e_bits = be_bits(exponent);
        let too_large = || {
            WireError::BadKey(format!(
                "RSA public exponent is larger than the limit of 2^31-1 ({MAX_PUBLIC_EXPONENT})"
            ))
        };
        if e_bits > 31 {
            return Err(too_large());
        }
        let e = exponent
            .iter()
            .fold(0u64, |acc, &b| acc << 8 | u64::from(b));
        if e > MAX_PUBLIC_EXPONENT {
            return Err(too_large());
        }
        if e < 3 || e % 2 == 0 {
            return Err(WireError::BadKey(format!(
                "RSA public exponent {e} must be odd and at least 3"
            )));
        }
        Ok(())
    }
}

/// Significant bits of a big-endian unsigned number.
fn be_bits(n: &[u8]) -> usize {
    let n = &n[n.iter().take_while(|&&b| b == 0).count()..];
    match n.first() {
        None => 0,
        Some(&b) => n.len() * 8 - b.leading_zeros() as usize,
    }
}

/// An RSA private key (a member's or the registry's comms or sig key).
#[derive(Clone)]
pub struct PrivateKey {
    pub(super) pkey: PKey<Private>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "PrivateKey(RSA-{}, redacted)", self.bits())
    }
}

impl PrivateKey {
    /// Generate a new key pair with e = 65537.
    pub fn generate(bits: u32) -> Result<Self, WireError> {
        if !(MIN_MODULUS_BITS..=ABSOLUTE_MAX_MODULUS_BITS).contains(&bits) {
            return Err(WireError::BadKey(format!(
                "refusing to generate an RSA key of {bits} bits \
                 ({MIN_MODULUS_BITS}..={ABSOLUTE_MAX_MODULUS_BITS})"
            )));
        }
        let rsa = Rsa::generate(bits).map_err(ossl("RSA key generation"))?;
        Self::from_rsa(rsa)
    }

    /// Generate a key quickly for test clusters: from 2048 bits on, a
    /// three-prime RSA key (RFC 8017 multi-prime) made by OpenSSL's own
    /// constant-time key generation — about 3× faster than two primes, with
    /// an identical public key format. Below 2048 bits, a normal key.
    ///
    /// Use [`PrivateKey::generate`] for long-lived keys (registries).
    pub fn generate_test_key(bits: u32) -> Result<Self, WireError> {
        if bits < 2048 {
            return Self::generate(bits);
        }
        if bits > ABSOLUTE_MAX_MODULUS_BITS {
            return Self::generate(bits);
        }
        extern "C" {
            // OpenSSL ≥ 3.0 (a macro over EVP_PKEY_CTX_ctrl before that).
            fn EVP_PKEY_CTX_set_rsa_keygen_primes(
                ctx: *mut std::ffi::c_void,
                primes: std::ffi::c_int,
            ) -> std::ffi::c_int;
        }
        use foreign_types::ForeignTypeRef;
        let mut ctx =
            openssl::pkey_ctx::PkeyCtx::new_id(Id::RSA).map_err(ossl("RSA keygen context"))?;
        ctx.keygen_init().map_err(ossl("RSA keygen init"))?;
        ctx.set_rsa_keygen_bits(bits)
            .map_err(ossl("RSA keygen bits"))?;
        // SAFETY: a valid EVP_PKEY_CTX in keygen mode, owned by `ctx`.
        let rc = unsafe { EVP_PKEY_CTX_set_rsa_keygen_primes(ctx.as_ptr().cast(), 3) };
        if rc <= 0 {
            return Self::generate(bits);
        }
        let pkey = ctx.keygen().map_err(ossl("RSA key generation"))?;
        Self::from_rsa(pkey.rsa().map_err(ossl("RSA key"))?)
    }

    pub(super) fn from_rsa(rsa: Rsa<Private>) -> Result<Self, WireError> {
        // A local key file may be as large as a key this library would
        // generate; the exponent rules are the same as for peers' keys.
        KeyLimits {
            max_modulus_bits: ABSOLUTE_MAX_MODULUS_BITS,
        }
        .check(&rsa.n().to_vec(), &rsa.e().to_vec())?;
        Ok(PrivateKey {
            pkey: PKey::from_rsa(rsa).map_err(ossl("wrapping RSA key"))?,
        })
    }

    /// The OpenSSL key itself, for building TLS contexts and certificates
    /// from it (`xlreg::peer`) without a round trip through PEM.
    pub fn openssl_pkey(&self) -> &PKey<Private> {
        &self.pkey
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        let rsa = self.pkey.rsa().expect("RSA key");
        let n = rsa.n().to_owned().expect("bignum copy");
        let e = rsa.e().to_owned().expect("bignum copy");
        let pubrsa = Rsa::from_public_components(n, e).expect("public components");
        PublicKey::from_pkey(PKey::from_rsa(pubrsa).expect("wrap public"))
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> u32 {
        self.pkey.bits()
    }

    /// Modulus size in bytes (the length of an OAEP ciphertext).
    pub fn size(&self) -> usize {
        self.pkey.size()
    }

    /// RSAES-OAEP decrypt with SHA-1, MGF1-SHA-1 and an empty label. The
    /// ciphertext must be exactly as long as the modulus.
    pub fn oaep_decrypt(&self, ct: &[u8]) -> Result<Vec<u8>, WireError> {
        if ct.len() != self.size() {
            return Err(WireError::BadHelloLength {
                expected: self.size(),
                got: ct.len(),
            });
        }
        let rsa = self.pkey.rsa().map_err(ossl("RSA key"))?;
        let mut out = vec![0u8; self.size()];
        let n = rsa
            .private_decrypt(ct, &mut out, Padding::PKCS1_OAEP)
            .map_err(|_| WireError::Decrypt)?;
        out.truncate(n);
        Ok(out)
    }

    /// RSASSA-PKCS1-v1_5 signature with SHA-1 over `msg` (the library hashes).
    pub fn sign_sha1(&self, msg: &[u8]) -> Result<Vec<u8>, WireError> {
        let mut s = Signer::new(MessageDigest::sha1(), &self.pkey).map_err(ossl("signer"))?;
        s.update(msg).map_err(ossl("signer"))?;
        s.sign_to_vec().map_err(ossl("sign"))
    }
}

/// An RSA public key as it travels in tokens (SPKI DER) and regCred files
/// (OpenSSH line).
///
/// The SPKI DER is computed once and kept: keys are compared, hashed and
/// re-sent far more often than they are made.
#[derive(Clone)]
pub struct PublicKey {
    pub(super) pkey: PKey<Public>,
    pub(super) der: std::sync::Arc<[u8]>,
}

impl PartialEq for PublicKey {
    fn eq(&self, o: &Self) -> bool {
        // SPKI DER is canonical, so equal keys have equal bytes.
        self.der == o.der
    }
}
impl Eq for PublicKey {}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PublicKey(RSA-{}, sha256 {})",
            self.bits(),
            &self.fingerprint()[..16]
        )
    }
}

impl PublicKey {
    pub(super) fn from_pkey(pkey: PKey<Public>) -> Self {
        let der = pkey.public_key_to_der().expect("SPKI encode");
        PublicKey {
            pkey,
            der: der.into(),
        }
    }

    pub(super) fn from_components(
        n: &[u8],
        e: &[u8],
        limits: &KeyLimits,
    ) -> Result<Self, WireError> {
        limits.check(n, e)?;
        let n = BigNum::from_slice(n).map_err(ossl("bignum"))?;
        let e = BigNum::from_slice(e).map_err(ossl("bignum"))?;
        let rsa = Rsa::from_public_components(n, e).map_err(ossl("RSA public key"))?;
        Ok(Self::from_pkey(
            PKey::from_rsa(rsa).map_err(ossl("wrap public"))?,
        ))
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> u32 {
        self.pkey.bits()
    }

    /// Modulus size in bytes.
    pub fn size(&self) -> usize {
        self.pkey.size()
    }

    /// Lowercase hex SHA-256 of the SPKI DER (what `openssl pkey -pubin
    /// -outform der | sha256sum` prints).
    pub fn fingerprint(&self) -> String {
        sha256_hex(&self.der)
    }

    /// RSAES-OAEP encrypt (SHA-1, MGF1-SHA-1, empty label), random seed.
    pub fn oaep_encrypt(&self, msg: &[u8]) -> Result<Vec<u8>, WireError> {
        let rsa = self.pkey.rsa().map_err(ossl("RSA key"))?;
        let mut out = vec![0u8; self.size()];
        let n = rsa
            .public_encrypt(msg, &mut out, Padding::PKCS1_OAEP)
            .map_err(ossl("OAEP encrypt"))?;
        out.truncate(n);
        Ok(out)
    }

    /// RSAES-OAEP encrypt with a caller-chosen 20-byte seed. Deterministic;
    /// only for reproducing test vectors (a real Hello uses a random seed).
    #[cfg(any(test, feature = "__test-vectors"))]
    #[doc(hidden)]
    pub fn oaep_encrypt_with_seed(
        &self,
        msg: &[u8],
        seed: &[u8; 20],
    ) -> Result<Vec<u8>, WireError> {
        let em = oaep_encode_sha1(msg, self.size(), seed)?;
        let rsa = self.pkey.rsa().map_err(ossl("RSA key"))?;
        let mut out = vec![0u8; self.size()];
        let n = rsa
            .public_encrypt(&em, &mut out, Padding::NONE)
            .map_err(ossl("raw RSA"))?;
        out.truncate(n);
        Ok(out)
    }

    /// Verify an RSASSA-PKCS1-v1_5 SHA-1 signature over `msg` (RFC 8017
    /// §8.2.2): the signature is exactly as long as the modulus, and the
    /// recovered block is `00 01 FF… 00 ‖ DigestInfo(SHA-1) ‖ SHA-1(msg)`,
    /// compared whole, as the Go library does.
    ///
    /// Done with the key's own RSA public operation and one comparison
    /// rather than OpenSSL 3's EVP verifier, which for every new key (one
    /// per Member) exports it to a provider and looks the algorithms up by
    /// name — more than the arithmetic itself.
    pub fn verify_sha1(&self, msg: &[u8], sig: &[u8]) -> Result<(), WireError> {
        /// DER DigestInfo prefix for SHA-1 (RFC 8017 §9.2, note 1).
        const SHA1_DIGEST_INFO: [u8; 15] = [
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ];
        if sig.len() != self.size() {
            return Err(WireError::BadSignature);
        }
        let rsa = self.pkey.rsa().map_err(ossl("RSA key"))?;
        let mut block = vec![0u8; self.size()];
        // PKCS1 padding: OpenSSL checks 00 01, at least eight FF, 00.
        let n = rsa
            .public_decrypt(sig, &mut block, Padding::PKCS1)
            .map_err(|_| WireError::BadSignature)?;
        let digest = sha1(msg);
        let t = &block[..n];
        if t.len() == SHA1_DIGEST_INFO.len() + digest.len()
            && t[..SHA1_DIGEST_INFO.len()] == SHA1_DIGEST_INFO
            && t[SHA1_DIGEST_INFO.len()..] == digest
        {
            Ok(())
        } else {
            Err(WireError::BadSignature)
        }
    }
}

/// EME-OAEP encoding (RFC 8017 §7.1.1) with SHA-1 and an empty label.
#[cfg(any(test, feature = "__test-vectors"))]
#[doc(hidden)]
fn oaep_encode_sha1(msg: &[u8], k: usize, seed: &[u8; 20]) -> Result<Vec<u8>, WireError> {
    const H: usize = 20;
    if msg.len() > k.saturating_sub(2 * H + 2) {
        return Err(WireError::Crypto(
            "OAEP message too long for the key".into(),
        ));
    }
    let lhash = sha1(b"");
    let mut db = Vec::with_capacity(k - H - 1);
    db.extend_from_slice(&lhash);
    db.resize(k - msg.len() - H - 2, 0);
    db.push(1);
    db.extend_from_slice(msg);
    let db_mask = mgf1_sha1(seed, db.len());
    db.iter_mut().zip(&db_mask).for_each(|(a, b)| *a ^= b);
    let seed_mask = mgf1_sha1(&db, H);
    let mut em = vec![0u8];
    em.extend(seed.iter().zip(&seed_mask).map(|(a, b)| a ^ b));
    em.extend_from_slice(&db);
    Ok(em)
}

#[cfg(any(test, feature = "__test-vectors"))]
#[doc(hidden)]
fn mgf1_sha1(seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 20);
    let mut counter = 0u32;
    while out.len() < len {
        let mut input = seed.to_vec();
        input.extend_from_slice(&counter.to_be_bytes());
        out.extend_from_slice(&sha1(&input));
        counter += 1;
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::crypto::*;

    fn key() -> &'static PrivateKey {
        &test_keys().0
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
    fn three_prime_test_keys_work_everywhere_a_key_is_used() {
        let k = PrivateKey::generate_test_key(2048).unwrap();
        assert_eq!(k.bits(), 2048);
        assert_eq!(k.pkey.rsa().unwrap().check_key().ok(), Some(true));
        let p = k.public();
        assert_eq!(p.to_spki_der().len(), 294, "standard public key");
        let ct = p.oaep_encrypt(b"x").unwrap();
        assert_eq!(k.oaep_decrypt(&ct).unwrap(), b"x");
        p.verify_sha1(b"m", &k.sign_sha1(b"m").unwrap()).unwrap();
        for pem in [k.to_pem_pkcs1(), k.to_pem_pkcs8(), k.to_pem_go()] {
            assert_eq!(PrivateKey::from_pem(pem.as_bytes()).unwrap().public(), p);
        }
    }

    #[test]
    fn each_kind_of_oversized_or_odd_key_is_refused_naming_the_limit() {
        let e = [1u8, 0, 1];
        let cases: Vec<(Vec<u8>, Vec<u8>, &str)> = vec![
            (modulus(1023), e.to_vec(), "below the minimum of 1024 bits"),
            (modulus(512), e.to_vec(), "below the minimum of 1024 bits"),
            (modulus(4097), e.to_vec(), "above the limit of 4096 bits"),
            (modulus(16384), e.to_vec(), "above the limit of 4096 bits"),
            (modulus(2048), vec![0x80, 0, 0, 1], "2^31-1"),
            (modulus(2048), modulus(2040), "2^31-1"),
            (modulus(2048), vec![1, 0, 0], "must be odd"),
            (modulus(2048), vec![1], "must be odd and at least 3"),
        ];
        for (n, e, want) in cases {
            let der = spki_der_from_parts(&n, &e);
            let err = PublicKey::from_spki_der(&der).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "n {} bits, e {e:02x?}: {err}",
                n.len() * 8
            );
        }
        // The largest exponent allowed passes the shape check (and then
        // reaches OpenSSL, which may accept the made-up modulus).
        let limits = KeyLimits::default();
        limits
            .check(&modulus(2048), &[0x7f, 0xff, 0xff, 0xff])
            .unwrap();
        limits.check(&modulus(4096), &[3]).unwrap();
        limits.check(&modulus(1024), &[0, 0, 1, 0, 1]).unwrap();
    }

    #[test]
    fn the_modulus_bound_is_configurable_within_its_own_range() {
        let n = modulus(6000);
        let e = [1u8, 0, 1];
        assert!(KeyLimits::default().check(&n, &e).is_err());
        KeyLimits::with_max_bits(8192)
            .unwrap()
            .check(&n, &e)
            .unwrap();
        assert!(KeyLimits::with_max_bits(1023).is_err());
        assert!(KeyLimits::with_max_bits(16385).is_err());
    }

    #[test]
    fn oaep_round_trip_and_seeded_encoding_decrypts() {
        let k = key();
        let ct = k.public().oaep_encrypt(b"hello world").unwrap();
        assert_eq!(k.oaep_decrypt(&ct).unwrap(), b"hello world");
        let ct2 = k.public().oaep_encrypt_with_seed(b"abc", &[9; 20]).unwrap();
        assert_eq!(k.oaep_decrypt(&ct2).unwrap(), b"abc");
        assert!(k.oaep_decrypt(&ct[1..]).is_err());
        let mut bad = ct.clone();
        bad[5] ^= 1;
        assert!(k.oaep_decrypt(&bad).is_err());
    }

    #[test]
    fn verify_agrees_with_openssls_evp_verifier() {
        use openssl::sign::Verifier;
        let k = key();
        let p = k.public();
        let evp = |msg: &[u8], sig: &[u8]| {
            let mut v = Verifier::new(MessageDigest::sha1(), &p.pkey).unwrap();
            v.update(msg).unwrap();
            v.verify(sig).unwrap_or(false)
        };
        let sig = k.sign_sha1(b"token").unwrap();
        let mut cases = vec![(b"token".to_vec(), sig.clone(), true)];
        cases.push((b"tokeN".to_vec(), sig.clone(), false));
        for i in [0, 1, 64, sig.len() - 1] {
            let mut bad = sig.clone();
            bad[i] ^= 0x01;
            cases.push((b"token".to_vec(), bad, false));
        }
        cases.push((b"token".to_vec(), sig[1..].to_vec(), false));
        cases.push((b"token".to_vec(), vec![0; sig.len()], false));
        // A SHA-256 signature of the same message is not a SHA-1 one.
        let mut s256 = Signer::new(MessageDigest::sha256(), &k.pkey).unwrap();
        s256.update(b"token").unwrap();
        cases.push((b"token".to_vec(), s256.sign_to_vec().unwrap(), false));
        for (msg, sig, want) in cases {
            assert_eq!(evp(&msg, &sig), want);
            assert_eq!(p.verify_sha1(&msg, &sig).is_ok(), want, "{msg:?}");
        }
    }

    #[test]
    fn sign_verify_and_tamper() {
        let k = key();
        let sig = k.sign_sha1(b"msg").unwrap();
        k.public().verify_sha1(b"msg", &sig).unwrap();
        assert!(k.public().verify_sha1(b"msh", &sig).is_err());
        assert!(k.public().verify_sha1(b"msg", &sig[1..]).is_err());
    }
}
