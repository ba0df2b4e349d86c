//! The HTTP server: CloudFront's REST-XML routes, signature presence, fault injection, call
//! counting and logging, on an accept loop that can close a connection without answering.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State as AxumState};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::control;
use super::counters::{OUTCOME_DROPPED, OUTCOME_OK};
use super::errors::ApiError;
use super::faults::Fault;
use super::operation::Operation;
use super::paths;
use super::paths::Batch;
use super::shared::Shared;
use super::state::{Created, InvalidationPage, InvalidationRecord, State};
use super::xml;

/// The request id header CloudFront sends.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-amz-request-id");
/// `ListInvalidations` page size when `MaxItems` is not given.
const DEFAULT_MAX_ITEMS: usize = 100;
/// How long a graceful shutdown waits for calls in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Per-connection context: lets a handler close its connection without answering.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionCtx {
    abort: Arc<Notify>,
    peer: SocketAddr,
}

impl ConnectionCtx {
    fn new(peer: SocketAddr) -> Self {
        Self {
            abort: Arc::new(Notify::new()),
            peer,
        }
    }
}

/// A successful answer.
struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, String)>,
    body: String,
    /// What happened, in words, for the log.
    summary: String,
}

impl Reply {
    fn ok(body: String, summary: String) -> Self {
        Self {
            status: StatusCode::OK,
            headers: Vec::new(),
            body,
            summary,
        }
    }
}

fn xml_response(
    status: StatusCode,
    request_id: &str,
    headers: Vec<(HeaderName, String)>,
    body: String,
) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(REQUEST_ID, v);
    }
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    response
}

fn error_response(error: &ApiError, request_id: &str) -> Response {
    xml_response(
        error.status,
        request_id,
        Vec::new(),
        xml::error_response(error, request_id),
    )
}

/// A SigV4 (or SigV4a) `Authorization` header, or a presigned query string. The signature
/// itself is not checked.
fn is_signed(headers: &HeaderMap, uri: &Uri) -> bool {
    let header_signed = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("AWS4-"));
    let query_signed = uri
        .query()
        .is_some_and(|q| q.contains("X-Amz-Signature=") && q.contains("X-Amz-Credential="));
    header_signed || query_signed
}

/// Runs one API call: signature presence, faults, then `handler` under the state lock.
async fn answer(
    shared: &Shared,
    conn: Option<&ConnectionCtx>,
    op: Operation,
    distribution_id: &str,
    headers: &HeaderMap,
    uri: &Uri,
    handler: impl FnOnce(&mut State, Timestamp) -> Result<Reply, ApiError>,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let peer = conn.map(|c| c.peer.to_string()).unwrap_or_default();
    if !is_signed(headers, uri) {
        let error = ApiError::missing_authentication_token();
        shared.lock().calls.record(op, error.code);
        info!(%op, distribution = distribution_id, %peer, "{op} on {distribution_id} refused: the request is not signed ({})", error.code);
        return error_response(&error, &request_id);
    }

    let (latency, fault) = shared.lock().faults.decide(op);
    if !latency.is_zero() {
        debug!(%op, "adding {} ms of latency", latency.as_millis());
        tokio::time::sleep(latency).await;
    }
    let injected = match fault {
        Fault::None => None,
        Fault::DropConnection => {
            shared.lock().calls.record(op, OUTCOME_DROPPED);
            info!(%op, distribution = distribution_id, %peer, "{op} on {distribution_id}: injected fault, closing the connection without answering");
            if let Some(conn) = conn {
                conn.abort.notify_one();
                std::future::pending::<()>().await;
            }
            // Without a connection context (never the case behind the accept loop) answer 503.
            Some(ApiError::service_unavailable())
        }
        Fault::Throttling => Some(ApiError::throttling()),
        Fault::InternalError => Some(ApiError::internal_failure()),
        Fault::ServiceUnavailable => Some(ApiError::service_unavailable()),
        Fault::AccessDenied => Some(ApiError::access_denied()),
    };
    if let Some(error) = injected {
        if fault != Fault::DropConnection {
            shared.lock().calls.record(op, error.code);
        }
        info!(%op, distribution = distribution_id, %peer, "{op} on {distribution_id}: injected fault, answering {} ({})", error.code, error.status.as_u16());
        return error_response(&error, &request_id);
    }

    let now = shared.clock.now();
    let result = {
        let mut core = shared.lock();
        let result = handler(&mut core.state, now);
        core.calls.record(
            op,
            result
                .as_ref()
                .map(|_| OUTCOME_OK)
                .unwrap_or_else(|e| e.code),
        );
        result
    };
    match result {
        Ok(reply) => {
            info!(%op, distribution = distribution_id, %peer, "{op} on {distribution_id}: {}", reply.summary);
            xml_response(reply.status, &request_id, reply.headers, reply.body)
        }
        Err(error) => {
            info!(%op, distribution = distribution_id, %peer, "{op} on {distribution_id} answered {} ({}): {}", error.code, error.status.as_u16(), error.message);
            error_response(&error, &request_id)
        }
    }
}

