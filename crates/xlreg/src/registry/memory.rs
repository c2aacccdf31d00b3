//! The store of an ephemeral registry: the in-memory [`Registry`] is the
//! only copy, so there is nothing to write and nothing to wait for.
//!
//! Why a store at all: the service treats every registry the same way
//! (decide, append, commit); with this store the append is free and the
//! service applies requests inline, under its lock, with no writer thread.
//! It keeps no second copy of the tokens; it only counts what it was
//! given.
//!
//! [`Registry`]: super::Registry

use super::rules::Change;
use super::store::{Store, StoreError};

/// Keeps nothing; loads empty. See the module docs.
#[derive(Debug, Default)]
pub struct MemoryStore {
    appended: u64,
}

impl MemoryStore {
    /// A new, empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// How many changes were appended (committed) so far.
    pub fn appended(&self) -> u64 {
        self.appended
    }
}

impl Store for MemoryStore {
    fn load(&mut self) -> Result<Vec<Change>, StoreError> {
        Ok(Vec::new())
    }

    fn append(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        self.appended += changes.len() as u64;
        Ok(())
    }

    fn waits_for_device(&self) -> bool {
        false
    }

    fn location(&self) -> &str {
        "<ephemeral>"
    }
}
