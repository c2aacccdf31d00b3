//! The operator's HTTP side door (`xlreg serve --http ADDR`, off by
//! default): Prometheus `/metrics`, `/healthz`, `/readyz`, a live status
//! page at `/`, regCred.dat download and a JSON admin API.
//!
//! Why a separate listener: the registry port speaks the xlReg protocol
//! only (Go peers connect there); operators' tools speak HTTP. The HTTP
//! side reads the registry through the server's
//! [`Backend`] — the same committed state
//! sessions see, a bounded page at a time ([`Backend::listing`]) — and
//! deletes through it ([`Request::DeleteByName`](crate::registry::Request::DeleteByName)), so a delete is durable
//! before it is acknowledged, on every store.
//!
//! Access: mutating calls always need the admin bearer token
//! ([`AdminToken`]). Read-only pages are open when the HTTP
//! listener is bound to a loopback address, and need the token otherwise.
//! `/healthz` and `/readyz` are always open (they reveal nothing).

mod change;
// One concern per file (private); the public surface is the list below,
// every item at one path (`xlreg::http::X`).
pub(crate) mod listener;
pub(crate) mod page;
pub(crate) mod token;
pub(crate) mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::regcred::RegCred;
use crate::registry::{
    Backend, BackendError, BackendExt, DeleteByName, Listing, ListingOrder, ListingPage, RuleError,
    MAX_LISTING_PAGE,
};
use crate::server::Server;
pub use listener::{
    ConnCounts, HttpLimits, DEFAULT_HEADER_TIMEOUT_SECS, DEFAULT_IDLE_TIMEOUT_SECS,
    DEFAULT_MAX_BODY, DEFAULT_MAX_CONNECTIONS, DEFAULT_REQUEST_TIMEOUT_SECS,
};
/// "3 s ago"-style text for a Unix-ms time, as the status page shows it
/// (the `xlreg admin` client prints the same). Not API.
#[doc(hidden)]
pub use page::relative;
pub use token::{AdminToken, TokenError, TOKEN_FILE};
pub use view::{ClusterDetail, ClusterSummary, MemberView, Stats};

/// What the side door needs to start.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The admin bearer token.
    pub token: AdminToken,
}

/// Cannot start the HTTP listener.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for HTTP on {addr}: {err}")]
pub struct HttpError {
    /// The address.
    pub addr: SocketAddr,
    /// The OS error.
    pub err: std::io::Error,
}

struct Ops {
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    regcred: RegCred,
    regcred_text: String,
    listen: String,
    token: AdminToken,
    open_reads: bool,
}

type St = State<Arc<Ops>>;

/// The running side door; dropping it stops it.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    task: Option<tokio::task::JoinHandle<()>>,
    counts: Arc<ConnCounts>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpServer({})", self.addr)
    }
}

impl HttpServer {
    /// Bind `cfg.listen` and serve `server`'s registry under the default
    /// [`HttpLimits`].
    pub async fn start(cfg: HttpConfig, server: &Server) -> Result<HttpServer, HttpError> {
        Self::start_with_limits(cfg, HttpLimits::default(), server).await
    }

