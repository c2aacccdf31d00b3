//! The operator's changes of a cluster: `POST /api/clusters/{name}/resize`
//! (`{"size": N}`) and `POST /api/clusters/{name}/evict` (`{"member":
//! "NAME"}` or `{"member": K}`), answered `{"version": V}`.
//!
//! Why through the backend's requests: the operator's resize and evict are
//! [`Request::Resize`](crate::registry::Request::Resize) and
//! [`Request::Evict`](crate::registry::Request::Evict) with
//! [`By::Operator`], decided by the same rules and made durable (and
//! announced to watchers) by the same path as a creator's over the wire —
//! there is no side door that writes.

use axum::http::StatusCode;
use serde::Deserialize;

use crate::registry::{
    Backend, BackendError, BackendExt, By, ClusterTarget, Evict, MemberSlot, Resize, RuleError,
};

/// A refusal: the status and the text of its JSON error.
type Refusal = (StatusCode, String);

/// The body of a resize.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResizeBody {
    size: u32,
}

/// Whom an evict names: a slot index (a number) or a member name.
#[derive(Deserialize)]
#[serde(untagged)]
enum Member {
    Index(u32),
    Name(String),
}

/// The body of an evict.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvictBody {
    member: Member,
}

/// The body as `T`, or a 400 naming what is wrong with it.
fn body<T: serde::de::DeserializeOwned>(raw: &[u8], shape: &str) -> Result<T, Refusal> {
    serde_json::from_slice(raw).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("request body must be {shape}: {e}"),
        )
    })
}

/// The outcome of an operator's change: the version, or 404 for an
/// unknown cluster, 409 with the rule's text for a refusal, 503 when the
/// store failed.
fn answer(name: &str, what: &str, r: Result<u64, BackendError>) -> Result<u64, Refusal> {
    match r {
        Ok(version) => {
            tracing::info!(cluster = name, version, "cluster {what} by operator");
            Ok(version)
        }
        Err(BackendError::Rule(RuleError::NoSuchName | RuleError::NoSuchId)) => Err((
            StatusCode::NOT_FOUND,
            RuleError::NoSuchCluster(name.into()).to_string(),
        )),
        Err(BackendError::Rule(e)) => Err((StatusCode::CONFLICT, e.to_string())),
        Err(e) => Err((StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

/// `POST /api/clusters/{name}/resize` with body `raw` (the caller checked
/// the admin token).
pub(super) async fn resize(backend: &dyn Backend, name: &str, raw: &[u8]) -> Result<u64, Refusal> {
    let b: ResizeBody = body(raw, "{\"size\": N}")?;
    let r = backend
        .call(Resize {
            cluster: ClusterTarget::Name(name.as_bytes().into()),
            size: b.size,
            by: By::Operator,
        })
        .await;
    answer(name, "resized", r)
}

/// `POST /api/clusters/{name}/evict` with body `raw` (the caller checked
/// the admin token).
pub(super) async fn evict(backend: &dyn Backend, name: &str, raw: &[u8]) -> Result<u64, Refusal> {
    let b: EvictBody = body(raw, "{\"member\": \"NAME\"} or {\"member\": SLOT}")?;
    let member = match b.member {
        Member::Index(i) => MemberSlot::Index(i),
        Member::Name(n) => MemberSlot::Name(n.into_bytes().into()),
    };
    let r = backend
        .call(Evict {
            cluster: ClusterTarget::Name(name.as_bytes().into()),
            member,
            by: By::Operator,
        })
        .await;
    answer(name, "member evicted", r)
}
