//! Per-source-address registration limit: a token bucket per IP address,
//! so one client holding the (public) regCred.dat cannot register IDs
//! without end while everyone else is still served.
//!
//! Each address starts with `per_hour` tokens and earns them back at
//! `per_hour` an hour; a Member request spends one. The table is bounded:
//! when it is full, addresses whose bucket has refilled are forgotten (they
//! would start full anyway), and if none has, the new address is refused
//! rather than growing the table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Most addresses tracked at once.
pub const MAX_TRACKED: usize = 65_536;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets of Member requests by source address.
#[derive(Debug)]
pub struct RegistrationLimiter {
    per_hour: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RegistrationLimiter {
    /// At most `per_hour` registrations per address per hour (bursts up
    /// to `per_hour`).
    pub fn new(per_hour: u32) -> Self {
        RegistrationLimiter {
            per_hour: per_hour.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The configured rate.
    pub fn per_hour(&self) -> u32 {
        self.per_hour
    }

    /// Spend one token for `ip` at `now`; false when its bucket is empty.
    pub fn allow_at(&self, ip: IpAddr, now: Instant) -> bool {
        let cap = self.per_hour as f64;
        let rate = cap / 3600.0;
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let refill = |b: &Bucket| {
            (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(cap)
        };
        if !map.contains_key(&ip) && map.len() >= MAX_TRACKED {
            map.retain(|_, b| refill(b) < cap);
            if map.len() >= MAX_TRACKED {
                return false;
            }
        }
        let b = map.entry(ip).or_insert(Bucket {
            tokens: cap,
            at: now,
        });
        let tokens = refill(b);
        // Never move a bucket's clock back (a caller that read the clock
        // before another but locked after it): the time in between would
        // be refilled twice.
        let at = b.at.max(now);
        if tokens >= 1.0 {
            *b = Bucket {
                tokens: tokens - 1.0,
                at,
            };
            true
        } else {
            *b = Bucket { tokens, at };
            false
        }
    }

    /// [`RegistrationLimiter::allow_at`] now.
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.allow_at(ip, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_address_over_its_rate_is_refused_and_others_are_not() {
        let l = RegistrationLimiter::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t = Instant::now();
        assert!((0..3).all(|_| l.allow_at(a, t)));
        assert!(!l.allow_at(a, t), "fourth in the same instant");
        assert!(l.allow_at(b, t), "another address is served");
        // One token comes back after an hour / 3.
        assert!(!l.allow_at(a, t + Duration::from_secs(1100)));
        assert!(l.allow_at(a, t + Duration::from_secs(1300)));
    }
}
