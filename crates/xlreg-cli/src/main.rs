//! The `xlreg` command: see `xlreg --help` and the README's CLI tour.
//!
//! This binary crate holds what a library user never needs: argument
//! parsing ([`cli`]), progress bars, log formatting and the benchmarks
//! ([`bench`]). Everything it does goes through the `xlreg` library.

mod bench;
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
