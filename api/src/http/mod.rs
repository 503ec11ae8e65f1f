//! The HTTP upload API (`folio serve`): axum routes in front of the submit path.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/documents` | upload (raw body or multipart `file`), 202 once source + manifest are stored |
//! | `GET /v1/documents/{id}` | status from the store: pages total/done/failed, per-page state |
//! | `GET /v1/documents/{id}/result?format=json\|md` | `document.json` / `document.md`; 409 while incomplete |
//! | `GET /v1/documents/{id}/pages/{n}` | one page's result or error record; 409 while pending |
//! | `GET /v1/documents/{id}/view` | the HTML viewer (boxes over page images); key or signed link |
//! | `GET /v1/documents/{id}/pages/{n}/image` | the stored page image; key or signed link |
//! | `GET /v1/documents/{id}/view-link` | a signed, short-lived link to the viewer |
//! | `DELETE /v1/documents/{id}[?purge=true]` | cancel (`cancel`): workers skip the pages left; purge deletes the data |
//! | `GET /v1/documents/{id}/events` | live progress, Server-Sent Events from the progress log (`progress`) |
//! | `GET /healthz`, `/readyz`, `/metrics`, `/openapi.json` | operations |
//!
//! Every document route authenticates (`Authorization: Bearer <key>` → tenant) and only sees the
//! tenant's own prefix `{tenant}/docs/`; the viewer and its images also take a signed link
//! ([`links`]) in place of the key, so a browser can open them. Errors are `{ "error": { "code", "message" } }`, with
//! statuses from one table ([`error::ApiError::status_and_code`]).
//!
//! ```no_run
//! # async fn run(store: std::sync::Arc<dyn folio_transport::ObjectStore>,
//! #              queue: std::sync::Arc<dyn folio_transport::JobQueue>,
//! #              ingestor: folio_ingest::Ingestor) -> Result<(), Box<dyn std::error::Error>> {
//! use folio_api::http::{ApiKeys, AppState, ServeConfig, Server, StoreProbe};
//! let mut keys = ApiKeys::new();
//! keys.insert("a-long-random-api-key", "acme")?;
//! let config = ServeConfig::new("127.0.0.1:0".parse()?, keys);
//! let probe = std::sync::Arc::new(StoreProbe::new(store.clone()));
//! let state = AppState::new(config, store, queue, ingestor, probe)?;
//! let server = Server::bind(state).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(tokio_util::sync::CancellationToken::new()).await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod body;
pub mod cancel;
pub mod config;
pub mod error;
pub mod idempotency;
pub mod links;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod options;
pub mod progress;
pub mod server;
pub mod state;
pub mod status;
pub mod upload;
pub mod view;

pub use config::{ApiKeys, ConfigError, ServeConfig};
pub use error::ApiError;
pub use ops::{AllProbes, ReadinessProbe, StoreProbe};
pub use server::{serve, ServeError, Server};
pub use state::AppState;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// The router with every route and layer (tracing, metrics, JSON errors, timeout). Serve it with
/// [`Server`], or call it directly with `tower::ServiceExt::oneshot` in tests.
pub fn app(state: AppState) -> Router {
    let config = state.config();
    let body_limit =
        usize::try_from(config.max_body_bytes + upload::MULTIPART_OVERHEAD).unwrap_or(usize::MAX);
    let layers = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ));
    Router::new()
        .route("/v1/documents", post(upload::upload))
        .route(
            "/v1/documents/{id}",
            get(status::get_status).delete(cancel::cancel),
        )
        .route("/v1/documents/{id}/events", get(progress::events))
        .route("/v1/documents/{id}/result", get(status::get_result))
        .route("/v1/documents/{id}/pages/{page}", get(status::get_page))
        .route(
            "/v1/documents/{id}/pages/{page}/image",
            get(view::get_page_image),
        )
        .route("/v1/documents/{id}/view", get(view::get_view))
        .route("/v1/documents/{id}/view-link", get(view::get_view_link))
        .route("/v1/events/s3", crate::events::http::s3_route())
        .route(
            "/v1/events/seaweedfs",
            crate::events::http::seaweedfs_route(),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi_json))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(layers)
        .with_state(state)
}

/// One span per request: route template (never the raw URI: it may carry a password option),
/// method, and the tenant and document id once known.
fn request_span(request: &Request<Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    tracing::info_span!(
        "http",
        method = %request.method(),
        route,
        tenant = tracing::field::Empty,
        document_id = tracing::field::Empty,
    )
}
