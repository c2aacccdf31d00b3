//! Benchmarks behind `xlreg bench ...`: how fast this machine does the work
//! a registry does, so that numbers from other benchmarks (cluster
//! formation, throughput) can be judged against the hardware.
//!
//! The common yardstick is the RSA-2048 private-key decryption rate: every
//! session costs the registry one such operation (the Hello), so it bounds
//! the session rate of one core. Everything here is bounded both in
//! iteration count and in wall time, so a benchmark never runs away on a
//! slow machine.

use std::time::{Duration, Instant};

pub mod cli_calls;
pub mod crypto;
pub mod faults;
pub mod floor;
pub mod formation;
pub mod memory;
pub mod peer;
pub mod serve_proc;
pub mod soak;
pub mod stores;
pub mod throughput;
pub mod up;

/// Timing of `n` runs of one operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Number of runs measured.
    pub n: usize,
    /// Wall time of all runs together.
    pub total: Duration,
    /// Fastest run.
    pub min: Duration,
    /// Median run.
    pub median: Duration,
    /// Slowest run.
    pub max: Duration,
}

impl Stats {
    /// Operations per second (0 when nothing was measured).
    pub fn ops_per_sec(&self) -> f64 {
        let s = self.total.as_secs_f64();
        if self.n == 0 || s <= 0.0 {
            0.0
        } else {
            self.n as f64 / s
        }
    }

    /// Mean microseconds per operation (0 when nothing was measured).
    pub fn micros_per_op(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.total.as_secs_f64() * 1e6 / self.n as f64
        }
    }
}

/// Run `f` up to `n` times, stopping early once `budget` has elapsed (after
/// at least one run when `n > 0`).
pub fn measure_bounded(n: usize, budget: Duration, mut f: impl FnMut()) -> Stats {
    let mut times = Vec::with_capacity(n.min(1 << 20));
    let start = Instant::now();
    while times.len() < n {
        let t = Instant::now();
        f();
        times.push(t.elapsed());
        if start.elapsed() >= budget {
            break;
        }
    }
    let total = times.iter().sum();
    times.sort_unstable();
    Stats {
        n: times.len(),
        total,
        min: times.first().copied().unwrap_or_default(),
        median: times.get(times.len() / 2).copied().unwrap_or_default(),
        max: times.last().copied().unwrap_or_default(),
    }
}

/// This machine's RSA-2048 OAEP private-decrypt rate on one core (ops/s):
/// the cost of accepting one session. Generates a throw-away key (cached
/// for the process), then decrypts a 44-byte Hello for at most 200 runs or
/// 0.5 s. The rate is from this thread's CPU time, not wall time, so a
/// machine busy with other work does not make a decryption look slower
/// (and the server-CPU ratios, also CPU time, stay comparable). Returns
/// 0.0 if the crypto library fails.
pub fn rsa2048_decrypt_rate() -> f64 {
    let Some(key) = crypto::bench_key_2048() else {
        return 0.0;
    };
    let Ok(ct) = key.public().oaep_encrypt(&[7u8; 44]) else {
        return 0.0;
    };
    let _ = key.oaep_decrypt(&ct); // warm-up
    let cpu0 = thread_cpu_time();
    let s = measure_bounded(200, Duration::from_millis(500), || {
        let _ = std::hint::black_box(key.oaep_decrypt(std::hint::black_box(&ct)));
    });
    let cpu = thread_cpu_time().saturating_sub(cpu0).as_secs_f64();
    if s.n == 0 || cpu <= 0.0 {
        s.ops_per_sec()
    } else {
        s.n as f64 / cpu
    }
}

/// CPU time of the calling thread.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The first line of every benchmark table: this machine's reference rate.
pub fn rsa_reference_line(rsa2048_decrypt_per_s: f64, cores: usize) -> String {
    format!("RSA-2048 private decrypt: {rsa2048_decrypt_per_s:.0}/s per core, {cores} cores\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_counts_and_orders() {
        let mut calls = 0;
        let s = measure_bounded(5, Duration::MAX, || calls += 1);
        assert_eq!((s.n, calls), (5, 5));
        assert!(s.min <= s.median && s.median <= s.max);
        assert!(s.total >= s.max);
        let empty = measure_bounded(0, Duration::MAX, || unreachable!());
        assert_eq!(
            (empty.n, empty.ops_per_sec(), empty.micros_per_op()),
            (0, 0.0, 0.0)
        );
    }

    #[test]
    fn measure_bounded_stops_on_time() {
        let s = measure_bounded(1_000_000, Duration::from_millis(20), || {
            std::thread::sleep(Duration::from_millis(5))
        });
        // Stopped by the budget, not the count: every run sleeps at least
        // 5 ms, so the 20 ms budget is spent after at most four runs. (No
        // upper bound on the time: a loaded machine may oversleep.)
        assert!(s.n >= 1 && s.n <= 4, "{}", s.n);
        assert!(s.micros_per_op() >= 5000.0);
        let product = s.ops_per_sec() * s.micros_per_op();
        assert!((product - 1e6).abs() < 1.0, "{product}");
    }
}
