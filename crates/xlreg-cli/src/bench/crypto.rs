//! `xlreg bench crypto`: the cost of each cryptographic step of the
//! protocol on this machine — key generation (what dominates launching a
//! test cluster), the registry's Hello decryption, the member signature and
//! its check, and sealing/opening a session message.

use std::sync::OnceLock;
use std::time::Duration;

use serde::Serialize;

use super::{measure_bounded, Stats};
use xlreg::wire::random_bytes;
use xlreg::wire::{PrivateKey, PublicKey, SessionKey, WireError};

/// Wall-time budget of one row; a row stops early when it is used up.
pub const ROW_BUDGET: Duration = Duration::from_secs(3);

/// Key generation is slow and has a long tail: its count is capped here
/// whatever `--iterations` says.
pub const KEYGEN_1024_MAX: usize = 20;
/// Cap for RSA-2048 key generation.
pub const KEYGEN_2048_MAX: usize = 10;

/// The row of three-prime test-key generation (`xlreg up`'s default).
pub const THREE_PRIME_KEYGEN: &str = "RSA-2048 key pair generation, three primes";

/// One line of the result table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// What was measured.
    pub name: String,
    /// Runs actually measured.
    pub iterations: usize,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Mean microseconds per operation.
    pub us_per_op: f64,
    /// Median microseconds per operation.
    pub median_us: f64,
}

impl Row {
    fn new(name: &str, s: Stats) -> Self {
        Row {
            name: name.to_string(),
            iterations: s.n,
            ops_per_sec: s.ops_per_sec(),
            us_per_op: s.micros_per_op(),
            median_us: s.median.as_secs_f64() * 1e6,
        }
    }
}

/// A throw-away RSA-2048 key shared by the benchmarks of one process.
pub(crate) fn bench_key_2048() -> Option<&'static PrivateKey> {
    static K: OnceLock<Option<PrivateKey>> = OnceLock::new();
    K.get_or_init(|| PrivateKey::generate(2048).ok()).as_ref()
}

/// Run every crypto benchmark. `iterations` overrides the per-row counts
/// (key generation stays capped at 20 / 10 runs); every row also stops
/// after [`ROW_BUDGET`].
pub fn run(iterations: Option<usize>) -> Result<Vec<Row>, WireError> {
    let n = |default: usize| iterations.unwrap_or(default).max(1);
    let mut rows = Vec::new();

    let mut failed = None;
    let s = measure_bounded(n(KEYGEN_1024_MAX).min(KEYGEN_1024_MAX), ROW_BUDGET, || {
        if let Err(e) = PrivateKey::generate(1024) {
            failed = Some(e);
        }
    });
    rows.push(Row::new("RSA-1024 key pair generation", s));
    let s = measure_bounded(n(KEYGEN_2048_MAX).min(KEYGEN_2048_MAX), ROW_BUDGET, || {
        if let Err(e) = PrivateKey::generate(2048) {
            failed = Some(e);
        }
    });
    rows.push(Row::new("RSA-2048 key pair generation", s));
    let s = measure_bounded(n(KEYGEN_2048_MAX).min(KEYGEN_2048_MAX), ROW_BUDGET, || {
        if let Err(e) = PrivateKey::generate_test_key(2048) {
            failed = Some(e);
        }
    });
    rows.push(Row::new(THREE_PRIME_KEYGEN, s));
    if let Some(e) = failed {
        return Err(e);
    }

    let key = bench_key_2048()
        .ok_or_else(|| WireError::Crypto("RSA-2048 key generation failed".into()))?;
    let public = key.public();
    let hello = public.oaep_encrypt(&[7u8; 44])?;
    key.oaep_decrypt(&hello)?;
    let s = measure_bounded(n(300), ROW_BUDGET, || {
        let _ = std::hint::black_box(key.oaep_decrypt(std::hint::black_box(&hello)));
    });
    rows.push(Row::new("RSA-2048 OAEP decrypt (Hello)", s));

    let msg = vec![0x5au8; 368]; // the size of a 1024-bit member's digest input
    let sig = key.sign_sha1(&msg)?;
    let s = measure_bounded(n(300), ROW_BUDGET, || {
        let _ = std::hint::black_box(key.sign_sha1(std::hint::black_box(&msg)));
    });
    rows.push(Row::new("RSA-2048 sign SHA-1 (member token)", s));
    public.verify_sha1(&msg, &sig)?;
    let s = measure_bounded(n(3000), ROW_BUDGET, || {
        let _ = std::hint::black_box(public.verify_sha1(&msg, std::hint::black_box(&sig)));
    });
    rows.push(Row::new("RSA-2048 verify SHA-1", s));
    let spki = public.to_spki_der();
    let s = measure_bounded(n(3000), ROW_BUDGET, || {
        if let Ok(k) = PublicKey::from_spki_der(std::hint::black_box(&spki)) {
            let _ = std::hint::black_box(k.verify_sha1(&msg, std::hint::black_box(&sig)));
        }
    });
    rows.push(Row::new(
        "SPKI decode + verify SHA-1, fresh key (per Member)",
        s,
    ));
    let s = measure_bounded(n(3000), ROW_BUDGET, || {
        let _ = std::hint::black_box(PublicKey::from_spki_der(std::hint::black_box(&spki)));
    });
    rows.push(Row::new("SPKI DER decode (RSA-2048 public key)", s));

    let mut k = [0u8; 32];
    random_bytes(&mut k);
    let session = SessionKey(k);
    let mut body = vec![0u8; 1024];
    random_bytes(&mut body);
    let sealed = session.seal_body(&body);
    let s = measure_bounded(n(20_000), ROW_BUDGET, || {
        std::hint::black_box(session.seal_body(std::hint::black_box(&body)));
    });
    rows.push(Row::new("session seal 1 KiB (AES-256-CBC)", s));
    let s = measure_bounded(n(20_000), ROW_BUDGET, || {
        let _ = std::hint::black_box(session.open_body(std::hint::black_box(&sealed)));
    });
    rows.push(Row::new("session open 1 KiB (AES-256-CBC)", s));
    Ok(rows)
}

/// The rows as an aligned text table.
pub fn table(rows: &[Row]) -> String {
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(9).max(9);
    let mut s = format!(
        "{:<w$}  {:>6}  {:>12}  {:>12}  {:>12}\n",
        "operation", "runs", "ops/s", "µs/op", "median µs"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<w$}  {:>6}  {:>12.1}  {:>12.1}  {:>12.1}\n",
            r.name, r.iterations, r.ops_per_sec, r.us_per_op, r.median_us
        ));
    }
    let us = |name: &str| rows.iter().find(|r| r.name == name).map(|r| r.us_per_op);
    if let (Some(two), Some(three)) = (us("RSA-2048 key pair generation"), us(THREE_PRIME_KEYGEN)) {
        if three > 0.0 {
            s.push_str(&format!(
                "\nthree-prime RSA-2048 keys generate {:.1}x faster than two-prime (this run)\n",
                two / three
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_produces_every_row() {
        let rows = run(Some(2)).unwrap();
        assert_eq!(rows.len(), 10);
        assert!(rows
            .iter()
            .all(|r| r.iterations == 2 && r.ops_per_sec > 0.0));
        let t = table(&rows);
        assert_eq!(t.lines().count(), 13, "{t}");
        assert!(t.contains("faster than two-prime"), "{t}");
        assert!(t.contains("RSA-2048 OAEP decrypt"));
        assert!(super::super::rsa2048_decrypt_rate() > 0.0);
    }
}
