//! The control endpoint under `/__simulator`: JSON counters, faults, distributions and
//! invalidations, for tests and benchmarks that drive a simulator in another process.
//! It needs no signature.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::info;

use super::faults::{FaultConfig, FaultInjector};
use super::shared::Shared;
use super::xml::format_time;

/// Where the control endpoint lives; no CloudFront path starts with it.
pub const PREFIX: &str = "/__simulator";

fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn counters(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.counters()).into_response()
}

async fn reset_counters(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.reset_counters();
    info!("control: counters reset");
    StatusCode::NO_CONTENT
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().faults.config().clone()).into_response()
}

async fn put_faults(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let config: FaultConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("not a fault configuration: {e}"),
            );
        }
    };
    if let Err(e) = config.validate() {
        return json_error(StatusCode::BAD_REQUEST, e);
    }
    info!("control: faults set to {config:?}");
    shared.lock().faults = FaultInjector::new(config.clone());
    Json(config).into_response()
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.lock().faults = FaultInjector::new(FaultConfig::none());
    info!("control: faults cleared");
    StatusCode::NO_CONTENT
}

#[derive(Serialize)]
struct DistributionsOut {
    distributions: Vec<String>,
    access_denied: Vec<String>,
    /// Tenant id → distribution id.
    tenants: std::collections::BTreeMap<String, String>,
    /// Distribution id → `CacheTagConfig.HeaderName`, for those that have one.
    cache_tag_config: std::collections::BTreeMap<String, String>,
}

async fn distributions(State(shared): State<Arc<Shared>>) -> Json<DistributionsOut> {
    let core = shared.lock();
    let ids = core.state.distribution_ids();
    Json(DistributionsOut {
        cache_tag_config: ids
            .iter()
            .filter_map(|id| core.state.cache_tag_header(id).map(|h| (id.clone(), h)))
            .collect(),
        distributions: ids,
        access_denied: core.state.denied_ids(),
        tenants: core.state.tenants(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantIn {
    distribution: String,
}

async fn add_tenant(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let tenant: TenantIn = match serde_json::from_slice(&body) {
        Ok(t) => t,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"distribution\": \"<id>\"}}: {e}"),
            );
        }
    };
    match shared.lock().state.add_tenant(&id, &tenant.distribution) {
        Ok(true) => {
            info!(
                "control: tenant {id} of distribution {} added",
                tenant.distribution
            );
            StatusCode::CREATED.into_response()
        }
        Ok(false) => StatusCode::OK.into_response(),
        Err(e) => json_error(StatusCode::BAD_REQUEST, e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheTagConfigIn {
    /// `null` removes the configuration.
    header_name: Option<String>,
}

async fn set_cache_tag_config(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let config: CacheTagConfigIn = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"header_name\": \"<header>\" | null}}: {e}"),
            );
        }
    };
    match shared
        .lock()
        .state
        .set_cache_tag_header(&id, config.header_name.clone())
    {
        Ok(()) => {
            info!(
                "control: CacheTagConfig of {id} set to {:?}",
                config.header_name
            );
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => json_error(StatusCode::NOT_FOUND, e),
    }
}

async fn add_distribution(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> StatusCode {
    let now = shared.clock.now();
    if shared.lock().state.add_distribution(&id, now) {
        info!("control: distribution {id} added");
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessIn {
    denied: bool,
}

async fn set_access(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let access: AccessIn = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"denied\": true|false}}: {e}"),
            );
        }
    };
    shared.lock().state.set_access_denied(&id, access.denied);
    info!(
        "control: access to {id} {}",
        if access.denied { "denied" } else { "allowed" }
    );
    StatusCode::NO_CONTENT.into_response()
}

async fn invalidations(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let now = shared.clock.now();
    let core = shared.lock();
    if !core.state.distribution_ids().contains(&id) {
        return json_error(StatusCode::NOT_FOUND, format!("no distribution {id}"));
    }
    Json(core.state.invalidations(&id, now)).into_response()
}

async fn complete_all(State(shared): State<Arc<Shared>>) -> Response {
    let now = shared.clock.now();
    let completed = shared.lock().state.complete_all(now);
    info!("control: {completed} invalidation(s) completed now");
    Json(json!({ "completed": completed })).into_response()
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({
        "endpoint_url": shared.endpoint_url(),
        "simulated_now": format_time(shared.clock.now()),
        "time_scale": shared.clock.scale(),
    }))
    .into_response()
}

/// The control routes, relative to [`PREFIX`].
pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/status", get(status))
        .route("/counters", get(counters))
        .route("/counters/reset", post(reset_counters))
        .route(
            "/faults",
            get(get_faults).put(put_faults).delete(clear_faults),
        )
        .route("/distributions", get(distributions))
        .route("/distributions/{id}", put(add_distribution))
        .route("/distributions/{id}/access", put(set_access))
        .route("/distributions/{id}/invalidations", get(invalidations))
        .route(
            "/distributions/{id}/cache-tag-config",
            put(set_cache_tag_config),
        )
        .route("/tenants/{id}", put(add_tenant))
        .route("/complete-all", post(complete_all))
}
