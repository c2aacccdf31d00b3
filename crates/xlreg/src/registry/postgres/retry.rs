//! How long to wait before trying a transaction again.
//!
//! A transaction that lost a race (serialization failure `40001`,
//! deadlock `40P01`, unique violation) or its connection is run again
//! from the start. Exponential backoff with jitter: the racers that lost
//! together do not come back together, which on an engine that decides
//! conflicts optimistically (CockroachDB, YugabyteDB: every contended
//! transaction may end in `40001`) would only make them lose again.

use std::time::Duration;

/// Backoff before the first retry, doubled each time up to [`CAP`].
const BASE: Duration = Duration::from_millis(5);
/// Longest single backoff.
const CAP: Duration = Duration::from_millis(500);

/// The pause before retry number `retry` (0-based): a random duration in
/// `[d/2, d]` with `d = min(5 ms · 2^retry, 500 ms)` ("equal jitter": never
/// less than half the exponential step, never the same for two racers).
pub(super) fn backoff(retry: usize) -> Duration {
    let d = BASE.saturating_mul(1u32 << retry.min(16)).min(CAP);
    let half = d / 2;
    half + half.mul_f64(unit())
}

/// A uniform number in `[0, 1)`; OpenSSL's generator (already linked),
/// and 0.5 should it ever fail.
fn unit() -> f64 {
    let mut b = [0u8; 4];
    match openssl::rand::rand_bytes(&mut b) {
        Ok(()) => u32::from_le_bytes(b) as f64 / (u32::MAX as f64 + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_half_to_full_step_and_stops_at_the_cap() {
        for retry in 0..12 {
            let step = BASE.saturating_mul(1 << retry).min(CAP);
            for _ in 0..50 {
                let d = backoff(retry);
                assert!(
                    d >= step / 2 && d <= step,
                    "retry {retry}: {d:?} vs {step:?}"
                );
            }
        }
        assert!(backoff(100) <= CAP);
        // Jittered: 50 draws of one step are not all equal.
        let draws: std::collections::HashSet<Duration> = (0..50).map(|_| backoff(6)).collect();
        assert!(draws.len() > 1, "{draws:?}");
    }
}
