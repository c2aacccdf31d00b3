//! The one door through which a tokio thread enters Python, closed before
//! the interpreter finalises.
//!
//! Why: the runtime's threads outlive the interpreter (the runtime is a
//! process-wide static). A thread that takes the GIL while
//! `Py_FinalizeEx` runs, or holds it across the moment finalisation
//! starts, is killed or finds its thread state gone: the process ends in
//! SIGSEGV or "Fatal Python error: PyGILState_Release" after a script's
//! last `asyncio.run(xlreg.aio...)` (a completion still resolving its
//! asyncio future when the loop had already returned). So every entry
//! into Python from a thread Python did not start goes through
//! [`with_python`], and an `atexit` hook (atexit runs before
//! finalisation, while other threads may still take the GIL) closes the
//! door and waits for the threads inside to leave. After that, such work
//! is skipped: the event loops are gone, nobody awaits it any more, and
//! Python objects it drops are only queued by PyO3 (no Python call).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// How long the exit hook waits for threads inside Python to leave (a
/// Python callback that never returns must not hang the exit).
const LEAVE_WAIT: Duration = Duration::from_secs(10);

struct Door {
    closed: bool,
    inside: usize,
}

static DOOR: Mutex<Door> = Mutex::new(Door {
    closed: false,
    inside: 0,
});
static LEFT: Condvar = Condvar::new();

fn door() -> MutexGuard<'static, Door> {
    // Nothing panics while holding the lock; a poisoned lock is still
    // consistent.
    DOOR.lock().unwrap_or_else(|e| e.into_inner())
}

/// Run `f` with the GIL unless the interpreter is exiting (`None` then).
/// For threads Python did not start (tokio workers and blocking-pool
/// threads); Python's own threads may call it too.
pub fn with_python<R>(f: impl FnOnce(Python<'_>) -> R) -> Option<R> {
    {
        let mut d = door();
        if d.closed {
            return None;
        }
        d.inside += 1;
    }
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            let mut d = door();
            d.inside -= 1;
            if d.inside == 0 {
                LEFT.notify_all();
            }
        }
    }
    let _leave = Leave;
    Some(Python::attach(f))
}

/// The `atexit` hook: close the door, then wait (GIL released, so they can
/// finish) for the threads inside to leave.
#[pyfunction]
fn _close_before_exit(py: Python<'_>) {
    py.detach(|| {
        let deadline = Instant::now() + LEAVE_WAIT;
        let mut d = door();
        d.closed = true;
        while d.inside > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            d = LEFT
                .wait_timeout(d, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    });
}

/// Register the exit hook (at import of the extension module, so it runs
/// after the hooks registered later: atexit runs them last-in first-out).
pub fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let hook = wrap_pyfunction!(_close_before_exit, m)?;
    m.py().import("atexit")?.call_method1("register", (hook,))?;
    Ok(())
}
