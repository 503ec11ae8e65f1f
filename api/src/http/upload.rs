//! `POST /v1/documents`: receive the upload (a large one streamed to the store as it arrives,
//! see `body.rs`), accept it (validate, store source and manifest), answer 202, then rasterize
//! and enqueue its pages in a background task.

use crate::http::auth::Tenant;
use crate::http::body::{read_multipart, read_raw, Received, Spool, StreamTarget};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::idempotency::{self, Claim, IdempotencyKey, KeyRecord};
use crate::http::metrics;
use crate::http::options::{UploadOptions, UploadQuery};
use crate::http::state::{AdmissionSlot, AppState, InFlightGuard};
use crate::submit::{
    self, accept, accept_stored, enqueue_pages, Accepted, NeverEnqueued, StoredRequest,
    SubmitError, SubmitRequest,
};
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use folio_schemas::{DocKeys, Manifest};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tracing::Instrument;
use utoipa::ToSchema;

/// Room for multipart boundaries, part headers and option fields on top of the file limit.
pub const MULTIPART_OVERHEAD: u64 = 1024 * 1024;

/// The 202 answer to an upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadAccepted {
    pub document_id: String,
    /// Where to poll: `/v1/documents/{id}`.
    pub status_url: String,
    /// Pages selected for processing.
    pub pages: u32,
}

