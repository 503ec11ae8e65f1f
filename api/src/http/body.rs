//! Reading an upload: a raw body or the `file` part of a multipart form, counted against the
//! body limit, kept in memory up to a threshold and streamed to the object store past it.
//!
//! Below the threshold the upload is one buffer, as before. When a body passes the threshold
//! its type is sniffed from the bytes so far (an unsupported type is refused then, 415), and
//! from that point every piece goes both to the store at the source's key
//! ([`ObjectStore::writer`]: a multipart upload on S3, one part in memory) and to a temporary
//! file, from which inspection and rasterization read it (PDFium reads a PDF from the file on
//! demand). The SHA-256 is computed as the pieces pass. So an upload's memory is bounded by the
//! threshold plus one store part, whatever its size; the body limit (413) is checked on every
//! piece, and an upload cut short or refused aborts the store upload and deletes the file.

use crate::http::error::ApiError;
use crate::http::metrics;
use crate::http::options::{clean_file_name, UploadQuery};
use crate::submit::StoredSource;
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::Multipart;
use axum::http::StatusCode;
use bytes::Bytes;
use folio_ingest::{sniff, MediaType};
use folio_transport::{ErrorKind, ObjectStore, ObjectWriter, TransportError};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Longest accepted multipart text field (an option value).
pub const MAX_FIELD_BYTES: usize = 8 * 1024;

/// Streaming never starts before this many bytes, so that the type can be sniffed (a PDF header
/// may start up to 1 KiB in).
pub const MIN_STREAM_THRESHOLD: usize = 4096;

/// Where a large upload goes: the store and the source's key, and the folder of the local copy
/// (the system's temporary folder when `None`).
#[derive(Debug)]
pub struct StreamTarget<'a> {
    pub store: &'a dyn ObjectStore,
    pub key: String,
    pub dir: Option<PathBuf>,
}

/// A large upload on its way: the local copy and the store upload.
#[derive(custom_debug::Debug)]
struct Streaming<'a> {
    #[debug(skip)]
    file: tokio::fs::File,
    path: tempfile::TempPath,
    writer: Box<dyn ObjectWriter + 'a>,
    media_type: MediaType,
}

/// What was received.
#[derive(Debug)]
pub enum Received {
    /// At most the threshold: the bytes.
    Memory(Bytes),
    /// Past the threshold: already in the store, with a local copy.
    Stored(StoredSource),
}

/// Upload bytes: in memory up to `threshold`, streamed to the store (and a local copy) past it.
#[derive(Debug)]
pub struct Spool<'a> {
    buf: Vec<u8>,
    len: u64,
    threshold: usize,
    limit: u64,
    hasher: Sha256,
    target: StreamTarget<'a>,
    streaming: Option<Streaming<'a>>,
}

impl<'a> Spool<'a> {
    /// `limit`: bytes beyond which the upload is refused (413). `threshold` is raised to
    /// [`MIN_STREAM_THRESHOLD`] if lower.
    pub fn new(threshold: usize, limit: u64, target: StreamTarget<'a>) -> Self {
        Spool {
            buf: Vec::new(),
            len: 0,
            threshold: threshold.max(MIN_STREAM_THRESHOLD),
            limit,
            hasher: Sha256::new(),
            target,
            streaming: None,
        }
    }

    /// Bytes received so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the upload is being streamed to the store.
    pub fn is_streaming(&self) -> bool {
        self.streaming.is_some()
    }

    /// SHA-256 (hex) of the bytes received so far.
    pub fn sha256_so_far(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    /// Bytes held in memory (at most the threshold).
    pub fn memory_bytes(&self) -> usize {
        self.buf.len()
    }

    pub async fn push(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        let len = self.len + chunk.len() as u64;
        if len > self.limit {
            return Err(ApiError::TooLarge { limit: self.limit });
        }
        self.len = len;
        self.hasher.update(&chunk);
        if self.streaming.is_none() && self.buf.len() + chunk.len() <= self.threshold {
            self.buf.extend_from_slice(&chunk);
            return Ok(());
        }
        if self.streaming.is_none() {
            let buffered = Bytes::from(std::mem::take(&mut self.buf));
            let mut streaming = self.start(&buffered, &chunk).await?;
            write_both(&mut streaming, buffered).await?;
            self.streaming = Some(streaming);
        }
        match &mut self.streaming {
            Some(streaming) => write_both(streaming, chunk).await,
            None => unreachable!("started above"),
        }
    }

    /// Sniff the type, open the local copy and the store upload.
    async fn start(&self, buffered: &[u8], chunk: &[u8]) -> Result<Streaming<'a>, ApiError> {
        let mut head = buffered[..buffered.len().min(MIN_STREAM_THRESHOLD)].to_vec();
        head.extend_from_slice(&chunk[..chunk.len().min(MIN_STREAM_THRESHOLD - head.len())]);
        let media_type = sniff(&head)?;
        let dir = self.target.dir.clone();
        let file = tokio::task::spawn_blocking(move || match dir {
            Some(dir) => tempfile::NamedTempFile::new_in(dir),
            None => tempfile::NamedTempFile::new(),
        })
        .await
        .map_err(|e| ApiError::Internal(format!("spool task failed: {e}")))?
        .map_err(spool_error)?;
        let (file, path) = file.into_parts();
        let writer = self
            .target
            .store
            .writer(&self.target.key, media_type.mime());
        metrics::upload_spooled();
        tracing::debug!(bytes = self.len, key = %self.target.key, "upload past the memory threshold; streaming it to the store");
        Ok(Streaming {
            file: tokio::fs::File::from_std(file),
            path,
            writer,
            media_type,
        })
    }

