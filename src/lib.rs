//! xlreg: the xlReg cluster registry — protocol core, server, client and
//! test-cluster tooling, wire-compatible with the original Go xlReg.
#![warn(missing_docs)]

pub mod cli;
pub mod regcred;
pub mod wire;
