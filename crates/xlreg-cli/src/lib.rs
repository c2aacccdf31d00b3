//! The `xlreg` command as a library, so that the command can be embedded:
//! the binary (`src/main.rs`) and the Python package's `xlreg` console
//! script both call [`main_with`] and run the very same CLI.
//!
//! The benchmarks (`xlreg bench …`) are the default feature `bench`: the
//! binary has them, the Python package embeds the CLI without them.

#[cfg(feature = "bench")]
mod bench;
mod cli;

pub use cli::main_with;
