//! The faults as data: what a test asked for ([`Fault`]) and what it means
//! for the bytes from one member to another ([`LinkRule`]). Pure, so that
//! the meaning of every operation is tested apart from sockets; the proxy
//! (`proxy.rs`) only reads the table this computes.

use std::time::Duration;

/// Which way a [`Fault::Cut`] stops bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Only the bytes from the first member to the second.
    OneWay,
    /// Both ways.
    Both,
}

/// One fault in force, as applied (read back with
/// [`Faults::current`](super::Faults::current)). Member numbers are slots
/// (in a harness cluster: the launch order, `m00` is 0).
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Members in different groups cannot reach each other; a member in no
    /// group reaches no one.
    Partition(Vec<Vec<usize>>),
    /// This member reaches no one and no one reaches it.
    Isolate(usize),
    /// Bytes from `from` to `to` (and back, with [`Direction::Both`]) stop.
    Cut {
        /// Sender.
        from: usize,
        /// Receiver.
        to: usize,
        /// One way or both.
        direction: Direction,
    },
    /// Bytes from `from` to `to` arrive `delay` later, plus a uniformly
    /// random part of `jitter` (order is kept).
    Delay {
        /// Sender.
        from: usize,
        /// Receiver.
        to: usize,
        /// Added to every chunk of bytes.
        delay: Duration,
        /// Up to this much more, at random.
        jitter: Duration,
    },
    /// Each chunk of bytes from `from` to `to` is "lost" with this
    /// probability: as over TCP, it then arrives after a retransmission
    /// timeout ([`LOSS_RTO`]); a new connection's first packet lost costs
    /// [`LOSS_SYN_RTO`].
    Drop {
        /// Sender.
        from: usize,
        /// Receiver.
        to: usize,
        /// 0.0..=1.0.
        probability: f64,
    },
}

/// What a lost chunk costs: Linux's minimum TCP retransmission timeout.
pub const LOSS_RTO: Duration = Duration::from_millis(200);
/// What a lost connection attempt costs: Linux's initial SYN timeout.
pub const LOSS_SYN_RTO: Duration = Duration::from_secs(1);

/// What happens to the bytes from one member to another.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkRule {
    /// Held until the link is healed (a real partition: TCP retransmits
    /// until it gets through).
    pub blocked: bool,
    /// Added to every chunk.
    pub delay: Duration,
    /// Up to this much more per chunk.
    pub jitter: Duration,
    /// Chance that a chunk is lost (then late by [`LOSS_RTO`]).
    pub loss: f64,
}

impl LinkRule {
    /// No fault: bytes pass at once.
    pub fn is_healthy(&self) -> bool {
        *self == LinkRule::default()
    }

    /// How long a chunk read now waits, given two uniform random numbers
    /// in `0.0..1.0` (one for jitter, one for loss).
    pub fn wait(&self, r_jitter: f64, r_loss: f64) -> Duration {
        let mut d = self.delay + self.jitter.mul_f64(r_jitter);
        if r_loss < self.loss {
            d += LOSS_RTO;
        }
        d
    }
}

/// Why a fault was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// The request names members that do not exist or makes no sense.
    #[error("fault refused: {0}")]
    Usage(String),
}

impl Fault {
    /// Refuse members out of `0..n`, a member with itself, a member in two
    /// groups, and a probability outside 0..=1.
    pub fn check(&self, n: usize) -> Result<(), FaultError> {
        let bad = |m: String| Err(FaultError::Usage(m));
        let member = |i: usize| {
            if i < n {
                Ok(())
            } else {
                bad(format!("there is no member {i} (members are 0..{n})"))
            }
        };
        let pair = |a: usize, b: usize| {
            member(a)?;
            member(b)?;
            if a == b {
                return bad(format!("member {a} cannot be cut from itself"));
            }
            Ok(())
        };
        match self {
            Fault::Partition(groups) => {
                let mut seen = vec![false; n];
                for g in groups {
                    for &i in g {
                        member(i)?;
                        if std::mem::replace(&mut seen[i], true) {
                            return bad(format!("member {i} is in two groups of the partition"));
                        }
                    }
                }
                Ok(())
            }
            Fault::Isolate(i) => member(*i),
            Fault::Cut { from, to, .. } => pair(*from, *to),
            Fault::Delay { from, to, .. } => pair(*from, *to),
            Fault::Drop {
                from,
                to,
                probability,
            } => {
                pair(*from, *to)?;
                if !(0.0..=1.0).contains(probability) {
                    return bad(format!("probability {probability} is not in 0..=1"));
                }
                Ok(())
            }
        }
    }

