//! Reading an upload: a raw body or the `file` part of a multipart form, counted against the
//! body limit and spooled to a temporary file once it passes the memory threshold.
//!
//! Trade-off: spooling bounds memory while bytes arrive (a slow 100 MiB upload holds at most the
//! threshold in RAM, however many run at once), but the finished upload is read back into one
//! buffer, because inspection and rasterization need the whole file in memory (PDFium loads
//! documents from a byte slice) and `ObjectStore::put` takes the body as one `Bytes`. Peak
//! memory per accepted document is therefore its size, for as long as its pages are being
//! enqueued; the per-tenant in-flight limit bounds how many such documents a tenant holds.

use crate::http::error::ApiError;
use crate::http::metrics;
use crate::http::options::{clean_file_name, UploadQuery};
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::Multipart;
use axum::http::StatusCode;
use bytes::Bytes;
use folio_transport::{ErrorKind, TransportError};
use http_body_util::BodyExt;
use std::io::SeekFrom;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Longest accepted multipart text field (an option value).
pub const MAX_FIELD_BYTES: usize = 8 * 1024;

/// Upload bytes: in memory up to `threshold`, in an anonymous temporary file past it.
#[derive(Debug)]
pub struct Spool {
    buf: Vec<u8>,
    file: Option<tokio::fs::File>,
    len: u64,
    threshold: usize,
    limit: u64,
    dir: Option<PathBuf>,
}

impl Spool {
    /// `limit`: bytes beyond which the upload is refused (413).
    pub fn new(threshold: usize, limit: u64, dir: Option<PathBuf>) -> Self {
        Spool {
            buf: Vec::new(),
            file: None,
            len: 0,
            threshold,
            limit,
            dir,
        }
    }

    /// Bytes received so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the upload went to a temporary file.
    pub fn is_spooled(&self) -> bool {
        self.file.is_some()
    }

    pub async fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        let len = self.len + chunk.len() as u64;
        if len > self.limit {
            return Err(ApiError::TooLarge { limit: self.limit });
        }
        self.len = len;
        if let Some(file) = &mut self.file {
            return file.write_all(chunk).await.map_err(spool_error);
        }
        if self.buf.len() + chunk.len() <= self.threshold {
            self.buf.extend_from_slice(chunk);
            return Ok(());
        }
        let dir = self.dir.clone();
        let file = tokio::task::spawn_blocking(move || match dir {
            Some(dir) => tempfile::tempfile_in(dir),
            None => tempfile::tempfile(),
        })
        .await
        .map_err(|e| ApiError::Internal(format!("spool task failed: {e}")))?
        .map_err(spool_error)?;
        let mut file = tokio::fs::File::from_std(file);
        file.write_all(&self.buf).await.map_err(spool_error)?;
        file.write_all(chunk).await.map_err(spool_error)?;
        self.buf = Vec::new();
        self.file = Some(file);
        metrics::upload_spooled();
        tracing::debug!(bytes = self.len, "upload spooled to a temporary file");
        Ok(())
    }

    /// The whole upload as one buffer (read back from the temporary file, which is then deleted).
    pub async fn into_bytes(self) -> Result<Bytes, ApiError> {
        let Some(mut file) = self.file else {
            return Ok(Bytes::from(self.buf));
        };
        file.flush().await.map_err(spool_error)?;
        file.seek(SeekFrom::Start(0)).await.map_err(spool_error)?;
        let mut out = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        file.read_to_end(&mut out).await.map_err(spool_error)?;
        Ok(Bytes::from(out))
    }
}

/// A local disk problem (full, unwritable): the client may retry later, so 503 rather than 500.
fn spool_error(e: std::io::Error) -> ApiError {
    ApiError::Transport(TransportError::with_source(
        ErrorKind::Io,
        "cannot spool the upload to a temporary file",
        e,
    ))
}

/// Read a raw request body into `spool`.
pub async fn read_raw(mut body: Body, spool: &mut Spool) -> Result<(), ApiError> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| body_error(&e))?;
        if let Ok(data) = frame.into_data() {
            spool.push(&data).await?;
        }
    }
    Ok(())
}

/// Read a multipart form: the single `file` part goes to `spool`, text fields into `query`.
/// Returns the part's file name, if it has one.
pub async fn read_multipart(
    mut form: Multipart,
    spool: &mut Spool,
    query: &mut UploadQuery,
) -> Result<Option<String>, ApiError> {
    let mut file_name = None;
    let mut seen_file = false;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| multipart_error(&e, spool))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            if seen_file {
                return Err(ApiError::bad_request(
                    "bad_multipart",
                    "more than one `file` part",
                ));
            }
            seen_file = true;
            file_name = field.file_name().and_then(clean_file_name);
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| multipart_error(&e, spool))?
            {
                spool.push(&chunk).await?;
            }
        } else {
            let value = read_text_field(&mut field, &name, spool).await?;
            query.set_field(&name, value)?;
        }
    }
    if !seen_file {
        return Err(ApiError::bad_request(
            "missing_file",
            "the multipart form has no `file` part",
        ));
    }
    Ok(file_name)
}

async fn read_text_field(
    field: &mut Field<'_>,
    name: &str,
    spool: &Spool,
) -> Result<String, ApiError> {
    if !UploadQuery::FIELDS.contains(&name) {
        // Refused before its content is read.
        return Err(ApiError::bad_request(
            "unknown_field",
            format!(
                "unknown multipart field {name:?}; expected `file` or one of {:?}",
                UploadQuery::FIELDS
            ),
        ));
    }
    let mut value = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| multipart_error(&e, spool))?
    {
        if value.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(ApiError::bad_request(
                "bad_option",
                format!("field `{name}` is longer than {MAX_FIELD_BYTES} bytes"),
            ));
        }
        value.extend_from_slice(&chunk);
    }
    String::from_utf8(value).map_err(|_| {
        ApiError::bad_request("bad_option", format!("field `{name}` is not UTF-8 text"))
    })
}

fn multipart_error(e: &MultipartError, spool: &Spool) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::TooLarge { limit: spool.limit };
    }
    ApiError::bad_request(
        "bad_multipart",
        format!("malformed multipart body: {}", e.body_text()),
    )
}

fn body_error(e: &axum::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return ApiError::Http {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: "the upload is larger than the server's body limit".into(),
            };
        }
        source = s.source();
    }
    ApiError::bad_request("incomplete_body", format!("the upload was cut short: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_uploads_stay_in_memory_large_ones_are_spooled() {
        let mut s = Spool::new(8, 100, None);
        s.push(b"abcd").await.unwrap();
        s.push(b"efgh").await.unwrap();
        assert!(!s.is_spooled());
        s.push(b"ijkl").await.unwrap();
        assert!(s.is_spooled());
        s.push(b"mnop").await.unwrap();
        assert_eq!(&s.into_bytes().await.unwrap()[..], b"abcdefghijklmnop");
    }

    #[tokio::test]
    async fn limit_is_enforced_across_chunks() {
        let mut s = Spool::new(4, 10, None);
        s.push(b"0123456789").await.unwrap();
        let e = s.push(b"x").await.unwrap_err();
        assert_eq!(e.status_and_code().1, "payload_too_large");
    }

    #[tokio::test]
    async fn spooling_into_a_missing_folder_is_an_outage_not_a_bug() {
        let mut s = Spool::new(1, 100, Some("/nonexistent/folio-spool".into()));
        let e = s.push(b"abc").await.unwrap_err();
        assert_eq!(e.status_and_code().0, StatusCode::SERVICE_UNAVAILABLE);
    }
}
