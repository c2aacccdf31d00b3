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

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{json_error, St};
use crate::registry::{
    BackendError, BackendExt, By, ClusterTarget, Evict, MemberSlot, Resize, RuleError,
};

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
#[allow(clippy::result_large_err)] // the Err is the response itself, returned at once
fn body<T: serde::de::DeserializeOwned>(raw: &[u8], shape: &str) -> Result<T, Response> {
    serde_json::from_slice(raw).map_err(|e| {
        json_error(
            StatusCode::BAD_REQUEST,
            format!("request body must be {shape}: {e}"),
        )
    })
}

/// The answer to an operator's change: 200 with the version, 404 for an
/// unknown cluster, 409 with the rule's text for a refusal, 503 when the
/// store failed.
fn answer(name: &str, what: &str, r: Result<u64, BackendError>) -> Response {
    match r {
        Ok(version) => {
            tracing::info!(cluster = name, version, "cluster {what} by operator");
            Json(serde_json::json!({ "version": version })).into_response()
        }
        Err(BackendError::Rule(RuleError::NoSuchName | RuleError::NoSuchId)) => json_error(
            StatusCode::NOT_FOUND,
            RuleError::NoSuchCluster(name.into()).to_string(),
        ),
        Err(BackendError::Rule(e)) => json_error(StatusCode::CONFLICT, e.to_string()),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `POST /api/clusters/{name}/resize`.
pub(super) async fn resize(
    State(ops): St,
    headers: HeaderMap,
    Path(name): Path<String>,
    raw: Bytes,
) -> Response {
    if let Err(d) = ops.check_admin(&headers) {
        return d.into_response();
    }
    let b: ResizeBody = match body(&raw, "{\"size\": N}") {
        Ok(b) => b,
        Err(r) => return r,
    };
    let r = ops
        .backend
        .call(Resize {
            cluster: ClusterTarget::Name(name.as_bytes().into()),
            size: b.size,
            by: By::Operator,
        })
        .await;
    answer(&name, "resized", r)
}

/// `POST /api/clusters/{name}/evict`.
pub(super) async fn evict(
    State(ops): St,
    headers: HeaderMap,
    Path(name): Path<String>,
    raw: Bytes,
) -> Response {
    if let Err(d) = ops.check_admin(&headers) {
        return d.into_response();
    }
    let b: EvictBody = match body(&raw, "{\"member\": \"NAME\"} or {\"member\": SLOT}") {
        Ok(b) => b,
        Err(r) => return r,
    };
    let member = match b.member {
        Member::Index(i) => MemberSlot::Index(i),
        Member::Name(n) => MemberSlot::Name(n.into_bytes().into()),
    };
    let r = ops
        .backend
        .call(Evict {
            cluster: ClusterTarget::Name(name.as_bytes().into()),
            member,
            by: By::Operator,
        })
        .await;
    answer(&name, "member evicted", r)
}
