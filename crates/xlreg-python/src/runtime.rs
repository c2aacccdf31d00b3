//! Where the Rust futures run: one multi-threaded tokio runtime per
//! process, shared by the blocking calls, the asyncio calls and the
//! in-process registries.
//!
//! Why: a registry started by `xlreg.testing.LocalRegistry()` must keep
//! serving while Python code runs, and a blocking `xlreg.boot()` in one
//! thread must not stop an asyncio boot in another. Every future is
//! spawned as its own task, so a panic inside it ends that task only and
//! comes back as an `InternalError`, never as an abort of the interpreter.
//! An asyncio future is resolved through [`crate::exit::with_python`], so
//! no runtime thread is inside Python while the interpreter finalises.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;
use pyo3::IntoPyObjectExt;
use tokio::task::{AbortHandle, JoinError};

use crate::errors::{panic_message, Failure};
use crate::exit::with_python;

/// How often a blocking call wakes up to let Python handle signals
/// (Ctrl-C raises `KeyboardInterrupt` and cancels the call).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// The process-wide runtime.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("xlreg-runtime")
            .enable_all()
            .build()
            .expect("starting the tokio runtime of xlreg")
    })
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
    crate::logging::refresh();
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
/// many short calls (no task per call).
pub fn block_on_here<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    T: Send,
    F: Future<Output = Result<T, Failure>> + Send,
{
    block_on_in(py, runtime(), fut)
}

/// [`block_on_here`] on the runtime `rt`: on a current-thread runtime the
/// calling thread drives the I/O itself (the peer channel's blocking
/// connections: the kernel wakes the caller, not a worker that then wakes
/// it).
pub fn block_on_in<T, F>(py: Python<'_>, rt: &tokio::runtime::Runtime, fut: F) -> PyResult<T>
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
    crate::logging::refresh();
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

/// `fut` as a Python awaitable (an asyncio future of the running loop,
/// resolved from the runtime); cancelling it in Python cancels the Rust
/// future.
pub fn awaitable<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
    F: Future<Output = Result<T, Failure>> + Send + 'static,
{
    crate::logging::refresh();
    let event_loop = asyncio(py)?.call_method0("get_running_loop")?;
    let py_fut = event_loop.call_method0("create_future")?;
    let rt = runtime();
    let task = rt.spawn(fut);
    py_fut.call_method1("add_done_callback", (AbortWhenDone(task.abort_handle()),))?;
    let (event_loop, target) = (event_loop.unbind(), py_fut.clone().unbind());
    rt.spawn(async move {
        let r = task.await;
        // Taking the GIL may wait: on a blocking-pool thread, not a worker.
        tokio::task::spawn_blocking(move || {
            with_python(|py| {
                let (ok, value) = match flatten(r).and_then(|v| v.into_py_any(py)) {
                    Ok(v) => (true, v),
                    Err(e) => (false, e.into_value(py).into_any()),
                };
                // Fails only if the loop is closed: nobody awaits any more.
                let _ = event_loop
                    .bind(py)
                    .call_method1("call_soon_threadsafe", (Resolve, target, ok, value));
            });
        });
    });
    Ok(py_fut)
}

fn asyncio(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static ASYNCIO: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    Ok(ASYNCIO
        .get_or_try_init(py, || py.import("asyncio").map(Bound::unbind))?
        .bind(py))
}

/// Called on the event loop's thread: resolve the future unless it is
/// already done (cancelled).
#[pyclass(frozen)]
struct Resolve;

#[pymethods]
impl Resolve {
    fn __call__(&self, fut: &Bound<'_, PyAny>, ok: bool, value: Bound<'_, PyAny>) -> PyResult<()> {
        if fut.call_method0("done")?.is_truthy()? {
            return Ok(());
        }
        let how = if ok { "set_result" } else { "set_exception" };
        fut.call_method1(how, (value,))?;
        Ok(())
    }
}

/// The future's done callback: a cancelled (or finished) future ends the
/// Rust task.
#[pyclass(frozen)]
struct AbortWhenDone(AbortHandle);

#[pymethods]
impl AbortWhenDone {
    fn __call__(&self, _fut: &Bound<'_, PyAny>) {
        self.0.abort();
    }
}
