//! The per-connection [`Backend`] decorator that applies the registration
//! limit and counts what the registry did, for `/metrics`.
//!
//! Why a decorator: the dispatch path ([`super::dispatch::respond`]) and
//! every backend stay unaware of metrics and limits; the connection wraps
//! the server's backend in a [`Counted`] that knows the peer's address
//! (the registration limit is per source address) and the metrics.

use std::net::IpAddr;

use tokio::sync::watch;

use super::limits::RegistrationLimiter;
use crate::metrics::Metrics;
use crate::registry::{
    Answer, Backend, BackendError, BoxFuture, Listing, ListingPage, Request, RuleError,
};
use crate::wire::NodeId;

/// `inner`, as seen from one connection from `peer`.
#[derive(Debug)]
pub(crate) struct Counted<'a> {
    pub(crate) inner: &'a dyn Backend,
    pub(crate) metrics: &'a Metrics,
    pub(crate) limiter: Option<&'a RegistrationLimiter>,
    pub(crate) peer: IpAddr,
}

impl Counted<'_> {
    /// The registration limit, before a Register reaches the backend.
    fn refused(&self, req: &Request) -> Option<BackendError> {
        let l = self.limiter?;
        if matches!(req, Request::Register(_)) && !l.allow(self.peer) {
            self.metrics.limit_refused("registrations_per_address");
            return Some(BackendError::Rule(RuleError::TooManyRegistrations(
                l.per_hour(),
            )));
        }
        None
    }

    /// Count what the registry did.
    fn count(&self, r: &Result<Answer, BackendError>) {
        let m = self.metrics;
        match r {
            Ok(Answer::Registered(_)) => m.registrations.inc(),
            Ok(Answer::Created(_)) => m.creates.inc(),
            Ok(Answer::Joined(_)) => m.joins.inc(),
            Ok(Answer::Deleted(_)) => m.deleted_clusters.inc(),
            Ok(Answer::Expired(n)) => m.expired_clusters.inc_by(*n as u64),
            Ok(Answer::Members(_) | Answer::Changed(_) | Answer::Watched(_)) | Err(_) => 0,
        };
        if let Err(BackendError::Rule(RuleError::TooManyClusters(_))) = r {
            m.limit_refused("max_clusters");
        }
    }
}

impl Backend for Counted<'_> {
    fn perform(&self, req: Request) -> BoxFuture<'_, Result<Answer, BackendError>> {
        Box::pin(async move {
            if let Some(e) = self.refused(&req) {
                return Err(e);
            }
            let r = self.inner.perform(req).await;
            self.count(&r);
            r
        })
    }

    fn subscribe(&self, cluster: &NodeId) -> watch::Receiver<u64> {
        self.inner.subscribe(cluster)
    }

    fn listing(&self, page: ListingPage) -> BoxFuture<'_, Result<Listing, BackendError>> {
        self.inner.listing(page)
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        // A connection never shuts the server's backend down.
        Box::pin(std::future::ready(()))
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        self.inner.ping()
    }
}
