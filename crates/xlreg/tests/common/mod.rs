//! Shared helpers for integration tests: where the reference vectors live.
//!
//! The vectors are read in place from the shared spec folder (never copied
//! into the repository). When they are missing the tests skip loudly, unless
//! `XLREG_REQUIRE_VECTORS=1` turns the skip into a failure (for CI).
#![allow(dead_code)]

pub mod registry;

/// `scenario` as two tests, `scenario::sqlite` and `scenario::postgres`,
/// for each scenario named. The test file defines `async fn sqlite() -> S`
/// and `async fn postgres(test: &str) -> Option<S>` (`None`: PostgreSQL is
/// not configured, the test skips as `TestDb::create` says), and each
/// scenario is `async fn scenario(s: S)`. Needs `#[macro_use] mod common;`.
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(super::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(s) = super::postgres(stringify!($scenario)).await {
                    super::$scenario(s).await
                }
            }
        }
    )*};
}

use std::path::{Path, PathBuf};

/// The reference test-vector folder (`shared/spec/testdata`): `$XLREG_VECTORS`
/// if set, else `<crate>/../shared/spec/testdata`. `None` (after a loud
/// message on stderr) when it does not exist; panics instead when
/// `XLREG_REQUIRE_VECTORS=1`.
pub fn vectors_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("XLREG_VECTORS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/spec/testdata"),
    };
    if dir.is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "SKIPPED: reference vectors not found at {}; set XLREG_VECTORS",
        dir.display()
    );
    if std::env::var("XLREG_REQUIRE_VECTORS").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    // Written to the stderr handle directly: `eprintln!` would be swallowed
    // by the test harness's output capture for passing tests.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n!!!!!!!!!! {msg} !!!!!!!!!!\n");
    None
}

/// Read a vector file (relative to the vector folder), with a clear panic.
pub fn read(dir: &Path, rel: &str) -> Vec<u8> {
    let p = dir.join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read vector {}: {e}", p.display()))
}

/// Read a vector file as UTF-8 text.
pub fn read_text(dir: &Path, rel: &str) -> String {
    String::from_utf8(read(dir, rel)).unwrap_or_else(|_| panic!("vector {rel} is not UTF-8"))
}
