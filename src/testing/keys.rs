//! Keys for test clusters: fast parallel generation and an on-disk pool.
//!
//! Why: a member needs two RSA key pairs, so a 64-member cluster needs 128
//! keys, and with OpenSSL 3 one 2048-bit key costs ~130 ms of CPU. Three
//! things make that fast:
//!
//! * **All cores**: [`generate_keys`] spreads the work over
//!   `available_parallelism()` threads.
//! * **A faster prime search for test keys** ([`KeyGen::Fast`], the
//!   default of the harness and `xlreg up`): OpenSSL 3 confirms every prime
//!   with at least 64 Miller–Rabin rounds (a bound for adversarially chosen
//!   numbers); for *randomly* chosen candidates the error probability of a
//!   few rounds is already below 2^-100 (Damgård–Landrock–Pomerance; FIPS
//!   186-4 table C.2 asks for 5 rounds at 1024-bit primes). [`KeyGen::Fast`]
//!   sieves random odd candidates by the odd primes below 2^16, then runs
//!   one base-2 round plus [`mr_rounds`] random-base rounds, and assembles
//!   the key (e = 65537) with OpenSSL. It is about 3× faster than
//!   `RSA_generate_key`. Its big-number arithmetic is not constant-time:
//!   these are keys for test clusters on one machine, not for production —
//!   use [`KeyGen::OpenSsl`] (`xlreg up --strict-keygen`) when that matters.
//! * **A key pool** ([`KeyPool`]): pre-generated keys on disk, so repeated
//!   runs skip generation entirely.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use openssl::bn::{BigNum, BigNumContext, BigNumRef, MsbOption};
use openssl::error::ErrorStack;
use openssl::rsa::Rsa;

use crate::wire::{PrivateKey, WireError};

/// How keys are generated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyGen {
    /// Sieved random candidates and a few Miller–Rabin rounds (module
    /// docs): ~3× faster, for test clusters.
    #[default]
    Fast,
    /// OpenSSL's own `RSA_generate_key` (what [`PrivateKey::generate`]
    /// does).
    OpenSsl,
}

/// Odd numbers examined per random starting point before drawing a new one
/// (a window of 2·WINDOW integers holds ~11 primes at 1024 bits).
const WINDOW: usize = 4096;

/// Sieve bound: candidates divisible by an odd prime below this are skipped.
const SIEVE_BOUND: u32 = 1 << 16;

/// The public exponent.
const E: u32 = 65537;

fn small_primes() -> &'static [u32] {
    static P: OnceLock<Vec<u32>> = OnceLock::new();
    P.get_or_init(|| {
        let n = SIEVE_BOUND as usize;
        let mut composite = vec![false; n];
        let mut out = Vec::new();
        for i in 2..n {
            if composite[i] {
                continue;
            }
            if i > 2 {
                out.push(i as u32);
            }
            let mut j = i * i;
            while j < n {
                composite[j] = true;
                j += i;
            }
        }
        out
    })
}

/// Random-base Miller–Rabin rounds (after a base-2 round) for a prime of
/// `bits` bits: error below 2^-100 for random candidates (FIPS 186-4
/// table C.2/C.3, rounded up).
pub fn mr_rounds(bits: u32) -> u32 {
    match bits {
        0..=255 => 40,
        256..=511 => 10,
        512..=1023 => 8,
        1024..=1535 => 5,
        _ => 4,
    }
}

fn ossl(what: &'static str) -> impl FnOnce(ErrorStack) -> WireError {
    move |e| WireError::Crypto(format!("{what}: {e}"))
}

/// One Miller–Rabin round of odd `n` (n - 1 = d·2^s) to base `a`.
fn mr_round(
    n: &BigNumRef,
    n1: &BigNumRef,
    d: &BigNumRef,
    s: u32,
    a: &BigNumRef,
    ctx: &mut BigNumContext,
) -> Result<bool, ErrorStack> {
    let mut x = BigNum::new()?;
    x.mod_exp(a, d, n, ctx)?;
    if x.num_bits() == 1 || x == *n1 {
        return Ok(true); // x == 1 or x == n - 1
    }
    let mut y = BigNum::new()?;
    for _ in 1..s {
        y.mod_sqr(&x, n, ctx)?;
        if y == *n1 {
            return Ok(true);
        }
        if y.num_bits() == 1 {
            return Ok(false);
        }
        std::mem::swap(&mut x, &mut y);
    }
    Ok(false)
}

