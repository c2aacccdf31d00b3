//! Cryptographic primitives of the protocol (spec §3, §11.6), on OpenSSL:
//! RSA-OAEP with SHA-1 and an empty label for the Hello, AES-256-CBC with a
//! fresh IV per message and PKCS#7 padding for everything after it,
//! RSASSA-PKCS1-v1_5 with SHA-1 for member tokens; RSA public keys travel
//! as DER SubjectPublicKeyInfo and appear in regCred.dat as `ssh-rsa`
//! lines.
//!
//! Why OpenSSL: its RSA private-key operations are blinded and constant-time
//! (no open timing advisory, unlike some pure-Rust RSA versions), and its key
//! generation is fast — key generation dominates "a cluster in seconds".
//! Everything here is a plain function over bytes; no I/O.

use openssl::bn::BigNum;
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::Signer;
use openssl::symm::{Cipher, Crypter, Mode};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::WireError;

/// The `rsaEncryption` algorithm OID (1.2.840.113549.1.1.1).
const RSA_ENCRYPTION: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

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

/// AES block size; also the IV length.
pub const BLOCK: usize = 16;
/// AES-256 key length.
pub const AES_KEY_LEN: usize = 32;

fn ossl(what: &str) -> impl FnOnce(openssl::error::ErrorStack) -> WireError + '_ {
    move |e| WireError::Crypto(format!("{what}: {e}"))
}

/// Fill `buf` with cryptographically secure random bytes.
pub fn random_bytes(buf: &mut [u8]) {
    openssl::rand::rand_bytes(buf).expect("the OpenSSL random generator failed");
}

/// Fresh random array.
pub fn random_array<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    random_bytes(&mut b);
    b
}

/// An RSA private key (a member's or the registry's comms or sig key).
#[derive(Clone)]
pub struct PrivateKey {
    pkey: PKey<Private>,
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

    fn from_rsa(rsa: Rsa<Private>) -> Result<Self, WireError> {
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
    pkey: PKey<Public>,
    der: std::sync::Arc<[u8]>,
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
    fn from_pkey(pkey: PKey<Public>) -> Self {
        let der = pkey.public_key_to_der().expect("SPKI encode");
        PublicKey {
            pkey,
            der: der.into(),
        }
    }

    fn from_components(n: &[u8], e: &[u8], limits: &KeyLimits) -> Result<Self, WireError> {
        limits.check(n, e)?;
        let n = BigNum::from_slice(n).map_err(ossl("bignum"))?;
        let e = BigNum::from_slice(e).map_err(ossl("bignum"))?;
        let rsa = Rsa::from_public_components(n, e).map_err(ossl("RSA public key"))?;
        Ok(Self::from_pkey(
            PKey::from_rsa(rsa).map_err(ossl("wrap public"))?,
        ))
    }

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

/// SHA-1 digest.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let d = hash(MessageDigest::sha1(), data).expect("SHA-1");
    let mut out = [0u8; 20];
    out.copy_from_slice(&d);
    out
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(openssl::sha::sha256(data))
}

/// AES-256-CBC encrypt `plaintext` after strict PKCS#7 padding to 16.
pub fn aes_cbc_seal(key: &[u8; 32], iv: &[u8; 16], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + BLOCK);
    aes_cbc_seal_into(key, iv, plaintext, &mut out);
    out
}

