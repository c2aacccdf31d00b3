//! A nemesis: a schedule that alternates a random fault and a heal, for
//! soak-style tests. The faults come from the seed alone (not from
//! timing), so a failing run is replayed by giving its seed again; what
//! happened when is in [`Faults::log`](super::Faults::log).

use std::time::Duration;

use super::{Fault, Faults};

/// Which faults a nemesis picks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NemesisKind {
    /// Split the members at random into two halves (sizes ⌊n/2⌋ and
    /// ⌈n/2⌉) that cannot reach each other.
    PartitionHalves,
    /// Isolate one member chosen at random.
    IsolateOne,
}

impl std::str::FromStr for NemesisKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "partition-halves" => Ok(NemesisKind::PartitionHalves),
            "isolate-one" => Ok(NemesisKind::IsolateOne),
            _ => Err(format!(
                "unknown nemesis {s:?} (partition-halves, isolate-one)"
            )),
        }
    }
}

/// splitmix64: a fixed, portable sequence per seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The first `count` faults a nemesis of `kind` with `seed` applies to a
/// cluster of `n` members (each followed by a heal when it runs).
pub fn plan(kind: NemesisKind, n: usize, seed: u64, count: usize) -> Vec<Fault> {
    let mut rng = SplitMix(seed);
    (0..count).map(|_| next_fault(kind, n, &mut rng)).collect()
}

fn next_fault(kind: NemesisKind, n: usize, rng: &mut SplitMix) -> Fault {
    match kind {
        NemesisKind::PartitionHalves => {
            let mut m: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                m.swap(i, rng.below(i + 1));
            }
            let (a, b) = m.split_at(n / 2);
            let (mut a, mut b) = (a.to_vec(), b.to_vec());
            a.sort_unstable();
            b.sort_unstable();
            Fault::Partition(vec![a, b])
        }
        NemesisKind::IsolateOne => Fault::Isolate(rng.below(n.max(1))),
    }
}

/// A running nemesis; [`Nemesis::stop`] (or dropping it) ends it, and
/// `stop` heals.
#[derive(Debug)]
pub struct Nemesis {
    task: tokio::task::JoinHandle<()>,
    faults: Faults,
}

impl Nemesis {
    /// Every `every`: apply the next fault of [`plan`], then, `every`
    /// later, heal; and so on. Call inside a tokio runtime.
    pub fn start(faults: &Faults, kind: NemesisKind, every: Duration, seed: u64) -> Nemesis {
        let f = faults.clone();
        tracing::info!("nemesis {kind:?} every {every:?}, seed {seed}");
        let task = tokio::spawn(async move {
            let n = f.size();
            let mut rng = SplitMix(seed);
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = f.apply(next_fault(kind, n, &mut rng)) {
                    tracing::warn!("nemesis: {e}");
                }
                tokio::time::sleep(every).await;
                f.heal();
            }
        });
        Nemesis {
            task,
            faults: faults.clone(),
        }
    }

    /// Stop the schedule, wait until it has stopped, and heal the
    /// cluster (if a fault is in force).
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
        if !self.faults.current().is_empty() {
            self.faults.heal();
        }
    }
}

impl Faults {
    /// Start a nemesis on this cluster: every `every`, the next fault of
    /// [`plan`] for `seed`, then a heal (see [`Nemesis`]). (Written here,
    /// beside the nemesis, so that `faults` does not import `nemesis`.)
    pub fn nemesis(&self, kind: NemesisKind, every: Duration, seed: u64) -> Nemesis {
        Nemesis::start(self, kind, every, seed)
    }
}

impl Drop for Nemesis {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_faults_and_another_seed_others() {
        let a = plan(NemesisKind::PartitionHalves, 5, 7, 8);
        assert_eq!(a, plan(NemesisKind::PartitionHalves, 5, 7, 8));
        assert_ne!(a, plan(NemesisKind::PartitionHalves, 5, 8, 8));
        for f in &a {
            let Fault::Partition(g) = f else {
                panic!("{f:?}")
            };
            assert_eq!((g[0].len(), g[1].len()), (2, 3), "{g:?}");
            let mut all: Vec<usize> = g.concat();
            all.sort_unstable();
            assert_eq!(all, vec![0, 1, 2, 3, 4]);
            f.check(5).unwrap();
        }
        let iso = plan(NemesisKind::IsolateOne, 3, 1, 20);
        assert!(iso.iter().all(|f| matches!(f, Fault::Isolate(i) if *i < 3)));
        assert!("partition-halves".parse::<NemesisKind>().is_ok());
        assert!("chaos"
            .parse::<NemesisKind>()
            .unwrap_err()
            .contains("chaos"));
    }
}
