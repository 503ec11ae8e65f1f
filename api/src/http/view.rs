//! The document viewer over HTTP: `GET /v1/documents/{id}/view` (the page of
//! [`folio_results::html`]), `GET /v1/documents/{id}/pages/{page}/image` (the stored page image
//! it shows) and `GET /v1/documents/{id}/view-link` (a signed, short-lived link to the viewer).
//!
//! The viewer and its images take either the bearer key or a signed link's query
//! (`tenant`, `expires`, `sig`, see [`crate::http::links`]); a browser cannot send the header
//! for `<img>` requests, so the image URLs inside the page always carry a signed query: the
//! link's own, or a fresh one when the page was opened with the key.

use crate::http::auth::{tenant_of, Tenant};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::links::{unix_now, LinkError};
use crate::http::metrics;
use crate::http::state::AppState;
use crate::http::status::{doc_keys, incomplete, load_status, read_manifest, stored};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use folio_results::html::{document_html, ImageSources};
use folio_schemas::DocumentResult;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The signed-link part of a viewer URL; absent when the bearer key is sent instead.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// Tenant the link was made for.
    pub tenant: Option<String>,
    /// Unix time (seconds) after which the link is refused.
    pub expires: Option<u64>,
    /// HMAC-SHA256 signature (hex) from `GET /v1/documents/{id}/view-link`.
    pub sig: Option<String>,
}

/// Who may see the document, and the signed query its page images are linked with.
struct Access {
    tenant: Tenant,
    image_query: String,
}

/// The bearer key when the request has an `Authorization` header, else a valid signed link.
fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    query: Result<Query<LinkQuery>, QueryRejection>,
    id: &str,
) -> Result<Access, ApiError> {
    let Query(link) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let config = state.config();
    if headers.contains_key(header::AUTHORIZATION) {
        let tenant = tenant_of(headers, state)?;
        let expires = unix_now() + config.view_link_ttl.as_secs();
        let sig = config.view_links.sign(&tenant.0, id, expires);
        let image_query = link_query(&tenant.0, expires, &sig);
        return Ok(Access {
            tenant,
            image_query,
        });
    }
    let (tenant, expires, sig) = match link {
        LinkQuery {
            tenant: None,
            expires: None,
            sig: None,
        } => return Err(ApiError::Unauthorized),
        LinkQuery {
            tenant: Some(t),
            expires: Some(e),
            sig: Some(s),
        } => (t, e, s),
        _ => {
            metrics::view_link_check("invalid");
            return Err(LinkError::Invalid.into());
        }
    };
    let checked = config
        .view_links
        .verify(&tenant, id, expires, &sig, unix_now());
    metrics::view_link_check(match checked {
        Ok(()) => "ok",
        Err(LinkError::Expired) => "expired",
        Err(LinkError::Invalid) => "invalid",
    });
    checked?;
    tracing::Span::current().record("tenant", tenant.as_str());
    Ok(Access {
        image_query: link_query(&tenant, expires, &sig),
        tenant: Tenant(tenant),
    })
}

/// `tenant=…&expires=…&sig=…` (tenants are `[A-Za-z0-9_-]`, signatures hex: nothing to encode).
fn link_query(tenant: &str, expires: u64, sig: &str) -> String {
    format!("tenant={tenant}&expires={expires}&sig={sig}")
}

