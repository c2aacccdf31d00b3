//! regCred.dat, the registry credentials file (spec §12): how a client
//! learns the registry's comms key and address.
//!
//! PARSER/WRITER: being written (see issue 2) — the type below is the
//! stable interface.

use crate::wire::{DecimalVersion, NodeId, PublicKey};

/// The contents of a regCred.dat file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegCred {
    /// Registry name (the Go server always writes `xlReg`).
    pub name: String,
    /// Registry node ID.
    pub id: NodeId,
    /// Registry comms key: clients encrypt the Hello with it.
    pub comms_key: PublicKey,
    /// Registry sig key (informational; the protocol never uses it).
    pub sig_key: PublicKey,
    /// Endpoints as `host:port` (without the `TcpEndPoint: ` prefix); the
    /// first is where clients connect.
    pub endpoints: Vec<String>,
    /// Registry software version.
    pub version: DecimalVersion,
}
