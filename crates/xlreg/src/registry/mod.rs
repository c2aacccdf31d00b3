//! The registry: what a server does with a request once the session has
//! accepted it.
//!
//! Layout, one concern per file (private; everything public is at
//! `xlreg::registry::X`, except the PostgreSQL store, [`postgres`]):
//!
//! * `request.rs`: the one [`Request`]/[`Answer`] pair shared by the
//!   session, every backend and the fuzz driver.
//! * `backend.rs`: the [`Backend`] trait the server calls
//!   (`Arc<dyn Backend>`): one call, [`Backend::perform`], for every
//!   request; [`perform_held`], the server's dispatch path, which also
//!   holds GetClusters; [`BackendExt::call`] for typed answers.
//! * `listing.rs`: paged listings of the live clusters ([`Listing`]).
//! * `config.rs`: [`StoreConfig`], which store keeps the registry, and
//!   [`StoreConfig::open`], the one place a store is opened and given its
//!   [`Policy`].
//! * `values.rs`: the value types (clusters, members, changes, refusals,
//!   policy) the rules, requests and stores share.
//! * `rules.rs`: the rules as pure functions over an in-memory
//!   [`Registry`], whole or partial; `restore.rs` loads stored changes
//!   through the same checks ([`Registry::restore`]).
//! * `service.rs`: [`RegistryService`], the in-process backend: the whole
//!   registry in memory, one writer, group commit, over a [`Store`].
//! * `store.rs`: the [`Store`] trait (load and append [`Change`]s) and
//!   [`StoreError`]; `sqlite.rs` ([`SqliteStore`]) and `memory.rs`
//!   ([`MemoryStore`], for ephemeral registries) implement it.
//!
//! # Who decides what
//!
//! The **rules** ([`Registry::decide`], [`get_target`], [`join_target`],
//! [`Registry::restore`]) decide everything that depends only on the rows
//! involved: whether an ID may be registered by this sig key (a member
//! may re-register its own ID; a cluster's or the registry's ID is never a
//! member's), clamping a cluster's size to 2..=64 and refusing empty or
//! over-long names and endpoint counts outside 1..=16, that Create of an
//! existing name returns that cluster unchanged, a Join's slot (the next
//! free index, or the member's own slot when it re-joins with the same ID
//! and name), "cluster is full", name and ID clashes inside a cluster,
//! the endpoint minimum, which committed tokens a GetCluster returns
//! within its byte budget, and whether stored data is acceptable on load.
//! They record every write as a [`Change`] and can run on a registry that
//! holds only the rows one request touches.
//!
//! The **backend** decides what needs the storage:
//!
//! * **atomicity and ordering** — two requests racing for the last slot
//!   or the same name must be decided one after the other, on state that
//!   includes the winner's write. [`RegistryService`] has one writer; a
//!   shared database must lock the cluster row (or the name, for Create;
//!   the ID row, for Register) in its transaction, load the members and
//!   ID owners involved into a [`Registry`] ([`Registry::restore_change`]),
//!   run [`Registry::decide`], and write [`Registry::pending`] before
//!   committing. "Is there a free slot" is only true inside that
//!   transaction.
//! * **uniqueness of fresh IDs** beyond the rows loaded: the rules avoid
//!   IDs they know; a database's primary key must refuse the rest (retry
//!   with a new ID).
//! * **durability before the reply**: an answer is returned only after
//!   its changes are committed durably; on failure nothing is applied and
//!   the error is [`BackendError::Storage`].
//! * **visibility**: GetCluster sees only committed members.
//! * **wake-ups**: after committing a change to a cluster's members, wake
//!   the receivers of [`Backend::subscribe`] so held GetClusters re-read.
//!
//! Clusters that change (Resize, Evict, Leave, Watch) follow the same
//! split: the rules decide who may (the creator or the operator), the slot
//! (joins take the lowest free one; leave and evict leave holes), the
//! version (+1 per committed change) and the bounded history; the backend
//! locks the cluster row and wakes held Watches like held GetClusters.

pub(crate) mod backend;
pub(crate) mod config;
pub(crate) mod listing;
pub(crate) mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
pub(crate) mod request;
pub(crate) mod restore;
pub(crate) mod rules;
pub(crate) mod service;
pub(crate) mod sqlite;
pub(crate) mod store;
pub(crate) mod values;

pub use backend::{
    get_cluster_held, perform_held, watch_held, Backend, BackendError, BackendExt, BoxFuture,
};
pub use config::StoreConfig;
pub use listing::{Listing, ListingOrder, ListingPage, MAX_LISTING_PAGE};
pub use memory::MemoryStore;
pub use request::{
    Answer, By, ClusterTarget, Create, Delete, DeleteByName, Evict, Expire, GetCluster, Join,
    Joined, Leave, MemberSlot, Members, Op, Register, Request, Resize, Watch, Watched,
};
pub use rules::{get_target, join_target, Registry};
pub use service::RegistryService;
pub use sqlite::{db_path, SqliteStore};
pub use store::{Store, StoreCause, StoreError};
pub use values::{Actor, ChangeKind, HistoryEntry, HISTORY_LEN};
pub use values::{
    Change, Cluster, ClusterFacts, IdOwner, MemberRecord, Policy, RestoreError, RuleError,
    Selection,
};

/// Most expired clusters removed (and activity times stored) per sweep:
/// the background work per transaction is bounded.
pub const SWEEP_BATCH: usize = 256;

/// The registry's clock: milliseconds since the Unix epoch.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
