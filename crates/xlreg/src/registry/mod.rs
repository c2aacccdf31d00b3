//! The registry: rules ([`rules`]), persistence ([`store`]) and the shared
//! service that sessions call ([`service`]).

pub mod rules;
pub mod service;
pub mod store;

pub use rules::{
    Change, Cluster, ClusterInfo, IdOwner, MemberRecord, Policy, Registry, RuleError, Selection,
};
pub use service::{RegistryService, ServiceError};
pub use store::{Store, StoreError};

/// The registry's clock: milliseconds since the Unix epoch.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