    /// The upload: its bytes, or (streamed) the finished store object and its local copy.
    pub async fn finish(self) -> Result<Received, ApiError> {
        let Some(mut streaming) = self.streaming else {
            return Ok(Received::Memory(Bytes::from(self.buf)));
        };
        streaming.file.flush().await.map_err(spool_error)?;
        streaming.writer.finish().await?;
        Ok(Received::Stored(StoredSource {
            path: Arc::new(streaming.path),
            size: self.len,
            sha256: hex::encode(self.hasher.finalize()),
            media_type: streaming.media_type,
        }))
    }
}

async fn write_both(streaming: &mut Streaming<'_>, chunk: Bytes) -> Result<(), ApiError> {
    streaming
        .file
        .write_all(&chunk)
        .await
        .map_err(spool_error)?;
    streaming.writer.write(chunk).await?;
    Ok(())
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
pub async fn read_raw(mut body: Body, spool: &mut Spool<'_>) -> Result<(), ApiError> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| body_error(&e))?;
        if let Ok(data) = frame.into_data() {
            spool.push(data).await?;
        }
    }
    Ok(())
}

/// Read a multipart form: the single `file` part goes to `spool`, text fields into `query`.
/// Returns the part's file name, if it has one.
pub async fn read_multipart(
    mut form: Multipart,
    spool: &mut Spool<'_>,
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
                spool.push(chunk).await?;
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
    spool: &Spool<'_>,
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

fn multipart_error(e: &MultipartError, spool: &Spool<'_>) -> ApiError {
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
    use folio_transport::LocalDirStore;

    fn target(store: &dyn ObjectStore) -> StreamTarget<'_> {
        StreamTarget {
            store,
            key: "t/docs/d/source".into(),
            dir: None,
        }
    }

    fn pdf_like(len: usize) -> Vec<u8> {
        let mut v = b"%PDF-1.7\n".to_vec();
        v.extend((0..len - v.len()).map(|i| (i % 251) as u8));
        v
    }

    #[tokio::test]
    async fn small_uploads_stay_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path()).unwrap();
        let mut s = Spool::new(0, 100_000, target(&store));
        let body = pdf_like(MIN_STREAM_THRESHOLD);
        s.push(Bytes::copy_from_slice(&body[..10])).await.unwrap();
        s.push(Bytes::copy_from_slice(&body[10..])).await.unwrap();
        assert!(!s.is_streaming());
        match s.finish().await.unwrap() {
            Received::Memory(b) => assert_eq!(&b[..], &body[..]),
            Received::Stored(_) => panic!("below the threshold"),
        }
        assert!(!store.exists("t/docs/d/source").await.unwrap());
    }

    #[tokio::test]
    async fn large_uploads_stream_to_the_store_with_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path().join("bucket")).unwrap();
        let threshold = 8192;
        let mut s = Spool::new(threshold, 10_000_000, target(&store));
        let body = pdf_like(1_000_000);
        for piece in body.chunks(3000) {
            s.push(Bytes::copy_from_slice(piece)).await.unwrap();
            assert!(s.memory_bytes() <= threshold);
        }
        assert!(s.is_streaming());
        assert_eq!(s.memory_bytes(), 0, "the buffer went to the store");
        assert!(
            !store.exists("t/docs/d/source").await.unwrap(),
            "not visible before finish"
        );
        let Received::Stored(src) = s.finish().await.unwrap() else {
            panic!("above the threshold");
        };
        assert_eq!(src.size, body.len() as u64);
        assert_eq!(src.media_type, MediaType::Pdf);
        assert_eq!(src.sha256, hex::encode(Sha256::digest(&body)));
        assert_eq!(std::fs::read(&*src.path).unwrap(), body, "local copy");
        assert_eq!(
            &store.get("t/docs/d/source").await.unwrap()[..],
            &body[..],
            "stored copy"
        );
    }

    #[tokio::test]
    async fn limit_is_enforced_across_chunks_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path()).unwrap();
        let mut s = Spool::new(0, 10_000, target(&store));
        s.push(Bytes::from(pdf_like(10_000))).await.unwrap();
        assert!(s.is_streaming());
        let e = s.push(Bytes::from_static(b"x")).await.unwrap_err();
        assert_eq!(e.status_and_code().1, "payload_too_large");
        drop(s);
        assert!(store.list("").await.unwrap().is_empty());
        assert!(!store.exists("t/docs/d/source").await.unwrap());
    }

    #[tokio::test]
    async fn an_unsupported_type_is_refused_when_streaming_would_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path()).unwrap();
        let mut s = Spool::new(0, 100_000, target(&store));
        let e = s
            .push(Bytes::from(vec![b'a'; MIN_STREAM_THRESHOLD + 1]))
            .await
            .unwrap_err();
        assert_eq!(e.status_and_code().1, "unsupported_type");
    }

    #[tokio::test]
    async fn spooling_into_a_missing_folder_is_an_outage_not_a_bug() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path()).unwrap();
        let mut s = Spool::new(
            0,
            100_000,
            StreamTarget {
                dir: Some("/nonexistent/folio-spool".into()),
                ..target(&store)
            },
        );
        let e = s.push(Bytes::from(pdf_like(5000))).await.unwrap_err();
        assert_eq!(e.status_and_code().0, StatusCode::SERVICE_UNAVAILABLE);
    }
}