/// Miller–Rabin: base 2, then `rounds` random bases in [2, n-2].
fn probably_prime(n: &BigNumRef, rounds: u32, ctx: &mut BigNumContext) -> Result<bool, ErrorStack> {
    let mut n1 = BigNum::new()?;
    let one = BigNum::from_u32(1)?;
    n1.checked_sub(n, &one)?;
    let mut s = 0u32;
    while !n1.is_bit_set(s as i32) {
        s += 1;
    }
    let mut d = BigNum::new()?;
    d.rshift(&n1, s as i32)?;
    let two = BigNum::from_u32(2)?;
    if !mr_round(n, &n1, &d, s, &two, ctx)? {
        return Ok(false);
    }
    let mut range = BigNum::new()?;
    let three = BigNum::from_u32(3)?;
    range.checked_sub(n, &three)?; // bases 2..=n-2
    for _ in 0..rounds {
        let mut a = BigNum::new()?;
        range.rand_range(&mut a)?;
        a.add_word(2)?;
        if !mr_round(n, &n1, &d, s, &a, ctx)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A random probable prime of exactly `bits` bits with the two top bits set
/// (so that the product of two has exactly 2·bits bits) and p ≢ 1 (mod e).
fn random_prime(bits: u32, ctx: &mut BigNumContext) -> Result<BigNum, ErrorStack> {
    let primes = small_primes();
    let mut residues = vec![0u32; primes.len()];
    let mut composite = vec![false; WINDOW];
    loop {
        let mut x = BigNum::new()?;
        x.rand(bits as i32, MsbOption::TWO_ONES, true)?;
        for (r, &p) in residues.iter_mut().zip(primes) {
            *r = x.mod_word(p)? as u32;
        }
        let re = x.mod_word(E)?;
        composite.iter_mut().for_each(|c| *c = false);
        for (&r, &p) in residues.iter().zip(primes) {
            // First j with r + 2j ≡ 0 (mod p): j ≡ -r · 2⁻¹, and 2⁻¹ = (p+1)/2.
            let p64 = p as u64;
            let mut j = ((p64 - r as u64) % p64 * p64.div_ceil(2) % p64) as usize;
            while j < WINDOW {
                composite[j] = true;
                j += p as usize;
            }
        }
        for (j, _) in composite.iter().enumerate().filter(|(_, c)| !**c) {
            if (re + 2 * j as u64) % E as u64 == 1 {
                continue; // gcd(p - 1, e) would be e
            }
            let mut cand = x.to_owned()?;
            cand.add_word(2 * j as u32)?;
            if cand.num_bits() != bits as i32 {
                break;
            }
            if probably_prime(&cand, mr_rounds(bits), ctx)? {
                return Ok(cand);
            }
        }
    }
}

/// A test RSA key of `bits` bits (e = 65537) from [`random_prime`]s.
pub fn fast_rsa_key(bits: u32) -> Result<PrivateKey, WireError> {
    if !(1024..=16384).contains(&bits) || bits % 2 != 0 {
        return Err(WireError::BadKey(format!(
            "refusing to generate an RSA key of {bits} bits (even, 1024..=16384)"
        )));
    }
    let mut ctx = BigNumContext::new().map_err(ossl("bignum context"))?;
    let half = bits / 2;
    let (p, q) = loop {
        let p = random_prime(half, &mut ctx).map_err(ossl("prime search"))?;
        let q = random_prime(half, &mut ctx).map_err(ossl("prime search"))?;
        match p.ucmp(&q) {
            std::cmp::Ordering::Greater => break (p, q),
            std::cmp::Ordering::Less => break (q, p),
            std::cmp::Ordering::Equal => continue,
        }
    };
    let assemble = |ctx: &mut BigNumContext| -> Result<Rsa<openssl::pkey::Private>, ErrorStack> {
        let one = BigNum::from_u32(1)?;
        let e = BigNum::from_u32(E)?;
        let mut n = BigNum::new()?;
        n.checked_mul(&p, &q, ctx)?;
        let mut p1 = BigNum::new()?;
        p1.checked_sub(&p, &one)?;
        let mut q1 = BigNum::new()?;
        q1.checked_sub(&q, &one)?;
        let mut phi = BigNum::new()?;
        phi.checked_mul(&p1, &q1, ctx)?;
        let mut d = BigNum::new()?;
        d.mod_inverse(&e, &phi, ctx)?;
        let mut dmp1 = BigNum::new()?;
        dmp1.nnmod(&d, &p1, ctx)?;
        let mut dmq1 = BigNum::new()?;
        dmq1.nnmod(&d, &q1, ctx)?;
        let mut iqmp = BigNum::new()?;
        iqmp.mod_inverse(&q, &p, ctx)?;
        Rsa::from_private_components(n, e, d, p.to_owned()?, q.to_owned()?, dmp1, dmq1, iqmp)
    };
    let rsa = assemble(&mut ctx).map_err(ossl("assembling the RSA key"))?;
    if rsa.n().num_bits() != bits as i32 {
        return Err(WireError::Crypto(format!(
            "generated modulus has {} bits, not {bits}",
            rsa.n().num_bits()
        )));
    }
    let der = rsa.private_key_to_der().map_err(ossl("encoding the key"))?;
    // The empty-label PEM goes straight to the PKCS#1 DER decoder.
    PrivateKey::from_pem(crate::wire::crypto::pem_wrap("", &der).as_bytes())
}

/// One key with the chosen generator.
pub fn generate_key(bits: u32, gen: KeyGen) -> Result<PrivateKey, WireError> {
    match gen {
        KeyGen::Fast => fast_rsa_key(bits),
        KeyGen::OpenSsl => PrivateKey::generate(bits),
    }
}

/// Threads to use for key work: every core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Generate `count` distinct keys of `bits` bits on `threads` threads,
/// calling `on_key` after each one (from the generating thread). Stops at
/// the first failure.
pub fn generate_keys(
    count: usize,
    bits: u32,
    gen: KeyGen,
    threads: usize,
    on_key: &(dyn Fn() + Sync),
) -> Result<Vec<PrivateKey>, WireError> {
    run_parallel(count, threads, on_key, |_| generate_key(bits, gen))
}

/// Generate one key per entry of `sizes` (its bit size) on `threads`
/// threads, in that order; `on_key` as in [`generate_keys`].
pub fn generate_sized(
    sizes: &[u32],
    gen: KeyGen,
    threads: usize,
    on_key: &(dyn Fn() + Sync),
) -> Result<Vec<PrivateKey>, WireError> {
    run_parallel(sizes.len(), threads, on_key, |i| {
        generate_key(sizes[i], gen)
    })
}

/// Run `job(i)` for i in 0..count on up to `threads` threads; results in
/// index order; the first error stops the others.
pub(crate) fn run_parallel<T: Send, E: Send>(
    count: usize,
    threads: usize,
    on_done: &(dyn Fn() + Sync),
    job: impl Fn(usize) -> Result<T, E> + Sync,
) -> Result<Vec<T>, E> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..count).map(|_| None).collect());
    let first_err: Mutex<Option<E>> = Mutex::new(None);
    let worker = || loop {
        if failed.load(Ordering::Relaxed) {
            return;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            return;
        }
        match job(i) {
            Ok(v) => {
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(v);
                on_done();
            }
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                first_err
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
                return;
            }
        }
    };
    let threads = threads.clamp(1, count.max(1));
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(worker);
        }
        worker();
    });
    if let Some(e) = first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|k| k.expect("every job ran"))
        .collect())
}

