//! The webhook routes:
//!
//! | route | body | auth |
//! | --- | --- | --- |
//! | `POST /v1/events/s3` | AWS S3 event notification (what MinIO/Ceph webhooks and AWS bridges send) | header `X-Folio-Events-Secret: <secret>` |
//! | `POST /v1/events/seaweedfs` | SeaweedFS filer webhook | `Authorization: Bearer <token>` |
//!
//! A route whose secret is not configured answers 404 (`events_disabled`): never open by default.
//! Answers: 200 with the outcomes when every event is handled; 202 when another holder is on it
//! or processing outlasts [`EventsAuth::respond_within`] (it continues in the background); 503
//! with `Retry-After` on a transient failure (the sender retries; handled events are then
//! duplicates); 400 for a malformed body; 401 for a wrong secret.
//!
//! The handlers find the endpoint in an `Extension<EventsEndpoint>`, so they can be mounted on any
//! router; [`events_router`] builds one with the extension in place.

use super::model::EventFormat;
use super::process::{Disposition, Report};
use super::trigger::{Outcome, Trigger};
use axum::extract::{DefaultBodyLimit, Extension};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// Header carrying the shared secret of `POST /v1/events/s3`.
pub const SECRET_HEADER: &str = "x-folio-events-secret";
/// Largest notification body accepted (they are a few KiB).
pub const EVENT_BODY_LIMIT: usize = 1024 * 1024;
/// Shortest accepted secret or token.
pub const MIN_SECRET_LEN: usize = 16;

/// Secrets of the two routes and the response deadline.
#[derive(Clone, Default, custom_debug::Debug)]
pub struct EventsAuth {
    /// Shared secret of `/v1/events/s3` (`FOLIO_EVENTS_SECRET`); the route is off when `None`.
    #[debug(with = crate::redact::secret)]
    pub s3_secret: Option<String>,
    /// Bearer token of `/v1/events/seaweedfs` (`bearer_token` in `notification.toml`).
    #[debug(with = crate::redact::secret)]
    pub seaweedfs_token: Option<String>,
    /// Answer 202 when processing takes longer (below the sender's timeout: SeaweedFS waits 10 s
    /// by default). Zero means the default of 8 s.
    pub respond_within: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventsConfigError {
    #[error("the {0} must be at least {MIN_SECRET_LEN} characters")]
    ShortSecret(&'static str),
}

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct EventsEndpoint {
    inner: Arc<Inner>,
}

struct Inner {
    trigger: Arc<Trigger>,
    s3_secret: Option<[u8; 32]>,
    seaweedfs_token: Option<[u8; 32]>,
    respond_within: Duration,
    background: TaskTracker,
}

impl std::fmt::Debug for EventsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsEndpoint")
            .field("s3", &self.inner.s3_secret.is_some())
            .field("seaweedfs", &self.inner.seaweedfs_token.is_some())
            .finish_non_exhaustive()
    }
}

impl EventsEndpoint {
    pub fn new(trigger: Arc<Trigger>, auth: EventsAuth) -> Result<Self, EventsConfigError> {
        let digest = |s: Option<String>, what| match s {
            Some(s) if s.len() < MIN_SECRET_LEN => Err(EventsConfigError::ShortSecret(what)),
            Some(s) => Ok(Some(sha(&s))),
            None => Ok(None),
        };
        let respond_within = if auth.respond_within.is_zero() {
            Duration::from_secs(8)
        } else {
            auth.respond_within
        };
        Ok(EventsEndpoint {
            inner: Arc::new(Inner {
                trigger,
                s3_secret: digest(auth.s3_secret, "S3 events secret")?,
                seaweedfs_token: digest(auth.seaweedfs_token, "SeaweedFS webhook token")?,
                respond_within,
                background: TaskTracker::new(),
            }),
        })
    }

    /// Wait for processing that outlived its request (shutdown, tests).
    pub async fn wait_background(&self) {
        self.inner.background.close();
        self.inner.background.wait().await;
        self.inner.background.reopen();
    }
}

/// Both routes with their body limit and the endpoint in place, ready to `merge` or serve.
pub fn events_router(endpoint: EventsEndpoint) -> Router {
    Router::new()
        .route("/v1/events/s3", s3_route())
        .route("/v1/events/seaweedfs", seaweedfs_route())
        .layer(Extension(endpoint))
}

/// `POST /v1/events/s3` with its body limit, for mounting on another router.
pub fn s3_route<S: Clone + Send + Sync + 'static>() -> MethodRouter<S> {
    post(s3_events).layer(DefaultBodyLimit::max(EVENT_BODY_LIMIT))
}