    /// Bind `cfg.listen` and serve `server`'s registry; no client gets
    /// past `limits` (connections, timeouts, body size).
    pub async fn start_with_limits(
        cfg: HttpConfig,
        limits: HttpLimits,
        server: &Server,
    ) -> Result<HttpServer, HttpError> {
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|err| HttpError {
                addr: cfg.listen,
                err,
            })?;
        let addr = listener.local_addr().map_err(|err| HttpError {
            addr: cfg.listen,
            err,
        })?;
        let ops = Arc::new(Ops {
            backend: server.backend().clone(),
            metrics: server.metrics().clone(),
            regcred: server.regcred().clone(),
            regcred_text: server.regcred().to_go_format(),
            listen: server.local_addr().to_string(),
            token: cfg.token,
            open_reads: addr.ip().is_loopback(),
        });
        let app = router(ops);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let counts = Arc::new(ConnCounts::default());
        let task = tokio::spawn(listener::serve(
            listener,
            app,
            limits,
            counts.clone(),
            stopped,
        ));
        tracing::info!(
            %addr,
            max_connections = limits.max_connections,
            "HTTP side door listening"
        );
        Ok(HttpServer {
            addr,
            stop: Some(stop),
            task: Some(task),
            counts,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What happened to connections so far (accepted, evicted at the
    /// cap, refused, closed idle).
    pub fn conn_counts(&self) -> &ConnCounts {
        &self.counts
    }

    /// Stop serving and wait for open requests to finish.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
    }
}

fn router(ops: Arc<Ops>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/fragment/clusters", get(fragment))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/regCred.dat", get(regcred))
        .route("/api/clusters", get(api_list))
        .route("/api/clusters/{name}", get(api_show).delete(api_delete))
        .route("/api/clusters/{name}/resize", post(resize))
        .route("/api/clusters/{name}/evict", post(evict))
        .route("/api/stats", get(api_stats))
        .route("/admin/delete", post(form_delete))
        .with_state(ops)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// `POST /api/clusters/{name}/resize` (admin): `{"version": V}`.
async fn resize(
    State(ops): St,
    headers: HeaderMap,
    Path(name): Path<String>,
    raw: axum::body::Bytes,
) -> Response {
    if let Err(d) = ops.check_admin(&headers) {
        return d.into_response();
    }
    changed(change::resize(ops.backend.as_ref(), &name, &raw).await)
}

/// `POST /api/clusters/{name}/evict` (admin): `{"version": V}`.
async fn evict(
    State(ops): St,
    headers: HeaderMap,
    Path(name): Path<String>,
    raw: axum::body::Bytes,
) -> Response {
    if let Err(d) = ops.check_admin(&headers) {
        return d.into_response();
    }
    changed(change::evict(ops.backend.as_ref(), &name, &raw).await)
}

/// The reply to an operator's change.
fn changed(r: Result<u64, (StatusCode, String)>) -> Response {
    match r {
        Ok(version) => Json(serde_json::json!({ "version": version })).into_response(),
        Err((status, text)) => json_error(status, text),
    }
}

fn json_error(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut r = (status, Json(serde_json::json!({ "error": msg.into() }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"xlreg\""),
        );
    }
    r
}

/// A refused admin or read call.
#[derive(Debug, Clone, Copy)]
enum Denied {
    NoToken,
    WrongToken,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let msg = match self {
            Denied::NoToken => "admin token required (Authorization: Bearer TOKEN)",
            Denied::WrongToken => "admin token refused",
        };
        json_error(StatusCode::UNAUTHORIZED, msg)
    }
}

impl Ops {
    /// Why an admin call is refused, if it is.
    fn check_admin(&self, headers: &HeaderMap) -> Result<(), Denied> {
        match bearer(headers) {
            None => Err(Denied::NoToken),
            Some(t) if self.token.matches(t) => Ok(()),
            Some(_) => Err(Denied::WrongToken),
        }
    }

    /// Read-only pages: open on loopback, token otherwise.
    fn check_read(&self, headers: &HeaderMap) -> Result<(), Denied> {
        if self.open_reads {
            Ok(())
        } else {
            self.check_admin(headers)
        }
    }

    /// One page of the live clusters from the backend. `None` when it
    /// cannot be read (the failure is logged).
    async fn read(&self, order: ListingOrder, limit: usize) -> Option<Listing> {
        match self.backend.listing(ListingPage { order, limit }).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the registry for the status page");
                None
            }
        }
    }

    /// Server-wide numbers; `listing` (any page) carries the totals.
    fn stats_of(&self, listing: Option<&Listing>) -> Stats {
        let m = &self.metrics;
        let (clusters, members) = listing.map_or((0, 0), |l| (l.total_clusters, l.total_members));
        m.clusters.set(clusters as i64);
        m.members.set(members as i64);
        Stats {
            clusters,
            members,
            connections: m.connections.get(),
            expired_clusters: m.expired_clusters.get(),
            deleted_clusters: m.deleted_clusters.get(),
            registrations: m.registrations.get(),
        }
    }

    async fn stats(&self) -> Stats {
        let one = self.read(ListingOrder::RecentlyActive, 1).await;
        self.stats_of(one.as_ref())
    }

    /// One page of clusters by name for the admin API, after `after`.
    async fn clusters(
        &self,
        after: Option<Vec<u8>>,
        limit: usize,
    ) -> Option<(Vec<view::ClusterDetail>, Option<Vec<u8>>)> {
        let l = self.read(ListingOrder::ByName { after }, limit).await?;
        Some((view::details(&l), l.next))
    }

    /// What the page shows: the most recently active clusters, and the
    /// stats.
    async fn page(&self) -> (Stats, Vec<view::ClusterDetail>) {
        let l = self
            .read(ListingOrder::RecentlyActive, view::PAGE_LIMIT)
            .await;
        let stats = self.stats_of(l.as_ref());
        let mut shown = l.as_ref().map(view::details).unwrap_or_default();
        shown.sort_by(|a, b| a.summary.name.cmp(&b.summary.name));
        (stats, shown)
    }

    async fn delete(&self, name: &str) -> Result<String, (StatusCode, String)> {
        match self
            .backend
            .call(DeleteByName(name.as_bytes().to_vec()))
            .await
        {
            Ok(id) => {
                self.metrics.deleted_clusters.inc();
                tracing::info!(cluster = name, id = %id, "cluster deleted by operator");
                Ok(id.to_hex())
            }
            Err(BackendError::Rule(e @ RuleError::NoSuchCluster(_))) => {
                Err((StatusCode::NOT_FOUND, e.to_string()))
            }
            Err(e) => Err((StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
        }
    }
}

async fn index(State(ops): St, headers: HeaderMap) -> Response {
    if let Err(d) = ops.check_read(&headers) {
        return d.into_response();
    }
    let (stats, clusters) = ops.page().await;
    Html(page::status_page(
        &ops.regcred,
        &ops.listen,
        &stats,
        &clusters,
        crate::registry::unix_now_ms(),
    ))
    .into_response()
}

async fn fragment(State(ops): St, headers: HeaderMap) -> Response {
    if let Err(d) = ops.check_read(&headers) {
        return d.into_response();
    }
    let (stats, clusters) = ops.page().await;
    Html(page::live_part(
        &stats,
        &clusters,
        crate::registry::unix_now_ms(),
    ))
    .into_response()
}

async fn readyz(State(ops): St) -> Response {
    match ops.backend.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
    }
}