fn host(headers: &HeaderMap, shared: &Shared) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| shared.local_addr.to_string())
}

fn seconds(d: jiff::SignedDuration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// What an invalidation route acts on: a distribution (`/distribution/{Id}/…`) or a
/// distribution tenant (`/distribution-tenant/{Id}/…`). The two share every behaviour; this
/// says which operation, check and state call each one is.
enum Scope {
    Distribution(String),
    Tenant(String),
}

impl Scope {
    fn id(&self) -> &str {
        match self {
            Scope::Distribution(id) | Scope::Tenant(id) => id,
        }
    }

    fn create_operation(&self) -> Operation {
        match self {
            Scope::Distribution(_) => Operation::CreateInvalidation,
            Scope::Tenant(_) => Operation::CreateInvalidationForDistributionTenant,
        }
    }

    fn get_operation(&self) -> Operation {
        match self {
            Scope::Distribution(_) => Operation::GetInvalidation,
            Scope::Tenant(_) => Operation::GetInvalidationForDistributionTenant,
        }
    }

    fn list_operation(&self) -> Operation {
        match self {
            Scope::Distribution(_) => Operation::ListInvalidations,
            Scope::Tenant(_) => Operation::ListInvalidationsForDistributionTenant,
        }
    }

    /// `AccessDenied`, `NoSuchDistribution` or `EntityNotFound` before the body is read.
    fn check(&self, state: &State) -> Result<(), ApiError> {
        match self {
            Scope::Distribution(id) => state.check_distribution(id),
            Scope::Tenant(id) => state.check_tenant(id).map(drop),
        }
    }

    fn create(&self, state: &mut State, batch: Batch, now: Timestamp) -> Result<Created, ApiError> {
        match self {
            Scope::Distribution(id) => state.create_invalidation(id, batch, now),
            Scope::Tenant(id) => state.create_invalidation_for_tenant(id, batch, now),
        }
    }

    fn get(
        &self,
        state: &mut State,
        invalidation_id: &str,
        now: Timestamp,
    ) -> Result<InvalidationRecord, ApiError> {
        match self {
            Scope::Distribution(id) => state.get_invalidation(id, invalidation_id, now),
            Scope::Tenant(id) => state.get_invalidation_for_tenant(id, invalidation_id, now),
        }
    }

    fn list(
        &self,
        state: &mut State,
        marker: &str,
        max_items: usize,
        now: Timestamp,
    ) -> Result<InvalidationPage, ApiError> {
        match self {
            Scope::Distribution(id) => state.list_invalidations(id, Some(marker), max_items, now),
            Scope::Tenant(id) => {
                state.list_invalidations_for_tenant(id, Some(marker), max_items, now)
            }
        }
    }

    /// The `Location` of a new invalidation.
    fn location(&self, host: &str, invalidation_id: &str) -> String {
        let (segment, id) = match self {
            Scope::Distribution(id) => ("distribution", id),
            Scope::Tenant(id) => ("distribution-tenant", id),
        };
        format!("http://{host}/2020-05-31/{segment}/{id}/invalidation/{invalidation_id}")
    }

    /// What a new invalidation holds, for the log.
    fn new_summary(&self, r: &InvalidationRecord) -> String {
        let holds = match self {
            Scope::Distribution(_) => format!(
                "with {} path(s), {} wildcard",
                r.paths.len(),
                r.wildcard_paths()
            ),
            Scope::Tenant(tenant) => format!(
                "for tenant {tenant} of distribution {} with {} path(s) ({} tag(s))",
                r.distribution_id,
                r.paths.len(),
                r.tag_items()
            ),
        };
        format!(
            "created {} {holds}, caller reference {:?}; completes in {} (simulated)",
            r.id,
            r.caller_reference,
            seconds(r.completion_time.duration_since(r.create_time)),
        )
    }

    /// " of tenant …" in the List log line.
    fn of(&self) -> String {
        match self {
            Scope::Distribution(_) => String::new(),
            Scope::Tenant(tenant) => format!(" of tenant {tenant}"),
        }
    }
}

/// `CreateInvalidation` and `CreateInvalidationForDistributionTenant`.
async fn create(
    shared: &Shared,
    conn: Option<&ConnectionCtx>,
    scope: Scope,
    headers: &HeaderMap,
    uri: &Uri,
    body: &[u8],
) -> Response {
    let host = host(headers, shared);
    let op = scope.create_operation();
    answer(shared, conn, op, scope.id(), headers, uri, |state, now| {
        scope.check(state)?;
        let batch = paths::validate(xml::parse_invalidation_batch(body)?)?;
        let created = scope.create(state, batch, now)?;
        let record = created.record();
        let summary = match &created {
            Created::New(r) => scope.new_summary(r),
            Created::Existing(r) => format!(
                "caller reference {:?} already used with the same paths: returning {} ({}), nothing new created or billed",
                r.caller_reference,
                r.id,
                r.status.as_str()
            ),
        };
        Ok(Reply {
            status: StatusCode::CREATED,
            headers: vec![(header::LOCATION, scope.location(&host, &record.id))],
            body: xml::invalidation(record),
            summary,
        })
    })
    .await
}

/// `GetInvalidation` and `GetInvalidationForDistributionTenant`.
async fn get_one(
    shared: &Shared,
    conn: Option<&ConnectionCtx>,
    scope: Scope,
    invalidation_id: &str,
    headers: &HeaderMap,
    uri: &Uri,
) -> Response {
    let op = scope.get_operation();
    answer(shared, conn, op, scope.id(), headers, uri, |state, now| {
        let record = scope.get(state, invalidation_id, now)?;
        let summary = format!("{} is {}", record.id, record.status.as_str());
        Ok(Reply::ok(xml::invalidation(&record), summary))
    })
    .await
}

/// `ListInvalidations` and `ListInvalidationsForDistributionTenant`.
async fn list(
    shared: &Shared,
    conn: Option<&ConnectionCtx>,
    scope: Scope,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    uri: &Uri,
) -> Response {
    let op = scope.list_operation();
    answer(shared, conn, op, scope.id(), headers, uri, |state, now| {
        scope.check(state)?;
        let max_items = max_items(query)?;
        let marker = query.get("Marker").map(String::as_str).unwrap_or("");
        let page = scope.list(state, marker, max_items, now)?;
        let summary = format!(
            "listed {} invalidation(s){} after marker {marker:?}{}",
            page.items.len(),
            scope.of(),
            page.next_marker
                .as_ref()
                .map(|m| format!(", next marker {m}"))
                .unwrap_or_default()
        );
        Ok(Reply::ok(
            xml::invalidation_list(&page, marker, max_items),
            summary,
        ))
    })
    .await
}

// The routes: each names its scope and hands over to the shared behaviour above.

async fn create_invalidation(
    AxumState(shared): AxumState<Arc<Shared>>,
    conn: Option<Extension<ConnectionCtx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let scope = Scope::Distribution(id);
    create(&shared, conn.as_deref(), scope, &headers, &uri, &body).await
}

async fn create_invalidation_for_tenant(
    AxumState(shared): AxumState<Arc<Shared>>,
    conn: Option<Extension<ConnectionCtx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let scope = Scope::Tenant(id);
    create(&shared, conn.as_deref(), scope, &headers, &uri, &body).await
}

async fn get_invalidation(
    AxumState(shared): AxumState<Arc<Shared>>,
    conn: Option<Extension<ConnectionCtx>>,
    Path((id, invalidation_id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let scope = Scope::Distribution(id);
    get_one(
        &shared,
        conn.as_deref(),
        scope,
        &invalidation_id,
        &headers,
        &uri,
    )
    .await
}

async fn get_invalidation_for_tenant(
    AxumState(shared): AxumState<Arc<Shared>>,
    conn: Option<Extension<ConnectionCtx>>,
    Path((id, invalidation_id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let scope = Scope::Tenant(id);
    get_one(
        &shared,
        conn.as_deref(),
        scope,
        &invalidation_id,
        &headers,
        &uri,
    )
    .await
}

async fn list_invalidations(
    AxumState(shared): AxumState<Arc<Shared>>,
    conn: Option<Extension<ConnectionCtx>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let scope = Scope::Distribution(id);
    list(&shared, conn.as_deref(), scope, &query, &headers, &uri).await
}

async fn list_invalidations_for_tenant(
    AxumState(shared): AxumState<Arc<Shared>>,
    conn: Option<Extension<ConnectionCtx>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let scope = Scope::Tenant(id);
    list(&shared, conn.as_deref(), scope, &query, &headers, &uri).await
}

async fn get_distribution(
    AxumState(shared): AxumState<Arc<Shared>>,
    conn: Option<Extension<ConnectionCtx>>,
    Path(distribution_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(
        &shared,
        conn.as_deref(),
        Operation::GetDistribution,
        &distribution_id,
        &headers,
        &uri,
        |state, now| {
            let info = state.distribution_info(&distribution_id, now)?;
            let summary = format!(
                "Deployed, {} invalidation(s) in progress",
                info.in_progress_invalidation_batches
            );
            let mut reply = Reply::ok(xml::distribution(&info), summary);
            reply.headers.push((header::ETAG, info.etag));
            Ok(reply)
        },
    )
    .await
}

async fn get_distribution_config(
    AxumState(shared): AxumState<Arc<Shared>>,
    conn: Option<Extension<ConnectionCtx>>,
    Path(distribution_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(
        &shared,
        conn.as_deref(),
        Operation::GetDistributionConfig,
        &distribution_id,
        &headers,
        &uri,
        |state, now| {
            let info = state.distribution_info(&distribution_id, now)?;
            let summary = match &info.cache_tag_header {
                Some(header) => format!("CacheTagConfig with HeaderName {header}"),
                None => "no CacheTagConfig".to_owned(),
            };
            let mut reply = Reply::ok(xml::distribution_config(&info), summary);
            reply.headers.push((header::ETAG, info.etag));
            Ok(reply)
        },
    )
    .await
}

/// `MaxItems` of a List call: a positive integer, default 100.
fn max_items(query: &HashMap<String, String>) -> Result<usize, ApiError> {
    match query.get("MaxItems") {
        None => Ok(DEFAULT_MAX_ITEMS),
        Some(raw) => raw
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .map(|n| n as usize)
            .ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "MaxItems must be a positive integer, got {raw:?}."
                ))
            }),
    }
}

async fn unknown(uri: Uri) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    warn!("no CloudFront operation at {uri}");
    error_response(&ApiError::unknown_operation(), &request_id)
}

/// The complete application: CloudFront routes plus the control endpoint.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/2020-05-31/distribution/{id}/invalidation",
            post(create_invalidation).get(list_invalidations),
        )
        .route(
            "/2020-05-31/distribution/{id}/invalidation/{invalidation_id}",
            get(get_invalidation),
        )
        .route("/2020-05-31/distribution/{id}", get(get_distribution))
        .route(
            "/2020-05-31/distribution/{id}/config",
            get(get_distribution_config),
        )
        .route(
            "/2020-05-31/distribution-tenant/{id}/invalidation",
            post(create_invalidation_for_tenant).get(list_invalidations_for_tenant),
        )
        .route(
            "/2020-05-31/distribution-tenant/{id}/invalidation/{invalidation_id}",
            get(get_invalidation_for_tenant),
        )
        .nest(control::PREFIX, control::router())
        .fallback(unknown)
        // 3,000 paths of 4,000 characters fit.
        .layer(DefaultBodyLimit::max(64 << 20))
        .with_state(shared)
}

/// Serves `app` on `listener` until `shutdown` turns true, then lets calls in flight finish
/// (for a few seconds at most).
pub(crate) async fn serve(listener: TcpListener, app: Router, mut shutdown: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let ctx = ConnectionCtx::new(peer);
                let service = TowerToHyperService::new(app.clone().layer(Extension(ctx.clone())));
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                connections.spawn(async move {
                    tokio::select! {
                        result = connection => {
                            if let Err(e) = result {
                                debug!(%peer, "connection ended with an error: {e}");
                            }
                        }
                        // Dropping the connection closes the socket without an answer.
                        () = ctx.abort.notified() => debug!(%peer, "connection closed without answering"),
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("calls still in flight after {SHUTDOWN_GRACE:?}; closing their connections");
    }
    connections.shutdown().await;
}