/// [`aes_cbc_seal`], appending the ciphertext to `out`: the whole blocks
/// are encrypted where they lie and only the last, padded block is
/// copied, so sealing a large reply copies nothing.
pub fn aes_cbc_seal_into(key: &[u8; 32], iv: &[u8; 16], plaintext: &[u8], out: &mut Vec<u8>) {
    let full = plaintext.len() / BLOCK * BLOCK;
    let n = BLOCK - plaintext.len() % BLOCK;
    let mut last = [n as u8; BLOCK];
    last[..plaintext.len() - full].copy_from_slice(&plaintext[full..]);
    let done = aes_cipher().and_then(|cipher| {
        use openssl::cipher_ctx::CipherCtx;
        let mut ctx = CipherCtx::new().ok()?;
        ctx.encrypt_init(Some(cipher), Some(key), Some(iv)).ok()?;
        ctx.set_padding(false);
        let start = out.len();
        let ok = ctx.cipher_update_vec(&plaintext[..full], out).is_ok()
            && ctx.cipher_update_vec(&last, out).is_ok()
            && ctx.cipher_final_vec(out).is_ok();
        if !ok {
            out.truncate(start);
        }
        ok.then_some(())
    });
    if done.is_none() {
        let mut padded = Vec::with_capacity(full + BLOCK);
        padded.extend_from_slice(&plaintext[..full]);
        padded.extend_from_slice(&last);
        out.extend(
            aes_cbc_raw(Mode::Encrypt, key, iv, &padded).expect("AES-CBC encrypt of aligned data"),
        );
    }
}

/// AES-256-CBC fetched from OpenSSL's provider once per process (`None`
/// if the fetch failed).
fn aes_cipher() -> Option<&'static openssl::cipher::Cipher> {
    static AES: std::sync::OnceLock<Option<openssl::cipher::Cipher>> = std::sync::OnceLock::new();
    AES.get_or_init(|| openssl::cipher::Cipher::fetch(None, "AES-256-CBC", None).ok())
        .as_ref()
}

/// AES-256-CBC decrypt and strictly remove PKCS#7 padding (pad value 1..=16,
/// every pad byte equal).
pub fn aes_cbc_open(key: &[u8; 32], iv: &[u8; 16], ct: &[u8]) -> Result<Vec<u8>, WireError> {
    if ct.is_empty() || ct.len() % BLOCK != 0 {
        return Err(WireError::BadCiphertextLength(ct.len()));
    }
    let mut pt = aes_cbc_raw(Mode::Decrypt, key, iv, ct)?;
    let n = *pt.last().expect("non-empty") as usize;
    if n == 0 || n > BLOCK || pt[pt.len() - n..].iter().any(|&b| b as usize != n) {
        return Err(WireError::BadPadding);
    }
    pt.truncate(pt.len() - n);
    Ok(pt)
}

/// AES-256-CBC over block-aligned data, no padding (used by the legacy
/// vectors, whose plaintext is already padded).
///
/// The cipher is fetched from OpenSSL's provider once per process: OpenSSL
/// 3 otherwise looks the algorithm up by name (locks, string compares) on
/// every message.
pub fn aes_cbc_raw(
    mode: Mode,
    key: &[u8; 32],
    iv: &[u8; 16],
    data: &[u8],
) -> Result<Vec<u8>, WireError> {
    use openssl::cipher_ctx::CipherCtx;
    if data.len() % BLOCK != 0 {
        return Err(WireError::BadCiphertextLength(data.len()));
    }
    let Some(cipher) = aes_cipher() else {
        return aes_cbc_symm(mode, key, iv, data);
    };
    let mut ctx = CipherCtx::new().map_err(ossl("AES"))?;
    match mode {
        Mode::Encrypt => ctx.encrypt_init(Some(cipher), Some(key), Some(iv)),
        Mode::Decrypt => ctx.decrypt_init(Some(cipher), Some(key), Some(iv)),
    }
    .map_err(ossl("AES"))?;
    ctx.set_padding(false);
    let mut out = Vec::with_capacity(data.len() + BLOCK);
    ctx.cipher_update_vec(data, &mut out).map_err(ossl("AES"))?;
    ctx.cipher_final_vec(&mut out).map_err(ossl("AES"))?;
    Ok(out)
}

/// The same through the implicit-fetch API, should an explicit fetch fail.
fn aes_cbc_symm(
    mode: Mode,
    key: &[u8; 32],
    iv: &[u8; 16],
    data: &[u8],
) -> Result<Vec<u8>, WireError> {
    let mut c = Crypter::new(Cipher::aes_256_cbc(), mode, key, Some(iv)).map_err(ossl("AES"))?;
    c.pad(false);
    let mut out = vec![0u8; data.len() + BLOCK];
    let mut n = c.update(data, &mut out).map_err(ossl("AES"))?;
    n += c.finalize(&mut out[n..]).map_err(ossl("AES"))?;
    out.truncate(n);
    Ok(out)
}