/// Why the key pool could not deliver.
#[derive(Debug, thiserror::Error)]
pub enum KeyPoolError {
    /// A file or directory problem.
    #[error("key pool {path}: {err}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        err: std::io::Error,
    },
    /// Key generation failed.
    #[error("key pool: {0}")]
    Key(#[from] WireError),
    /// Two pool files hold the same key.
    #[error("key pool: {a} and {b} hold the same key; delete one of them")]
    Duplicate {
        /// One file.
        a: PathBuf,
        /// The other.
        b: PathBuf,
    },
}

/// What [`KeyPool::take`] delivered.
#[derive(Debug)]
pub struct PoolKeys {
    /// The keys, pairwise distinct.
    pub keys: Vec<PrivateKey>,
    /// How many came from files already in the pool.
    pub reused: usize,
    /// How many were generated now (and added to the pool).
    pub generated: usize,
}

/// A directory of pre-generated test keys: `DIR/rsa<BITS>/key-NNNNN.pem`
/// (PKCS#1 PEM, mode 0600).
///
/// Policy: a run that needs `n` keys uses the files `key-00000` …
/// `key-<n-1>` of its key size, generating and adding the missing ones. So
/// the keys of one run — one cluster — are always pairwise distinct (also
/// checked by fingerprint), and every run reuses the same keys: two
/// clusters launched from one pool have members with the same keys (but
/// fresh node IDs). Do not use a pool where clusters must not share keys.
/// New files are written under a temporary name and linked into place
/// without overwriting, so concurrent runs sharing a pool agree on every
/// file. A file that does not parse is replaced (with a warning).
#[derive(Clone, Debug)]
pub struct KeyPool {
    dir: PathBuf,
}

