//! Keys for test clusters: fast parallel generation and an on-disk pool.
//!
//! Why: a member needs two RSA key pairs, so a 64-member cluster needs 128
//! keys, and with OpenSSL 3 one 2048-bit key costs ~130 ms of CPU. Three
//! things make that fast:
//!
//! * **All cores**: [`generate_keys`] spreads the work over
//!   `available_parallelism()` threads.
//! * **Three-prime test keys** ([`KeyGen::Fast`], the default of the
//!   harness and `xlreg up`): from 2048 bits on, OpenSSL generates an RFC
//!   8017 multi-prime key with three primes
//!   ([`PrivateKey::generate_test_key`]) — about 3× faster than two
//!   primes, still OpenSSL's own constant-time code, and the public key is
//!   an ordinary RSA key to every peer. [`KeyGen::OpenSsl`]
//!   (`xlreg up --strict-keygen`) makes ordinary two-prime keys.
//! * **A key pool** ([`KeyPool`]): pre-generated keys on disk, so repeated
//!   runs skip generation entirely.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::wire::{PrivateKey, WireError};

/// How keys are generated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyGen {
    /// OpenSSL three-prime keys from 2048 bits on (module docs), ~3× faster.
    #[default]
    Fast,
    /// OpenSSL's own `RSA_generate_key` (what [`PrivateKey::generate`]
    /// does).
    OpenSsl,
}

/// One key with the chosen generator.
pub fn generate_key(bits: u32, gen: KeyGen) -> Result<PrivateKey, WireError> {
    match gen {
        KeyGen::Fast => PrivateKey::generate_test_key(bits),
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
pub fn run_parallel<T: Send, E: Send>(
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
    #[error("key pool {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        err: std::io::Error,
    },
    /// Key generation failed.
    #[error("key pool")]
    Key(#[from] WireError),
    /// Two pool files hold the same key.
    #[error("key pool: {a} and {b} hold the same key; delete one of them")]
    Duplicate {
        /// One file.
        a: PathBuf,
        /// The other.
        b: PathBuf,
    },
    /// A pool directory others could write to: whoever can add files
    /// there can plant keys whose private halves they know.
    #[error(
        "key pool {path}: writable by group or others (mode {mode:o}) or owned by \
         another user; `chmod 700` it or choose another directory"
    )]
    Unsafe {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
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
        refuse_shared_dir(&dir)?;
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
        refuse_shared_dir(&sub)?;
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
        let pem = k.to_pem_pkcs1();
        let linked = if path.exists() {
            // A corrupt file being replaced.
            crate::fsutil::write_atomic(path, pem.as_bytes(), 0o600).map(|_| true)
        } else {
            crate::fsutil::write_atomic_new(path, pem.as_bytes(), 0o600)
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
    crate::fsutil::create_private_dir(dir).map_err(|err| KeyPoolError::Io {
        path: dir.to_path_buf(),
        err,
    })
}

/// Refuse a directory that another user owns or that group/others may
/// write to (sticky or not: a pre-seeded key is a known key).
fn refuse_shared_dir(dir: &Path) -> Result<(), KeyPoolError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(dir).map_err(|err| KeyPoolError::Io {
            path: dir.to_path_buf(),
            err,
        })?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if m.mode() & 0o022 != 0 || m.uid() != me {
            return Err(KeyPoolError::Unsafe {
                path: dir.to_path_buf(),
                mode: m.mode() & 0o7777,
            });
        }
    }
    Ok(())
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
    fn fast_keys_are_valid_rsa_keys_of_the_exact_size() {
        for bits in [1024, 2048] {
            let k = generate_key(bits, KeyGen::Fast).unwrap();
            assert_eq!(k.bits(), bits);
            let ct = k.public().oaep_encrypt(b"hello registry").unwrap();
            assert_eq!(k.oaep_decrypt(&ct).unwrap(), b"hello registry");
            let sig = k.sign_sha1(b"token").unwrap();
            k.public().verify_sha1(b"token", &sig).unwrap();
            let rsa = openssl::rsa::Rsa::private_key_from_pem(k.to_pem_pkcs1().as_bytes()).unwrap();
            assert!(rsa.check_key().unwrap(), "OpenSSL's consistency check");
        }
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

    #[cfg(unix)]
    #[test]
    fn a_pool_dir_writable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pool");
        KeyPool::open(&dir).unwrap();
        for mode in [0o777, 0o1777, 0o720, 0o702] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = KeyPool::open(&dir).unwrap_err();
            assert!(matches!(e, KeyPoolError::Unsafe { .. }), "{mode:o}: {e}");
            assert!(e.to_string().contains("writable by group or others"), "{e}");
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let pool = KeyPool::open(&dir).unwrap();
        // A shared subdirectory for one key size is refused too.
        let sub = dir.join("rsa1024");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = pool.take(1, 1024, KeyGen::Fast, 1, &|| {}).unwrap_err();
        assert!(matches!(e, KeyPoolError::Unsafe { .. }), "{e}");
    }
}