async fn metrics(State(ops): St, headers: HeaderMap) -> Response {
    if let Err(d) = ops.check_read(&headers) {
        return d.into_response();
    }
    ops.stats().await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ops.metrics.encode(),
    )
        .into_response()
}

async fn regcred(State(ops): St, headers: HeaderMap) -> Response {
    if let Err(d) = ops.check_read(&headers) {
        return d.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"regCred.dat\"",
            ),
        ],
        ops.regcred_text.clone(),
    )
        .into_response()
}

/// `GET /api/clusters[?after=NAME&limit=N]`: live clusters by name, a
/// page at a time (at most [`MAX_LISTING_PAGE`]; default
/// [`API_PAGE`]); the `X-Next-After` header names the last cluster of a
/// page that has more after it.
async fn api_list(
    State(ops): St,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> Response {
    if let Err(d) = ops.check_read(&headers) {
        return d.into_response();
    }
    let limit = q.limit.unwrap_or(API_PAGE).clamp(1, MAX_LISTING_PAGE);
    let after = q.after.map(String::into_bytes);
    let Some((list, next)) = ops.clusters(after, limit).await else {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "cannot read the registry");
    };
    let list: Vec<_> = list.into_iter().map(|c| c.summary).collect();
    let mut r = Json(list).into_response();
    if let Some(n) = next.and_then(|n| axum::http::HeaderValue::from_bytes(&n).ok()) {
        r.headers_mut().insert("x-next-after", n);
    }
    r
}

/// Clusters per `GET /api/clusters` page unless `limit` says otherwise.
pub const API_PAGE: usize = MAX_LISTING_PAGE;

/// `GET /api/clusters` paging.
#[derive(serde::Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

async fn api_show(State(ops): St, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Err(d) = ops.check_read(&headers) {
        return d.into_response();
    }
    let found = ops
        .read(ListingOrder::Named(name.clone().into_bytes()), 1)
        .await
        .and_then(|l| view::details(&l).into_iter().next());
    match found {
        Some(d) => Json(d).into_response(),
        None => json_error(
            StatusCode::NOT_FOUND,
            RuleError::NoSuchCluster(name).to_string(),
        ),
    }
}

async fn api_delete(State(ops): St, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Err(d) = ops.check_admin(&headers) {
        return d.into_response();
    }
    match ops.delete(&name).await {
        Ok(id) => Json(serde_json::json!({ "deleted": name, "id": id })).into_response(),
        Err((status, msg)) => json_error(status, msg),
    }
}

async fn api_stats(State(ops): St, headers: HeaderMap) -> Response {
    if let Err(d) = ops.check_read(&headers) {
        return d.into_response();
    }
    Json(ops.stats().await).into_response()
}

/// The status page's Delete form.
#[derive(serde::Deserialize)]
struct DeleteForm {
    name: String,
    #[serde(default)]
    token: String,
}

async fn form_delete(State(ops): St, Form(f): Form<DeleteForm>) -> Response {
    let back = "<p><a href=\"/\">back to the status page</a></p>";
    if f.token.is_empty() || !ops.token.matches(&f.token) {
        let why = if f.token.is_empty() {
            "admin token required"
        } else {
            "admin token refused"
        };
        return (
            StatusCode::UNAUTHORIZED,
            Html(format!(
                "<!DOCTYPE html><title>refused</title><h1 id=\"refused\">{why}</h1><p>Cluster <q>{}</q> was not deleted.</p>{back}",
                page::esc(&f.name)
            )),
        )
            .into_response();
    }
    match ops.delete(&f.name).await {
        Ok(_) => Redirect::to("/").into_response(),
        Err((status, msg)) => (
            status,
            Html(format!(
                "<!DOCTYPE html><title>error</title><h1 id=\"refused\">{}</h1>{back}",
                page::esc(&msg)
            )),
        )
            .into_response(),
    }
}