#[utoipa::path(
    get,
    path = "/v1/documents/{id}/view",
    tag = "viewer",
    params(("id" = String, Path, description = "Document id"), LinkQuery),
    responses(
        (status = 200, description = "The viewer: each page image with its blocks' boxes (coloured \
            by kind, numbered in reading order), the selected block's content, the Markdown. \
            Self-contained (inline style and script, no external requests) under a strict \
            Content-Security-Policy.", content((String = "text/html"))),
        (status = 400, description = "Unknown query parameter", body = ErrorBody),
        (status = 401, description = "No key and no link (`unauthorized`), or a link that is \
            not valid for this document (`link_invalid`) or has expired (`link_expired`)", body = ErrorBody),
        (status = 404, description = "No such document for this tenant", body = ErrorBody),
        (status = 409, description = "Not complete yet; the body carries the status", body = ErrorBody),
        (status = 503, description = "Object store unavailable", body = ErrorBody),
    ),
    security(("bearer" = []), ())
)]
pub async fn get_view(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<LinkQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let access = authorize(&state, &headers, query, &id)?;
    let keys = doc_keys(&access.tenant, &id)?;
    let store = state.store().as_ref();
    let json = match store.get(&keys.document_json()).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            let manifest = read_manifest(store, &keys, &id).await?;
            let status = load_status(store, &keys, &manifest).await?;
            return Err(incomplete(status, "the document is not complete yet"));
        }
        Err(e) => return Err(e.into()),
    };
    let doc: DocumentResult = serde_json::from_slice(&json).map_err(|e| {
        ApiError::Internal(format!("{} is not a document: {e}", keys.document_json()))
    })?;
    let src = |page: u32| Some(format!("pages/{page}/image?{}", access.image_query));
    let page = document_html(&doc, &src, ImageSources::SameOrigin);
    let policy = folio_results::html::content_security_policy(ImageSources::SameOrigin);
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        page,
    )
        .into_response();
    let h = response.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&format!("{policy}; frame-ancestors 'none'")) {
        h.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    // The URL may carry a signed link: never pass it on, never keep the page in a shared cache.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/v1/documents/{id}/pages/{page}/image",
    tag = "viewer",
    params(
        ("id" = String, Path, description = "Document id"),
        ("page" = u32, Path, description = "1-based page number in the source"),
        LinkQuery,
    ),
    responses(
        (status = 200, description = "The stored page image the boxes refer to",
            content(("image/png"))),
        (status = 400, description = "Unknown query parameter", body = ErrorBody),
        (status = 401, description = "No key and no valid link (`unauthorized`, `link_invalid`, `link_expired`)", body = ErrorBody),
        (status = 404, description = "No such document, or no image stored for the page", body = ErrorBody),
        (status = 503, description = "Object store unavailable", body = ErrorBody),
    ),
    security(("bearer" = []), ())
)]
pub async fn get_page_image(
    State(state): State<AppState>,
    Path((id, page)): Path<(String, String)>,
    headers: HeaderMap,
    query: Result<Query<LinkQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let access = authorize(&state, &headers, query, &id)?;
    let keys = doc_keys(&access.tenant, &id)?;
    let missing = || ApiError::NotFound(format!("no image is stored for page {page:?}"));
    let page_no = page
        .parse::<u32>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(missing)?;
    let png = match state.store().get(&keys.page_image(page_no)).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    let mut response = stored(png, "image/png", None);
    let h = response.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// `?expires_in=SECS` of `GET /v1/documents/{id}/view-link`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ViewLinkQuery {
    /// Lifetime of the link in seconds (default: the server's `FOLIO_VIEW_LINK_TTL_SECS`, at
    /// most one day).
    pub expires_in: Option<u64>,
}

/// A signed link to a document's viewer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ViewLink {
    /// The viewer's path and signed query, relative to the API's base URL; open it in a browser
    /// as it is (no key needed).
    pub path: String,
    /// Unix time (seconds) after which the link is refused.
    pub expires: u64,
    /// The same as RFC 3339.
    pub expires_at: String,
}

#[utoipa::path(
    get,
    path = "/v1/documents/{id}/view-link",
    tag = "viewer",
    params(("id" = String, Path, description = "Document id"), ViewLinkQuery),
    responses(
        (status = 200, description = "A link to the viewer that works without the key until it expires \
            (also before the document is complete: the viewer answers 409 until then)", body = ViewLink),
        (status = 400, description = "Bad `expires_in` (0 or longer than one day)", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such document for this tenant", body = ErrorBody),
        (status = 503, description = "Object store unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_view_link(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    query: Result<Query<ViewLinkQuery>, QueryRejection>,
) -> Result<Json<ViewLink>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let config = state.config();
    let max = crate::http::config::MAX_VIEW_LINK_TTL.as_secs();
    let ttl = match query.expires_in {
        None => config.view_link_ttl.as_secs(),
        Some(s) if (1..=max).contains(&s) => s,
        Some(s) => {
            return Err(ApiError::bad_request(
                "bad_expires_in",
                format!("expires_in {s} is not between 1 and {max} seconds"),
            ))
        }
    };
    let keys = doc_keys(&tenant, &id)?;
    read_manifest(state.store().as_ref(), &keys, &id).await?;
    let expires = unix_now() + ttl;
    let sig = config.view_links.sign(&tenant.0, &id, expires);
    let expires_at = i64::try_from(expires)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .ok_or_else(|| ApiError::Internal(format!("cannot format expiry {expires}")))?;
    Ok(Json(ViewLink {
        path: format!(
            "/v1/documents/{id}/view?{}",
            link_query(&tenant.0, expires, &sig)
        ),
        expires,
        expires_at,
    }))
}