impl KeyPool {
    /// Use (and create if needed, mode 0700) the pool directory `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, KeyPoolError> {
        let dir = dir.into();
        create_private_dir(&dir)?;
        Ok(KeyPool { dir })
    }

    /// The pool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, bits: u32, i: usize) -> PathBuf {
        self.dir
            .join(format!("rsa{bits}"))
            .join(format!("key-{i:05}.pem"))
    }

    /// `count` distinct keys of `bits` bits (see the type's policy),
    /// loading and generating on `threads` threads; `on_key` is called once
    /// per key delivered.
    pub fn take(
        &self,
        count: usize,
        bits: u32,
        gen: KeyGen,
        threads: usize,
        on_key: &(dyn Fn() + Sync),
    ) -> Result<PoolKeys, KeyPoolError> {
        let sub = self.dir.join(format!("rsa{bits}"));
        create_private_dir(&sub)?;
        let reused = AtomicUsize::new(0);
        let keys = run_parallel(count, threads, on_key, |i| {
            let path = self.file(bits, i);
            match std::fs::read(&path) {
                Ok(pem) => match PrivateKey::from_pem(&pem) {
                    Ok(k) if k.bits() == bits => {
                        reused.fetch_add(1, Ordering::Relaxed);
                        return Ok(k);
                    }
                    Ok(k) => tracing::warn!(
                        "{} holds a {}-bit key, expected {bits}; replacing it",
                        path.display(),
                        k.bits()
                    ),
                    Err(e) => tracing::warn!("{}: {e}; replacing it", path.display()),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(KeyPoolError::Io { path, err }),
            }
            let k = generate_key(bits, gen)?;
            self.store(&path, &k)
        })?;
        let mut seen = std::collections::HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            if let Some(j) = seen.insert(k.public().fingerprint(), i) {
                return Err(KeyPoolError::Duplicate {
                    a: self.file(bits, j),
                    b: self.file(bits, i),
                });
            }
        }
        let reused = reused.into_inner();
        Ok(PoolKeys {
            generated: count - reused,
            reused,
            keys,
        })
    }

    /// Write `k` to `path` unless another process got there first; returns
    /// the key that is in the file afterwards.
    fn store(&self, path: &Path, k: &PrivateKey) -> Result<PrivateKey, KeyPoolError> {
        let io = |err| KeyPoolError::Io {
            path: path.to_path_buf(),
            err,
        };
        let tmp = path.with_file_name(format!(
            ".tmp-{}-{}",
            std::process::id(),
            hex::encode(crate::wire::crypto::random_array::<6>())
        ));
        {
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                o.mode(0o600);
            }
            let mut f = o.open(&tmp).map_err(io)?;
            f.write_all(k.to_pem_pkcs1().as_bytes()).map_err(io)?;
        }
        let linked = if path.exists() {
            // A corrupt file being replaced.
            std::fs::rename(&tmp, path).map(|_| true)
        } else {
            let r = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            match r {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        };
        if !linked.map_err(io)? {
            // Another run added this file meanwhile: use its key.
            let pem = std::fs::read(path).map_err(io)?;
            return Ok(PrivateKey::from_pem(&pem)?);
        }
        Ok(k.clone())
    }
}

fn create_private_dir(dir: &Path) -> Result<(), KeyPoolError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|err| KeyPoolError::Io {
        path: dir.to_path_buf(),
        err,
    })
}

