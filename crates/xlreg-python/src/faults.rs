//! Faults on demand from Python: what `LocalCluster(faults=True)`'s
//! methods (`partition`, `isolate`, `cut`, `delay`, `drop`, `heal`,
//! `current`, `nemesis`) do, over `xlreg::testing::Faults`. Every
//! operation only changes the proxies' rules (it never blocks), so the
//! same methods serve threads and asyncio tests alike; the nemesis runs
//! on xlreg's background runtime, never on the caller's event loop.

use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use xlreg::testing::faults::{Nemesis, NemesisKind};
use xlreg::testing::{Direction, Fault, Faults};

use crate::errors::{guard, Failure};
use crate::runtime::{block_on, runtime};

fn refused(e: xlreg::testing::FaultError) -> Failure {
    Failure::Usage(e.to_string())
}

/// The cluster's faults, or why there are none.
pub fn need(f: Option<&Faults>) -> Result<&Faults, Failure> {
    f.ok_or_else(|| {
        Failure::Usage("this cluster has no fault proxies: launch it with faults=True".into())
    })
}

fn secs(what: &str, s: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| *d <= Duration::from_secs(3600))
        .ok_or_else(|| Failure::Usage(format!("{what} {s} must be 0..=3600 seconds")))
}

/// Apply one fault (see the methods of `LocalCluster`).
pub fn apply(f: Option<&Faults>, fault: Fault) -> PyResult<()> {
    guard(|| need(f)?.apply(fault).map_err(refused))
}

/// `partition(groups)`.
pub fn partition(f: Option<&Faults>, groups: Vec<Vec<usize>>) -> PyResult<()> {
    apply(f, Fault::Partition(groups))
}

/// `cut(i, j, one_way)`.
pub fn cut(f: Option<&Faults>, from: usize, to: usize, one_way: bool) -> PyResult<()> {
    let direction = if one_way {
        Direction::OneWay
    } else {
        Direction::Both
    };
    apply(
        f,
        Fault::Cut {
            from,
            to,
            direction,
        },
    )
}

/// `delay(i, j, seconds, jitter)`.
pub fn delay(f: Option<&Faults>, from: usize, to: usize, s: f64, jitter: f64) -> PyResult<()> {
    let (delay, jitter) = guard(|| Ok((secs("delay", s)?, secs("jitter", jitter)?)))?;
    apply(
        f,
        Fault::Delay {
            from,
            to,
            delay,
            jitter,
        },
    )
}

/// `heal()`.
pub fn heal(f: Option<&Faults>) -> PyResult<()> {
    guard(|| {
        need(f)?.heal();
        Ok(())
    })
}

/// `current()`: the faults in force, in the words of `xlreg fault`.
pub fn current(f: Option<&Faults>) -> PyResult<Vec<String>> {
    guard(|| Ok(need(f)?.current().iter().map(Fault::to_string).collect()))
}

/// A running nemesis (`LocalCluster.nemesis(...)`): every `every`
/// seconds a fault chosen from the seed alone, then a heal. `stop()` (or
/// leaving the `with` block) ends it and heals.
#[pyclass(module = "xlreg.testing", name = "Nemesis")]
pub struct PyNemesis {
    inner: Mutex<Option<Nemesis>>,
    seed: u64,
}

/// `nemesis(kind, every, seed)`.
pub fn nemesis(f: Option<&Faults>, kind: &str, every: f64, seed: u64) -> PyResult<PyNemesis> {
    guard(|| {
        let faults = need(f)?;
        let kind: NemesisKind = kind.parse().map_err(Failure::Usage)?;
        let every = secs("every", every)?;
        if every < Duration::from_millis(10) {
            return Err(Failure::Usage("every must be at least 0.01 s".into()));
        }
        let _rt = runtime().enter();
        Ok(PyNemesis {
            inner: Mutex::new(Some(faults.nemesis(kind, every, seed))),
            seed,
        })
    })
}

#[pymethods]
impl PyNemesis {
    /// The seed: the same seed gives the same faults.
    #[getter]
    fn seed(&self) -> u64 {
        self.seed
    }
    /// End the schedule and heal the cluster. Idempotent.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let n = self.inner.lock().ok().and_then(|mut g| g.take());
        match n {
            None => Ok(()),
            Some(n) => block_on(py, async move {
                n.stop().await;
                Ok(())
            }),
        }
    }
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        self.stop(py)
    }
}

impl Drop for PyNemesis {
    fn drop(&mut self) {
        if let Ok(g) = self.inner.get_mut() {
            if let Some(n) = g.take() {
                let _rt = runtime().enter();
                drop(n);
            }
        }
    }
}
