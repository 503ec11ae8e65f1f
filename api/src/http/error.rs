//! Every error the API answers with, and the ONE table from error kind to HTTP status and code
//! ([`ApiError::status_and_code`]). Bodies are `{ "error": { "code", "message" } }`; a 409 also
//! carries the document's status. Details of internal errors and outages are logged, not sent.

use crate::http::status::StatusResponse;
use crate::submit::SubmitError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use folio_ingest::IngestError;
use folio_transport::TransportError;
use serde::Serialize;
use utoipa::ToSchema;

/// What went wrong while answering a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No `Authorization: Bearer` header, or a key we do not know.
    #[error("a valid `Authorization: Bearer <key>` header is required")]
    Unauthorized,
    /// A signed viewer link that is malformed, not ours, for another document, or expired.
    #[error(transparent)]
    Link(#[from] crate::http::links::LinkError),
    /// No such document (or page) for this tenant; documents of other tenants are not found either.
    #[error("{0}")]
    NotFound(String),
    /// A request option is malformed or not allowed; `code` says which rule.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// The upload is larger than the configured limit.
    #[error("the upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The file or the page selection is at fault (or, rarely, the installation).
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The store or the broker failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The result is asked for before the document is done.
    #[error("{message}")]
    Incomplete {
        message: String,
        status: Box<StatusResponse>,
    },
    /// The tenant already has the maximum number of documents in flight.
    #[error(
        "too many documents in flight for this tenant (limit {limit}); retry when one is enqueued"
    )]
    TenantBusy { limit: usize },
    /// Every pending-document slot stayed taken for the whole admission wait.
    #[error("the server has {limit} documents waiting to be enqueued; retry shortly")]
    Overloaded { limit: usize },
    /// Answers made by the framework or a layer for a bare status (timeouts, unknown routes...).
    #[error("{message}")]
    Http { status: StatusCode, message: String },
    /// The request conflicts with the document's state (e.g. cancelling a finished document).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Our bug or an unexpected state; the detail is logged only.
    #[error("internal error: {0}")]
    Internal(String),
    /// An `Idempotency-Key` reused for another upload (422) or held by one still running (409).
    #[error("{message}")]
    Idempotency {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// THE table: error kind → (HTTP status, machine-readable code).
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Link(crate::http::links::LinkError::Expired) => {
                (StatusCode::UNAUTHORIZED, "link_expired")
            }
            ApiError::Link(crate::http::links::LinkError::Invalid) => {
                (StatusCode::UNAUTHORIZED, "link_invalid")
            }
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Ingest(e) => (ingest_status(e), e.code()),
            // An outage is never a 500: the client may retry.
            ApiError::Transport(e) if e.is_transient() => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            ApiError::Transport(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Incomplete { .. } => (StatusCode::CONFLICT, "incomplete"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::TenantBusy { .. } => (StatusCode::TOO_MANY_REQUESTS, "tenant_busy"),
            ApiError::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::Http { status, .. } => (*status, bare_status_code(*status)),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Idempotency { status, code, .. } => (*status, code),
        }
    }

    /// The message sent to the client: our own words for outages and internal errors.
    fn public_message(&self) -> String {
        match self {
            ApiError::Transport(e) if e.is_transient() => {
                "the object store or the queue is unavailable; retry later".into()
            }
            ApiError::Transport(_) | ApiError::Internal(_) => "internal error".into(),
            ApiError::Ingest(e) if !e.is_input_error() && !e.is_runtime_error() => {
                "internal error".into()
            }
            ApiError::Ingest(e) if e.is_runtime_error() => {
                "the document renderer is not available on this server".into()
            }
            other => other.to_string(),
        }
    }
}

