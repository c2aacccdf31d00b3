//! The `xlreg` command: see `xlreg --help` and the README's CLI tour.
//!
//! This binary crate holds what a library user never needs: argument
//! parsing (`cli`), progress bars, log formatting and the benchmarks
//! (`bench`). Everything it does goes through the `xlreg` library; the
//! command itself lives in the crate's library target (`src/lib.rs`) so
//! that the Python package can embed it.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(xlreg_cli::main_with(std::env::args_os()).clamp(0, 255) as u8)
}