/// `POST /v1/events/seaweedfs` with its body limit, for mounting on another router.
pub fn seaweedfs_route<S: Clone + Send + Sync + 'static>() -> MethodRouter<S> {
    post(seaweedfs_events).layer(DefaultBodyLimit::max(EVENT_BODY_LIMIT))
}

/// `GET /healthz` and `GET /metrics` (Prometheus) for a `folio trigger` process.
pub fn trigger_ops_router() -> Router {
    let handle = crate::http::metrics::install();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        handle.render(),
                    )
                }
            }),
        )
}

pub async fn s3_events(
    endpoint: Option<Extension<EventsEndpoint>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let given = headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok());
    let secret = |inner: &Inner| inner.s3_secret;
    let refused = format!("a valid `{SECRET_HEADER}` header is required");
    authorized(endpoint, secret, given, &refused, EventFormat::Aws, body).await
}

pub async fn seaweedfs_events(
    endpoint: Option<Extension<EventsEndpoint>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let secret = |inner: &Inner| inner.seaweedfs_token;
    let refused = "a valid `Authorization: Bearer <token>` header is required";
    authorized(
        endpoint,
        secret,
        token,
        refused,
        EventFormat::SeaweedFs,
        body,
    )
    .await
}

/// Process `body` when the webhook is on (`secret` picks the digest of its secret; off: 404
/// `events_disabled`) and `given` matches it (else 401 with `refused`).
async fn authorized(
    endpoint: Option<Extension<EventsEndpoint>>,
    secret: impl FnOnce(&Inner) -> Option<[u8; 32]>,
    given: Option<&str>,
    refused: &str,
    format: EventFormat,
    body: Bytes,
) -> Response {
    let Some(Extension(endpoint)) = endpoint else {
        return disabled();
    };
    let Some(expected) = secret(&endpoint.inner) else {
        return disabled();
    };
    if given.is_none_or(|g| sha(g) != expected) {
        return unauthorized(refused);
    }
    process(endpoint, format, body).await
}

async fn process(endpoint: EventsEndpoint, format: EventFormat, body: Bytes) -> Response {
    let trigger = endpoint.inner.trigger.clone();
    // Processing runs in its own task: a sender that gives up waiting does not cancel it.
    let task = endpoint
        .inner
        .background
        .spawn(async move { trigger.process_body(format, &body).await });
    match tokio::time::timeout(endpoint.inner.respond_within, task).await {
        Ok(Ok(report)) => answer(&report),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "event processing task failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "event processing failed",
            )
        }
        Err(_) => (
            StatusCode::ACCEPTED,
            Json(json!({ "status": "processing" })),
        )
            .into_response(),
    }
}

fn answer(report: &Report) -> Response {
    let outcomes: Vec<serde_json::Value> = report.outcomes.iter().map(outcome_json).collect();
    match report.disposition() {
        Disposition::Reject => error(
            StatusCode::BAD_REQUEST,
            "malformed_event",
            report.malformed.as_deref().unwrap_or("malformed event"),
        ),
        Disposition::Retry if !report.errors.is_empty() => {
            let mut r = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "error": { "code": "unavailable", "message": report.errors.join("; ") },
                    "outcomes": outcomes,
                })),
            )
                .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        Disposition::Retry => (
            StatusCode::ACCEPTED,
            Json(json!({ "status": "in_progress", "outcomes": outcomes })),
        )
            .into_response(),
        Disposition::Ack => (StatusCode::OK, Json(json!({ "outcomes": outcomes }))).into_response(),
    }
}

fn outcome_json(o: &Outcome) -> serde_json::Value {
    match o {
        Outcome::Submitted {
            tenant,
            document_id,
            pages,
        } => {
            json!({"outcome": o.label(), "tenant": tenant, "document_id": document_id, "pages": pages})
        }
        Outcome::Rejected { tenant, code, .. } => {
            json!({"outcome": o.label(), "tenant": tenant, "code": code})
        }
        Outcome::Ignored(reason) => json!({"outcome": o.label(), "reason": reason.as_str()}),
        Outcome::Duplicate {
            tenant,
            document_id,
        } => json!({"outcome": o.label(), "tenant": tenant, "document_id": document_id}),
        Outcome::InProgress { tenant } => json!({"outcome": o.label(), "tenant": tenant}),
    }
}

fn disabled() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "events_disabled",
        "this event route is not configured on this server",
    )
}

fn unauthorized(message: &str) -> Response {
    error(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

fn sha(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}
