//! [`Shared`]: the state every connection of a server reads (its
//! configuration, identity, backend, metrics and limits). Its own file so
//! that the connection code depends on it and the accept loop
//! (`server/mod.rs`) depends on both, one way.

use std::sync::Arc;

use super::config::ServerConfig;
use super::identity::ServerIdentity;
use super::limits::RegistrationLimiter;
use super::session::SessionConfig;
use crate::registry::Backend;

/// State shared by every connection.
pub(crate) struct Shared {
    pub(crate) cfg: ServerConfig,
    pub(crate) identity: ServerIdentity,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) session_cfg: Arc<SessionConfig>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) limiter: Option<RegistrationLimiter>,
}
