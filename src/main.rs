//! The `xlreg` command: see `xlreg --help` and the README's CLI tour.

fn main() -> std::process::ExitCode {
    xlreg::cli::main()
}
