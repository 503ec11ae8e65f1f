//! Reading a document back: its status (from the store itself — manifest, `results/` listing,
//! completion marker, cancel marker; no database), its assembled result, and single page results.

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::openapi::{DocumentResultDoc, PageOutcomeDoc};
use crate::http::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use folio_schemas::{CancelRecord, DocKeys, Manifest, PageError, ResultKey};
use folio_transport::ObjectStore;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::{IntoParams, ToSchema};

/// Where a document stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocState {
    /// Pages are still pending, or the document is not assembled yet.
    Processing,
    /// Assembled; every page has a result.
    Complete,
    /// Assembled; some pages failed (see their `error`).
    Partial,
    /// Cancelled (`DELETE /v1/documents/{id}`): pages not yet processed are skipped.
    Cancelled,
}

/// Where one page stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PageState {
    Pending,
    Done,
    Failed,
    /// Never processed: the document was cancelled first.
    Skipped,
}

/// Why a page failed (from its error record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PageFailure {
    pub code: String,
    pub message: String,
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PageStatus {
    pub page: u32,
    pub state: PageState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<PageFailure>,
}

/// `GET /v1/documents/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StatusResponse {
    pub document_id: String,
    pub status: DocState,
    /// Selected pages.
    pub pages_total: u32,
    /// Pages with a result.
    pub pages_done: u32,
    /// Pages with an error record and no result.
    pub pages_failed: u32,
    /// Every selected page, in the order of the selection.
    pub pages: Vec<PageStatus>,
    /// Engine the pages go to.
    pub engine: String,
    /// Detected type of the source.
    pub media_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// RFC 3339 time the upload was accepted.
    pub created_at: String,
    /// RFC 3339 time the last page record was written, once the document is assembled
    /// (`document.json`'s `completed_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// RFC 3339 time of the cancel, when the document was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
    /// Whether the stored pages and results were deleted (`?purge=true`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub purged: bool,
}

impl StatusResponse {
    /// The status of a cancelled document: pages not recorded were skipped.
    pub fn cancelled(mut self, record: &CancelRecord) -> Self {
        self.status = DocState::Cancelled;
        self.completed_at = None;
        self.cancelled_at = Some(record.cancelled_at.clone());
        self.purged = record.purged;
        for p in &mut self.pages {
            if p.state == PageState::Pending {
                p.state = PageState::Skipped;
            }
        }
        self
    }
}

/// What the status needs of `document.json`, the completion marker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Assembled {
    #[serde(default)]
    pub completed_at: Option<String>,
}

/// The status from what the store holds (pure): `results` are the keys under `results/`,
/// `errors` the error records read for failed pages, `assembled` what `document.json` says when it
/// exists.
pub fn build_status(
    manifest: &Manifest,
    results: &[String],
    errors: &BTreeMap<u32, PageError>,
    assembled: Option<&Assembled>,
) -> StatusResponse {
    let mut done = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for key in results {
        match ResultKey::parse(key) {
            Some(ResultKey::Page(p)) => {
                done.insert(p);
            }
            Some(ResultKey::Error(p)) => {
                failed.insert(p);
            }
            None => {}
        }
    }
    let pages: Vec<PageStatus> = manifest
        .pages
        .iter()
        .map(|&page| {
            // A page that succeeded on a later attempt keeps its result only.
            if done.contains(&page) {
                PageStatus {
                    page,
                    state: PageState::Done,
                    error: None,
                }
            } else if failed.contains(&page) {
                let error = errors.get(&page).map(|e| PageFailure {
                    code: e.code.clone(),
                    message: e.message.clone(),
                    attempts: e.attempts,
                });
                PageStatus {
                    page,
                    state: PageState::Failed,
                    error,
                }
            } else {
                PageStatus {
                    page,
                    state: PageState::Pending,
                    error: None,
                }
            }
        })
        .collect();
    let count = |s: PageState| pages.iter().filter(|p| p.state == s).count() as u32;
    let (pages_done, pages_failed) = (count(PageState::Done), count(PageState::Failed));
    let all_recorded = pages.iter().all(|p| p.state != PageState::Pending);
    let status = match (assembled.is_some() && all_recorded, pages_failed) {
        (false, _) => DocState::Processing,
        (true, 0) => DocState::Complete,
        (true, _) => DocState::Partial,
    };
    StatusResponse {
        document_id: manifest.document_id.clone(),
        status,
        pages_total: manifest.pages.len() as u32,
        pages_done,
        pages_failed,
        pages,
        engine: manifest.options.engine.to_string(),
        media_type: manifest.media_type.clone(),
        file_name: manifest.file_name.clone(),
        created_at: manifest.created_at.clone(),
        completed_at: match status {
            DocState::Processing => None,
            DocState::Complete | DocState::Partial => {
                assembled.and_then(|a| a.completed_at.clone())
            }
            DocState::Cancelled => None,
        },
        cancelled_at: None,
        purged: false,
    }
}

