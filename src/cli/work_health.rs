//! The worker's health endpoints on `--metrics-listen`: `/healthz` (the process answers),
//! `/readyz` (it can work: its consumer is subscribed, the broker answers a passive declare of
//! its queue, and the object store answers a listing) and `/metrics` (Prometheus).
//!
//! `/readyz` answers 200 `{"status":"ready"}`, or 503 with the API's error shape
//! `{"error":{"code":"unavailable","message":"not ready: …"}}` naming the first dependency that
//! is not; every check has a deadline, so a hung dependency makes the probe fail, not hang.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use folio_schemas::EngineKind;
use folio_transport::{AmqpQueue, ObjectStore};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Longest a readiness check waits for one dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// What `/readyz` looks at.
#[derive(Clone)]
pub struct Readiness {
    pub queue: Arc<AmqpQueue>,
    pub store: Arc<dyn ObjectStore>,
    pub engine: EngineKind,
    /// Set while the worker loop runs (cleared on shutdown).
    pub running: Arc<AtomicBool>,
}

impl Readiness {
    /// `Err` with the reason the worker cannot work now.
    pub async fn check(&self) -> Result<(), String> {
        if !self.running.load(Ordering::SeqCst) {
            return Err("the worker loop is not running".into());
        }
        if !self.queue.is_consuming() {
            return Err("broker: not subscribed to the queue (connecting or reconnecting)".into());
        }
        let depth = tokio::time::timeout(CHECK_TIMEOUT, self.queue.queue_depth(self.engine));
        match depth.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("broker: {e}")),
            Err(_) => return Err(format!("broker: no answer within {CHECK_TIMEOUT:?}")),
        }
        let listing = tokio::time::timeout(CHECK_TIMEOUT, self.store.list("_folio/readyz/"));
        match listing.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("object store: {e}")),
            Err(_) => Err(format!("object store: no answer within {CHECK_TIMEOUT:?}")),
        }
    }
}

/// The router of the three endpoints.
pub fn router(readiness: Readiness, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move { readyz(&readiness).await }
            }),
        )
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
}

async fn readyz(readiness: &Readiness) -> Response {
    match readiness.check().await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            let body = json!({
                "error": { "code": "unavailable", "message": format!("not ready: {reason}") }
            });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}
