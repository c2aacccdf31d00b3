//! AES-256-CBC (spec §3): strict PKCS#7 sealing and opening of the
//! HelloReply and every session message, with the cipher fetched from
//! OpenSSL once per process.

use openssl::symm::{Cipher, Crypter, Mode};

use super::{ossl, WireError};

/// AES block size; also the IV length.
pub const BLOCK: usize = 16;

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

#[cfg(feature = "__test-vectors")]
pub use openssl::symm::Mode as AesMode;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::crypto::*;
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