pub use openssl::symm::Mode as AesMode;

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

/// Two 1024-bit key pairs generated once per test binary, for unit tests
/// that need keys but not fresh ones.
#[cfg(test)]
pub(crate) fn test_keys() -> &'static (PrivateKey, PrivateKey) {
    static K: std::sync::OnceLock<(PrivateKey, PrivateKey)> = std::sync::OnceLock::new();
    K.get_or_init(|| {
        (
            PrivateKey::generate(1024).unwrap(),
            PrivateKey::generate(1024).unwrap(),
        )
    })
}

/// The public halves of [`test_keys`].
#[cfg(test)]
pub(crate) fn test_public_keys() -> &'static (PublicKey, PublicKey) {
    static K: std::sync::OnceLock<(PublicKey, PublicKey)> = std::sync::OnceLock::new();
    K.get_or_init(|| (test_keys().0.public(), test_keys().1.public()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sealing_in_place_gives_the_bytes_of_padding_then_encrypting() {
        let (key, iv) = ([3u8; 32], [4u8; 16]);
        for len in (0..=48).chain([1000, 20_000, 20_001]) {
            let pt: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
            let n = BLOCK - len % BLOCK;
            let mut padded = pt.clone();
            padded.resize(len + n, n as u8);
            let want = aes_cbc_raw(Mode::Encrypt, &key, &iv, &padded).unwrap();
            let mut out = vec![0xee; 5];
            aes_cbc_seal_into(&key, &iv, &pt, &mut out);
            assert_eq!(&out[..5], &[0xee; 5], "len {len}: prefix kept");
            assert_eq!(&out[5..], &want[..], "len {len}");
            assert_eq!(aes_cbc_open(&key, &iv, &out[5..]).unwrap(), pt);
        }
    }

    fn key() -> &'static PrivateKey {
        &test_keys().0
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

    #[test]
    fn aes_open_is_strict() {
        let key = [3u8; 32];
        let iv = [4u8; 16];
        let ct = aes_cbc_seal(&key, &iv, b"0123456789abcdef");
        assert_eq!(ct.len(), 32, "a full block of padding is added");
        assert_eq!(aes_cbc_open(&key, &iv, &ct).unwrap(), b"0123456789abcdef");
        assert!(matches!(
            aes_cbc_open(&key, &iv, &[]),
            Err(WireError::BadCiphertextLength(0))
        ));
        assert!(aes_cbc_open(&key, &iv, &ct[..31]).is_err());
        // Pad bytes that disagree: [.., 0x02, 0x03] is not valid PKCS#7.
        let raw = aes_cbc_raw(
            Mode::Encrypt,
            &key,
            &iv,
            &[[0u8; 14].as_slice(), &[2, 3]].concat(),
        )
        .unwrap();
        assert!(matches!(
            aes_cbc_open(&key, &iv, &raw),
            Err(WireError::BadPadding)
        ));
        let raw = aes_cbc_raw(Mode::Encrypt, &key, &iv, &[0u8; 16]).unwrap();
        assert!(matches!(
            aes_cbc_open(&key, &iv, &raw),
            Err(WireError::BadPadding)
        ));
        let raw = aes_cbc_raw(Mode::Encrypt, &key, &iv, &[17u8; 16]).unwrap();
        assert!(matches!(
            aes_cbc_open(&key, &iv, &raw),
            Err(WireError::BadPadding)
        ));
    }

    proptest! {
        #[test]
        fn aes_seal_open_round_trips(data in proptest::collection::vec(any::<u8>(), 0..300),
                                     key in any::<[u8; 32]>(), iv in any::<[u8; 16]>()) {
            let ct = aes_cbc_seal(&key, &iv, &data);
            prop_assert_eq!(ct.len() % 16, 0);
            prop_assert_eq!(aes_cbc_open(&key, &iv, &ct).unwrap(), data);
        }

        #[test]
        fn aes_open_never_panics(ct in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = aes_cbc_open(&[1; 32], &[2; 16], &ct);
        }
    }
}
