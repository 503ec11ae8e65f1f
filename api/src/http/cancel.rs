//! `DELETE /v1/documents/{id}`: cancel a document that is still processing. A cancel marker
//! (`cancelled.json`) is written first; workers check it before each page and ack the pages of a
//! cancelled document without running the engine. The document then ends as `cancelled` (its
//! end logged, its callback queued: `folio_results::end_document`). A page already in an
//! engine may still write its result; the document stays cancelled.
//!
//! `?purge=true` also deletes the stored source, page images, results and assembled document;
//! the manifest, the cancel record, the progress log and the callback records stay, so the
//! status still answers `cancelled` (until `folio gc` removes them with the rest). A document that
//! has already ended cannot be cancelled (409 `document_finished`); with `?purge=true` it is
//! deleted whole, and then it is not found.

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::state::AppState;
use crate::http::status::{doc_keys, load_status, read_manifest, DocState, StatusResponse};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use folio_results::{clock, end_document, to_bytes, Ending};
use folio_schemas::{CancelRecord, DocKeys, EndStatus, SCHEMA_VERSION};
use folio_transport::ObjectStore;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `?purge=true|false` of `DELETE /v1/documents/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CancelQuery {
    /// Also delete the stored source, page images and results (default `false`).
    pub purge: Option<bool>,
}

/// The answer to `DELETE /v1/documents/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelResponse {
    pub document_id: String,
    /// `cancelled`, or the state a finished document had when it was purged.
    pub status: DocState,
    /// Whether stored objects were deleted.
    pub purged: bool,
    /// Objects deleted by this request.
    pub deleted_objects: u32,
}

#[utoipa::path(
    delete,
    path = "/v1/documents/{id}",
    tag = "documents",
    params(("id" = String, Path, description = "Document id"), CancelQuery),
    responses(
        (status = 200, description = "Cancelled (or already cancelled); with `purge`, the stored \
            data deleted", body = CancelResponse),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such document for this tenant", body = ErrorBody),
        (status = 409, description = "The document has already ended (`document_finished`); \
            `?purge=true` deletes it", body = ErrorBody),
        (status = 503, description = "Object store unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn cancel(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    query: Result<Query<CancelQuery>, QueryRejection>,
) -> Result<Json<CancelResponse>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let purge = query.purge.unwrap_or(false);
    let keys = doc_keys(&tenant, &id)?;
    let store = state.store().as_ref();
    let manifest = read_manifest(store, &keys, &id).await?;
    let status = load_status(store, &keys, &manifest).await?;
    match status.status {
        DocState::Complete | DocState::Partial if !purge => Err(ApiError::Conflict {
            code: "document_finished",
            message: format!(
                "document {id:?} has already ended ({}); `?purge=true` deletes it",
                state_name(status.status)
            ),
        }),
        DocState::Complete | DocState::Partial => {
            let deleted = delete_all(store, &keys.prefix()).await?;
            tracing::info!(deleted, "finished document purged");
            Ok(Json(CancelResponse {
                document_id: id,
                status: status.status,
                purged: true,
                deleted_objects: deleted,
            }))
        }
        DocState::Processing | DocState::Cancelled => {
            let already = status.status == DocState::Cancelled;
            let record = CancelRecord {
                schema_version: SCHEMA_VERSION.into(),
                document_id: id.clone(),
                cancelled_at: status.cancelled_at.clone().unwrap_or_else(clock::now),
                purged: purge || status.purged,
            };
            if !already || (purge && !status.purged) {
                store
                    .put(&keys.cancelled(), to_bytes(&record), "application/json")
                    .await?;
            }
            // Repeated on a second DELETE: a crash between the marker and the end is healed.
            end_document(store, &tenant.0, &id, ending(&status))
                .await
                .map_err(|e| match e {
                    folio_results::AssembleError::Store(e) => ApiError::Transport(e),
                    other => ApiError::Internal(other.to_string()),
                })?;
            let deleted = if purge {
                purge_data(store, &keys).await?
            } else {
                0
            };
            tracing::info!(purge, deleted, already, "document cancelled");
            Ok(Json(CancelResponse {
                document_id: id,
                status: DocState::Cancelled,
                purged: record.purged,
                deleted_objects: deleted,
            }))
        }
    }
}

fn ending(status: &StatusResponse) -> Ending {
    Ending {
        status: EndStatus::Cancelled,
        pages_total: status.pages_total,
        pages_done: status.pages_done,
        pages_failed: status.pages_failed,
    }
}

fn state_name(s: DocState) -> &'static str {
    match s {
        DocState::Processing => "processing",
        DocState::Complete => "complete",
        DocState::Partial => "partial",
        DocState::Cancelled => "cancelled",
    }
}

/// Delete the source, page images, results and the assembled document.
async fn purge_data(store: &dyn ObjectStore, keys: &DocKeys) -> Result<u32, ApiError> {
    let mut deleted = delete_all(store, &keys.pages_prefix()).await?;
    deleted += delete_all(store, &keys.results_prefix()).await?;
    for key in [keys.source(), keys.document_json(), keys.document_md()] {
        if store.exists(&key).await? {
            store.delete(&key).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Delete every key under `prefix`; how many there were.
pub async fn delete_all(store: &dyn ObjectStore, prefix: &str) -> Result<u32, ApiError> {
    let keys = store.list(prefix).await?;
    for key in &keys {
        store.delete(key).await?;
    }
    Ok(keys.len() as u32)
}
