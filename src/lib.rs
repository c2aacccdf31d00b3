//! xlreg: the xlReg cluster registry — protocol core, server, client and
//! test-cluster tooling, wire-compatible with the original Go xlReg.
#![warn(missing_docs)]

pub mod bench;
pub mod cli;
pub mod client;
#[doc(hidden)]
pub mod fuzzing;
pub mod goconfig;
pub mod regcred;
pub mod registry;
pub mod server;
pub mod testing;
pub mod wire;
