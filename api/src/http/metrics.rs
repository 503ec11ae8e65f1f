//! Every metric the API emits, declared in one place (Prometheus names and histogram buckets),
//! the recorder, and the per-request middleware that counts and times each route.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

/// Request latency buckets (seconds): uploads of large PDFs take seconds, status reads milliseconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Upload size buckets (bytes): 16 KiB .. 256 MiB by powers of four.
const SIZE_BUCKETS: &[f64] = &[
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
];

pub const HTTP_REQUESTS: &str = "folio_http_requests_total";
pub const HTTP_DURATION: &str = "folio_http_request_duration_seconds";
pub const UPLOADS: &str = "folio_uploads_total";
pub const UPLOAD_BYTES: &str = "folio_upload_bytes";
pub const UPLOADS_SPOOLED: &str = "folio_uploads_spooled_total";
pub const PAGES_ENQUEUED: &str = "folio_pages_enqueued_total";
pub const ENQUEUE_FAILURES: &str = "folio_enqueue_failures_total";
pub const DOCUMENTS_IN_FLIGHT: &str = "folio_documents_in_flight";
pub const DOCUMENTS_PENDING: &str = "folio_documents_pending";
pub const ADMISSION_WAIT: &str = "folio_admission_wait_seconds";
pub const VIEW_LINK_CHECKS: &str = "folio_view_link_checks_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus handle, installing the global recorder on the first call. When
/// another recorder is already installed (an embedding program chose its own), the API renders
/// an empty page rather than fail.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(UPLOAD_BYTES.into()), SIZE_BUCKETS)
                });
            let builder = match builder {
                Ok(b) => b,
                // Only an empty bucket list fails, and ours are constants.
                Err(e) => {
                    tracing::warn!(error = %e, "metric buckets rejected; using defaults");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %e, "a metrics recorder is already installed; /metrics stays empty");
            }
            handle
        })
        .clone()
}

/// Middleware: count and time every request by route template (never by raw path: ids would
/// explode the label set), method and status.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// An upload finished: `result` is `accepted` or the error code it was refused with.
pub fn upload(result: &str, bytes: u64) {
    metrics::counter!(UPLOADS, "result" => result.to_string()).increment(1);
    if bytes > 0 {
        metrics::histogram!(UPLOAD_BYTES).record(bytes as f64);
    }
}

/// An upload went past the memory threshold and was spooled to a temporary file.
pub fn upload_spooled() {
    metrics::counter!(UPLOADS_SPOOLED).increment(1);
}

pub fn page_enqueued(engine: &'static str) {
    metrics::counter!(PAGES_ENQUEUED, "engine" => engine).increment(1);
}

/// Enqueueing a document failed: `retried` (transient, will try again) or `gave_up`.
pub fn enqueue_failure(outcome: &'static str) {
    metrics::counter!(ENQUEUE_FAILURES, "outcome" => outcome).increment(1);
}

/// Documents in flight: of one tenant (label `tenant`, only with `FOLIO_METRICS_TENANT_LABELS=1`:
/// tenant names are customer names), else of all tenants together, without a label.
pub fn documents_in_flight(tenant: Option<&str>, count: usize) {
    match tenant {
        Some(t) => {
            metrics::gauge!(DOCUMENTS_IN_FLIGHT, "tenant" => t.to_string()).set(count as f64)
        }
        None => metrics::gauge!(DOCUMENTS_IN_FLIGHT).set(count as f64),
    }
}

/// Documents accepted whose pages are not all enqueued yet (all tenants).
pub fn documents_pending(count: usize) {
    metrics::gauge!(DOCUMENTS_PENDING).set(count as f64);
}

/// How long an upload waited for a pending-document slot; `admitted` or `overloaded`.
pub fn admission_wait(outcome: &'static str, seconds: f64) {
    metrics::histogram!(ADMISSION_WAIT, "outcome" => outcome).record(seconds);
}

/// A viewer request presented a signed link: `ok`, `expired` or `invalid`.
pub fn view_link_check(outcome: &'static str) {
    metrics::counter!(VIEW_LINK_CHECKS, "outcome" => outcome).increment(1);
}
