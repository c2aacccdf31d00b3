//! The persistence seam under [`RegistryService`]: a [`Store`] keeps the
//! log of [`Change`]s the rules decided.
//!
//! Why changes: the rules already express every write as a [`Change`]
//! (a new ID owner, a new cluster, a member in a slot, a re-joined
//! member's new token), so a store only has to append a batch of them
//! atomically and durably, and hand them back on start-up. Whether the
//! stored data is acceptable is decided by the rules when they are loaded
//! ([`Registry::restore`]), not by each store. Adding a store is a new file
//! implementing this trait: [`SqliteStore`] and [`MemoryStore`] are the
//! first two.
//!
//! [`RegistryService`]: super::RegistryService
//! [`Registry::restore`]: super::Registry::restore
//! [`SqliteStore`]: super::SqliteStore
//! [`MemoryStore`]: super::MemoryStore

use super::rules::{Change, RestoreError};

/// Persistence of a registry's changes, used by one writer at a time.
pub trait Store: Send + 'static {
    /// Every committed change, in an order [`super::Registry::restore`]
    /// accepts: ID owners, then each cluster followed by its members in
    /// slot order.
    fn load(&mut self) -> Result<Vec<Change>, StoreError>;

    /// Persist `changes` atomically: all or none, durable when `Ok` is
    /// returned.
    fn append(&mut self, changes: &[Change]) -> Result<(), StoreError>;

    /// Does [`Store::append`] wait for a device (fsync)? If it does, the
    /// service group-commits on a writer thread; if not, it applies and
    /// appends inline, under its lock, with no thread hop.
    fn waits_for_device(&self) -> bool;

    /// Is the storage answering? (`/readyz`; default: yes.)
    fn ping(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Where the data lives (a path, `:memory:`, `<ephemeral>`), for
    /// messages.
    fn location(&self) -> &str;
}

/// A store failure: which store, what it was doing, and the cause.
///
/// Display names the store and the action; the cause is the
/// [`source`](std::error::Error::source), so `{:#}` prints each text once.
#[derive(Debug, thiserror::Error)]
#[error("registry database {location}: {action}")]
pub struct StoreError {
    /// The database file, `:memory:`, or another backend's address.
    pub location: String,
    /// What the store was doing ("cannot open", "insert member", …).
    pub action: String,
    /// Why it failed.
    #[source]
    pub cause: StoreCause,
}

impl StoreError {
    /// A failure of the store at `location` while doing `action`.
    pub fn new(
        location: impl Into<String>,
        action: impl Into<String>,
        cause: impl Into<StoreCause>,
    ) -> Self {
        StoreError {
            location: location.into(),
            action: action.into(),
            cause: cause.into(),
        }
    }
}

/// The cause of a [`StoreError`], keeping the underlying error.
#[derive(Debug, thiserror::Error)]
pub enum StoreCause {
    /// SQLite said no.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The file system said no.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Stored data the rules refuse (a corrupt or foreign database).
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// Stored data that is not even well-formed (a bad ID length, an
    /// unknown owner kind).
    #[error("{0}")]
    Malformed(String),
    /// Another backend's error (a PostgreSQL client error, say).
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}