/// Status of each ingest error: the user's file → 4xx; a missing renderer → 503; ours → 500.
fn ingest_status(e: &IngestError) -> StatusCode {
    match e {
        IngestError::UnsupportedType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        e if e.is_input_error() => StatusCode::UNPROCESSABLE_ENTITY,
        e if e.is_runtime_error() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Codes for answers that carry only a status (made by axum or a tower layer).
fn bare_status_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_type",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Ingest(e) => ApiError::Ingest(e),
            SubmitError::Transport(e) => ApiError::Transport(e),
            SubmitError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<crate::callbacks::RegisterError> for ApiError {
    fn from(e: crate::callbacks::RegisterError) -> Self {
        ApiError::bad_request(e.code(), e.to_string())
    }
}

/// `{ "error": { "code", "message" } }`, plus the document status on a 409.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// The document's status (409 `incomplete` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `unauthorized`, `corrupt_file`, `tenant_busy`.
    pub code: String,
    /// A sentence for the person who made the request.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, code, "request failed");
        } else {
            tracing::debug!(error = %self, code, "request refused");
        }
        let message = self.public_message();
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
            },
            status: match self {
                ApiError::Incomplete { status, .. } => Some(*status),
                _ => None,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"folio\""),
            );
        }
        let retry_after = match status {
            StatusCode::TOO_MANY_REQUESTS => Some("1"),
            StatusCode::SERVICE_UNAVAILABLE => Some("5"),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(secs));
        }
        response
    }
}

/// Middleware: an error answer that is not JSON (a bare 405 from the router, a 408 from the
/// timeout layer...) gets the standard error body, so every error a client sees has the same shape.
pub async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.is_success() || status.is_redirection() || is_json || status.is_informational() {
        return response;
    }
    let message = match status {
        StatusCode::NOT_FOUND => "no such route".to_string(),
        StatusCode::REQUEST_TIMEOUT => "the request took longer than the server's timeout".into(),
        s => s
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase(),
    };
    ApiError::Http { status, message }.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use folio_ingest::MediaType;
    use folio_transport::ErrorKind;

    #[test]
    fn table_maps_kinds_to_statuses() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::Unauthorized, 401, "unauthorized"),
            (ApiError::NotFound("x".into()), 404, "not_found"),
            (ApiError::bad_request("bad_engine", "x"), 400, "bad_engine"),
            (ApiError::TooLarge { limit: 1 }, 413, "payload_too_large"),
            (
                IngestError::UnsupportedType {
                    found: "docx".into(),
                }
                .into(),
                415,
                "unsupported_type",
            ),
            (IngestError::EncryptedPdf.into(), 422, "encrypted_pdf"),
            (
                IngestError::CorruptFile {
                    format: MediaType::Pdf,
                    detail: "x".into(),
                }
                .into(),
                422,
                "corrupt_file",
            ),
            (
                IngestError::TooManyPages {
                    count: 9,
                    at_least: false,
                    limit: 2,
                }
                .into(),
                422,
                "too_many_pages",
            ),
            (
                TransportError::new(ErrorKind::Unavailable, "down").into(),
                503,
                "unavailable",
            ),
            (
                TransportError::new(ErrorKind::Io, "disk").into(),
                503,
                "unavailable",
            ),
            (
                TransportError::new(ErrorKind::Invalid, "bad key").into(),
                500,
                "internal",
            ),
            (ApiError::TenantBusy { limit: 2 }, 429, "tenant_busy"),
            (ApiError::Internal("bug".into()), 500, "internal"),
            (IngestError::Sink("x".into()).into(), 500, "sink"),
        ];
        for (err, status, code) in cases {
            let (s, c) = err.status_and_code();
            assert_eq!((s.as_u16(), c), (status, code), "{err:?}");
        }
    }

    #[test]
    fn outages_and_bugs_do_not_leak_details() {
        let e: ApiError = TransportError::new(ErrorKind::Unavailable, "s3 at 10.0.0.5 down").into();
        assert!(!e.public_message().contains("10.0.0.5"));
        let e = ApiError::Internal("secret path /srv/x".into());
        assert_eq!(e.public_message(), "internal error");
    }
}
