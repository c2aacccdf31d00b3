//! xlreg: the xlReg cluster registry — protocol core, server, client and
//! test-cluster tooling, wire-compatible with the original Go xlReg.
//!
//! The crate is layered so that each layer can be used without the ones
//! above it:
//!
//! * [`wire`], [`regcred`], [`goconfig`], [`limits`]: the protocol, the Go
//!   file formats and the cluster shape limits, sans-IO (always built).
//! * [`client`] (feature `client`): how a member registers, joins and learns
//!   its cluster.
//! * [`registry`] and [`server`] (feature `server`): the registry's rules,
//!   its store and the tokio server.
//! * [`peer`] (feature `peer`): mutually authenticated TLS 1.3 between
//!   members, pinned to the keys they registered.
//! * [`testing`] (feature `testing`): in-process registries and clusters for
//!   tests and `xlreg up`.
//!
//! The `xlreg` command, benchmarks and fuzz targets live in other crates of
//! the workspace.
#![warn(missing_docs)]
// docs.rs (nightly, `--cfg docsrs`): "available on crate feature X" badges.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
mod error_chain;
mod fsutil;
pub mod goconfig;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub mod limits;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod metrics;
#[cfg(feature = "peer")]
#[cfg_attr(docsrs, doc(cfg(feature = "peer")))]
pub mod peer;
pub mod regcred;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod registry;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod wire;

pub use error_chain::ErrorChain;
