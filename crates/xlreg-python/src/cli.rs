//! The `xlreg` command inside the extension, so the wheel's `xlreg`
//! console script runs the very same CLI as the Rust binary, with no Rust
//! toolchain on the user's machine.

use pyo3::prelude::*;

/// Run the `xlreg` command with `argv` (the first item is the program
/// name) and return its exit code. The GIL is released while it runs; the
/// CLI prints its own log, so records do not go to Python's `logging`
/// meanwhile.
#[pyfunction]
pub fn cli_main(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| {
        crate::logging::without_python(|| {
            match std::panic::catch_unwind(|| xlreg_cli::main_with(argv)) {
                Ok(code) => code,
                Err(p) => {
                    eprintln!(
                        "xlreg: internal error (a bug, please report it): {}",
                        crate::errors::panic_message(p.as_ref())
                    );
                    70
                }
            }
        })
    })
}