#[utoipa::path(
    post,
    path = "/v1/documents",
    tag = "documents",
    params(
        UploadQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII \
            characters (a UUID). A retried upload with the same key (same tenant, within 24 h, \
            same body and options) answers 200 with the document the first one made; another \
            body or other options with the key get 422 `idempotency_key_reused`."),
        ("X-Folio-Pdf-Password" = Option<String>, Header, description = "Password of an \
            encrypted PDF (or the multipart field `password`). A `password` query parameter is \
            refused with 400 `password_in_query`."),
    ),
    request_body(
        description = "The file as the raw body (any Content-Type; the type is detected from the \
            bytes: PDF, PNG, JPEG, TIFF, WebP, BMP), or `multipart/form-data` with a `file` part \
            and optional text fields named like the query parameters.",
        content(
            ("application/pdf"),
            ("image/*"),
            ("application/octet-stream"),
            ("multipart/form-data"),
        )
    ),
    responses(
        (status = 200, description = "Replayed: an earlier upload with this Idempotency-Key made \
            this document", body = UploadAccepted, headers(("Location" = String, description = "The status URL"),
            ("Idempotent-Replayed" = String, description = "`true`"))),
        (status = 202, description = "Stored; pages are being rasterized and enqueued",
            body = UploadAccepted, headers(("Location" = String, description = "The status URL"))),
        (status = 400, description = "Bad option or malformed form; a password in the query \
            (`password_in_query`); a malformed Idempotency-Key (`bad_idempotency_key`); a `callback_url` that is \
            malformed (`bad_callback_url`), not allowed (`callback_forbidden`), unresolvable \
            (`callback_unresolvable`), or for a tenant without a callback secret \
            (`callback_unavailable`)", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 408, description = "The request took longer than the server's timeout", body = ErrorBody),
        (status = 409, description = "An upload with this Idempotency-Key is still being processed \
            (`idempotency_key_in_use`); retry", body = ErrorBody),
        (status = 413, description = "Larger than the body limit", body = ErrorBody),
        (status = 415, description = "Not a supported file type", body = ErrorBody),
        (status = 422, description = "Corrupt, encrypted, no pages, bad page selection, too many \
            pages; an Idempotency-Key reused for another upload (`idempotency_key_reused`); a PDF past \
            a render limit (`render_timeout`, `render_too_large`) or that crashed its render process \
            (`render_crashed`)", body = ErrorBody),
        (status = 429, description = "Too many documents of this tenant in flight", body = ErrorBody),
        (status = 503, description = "Object store or queue unavailable (`unavailable`), or too many \
            documents waiting to be enqueued for longer than the admission wait (`overloaded`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn upload(
    State(state): State<AppState>,
    tenant: Tenant,
    query: Result<Query<UploadQuery>, QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let document_id = uuid::Uuid::now_v7().to_string();
    tracing::Span::current().record("document_id", document_id.as_str());
    let mut received = 0u64;
    let result =
        receive_and_accept(&state, &tenant, query, request, &document_id, &mut received).await;
    match result {
        Ok(Outcome::Replayed(manifest)) => {
            metrics::upload("replayed", received);
            tracing::info!(document_id = %manifest.document_id, "upload replayed (Idempotency-Key)");
            replayed(&manifest)
        }
        Ok(Outcome::Accepted(accepted, guard, slot)) => {
            metrics::upload("accepted", received);
            let pages = accepted.manifest.pages.len() as u32;
            spawn_enqueue(&state, accepted, guard, slot);
            let status_url = format!("/v1/documents/{document_id}");
            let location = HeaderValue::from_str(&status_url)
                .map_err(|e| ApiError::Internal(format!("status URL header: {e}")))?;
            let body = UploadAccepted {
                document_id,
                status_url,
                pages,
            };
            Ok((
                StatusCode::ACCEPTED,
                [(header::LOCATION, location)],
                Json(body),
            )
                .into_response())
        }
        Err(e) => {
            metrics::upload(e.status_and_code().1, received);
            Err(e)
        }
    }
}

/// What an upload led to.
enum Outcome {
    Accepted(Accepted, InFlightGuard, AdmissionSlot),
    /// An earlier upload with the same `Idempotency-Key` made this document.
    Replayed(Manifest),
}

/// 200 with the document an earlier upload with the same `Idempotency-Key` made.
fn replayed(manifest: &Manifest) -> Result<Response, ApiError> {
    let status_url = format!("/v1/documents/{}", manifest.document_id);
    let location = HeaderValue::from_str(&status_url)
        .map_err(|e| ApiError::Internal(format!("status URL header: {e}")))?;
    let body = UploadAccepted {
        document_id: manifest.document_id.clone(),
        status_url,
        pages: manifest.pages.len() as u32,
    };
    let headers = [
        (header::LOCATION, location),
        (
            header::HeaderName::from_static(idempotency::REPLAYED_HEADER),
            HeaderValue::from_static("true"),
        ),
    ];
    Ok((StatusCode::OK, headers, Json(body)).into_response())
}

async fn receive_and_accept(
    state: &AppState,
    tenant: &Tenant,
    query: Result<Query<UploadQuery>, QueryRejection>,
    request: Request,
    document_id: &str,
    received: &mut u64,
) -> Result<Outcome, ApiError> {
    let Query(mut query) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    query.password_from_header(request.headers())?;
    let idempotency_key = IdempotencyKey::from_headers(request.headers())?;
    let config = state.config();
    let multipart = is_multipart(&request);
    let overhead = if multipart { MULTIPART_OVERHEAD } else { 0 };
    if content_length(&request).is_some_and(|n| n > config.max_body_bytes + overhead) {
        return Err(ApiError::TooLarge {
            limit: config.max_body_bytes,
        });
    }
    let guard = state
        .in_flight()
        .try_acquire(&tenant.0)
        .ok_or(ApiError::TenantBusy {
            limit: config.max_in_flight_per_tenant,
        })?;
    // Back-pressure: past the pending-document bound the upload waits here, body unread.
    let slot = state
        .admission()
        .acquire(config.admission_wait)
        .await
        .ok_or(ApiError::Overloaded {
            limit: config.max_pending_documents,
        })?;
    let target = StreamTarget {
        store: state.store().as_ref(),
        key: DocKeys::new(&tenant.0, document_id).source(),
        dir: config.spool_dir.clone(),
    };
    let mut spool = Spool::new(config.memory_threshold, config.max_body_bytes, target);
    let (options, part_name) = if multipart {
        let form = Multipart::from_request(request, state)
            .await
            .map_err(|e| ApiError::bad_request("bad_multipart", e.body_text()))?;
        let read = read_multipart(form, &mut spool, &mut query).await;
        *received = spool.len();
        let part_name = read?;
        (
            query.resolve(config.default_dpi, &config.engines)?,
            part_name,
        )
    } else {
        // Options in the query are checked before the body is read, so a bad request fails fast.
        let options = query.resolve(config.default_dpi, &config.engines)?;
        let read = read_raw(request.into_body(), &mut spool).await;
        *received = spool.len();
        read?;
        (options, None)
    };
    if let Some(url) = &options.callback_url {
        // Checked before the key is claimed: a refused target is a 400, nothing recorded.
        crate::callbacks::check(&config.callbacks, &tenant.0, url).await?;
    }
    let claim = match &idempotency_key {
        None => None,
        Some(key) => {
            let record = KeyRecord {
                document_id: document_id.to_string(),
                fingerprint: idempotency::fingerprint(&spool.sha256_so_far(), &options),
                created_unix: idempotency::now_unix(),
            };
            let store = state.store().as_ref();
            match idempotency::claim(store, &tenant.0, key, record, config.request_timeout).await? {
                Claim::Claimed(claimed) => Some(claimed),
                // The spool is dropped: a streamed copy of this body is aborted.
                Claim::Replay(manifest) => return Ok(Outcome::Replayed(*manifest)),
            }
        }
    };
    let accepted = store_and_accept(state, tenant, document_id, spool, options, part_name).await;
    match (accepted, claim) {
        (Ok(accepted), _) => Ok(Outcome::Accepted(accepted, guard, slot)),
        (Err(e), Some(claimed)) => {
            claimed.release(state.store().as_ref()).await;
            Err(e)
        }
        (Err(e), None) => Err(e),
    }
}

/// Finish receiving (a streamed upload is completed in the store) and accept the document.
async fn store_and_accept(
    state: &AppState,
    tenant: &Tenant,
    document_id: &str,
    spool: Spool<'_>,
    options: UploadOptions,
    part_name: Option<String>,
) -> Result<Accepted, ApiError> {
    let callback_url = options.callback_url.clone();
    let streamed = spool.is_streaming();
    // Finished only now that the options are known good: an upload refused before this point
    // is aborted in the store when the spool is dropped.
    let received = spool.finish().await?;
    let file_name = part_name.or(options.file_name);
    let store = state.store().as_ref();
    let accepted = match received {
        Received::Memory(bytes) => {
            tracing::info!(bytes = bytes.len(), streamed, engine = %options.job.engine, "upload received");
            let request = SubmitRequest {
                tenant: tenant.0.clone(),
                document_id: Some(document_id.to_string()),
                file_name,
                bytes,
                password: options.password,
                pages: options.pages,
                options: options.job,
                metadata: BTreeMap::new(),
            };
            accept(store, state.ingestor(), request).await?
        }
        Received::Stored(source) => {
            tracing::info!(bytes = source.size, streamed, engine = %options.job.engine, "upload received");
            let request = StoredRequest {
                tenant: tenant.0.clone(),
                document_id: document_id.to_string(),
                file_name,
                source,
                password: options.password,
                pages: options.pages,
                options: options.job,
                metadata: BTreeMap::new(),
            };
            accept_stored(store, state.ingestor(), request).await?
        }
    };
    if let Some(url) = &callback_url {
        // Before any page is enqueued: the document cannot end without seeing it.
        crate::callbacks::register(store, &tenant.0, document_id, url).await?;
    }
    Ok(accepted)
}

fn is_multipart(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

fn content_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Rasterize and enqueue in the background: one rasterization permit, the tenant's in-flight
/// slot and the pending-document slot held until the last page is enqueued.
fn spawn_enqueue(state: &AppState, accepted: Accepted, guard: InFlightGuard, slot: AdmissionSlot) {
    let span = tracing::info_span!(
        "enqueue",
        document_id = %accepted.manifest.document_id,
        tenant = %accepted.manifest.tenant
    );
    let task_state = state.clone();
    state.background().spawn(
        async move {
            let _tenant_slot = guard;
            let _pending_slot = slot;
            // The semaphore is never closed; a failure here would only skip the bound.
            let _permit = task_state.rasterizations().clone().acquire_owned().await;
            enqueue_with_retries(&task_state, accepted).await;
        }
        .instrument(span),
    );
}

/// `enqueue_pages`, again with backoff while the store or broker is out. A retry starts from
/// the first page: republishing a page that was already enqueued is harmless (its result key
/// is deterministic), while a page never enqueued would leave the document pending forever.
async fn enqueue_with_retries(state: &AppState, accepted: Accepted) {
    let config = state.config();
    let engine = accepted.manifest.options.engine.as_str();
    let mut enqueued = BTreeSet::new();
    let mut backoff = config.enqueue_backoff;
    for attempt in 1..=config.enqueue_attempts {
        let result = enqueue_pages(
            state.store().clone(),
            state.queue().clone(),
            state.ingestor(),
            accepted.clone(),
            |page| {
                enqueued.insert(page);
                metrics::page_enqueued(engine);
            },
        )
        .await;
        match result {
            Ok(pages) => {
                tracing::info!(pages, attempt, "document enqueued");
                return;
            }
            Err(SubmitError::Transport(e))
                if e.is_transient() && attempt < config.enqueue_attempts =>
            {
                metrics::enqueue_failure("retried");
                tracing::warn!(error = %e, attempt, retry_in_ms = backoff.as_millis() as u64, "enqueueing failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2).min(config.enqueue_backoff_max);
            }
            Err(SubmitError::Ingest(e)) => {
                // enqueue_pages recorded an error for every page it could not render.
                metrics::enqueue_failure("gave_up");
                tracing::error!(error = %e, code = e.code(), "rasterization failed; remaining pages recorded as failed");
                return;
            }
            Err(e) => {
                metrics::enqueue_failure("gave_up");
                tracing::error!(error = %e, attempt, "enqueueing failed; recording the pages that were never enqueued");
                record_never_enqueued(state, &accepted, &enqueued, &e).await;
                return;
            }
        }
    }
}

/// Best effort: an error record for each page that no attempt enqueued, so the status shows
/// them as failed instead of pending forever; then the document is assembled if those were
/// its last pages.
async fn record_never_enqueued(
    state: &AppState,
    accepted: &Accepted,
    enqueued: &BTreeSet<u32>,
    error: &SubmitError,
) {
    let manifest = &accepted.manifest;
    let never = manifest
        .pages
        .iter()
        .copied()
        .filter(|p| !enqueued.contains(p));
    let why = NeverEnqueued {
        code: "enqueue_failed",
        message: format!("the page could not be enqueued: {error}"),
        attempts: state.config().enqueue_attempts,
    };
    if let Err(e) =
        submit::record_never_enqueued(state.store().as_ref(), manifest, never, &why).await
    {
        tracing::error!(error = %e, "cannot record the pages never enqueued");
    }
}
