//! The registry: rules ([`rules`]), persistence ([`store`]) and the shared
//! service that sessions call ([`service`]).

#[cfg(feature = "postgres")]
pub mod postgres;
pub mod rules;
pub mod service;
pub mod store;

pub use rules::{
    Change, Cluster, ClusterInfo, IdOwner, MemberRecord, Registry, RuleError, Selection,
};
pub use service::{RegistryService, ServiceError};
pub use store::{Store, StoreError};
