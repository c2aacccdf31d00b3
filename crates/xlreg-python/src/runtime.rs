//! Where the Rust futures run: one multi-threaded tokio runtime per
//! process (pyo3-async-runtimes'), shared by the blocking calls, the
//! asyncio calls and the in-process registries.
//!
//! Why: a registry started by `xlreg.testing.LocalRegistry()` must keep
//! serving while Python code runs, and a blocking `xlreg.boot()` in one
//! thread must not stop an asyncio boot in another. Every future is
//! spawned as its own task, so a panic inside it ends that task only and
//! comes back as an `InternalError`, never as an abort of the interpreter.

use std::future::Future;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::task::JoinError;

use crate::errors::{panic_message, Failure};

/// How often a blocking call wakes up to let Python handle signals
/// (Ctrl-C raises `KeyboardInterrupt` and cancels the call).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// The process-wide runtime.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

fn flatten<T>(r: Result<Result<T, Failure>, JoinError>) -> PyResult<T> {
    match r {
        Ok(r) => r.map_err(Failure::into_pyerr),
        Err(e) if e.is_panic() => {
            Err(Failure::Panic(panic_message(e.into_panic().as_ref())).into_pyerr())
        }
        Err(e) => Err(Failure::Panic(format!("task ended: {e}")).into_pyerr()),
    }
}

/// Run `fut` to completion on the runtime with the GIL released; Python
/// signals are checked every [`SIGNAL_CHECK`] (a `KeyboardInterrupt`
/// cancels the future).
pub fn block_on<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T, Failure>> + Send + 'static,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Failure::Usage(
            "a blocking xlreg call was made from a thread that runs a tokio runtime; \
             use xlreg.aio there"
                .into(),
        )
        .into_pyerr());
    }
    let rt = runtime();
    let mut handle = rt.spawn(fut);
    loop {
        let r = py.detach(|| {
            rt.block_on(async { tokio::time::timeout(SIGNAL_CHECK, &mut handle).await })
        });
        match r {
            Ok(done) => return flatten(done),
            Err(_elapsed) => {
                if let Err(e) = py.check_signals() {
                    handle.abort();
                    return Err(e);
                }
            }
        }
    }
}

/// Run `fut` on this thread with the GIL released (the runtime's workers
/// drive its I/O); Python signals are checked every [`SIGNAL_CHECK`] (a
/// `KeyboardInterrupt` drops the future). Cheaper than [`block_on`] for
/// many short calls (no task per call): the peer channel's reads and
/// writes.
pub fn block_on_here<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    T: Send,
    F: Future<Output = Result<T, Failure>> + Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Failure::Usage(
            "a blocking xlreg call was made from a thread that runs a tokio runtime; \
             use xlreg.aio there"
                .into(),
        )
        .into_pyerr());
    }
    let rt = runtime();
    let mut fut = Box::pin(fut);
    let out = loop {
        let r = py.detach(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rt.block_on(async { tokio::time::timeout(SIGNAL_CHECK, fut.as_mut()).await })
            }))
        });
        match r {
            Ok(Ok(done)) => break done.map_err(Failure::into_pyerr),
            Ok(Err(_elapsed)) => {
                if let Err(e) = py.check_signals() {
                    break Err(e);
                }
            }
            Err(p) => break Err(Failure::Panic(panic_message(p.as_ref())).into_pyerr()),
        }
    };
    // The future may own sockets registered with the runtime.
    let _g = rt.enter();
    drop(fut);
    out
}

/// `fut` as a Python awaitable (an asyncio future resolved from the
/// runtime); cancelling it in Python cancels the Rust future.
pub fn awaitable<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
    F: Future<Output = Result<T, Failure>> + Send + 'static,
{
    pyo3_async_runtimes::tokio::future_into_py(py, async move {
        let mut handle = runtime().spawn(fut);
        // If Python cancels, this future is dropped: abort the task too.
        let guard = AbortOnDrop(handle.abort_handle());
        let r = (&mut handle).await;
        drop(guard);
        flatten(r)
    })
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