    /// Apply this fault to `table` (`table[a * n + b]`: bytes from a to b).
    /// Blocks add up; a later delay or loss on a link replaces an earlier
    /// one.
    fn apply(&self, n: usize, table: &mut [LinkRule]) {
        let mut block = |a: usize, b: usize| table[a * n + b].blocked = true;
        match self {
            Fault::Partition(groups) => {
                let mut group = vec![None; n];
                for (g, members) in groups.iter().enumerate() {
                    for &i in members {
                        group[i] = Some(g);
                    }
                }
                for a in 0..n {
                    for b in 0..n {
                        if a != b && (group[a].is_none() || group[a] != group[b]) {
                            block(a, b);
                        }
                    }
                }
            }
            Fault::Isolate(i) => {
                for other in (0..n).filter(|o| o != i) {
                    block(*i, other);
                    block(other, *i);
                }
            }
            Fault::Cut {
                from,
                to,
                direction,
            } => {
                block(*from, *to);
                if *direction == Direction::Both {
                    block(*to, *from);
                }
            }
            Fault::Delay {
                from,
                to,
                delay,
                jitter,
            } => {
                let r = &mut table[from * n + to];
                r.delay = *delay;
                r.jitter = *jitter;
            }
            Fault::Drop {
                from,
                to,
                probability,
            } => table[from * n + to].loss = *probability,
        }
    }
}

/// The rule of every link (`[a * n + b]`: bytes from a to b) under
/// `faults`, applied in order.
pub fn compute(n: usize, faults: &[Fault]) -> Vec<LinkRule> {
    let mut table = vec![LinkRule::default(); n * n];
    for f in faults {
        f.apply(n, &mut table);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(n: usize, t: &[LinkRule]) -> Vec<(usize, usize)> {
        let mut v = vec![];
        for a in 0..n {
            for b in 0..n {
                if t[a * n + b].blocked {
                    v.push((a, b));
                }
            }
        }
        v
    }

    #[test]
    fn partition_blocks_across_groups_and_isolates_unnamed_members() {
        let t = compute(4, &[Fault::Partition(vec![vec![0], vec![1, 2]])]);
        let b = blocked(4, &t);
        for (x, y) in [
            (0, 1),
            (1, 0),
            (0, 2),
            (2, 0),
            (3, 0),
            (0, 3),
            (3, 1),
            (2, 3),
        ] {
            assert!(b.contains(&(x, y)), "{x}->{y} should be blocked: {b:?}");
        }
        assert!(!b.contains(&(1, 2)) && !b.contains(&(2, 1)), "{b:?}");
        assert_eq!(b.len(), 12 - 2, "{b:?}");
    }

    #[test]
    fn isolate_and_one_way_cut_block_what_they_say() {
        let b = blocked(3, &compute(3, &[Fault::Isolate(2)]));
        assert_eq!(b, vec![(0, 2), (1, 2), (2, 0), (2, 1)]);
        let one = Fault::Cut {
            from: 0,
            to: 1,
            direction: Direction::OneWay,
        };
        assert_eq!(blocked(3, &compute(3, &[one])), vec![(0, 1)]);
        let both = Fault::Cut {
            from: 0,
            to: 1,
            direction: Direction::Both,
        };
        assert_eq!(blocked(3, &compute(3, &[both])), vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn delay_and_drop_touch_one_direction_only() {
        let t = compute(
            2,
            &[
                Fault::Delay {
                    from: 0,
                    to: 1,
                    delay: Duration::from_millis(200),
                    jitter: Duration::from_millis(10),
                },
                Fault::Drop {
                    from: 0,
                    to: 1,
                    probability: 0.5,
                },
            ],
        );
        assert_eq!(t[1].delay, Duration::from_millis(200));
        assert_eq!(t[1].loss, 0.5);
        assert!(t[2].is_healthy(), "1->0 untouched: {:?}", t[2]);
        assert_eq!(t[1].wait(0.5, 0.9), Duration::from_millis(205));
        assert_eq!(t[1].wait(0.0, 0.1), Duration::from_millis(400));
        assert!(compute(2, &[]).iter().all(LinkRule::is_healthy));
    }

    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        let e = Fault::Isolate(3).check(3).unwrap_err();
        assert!(e.to_string().contains("no member 3"), "{e}");
        let e = Fault::Partition(vec![vec![0, 1], vec![1]])
            .check(3)
            .unwrap_err();
        assert!(e.to_string().contains("member 1 is in two groups"), "{e}");
        let e = Fault::Cut {
            from: 1,
            to: 1,
            direction: Direction::Both,
        }
        .check(3)
        .unwrap_err();
        assert!(e.to_string().contains("itself"), "{e}");
        let e = Fault::Drop {
            from: 0,
            to: 1,
            probability: 1.5,
        }
        .check(3)
        .unwrap_err();
        assert!(e.to_string().contains("1.5"), "{e}");
        assert!(Fault::Partition(vec![vec![0], vec![1, 2]]).check(3).is_ok());
    }
}
