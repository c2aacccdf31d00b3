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
    Backend, BackendError, BoxFuture, ClusterFacts, Create, Delete, GetCluster, Join, Joined,
    Members, Register, RuleError,
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

impl Backend for Counted<'_> {
    fn register(&self, req: Register) -> BoxFuture<'_, Result<NodeId, BackendError>> {
        Box::pin(async move {
            if let Some(l) = self.limiter {
                if !l.allow(self.peer) {
                    self.metrics.limit_refused("registrations_per_address");
                    return Err(BackendError::Rule(RuleError::TooManyRegistrations(
                        l.per_hour(),
                    )));
                }
            }
            let r = self.inner.register(req).await;
            if r.is_ok() {
                self.metrics.registrations.inc();
            }
            r
        })
    }

    fn create(&self, req: Create) -> BoxFuture<'_, Result<ClusterFacts, BackendError>> {
        Box::pin(async move {
            let r = self.inner.create(req).await;
            match &r {
                Ok(_) => {
                    self.metrics.creates.inc();
                }
                Err(BackendError::Rule(RuleError::TooManyClusters(_))) => {
                    self.metrics.limit_refused("max_clusters")
                }
                Err(_) => {}
            }
            r
        })
    }

    fn join(&self, req: Join) -> BoxFuture<'_, Result<Joined, BackendError>> {
        Box::pin(async move {
            let r = self.inner.join(req).await;
            if r.is_ok() {
                self.metrics.joins.inc();
            }
            r
        })
    }

    fn get_cluster<'a>(
        &'a self,
        req: &'a GetCluster,
    ) -> BoxFuture<'a, Result<Members, BackendError>> {
        self.inner.get_cluster(req)
    }

    fn subscribe(&self, cluster: &NodeId) -> watch::Receiver<u64> {
        self.inner.subscribe(cluster)
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        // A connection never shuts the server's backend down.
        Box::pin(std::future::ready(()))
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    fn delete_cluster(&self, name: Vec<u8>) -> BoxFuture<'_, Result<NodeId, BackendError>> {
        self.inner.delete_cluster(name)
    }

    fn delete(&self, req: Delete) -> BoxFuture<'_, Result<NodeId, BackendError>> {
        Box::pin(async move {
            let r = self.inner.delete(req).await;
            if r.is_ok() {
                self.metrics.deleted_clusters.inc();
            }
            r
        })
    }

    fn expire(&self, limit: usize) -> BoxFuture<'_, Result<usize, BackendError>> {
        self.inner.expire(limit)
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        self.inner.ping()
    }
}
