//! Mapping of the S3 SDK's errors to [`ErrorKind`].
//!
//! By the time an error reaches us the SDK has already retried what it considers transient
//! (5xx, throttling, timeouts, connection failures) `max_attempts` times.
//!
//! | what | kind |
//! | --- | --- |
//! | no response: connection refused or reset, DNS, timeouts, a cut-short response | `Unavailable` |
//! | 5xx, 408, 429, `SlowDown`, `RequestTimeout`, `InternalError` | `Unavailable` |
//! | 404 / `NoSuchKey` / `NotFound` (a missing object) | `NotFound` |
//! | `NoSuchBucket` (a configuration error, not a missing object) | `Invalid` |
//! | 412 (a conditional write lost) | `AlreadyExists` |
//! | any other 4xx (bad credentials, bad request) | `Invalid` |

use crate::{ErrorKind, TransportError};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The kind of a service error from its HTTP status and S3 error code.
pub(crate) fn classify(status: Option<u16>, code: Option<&str>) -> ErrorKind {
    match code {
        Some("NoSuchKey" | "NotFound") => return ErrorKind::NotFound,
        Some("NoSuchBucket") => return ErrorKind::Invalid,
        Some("SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable") => {
            return ErrorKind::Unavailable
        }
        _ => {}
    }
    match status {
        Some(404) => ErrorKind::NotFound,
        Some(412) => ErrorKind::AlreadyExists,
        Some(408 | 429 | 500..=599) => ErrorKind::Unavailable,
        Some(_) => ErrorKind::Invalid,
        None => ErrorKind::Unavailable,
    }
}

/// The HTTP status of an error's response, when there was one.
pub(crate) fn status_of<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// Wrap an SDK error with the operation and key.
pub(crate) fn s3_error<E>(op: &str, key: &str, err: SdkError<E, HttpResponse>) -> TransportError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = match &err {
        SdkError::ConstructionFailure(_) => ErrorKind::Invalid,
        SdkError::ServiceError(_) => classify(status_of(&err), err.code()),
        // Timeouts, dispatch failures (no connection) and unreadable responses.
        _ => ErrorKind::Unavailable,
    };
    let status = status_of(&err)
        .map(|s| format!(" (HTTP {s})"))
        .unwrap_or_default();
    let message = format!("S3 {op} `{key}`{status}: {}", DisplayErrorContext(&err));
    TransportError::with_source(kind, message, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let cases = [
            (Some(404), None, ErrorKind::NotFound),
            (Some(404), Some("NoSuchKey"), ErrorKind::NotFound),
            (Some(404), Some("NoSuchBucket"), ErrorKind::Invalid),
            (
                Some(412),
                Some("PreconditionFailed"),
                ErrorKind::AlreadyExists,
            ),
            (Some(503), Some("SlowDown"), ErrorKind::Unavailable),
            (Some(500), None, ErrorKind::Unavailable),
            (Some(429), None, ErrorKind::Unavailable),
            (Some(403), Some("AccessDenied"), ErrorKind::Invalid),
            (Some(400), Some("InvalidRequest"), ErrorKind::Invalid),
            (None, None, ErrorKind::Unavailable),
        ];
        for (status, code, kind) in cases {
            assert_eq!(classify(status, code), kind, "{status:?} {code:?}");
        }
    }
}