/// Are these keys pairwise distinct (by public-key fingerprint)?
pub fn all_distinct<'a>(keys: impl IntoIterator<Item = &'a PrivateKey>) -> bool {
    let mut seen = HashSet::new();
    keys.into_iter()
        .all(|k| seen.insert(k.public().fingerprint()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_primes_are_the_odd_primes_below_the_bound() {
        let p = small_primes();
        assert_eq!(&p[..6], &[3, 5, 7, 11, 13, 17]);
        assert_eq!(p.len(), 6542 - 1); // π(65536) = 6542, minus 2
        assert_eq!(*p.last().unwrap(), 65521);
    }

    #[test]
    fn miller_rabin_agrees_with_openssl_on_small_and_big_numbers() {
        let mut ctx = BigNumContext::new().unwrap();
        for n in (5u32..3000).step_by(2) {
            let b = BigNum::from_u32(n).unwrap();
            let ours = probably_prime(&b, 8, &mut ctx).unwrap();
            let theirs = b.is_prime(64, &mut ctx).unwrap();
            assert_eq!(ours, theirs, "{n}");
        }
        // Carmichael numbers fool Fermat, not Miller–Rabin.
        for n in [561u32, 1105, 1729, 2465, 2821, 6601, 8911] {
            let b = BigNum::from_u32(n).unwrap();
            assert!(!probably_prime(&b, 8, &mut ctx).unwrap(), "{n}");
        }
        let p = random_prime(512, &mut ctx).unwrap();
        assert_eq!(p.num_bits(), 512);
        assert!(p.is_prime(64, &mut ctx).unwrap());
        assert_ne!(p.mod_word(E).unwrap(), 1);
    }

    #[test]
    fn fast_keys_are_valid_rsa_keys_of_the_exact_size() {
        for bits in [1024, 2048] {
            let k = fast_rsa_key(bits).unwrap();
            assert_eq!(k.bits(), bits);
            let ct = k.public().oaep_encrypt(b"hello registry").unwrap();
            assert_eq!(k.oaep_decrypt(&ct).unwrap(), b"hello registry");
            let sig = k.sign_sha1(b"token").unwrap();
            k.public().verify_sha1(b"token", &sig).unwrap();
            // OpenSSL's own consistency check (64-round primality of p, q,
            // d·e ≡ 1, CRT values) accepts it.
            let rsa = Rsa::private_key_from_pem(k.to_pem_pkcs1().as_bytes()).unwrap();
            assert!(rsa.check_key().unwrap());
        }
        assert!(fast_rsa_key(1000).is_err());
    }

    #[test]
    fn parallel_generation_gives_distinct_keys_and_counts_them() {
        let done = AtomicUsize::new(0);
        let keys = generate_keys(6, 1024, KeyGen::Fast, 3, &|| {
            done.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(keys.len(), 6);
        assert_eq!(done.load(Ordering::Relaxed), 6);
        assert!(all_distinct(&keys));
        assert!(generate_keys(2, 999, KeyGen::OpenSsl, 2, &|| {}).is_err());
    }

    #[test]
    fn pool_reuses_its_keys_and_never_repeats_one_within_a_take() {
        let tmp = tempfile::tempdir().unwrap();
        let pool = KeyPool::open(tmp.path().join("pool")).unwrap();
        let a = pool.take(3, 1024, KeyGen::Fast, 2, &|| {}).unwrap();
        assert_eq!((a.reused, a.generated), (0, 3));
        assert!(all_distinct(&a.keys));
        let b = pool.take(5, 1024, KeyGen::Fast, 2, &|| {}).unwrap();
        assert_eq!((b.reused, b.generated), (3, 2));
        assert!(all_distinct(&b.keys));
        for (x, y) in a.keys.iter().zip(&b.keys) {
            assert_eq!(x.public(), y.public());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(pool.file(1024, 0)).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600);
        }
        // A corrupt file is replaced; a copied file is a duplicate.
        std::fs::write(pool.file(1024, 1), "garbage").unwrap();
        let c = pool.take(2, 1024, KeyGen::Fast, 1, &|| {}).unwrap();
        assert_eq!((c.reused, c.generated), (1, 1));
        std::fs::copy(pool.file(1024, 0), pool.file(1024, 1)).unwrap();
        let e = pool.take(2, 1024, KeyGen::Fast, 1, &|| {}).unwrap_err();
        assert!(matches!(e, KeyPoolError::Duplicate { .. }), "{e}");
    }
}
