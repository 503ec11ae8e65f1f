//! Operational routes: `/healthz` (the process answers), `/readyz` (its dependencies answer),
//! `/metrics` (Prometheus text) and `/openapi.json`; and the [`ReadinessProbe`] trait the binary
//! implements over the real broker and object store.

use crate::http::error::{ApiError, ErrorBody};
use crate::http::openapi;
use crate::http::state::AppState;
use async_trait::async_trait;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use folio_transport::ObjectStore;
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// Whether the service's dependencies (broker, object store) can be used right now.
#[async_trait]
pub trait ReadinessProbe: Send + Sync {
    /// `Err` with a short reason naming the dependency that is not ready.
    async fn check(&self) -> Result<(), String>;
}

/// Readiness of an object store: a listing of a prefix that holds nothing must succeed.
#[derive(Debug, Clone)]
pub struct StoreProbe {
    store: Arc<dyn ObjectStore>,
}

impl StoreProbe {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        StoreProbe { store }
    }
}

#[async_trait]
impl ReadinessProbe for StoreProbe {
    async fn check(&self) -> Result<(), String> {
        self.store
            .list("_folio/readyz/")
            .await
            .map(|_| ())
            .map_err(|e| format!("object store: {e}"))
    }
}

/// Several probes; ready when all are (checked in order, the first failure is reported).
pub struct AllProbes(pub Vec<Arc<dyn ReadinessProbe>>);

#[async_trait]
impl ReadinessProbe for AllProbes {
    async fn check(&self) -> Result<(), String> {
        for probe in &self.0 {
            probe.check().await?;
        }
        Ok(())
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthBody {
    /// `ok` or `ready`.
    pub status: String,
    pub version: String,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is alive", body = HealthBody))
)]
pub async fn healthz() -> Json<HealthBody> {
    Json(HealthBody {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Broker, object store and renderer are usable", body = HealthBody),
        (status = 503, description = "A dependency is not ready", body = ErrorBody),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<HealthBody>, ApiError> {
    let pdfium = &state.ingestor().config().pdfium_lib;
    let result = if pdfium.is_file() {
        state.readiness().check().await
    } else {
        Err(format!(
            "the PDFium library is missing at {}",
            pdfium.display()
        ))
    };
    match result {
        Ok(()) => Ok(Json(HealthBody {
            status: "ready".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            Err(ApiError::Http {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!("not ready: {reason}"),
            })
        }
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let handle = state.prometheus();
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        handle.render(),
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This API's OpenAPI 3.1 document", body = Object))
)]
pub async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi::document().clone())
}