/// Document ids are ours (UUIDv7) but arrive in URLs: the one check lives next to the tenant's.
pub use folio_transport::valid_document_id;

/// The keys of `tenant`'s document `id`, or 404.
pub(crate) fn doc_keys(tenant: &Tenant, id: &str) -> Result<DocKeys, ApiError> {
    tracing::Span::current().record("document_id", id);
    if !valid_document_id(id) {
        return Err(not_found(id));
    }
    Ok(DocKeys::new(&tenant.0, id))
}

pub(crate) fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("document {id:?} not found"))
}

pub(crate) async fn read_manifest(
    store: &dyn ObjectStore,
    keys: &DocKeys,
    id: &str,
) -> Result<Manifest, ApiError> {
    let bytes = match store.get(&keys.manifest()).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Err(not_found(id)),
        Err(e) => return Err(e.into()),
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::Internal(format!("{} is not a manifest: {e}", keys.manifest())))
}

/// Read the status of a document from the store.
pub async fn load_status(
    store: &dyn ObjectStore,
    keys: &DocKeys,
    manifest: &Manifest,
) -> Result<StatusResponse, ApiError> {
    // The completion marker is read before listing: document.json is written after every
    // page record, so a listing taken later contains them all. It is read whole (the store
    // offers no partial reads), once per poll of a finished document.
    let assembled = match store.get(&keys.document_json()).await {
        Ok(bytes) => Some(
            serde_json::from_slice::<Assembled>(&bytes).unwrap_or_else(|e| {
                tracing::warn!(key = %keys.document_json(), error = %e, "unreadable document.json");
                Assembled::default()
            }),
        ),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    let results = store.list(&keys.results_prefix()).await?;
    let with_result: BTreeSet<u32> = results
        .iter()
        .filter_map(|k| match ResultKey::parse(k) {
            Some(ResultKey::Page(p)) => Some(p),
            _ => None,
        })
        .collect();
    let mut errors = BTreeMap::new();
    for key in &results {
        let Some(ResultKey::Error(page)) = ResultKey::parse(key) else {
            continue;
        };
        if with_result.contains(&page) || !manifest.pages.contains(&page) {
            continue;
        }
        match store.get(key).await {
            Ok(bytes) => match serde_json::from_slice::<PageError>(&bytes) {
                Ok(record) => {
                    errors.insert(page, record);
                }
                Err(e) => tracing::warn!(%key, error = %e, "unreadable error record"),
            },
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let status = build_status(manifest, &results, &errors, assembled.as_ref());
    Ok(match read_cancel(store, keys).await? {
        Some(record) => status.cancelled(&record),
        None => status,
    })
}

/// The document's cancel record, when it was cancelled.
pub async fn read_cancel(
    store: &dyn ObjectStore,
    keys: &DocKeys,
) -> Result<Option<CancelRecord>, ApiError> {
    match store.get(&keys.cancelled()).await {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            ApiError::Internal(format!("{} is not a cancel record: {e}", keys.cancelled()))
        }),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(
    get,
    path = "/v1/documents/{id}",
    tag = "documents",
    params(("id" = String, Path, description = "Document id from the upload")),
    responses(
        (status = 200, description = "Status of the document and of each page", body = StatusResponse),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such document for this tenant", body = ErrorBody),
        (status = 503, description = "Object store unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_status(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<StatusResponse>, ApiError> {
    let keys = doc_keys(&tenant, &id)?;
    let store = state.store().as_ref();
    let manifest = read_manifest(store, &keys, &id).await?;
    Ok(Json(load_status(store, &keys, &manifest).await?))
}

/// `?format=json|md` of `GET /v1/documents/{id}/result`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResultQuery {
    /// `json` (default): `document.json`; `md`: `document.md`.
    pub format: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/documents/{id}/result",
    tag = "documents",
    params(("id" = String, Path, description = "Document id"), ResultQuery),
    responses(
        (status = 200, description = "The assembled document", content(
            (DocumentResultDoc = "application/json"),
            (String = "text/markdown"),
        )),
        (status = 400, description = "Unknown format", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such document for this tenant", body = ErrorBody),
        (status = 409, description = "Not complete yet; the body carries the status", body = ErrorBody),
        (status = 503, description = "Object store unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_result(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    query: Result<Query<ResultQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let markdown = match query.format.as_deref() {
        None | Some("json") => false,
        Some("md") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_format",
                format!("format {other:?} is not `json` or `md`"),
            ))
        }
    };
    let keys = doc_keys(&tenant, &id)?;
    let store = state.store().as_ref();
    let manifest = read_manifest(store, &keys, &id).await?;
    // document.json is the completion marker (written after document.md).
    let json = match store.get(&keys.document_json()).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            let status = load_status(store, &keys, &manifest).await?;
            return Err(incomplete(status, "the document is not complete yet"));
        }
        Err(e) => return Err(e.into()),
    };
    if !markdown {
        return Ok(stored(json, "application/json", None));
    }
    let md = store.get(&keys.document_md()).await.map_err(|e| {
        if e.is_not_found() {
            ApiError::Internal(format!(
                "{} is missing next to document.json",
                keys.document_md()
            ))
        } else {
            e.into()
        }
    })?;
    Ok(stored(md, "text/markdown; charset=utf-8", None))
}

#[utoipa::path(
    get,
    path = "/v1/documents/{id}/pages/{page}",
    tag = "documents",
    params(
        ("id" = String, Path, description = "Document id"),
        ("page" = u32, Path, description = "1-based page number in the source"),
    ),
    responses(
        (status = 200, description = "The page's result, or its error record when it failed \
            (header `X-Folio-Page-State`: `done` or `failed`)", content(
            (PageOutcomeDoc = "application/json"),
        )),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such document, or the page was not selected", body = ErrorBody),
        (status = 409, description = "The page is still pending; the body carries the status", body = ErrorBody),
        (status = 503, description = "Object store unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_page(
    State(state): State<AppState>,
    tenant: Tenant,
    Path((id, page)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let keys = doc_keys(&tenant, &id)?;
    let store = state.store().as_ref();
    let manifest = read_manifest(store, &keys, &id).await?;
    let page_no = page
        .parse::<u32>()
        .ok()
        .filter(|p| manifest.pages.contains(p))
        .ok_or_else(|| {
            ApiError::NotFound(format!("page {page:?} is not one of this document's pages"))
        })?;
    match store.get(&keys.page_result(page_no)).await {
        Ok(b) => return Ok(stored(b, "application/json", Some("done"))),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    match store.get(&keys.page_error(page_no)).await {
        Ok(b) => return Ok(stored(b, "application/json", Some("failed"))),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let status = load_status(store, &keys, &manifest).await?;
    Err(incomplete(
        status,
        &format!("page {page_no} is still pending"),
    ))
}

pub(crate) fn incomplete(status: StatusResponse, message: &str) -> ApiError {
    ApiError::Incomplete {
        message: message.to_string(),
        status: Box::new(status),
    }
}

/// A stored object served as it is (no re-serialisation: the bytes are the store's).
pub(crate) fn stored(
    body: Bytes,
    content_type: &'static str,
    page_state: Option<&'static str>,
) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response();
    if let Some(s) = page_state {
        response
            .headers_mut()
            .insert("x-folio-page-state", HeaderValue::from_static(s));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use folio_schemas::{JobOptions, SCHEMA_VERSION};

    fn manifest(pages: Vec<u32>) -> Manifest {
        Manifest {
            schema_version: SCHEMA_VERSION.into(),
            tenant: "t".into(),
            document_id: "d".into(),
            file_name: None,
            media_type: "application/pdf".into(),
            sha256: "00".into(),
            size_bytes: 1,
            pages,
            source_page_count: 5,
            options: JobOptions::default(),
            created_at: "2026-01-01T00:00:00Z".into(),
            metadata: Default::default(),
        }
    }

    fn error(page: u32) -> PageError {
        PageError {
            schema_version: SCHEMA_VERSION.into(),
            document_id: "d".into(),
            page,
            code: "image_undecodable".into(),
            message: "bad".into(),
            attempts: 1,
            finished_at: None,
        }
    }

    #[test]
    fn states_from_keys() {
        let m = manifest(vec![2, 3, 4]);
        let keys = vec![
            "t/docs/d/results/00002.json".to_string(),
            "t/docs/d/results/00003.error.json".to_string(),
            "t/docs/d/results/00005.json".to_string(), // not selected: ignored
        ];
        let errors = BTreeMap::from([(3, error(3))]);
        let s = build_status(&m, &keys, &errors, None);
        assert_eq!(s.status, DocState::Processing);
        assert_eq!((s.pages_total, s.pages_done, s.pages_failed), (3, 1, 1));
        let states: Vec<_> = s.pages.iter().map(|p| (p.page, p.state)).collect();
        assert_eq!(
            states,
            vec![
                (2, PageState::Done),
                (3, PageState::Failed),
                (4, PageState::Pending)
            ]
        );
        assert_eq!(s.pages[1].error.as_ref().unwrap().code, "image_undecodable");
    }

    #[test]
    fn complete_and_partial_need_the_completion_marker() {
        let m = manifest(vec![1, 2]);
        let ok = vec![
            "t/docs/d/results/00001.json".to_string(),
            "t/docs/d/results/00002.json".to_string(),
            // An earlier failed attempt of a page that later succeeded.
            "t/docs/d/results/00002.error.json".to_string(),
        ];
        let marker = Assembled {
            completed_at: Some("2026-01-01T00:00:09.000Z".into()),
        };
        let s = build_status(&m, &ok, &BTreeMap::new(), None);
        assert_eq!((s.status, s.completed_at), (DocState::Processing, None));
        let s = build_status(&m, &ok, &BTreeMap::new(), Some(&marker));
        assert_eq!(
            (s.status, s.pages_done, s.pages_failed),
            (DocState::Complete, 2, 0)
        );
        assert_eq!(s.completed_at.as_deref(), Some("2026-01-01T00:00:09.000Z"));
        let partial = vec![
            "t/docs/d/results/00001.json".to_string(),
            "t/docs/d/results/00002.error.json".to_string(),
        ];
        let errors = BTreeMap::from([(2, error(2))]);
        assert_eq!(
            build_status(&m, &partial, &errors, Some(&marker)).status,
            DocState::Partial
        );
    }

    #[test]
    fn ids_that_could_escape_the_prefix_are_invalid() {
        assert!(valid_document_id("0190b4c2-7f4e-7a1b-9c3d-1234567890ab"));
        for bad in ["", "..", "a/b", "a%2Fb", "x".repeat(129).as_str(), "a b"] {
            assert!(!valid_document_id(bad), "{bad:?}");
        }
    }
}
