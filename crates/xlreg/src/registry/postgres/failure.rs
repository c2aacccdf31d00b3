//! Why one attempt at a transaction failed, and whether to try again.
//!
//! A file of its own so the backend ([`super`]) and the row and write
//! helpers it uses share it without importing each other.

use tokio_postgres::error::SqlState;

use super::url::DbUrl;
use crate::registry::store::{StoreCause, StoreError};

/// Why one attempt failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// No connection could be had.
    Pool(String),
    /// The database refused or lost the statement.
    Db(tokio_postgres::Error),
    /// The stored rows break an invariant.
    Corrupt(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Db(e)
    }
}

impl Failure {
    pub(super) fn retryable(&self) -> bool {
        match self {
            Failure::Db(e) => {
                e.is_closed()
                    || matches!(
                        e.code(),
                        Some(c) if *c == SqlState::UNIQUE_VIOLATION
                            || *c == SqlState::T_R_SERIALIZATION_FAILURE
                            || *c == SqlState::T_R_DEADLOCK_DETECTED
                    )
            }
            Failure::Pool(_) | Failure::Corrupt(_) => false,
        }
    }

    pub(super) fn text(&self) -> String {
        match self {
            Failure::Pool(m) | Failure::Corrupt(m) => m.clone(),
            Failure::Db(e) => match e.as_db_error() {
                Some(d) => format!("{}: {}", d.code().code(), d.message()),
                None => e.to_string(),
            },
        }
    }

    pub(super) fn into_store_error(self, url: &DbUrl, action: &str) -> StoreError {
        let cause = match self {
            Failure::Db(e) => StoreCause::Other(Box::new(e)),
            Failure::Pool(m) | Failure::Corrupt(m) => StoreCause::Malformed(m),
        };
        StoreError::new(url.to_string(), action, cause)
    }
}
