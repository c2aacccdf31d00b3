//! The library's log records, in Python's `logging`: an event of Rust
//! target `xlreg::server::connection` is a record of the logger
//! `xlreg.server.connection` (a child of `xlreg`).
//!
//! Why this shape: the library logs with `tracing`; its `log` and
//! `log-always` features turn events into `log` records (also after the
//! embedded CLI set its global subscriber in this process: the bridge is
//! off while the CLI runs, [`without_python`], since the CLI prints its
//! own), and pyo3-log hands `log` records to `logging`. Records come from runtime threads, so they enter
//! Python through [`crate::exit::with_python`] (none at interpreter exit).
//! pyo3-log caches each logger's level to keep filtered records off the
//! GIL; the cache is dropped at every call into xlreg ([`refresh`]), so a
//! level set in Python (`caplog.set_level`, `setLevel`) holds from the
//! next call on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use log::{LevelFilter, Log, Metadata, Record};
use pyo3::prelude::*;
use pyo3_log::{Caching, Logger, ResetHandle};

use crate::exit::with_python;

/// Records of xlreg's own targets down to this level reach Python (which
/// then filters by the logger's level); other crates' from `Warn` up.
const XLREG_LEVEL: LevelFilter = LevelFilter::Debug;
const OTHER_LEVEL: LevelFilter = LevelFilter::Warn;

static RESET: OnceLock<ResetHandle> = OnceLock::new();

/// How many `without_python` calls are running (the CLI).
static OFF: AtomicUsize = AtomicUsize::new(0);

struct Gated(Logger);

impl Log for Gated {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if OFF.load(Ordering::Relaxed) == 0 && self.0.enabled(record.metadata()) {
            with_python(|_| self.0.log(record));
        }
    }

    fn flush(&self) {}
}

/// Install the bridge (at import of the extension module). Another `log`
/// logger already installed in this module's copy of `log` stays.
pub fn install(py: Python<'_>) -> PyResult<()> {
    let logger = Logger::new(py, Caching::LoggersAndLevels)?
        .filter(OTHER_LEVEL)
        .filter_target("xlreg".to_owned(), XLREG_LEVEL);
    let reset = logger.reset_handle();
    if log::set_boxed_logger(Box::new(Gated(logger))).is_ok() {
        log::set_max_level(XLREG_LEVEL.max(OTHER_LEVEL));
        let _ = RESET.set(reset);
    }
    Ok(())
}

/// Forget the cached logger levels (cheap: one pointer swap).
pub fn refresh() {
    if let Some(r) = RESET.get() {
        r.reset();
    }
}

/// Run `f` with the bridge off (the embedded CLI, which prints its log).
pub fn without_python<R>(f: impl FnOnce() -> R) -> R {
    struct On;
    impl Drop for On {
        fn drop(&mut self) {
            OFF.fetch_sub(1, Ordering::Relaxed);
        }
    }
    OFF.fetch_add(1, Ordering::Relaxed);
    let _on = On;
    f()
}
