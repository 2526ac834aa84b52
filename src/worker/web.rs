//! The worker's HTTP status server (`--web-bind`:`--web-port`). Read-only views of the worker's
//! shared state, plus one action: `POST /leader/stand-down`, and `GET /alive`, which other
//! workers hold open to see at once when this process dies. It runs on its own task, so it
//! keeps answering while the agents' group rebalances (as Faust's web server does).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::control_token::ControlToken;
use crate::election::liveness::{self, ALIVE_PATH, INSTANCE_HEADER};
use crate::worker::state::WorkerState;
use crate::worker::table_routes;

/// Binds the status server's socket. Done before anything touches Kafka, so a port in use is
/// reported at once (exit 2) instead of after joining the group.
pub async fn bind(bind: &str, port: u16) -> Result<TcpListener, String> {
    let address = format!("{bind}:{port}");
    let address: SocketAddr = tokio::net::lookup_host(&address)
        .await
        .ok()
        .and_then(|mut found| found.next())
        .ok_or_else(|| format!("--web-bind {bind:?} is not an address this machine can bind"))?;
    TcpListener::bind(address).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            format!("web port {port} is already in use on {bind}: give each worker its own --web-port")
        }
        _ => format!("cannot listen on {address}: {e}"),
    })
}

/// What the mutating routes require: the control token, or `None` (then they refuse all).
#[derive(Clone, Debug)]
pub struct Control(pub Option<Arc<ControlToken>>);

/// The routes; `closing` is cancelled when the server stops (it ends `GET /alive`, which the
/// graceful shutdown waits for).
pub fn router(state: Arc<WorkerState>, control: Control, closing: CancellationToken) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/assignment", get(assignment))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/leader", get(leader))
        .route("/leader/stand-down", post(stand_down))
        .route("/table/{name}", get(table_routes::table))
        .route("/table/{name}/{*key}", get(table_routes::table_key))
        .route(ALIVE_PATH, get(alive))
        .layer(Extension(closing))
        .layer(Extension(control))
        .with_state(state)
}

/// Serves until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    state: Arc<WorkerState>,
    token: Option<ControlToken>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let control = Control(token.map(Arc::new));
    axum::serve(listener, router(state, control, stop.clone()))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

async fn index(State(state): State<Arc<WorkerState>>) -> Json<serde_json::Value> {
    Json(json!({
        "app": state.app_id,
        "worker": state.worker_id,
        "web_url": state.web_url,
        "pid": std::process::id(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
    }))
}

/// `GET /alive`: names this process (a header) and keeps the response open while the server
/// runs, so that a worker holding it sees this process die as soon as the kernel closes its
/// sockets (see `election::liveness`).
async fn alive(Extension(closing): Extension<CancellationToken>) -> Response {
    let open_until_closing = futures_util::stream::once(async move {
        closing.cancelled_owned().await;
        Ok::<_, std::convert::Infallible>(axum::body::Bytes::new())
    });
    (
        [(INSTANCE_HEADER, liveness::this_process())],
        Body::from_stream(open_until_closing),
    )
        .into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: 200 once the worker has joined its group and holds its partitions whole —
/// 503 while any of its tables' partitions is being recovered, with the recovery's progress.
async fn ready(State(state): State<Arc<WorkerState>>) -> Response {
    let recovery = state.tables.get().map(|service| {
        let progress = &service.tables.progress;
        let load = |counter: &std::sync::atomic::AtomicU64| {
            counter.load(std::sync::atomic::Ordering::Relaxed)
        };
        json!({
            "partitions_recovering": load(&progress.recovering),
            "changelog_records_read": load(&progress.records_read),
            "changelog_records_to_read": load(&progress.records_to_read),
            "rows_loaded": load(&progress.rows_loaded),
        })
    });
    let recovering = recovery
        .as_ref()
        .is_some_and(|r| r["partitions_recovering"] != 0);
    let ready = state.is_ready() && !recovering;
    let mut body = json!({ "ready": ready });
    if let Some(recovery) = recovery {
        body["tables"] = recovery;
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn assignment(State(state): State<Arc<WorkerState>>) -> Json<serde_json::Value> {
    let assignment = state.assignment.lock().unwrap().clone();
    Json(json!({ "worker": state.worker_id, "assignment": assignment }))
}

async fn stats(State(state): State<Arc<WorkerState>>) -> Json<serde_json::Value> {
    Json(serde_json::to_value(state.snapshot()).expect("stats serialize"))
}

async fn leader(State(state): State<Arc<WorkerState>>) -> Json<serde_json::Value> {
    Json(state.leadership())
}

/// The query of `POST /leader/stand-down`.
#[derive(Debug, serde::Deserialize)]
struct StandDownQuery {
    /// Only this election (`?election=NAME`); every one when absent.
    election: Option<String>,
}

/// The one endpoint that changes anything: `faust-rs leader --stand-down` asks the leader to
/// yield its terms (as USR2 does).
/// `?election=NAME` limits it to one election.
async fn stand_down(
    State(state): State<Arc<WorkerState>>,
    Extension(control): Extension<Control>,
    headers: axum::http::HeaderMap,
    Query(query): Query<StandDownQuery>,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let refusal = match &control.0 {
        None => Some(
            "the control endpoint is locked: start the worker with --web-token-file FILE or FAUST_RS_WEB_TOKEN",
        ),
        Some(token) if !token.admits(presented) => {
            Some("a valid control token is required (Authorization: Bearer TOKEN)")
        }
        Some(_) => None,
    };
    if let Some(why) = refusal {
        tracing::warn!("refused a stand-down request over HTTP: {why}");
        return (StatusCode::FORBIDDEN, Json(json!({ "error": why }))).into_response();
    }
    let only = query.election.as_deref();
    let stood_down: Vec<&str> = state
        .elections
        .iter()
        .filter(|e| only.is_none_or(|name| e.name == name))
        .filter(|e| e.stand_down())
        .map(|e| e.name.as_str())
        .collect();
    if !stood_down.is_empty() {
        tracing::warn!(
            "stand-down requested over HTTP: standing down from {}",
            stood_down.join(", ")
        );
    }
    Json(json!({ "worker": state.worker_id, "stood_down": stood_down })).into_response()
}

async fn metrics(State(state): State<Arc<WorkerState>>) -> Response {
    let text = crate::worker::metrics::render(&state);
    (
        [(header::CONTENT_TYPE, crate::worker::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[tokio::test]
    async fn a_port_in_use_is_named_in_the_error() {
        let first = bind("127.0.0.1", 0).await.unwrap();
        let port = first.local_addr().unwrap().port();
        let error = bind("127.0.0.1", port).await.unwrap_err();
        assert!(
            error.contains(&format!("web port {port} is already in use")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn ready_is_503_until_the_worker_has_an_assignment() {
        let state = Arc::new(WorkerState::new(
            "app",
            "w",
            "http://h:1",
            [],
            [],
            Vec::new(),
        ));
        assert_eq!(
            ready(State(state.clone())).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.ready.store(true, Ordering::Relaxed);
        assert_eq!(ready(State(state)).await.status(), StatusCode::OK);
    }
}
