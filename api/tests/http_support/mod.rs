//! Helpers for the HTTP API tests: a harness over the real `LocalDirStore` and `InProcessQueue`
//! with a real `Ingestor`, two small wrappers that inject outages on demand (store) and hold or
//! fail publishes (queue), and request builders (raw, multipart, chunked).

#![allow(dead_code)]

use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use folio_api::http::{app, ApiKeys, AppState, ServeConfig, StoreProbe};
use folio_ingest::{IngestConfig, Ingestor};
use folio_schemas::{EngineKind, PageJob};
use folio_transport::{
    ErrorKind, InProcessQueue, JobConsumer, JobQueue, LocalDirStore, ObjectStore, TransportError,
};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use tower::ServiceExt;

pub const KEY_ACME: &str = "test-key-acme-0123456789";
pub const KEY_BETA: &str = "test-key-beta-0123456789";
/// A three-page scanned PDF (typed catalogue pages).
pub const PDF_3P: &str = "multipage_pdf/tapus_catalogue_1962_3p.pdf";
pub const FIXTURE_PASSWORD: &str = "folio-secret";

pub use folio_test_support::{fixture, pdfium_runtime_dir as runtime_dir, read_corpus as corpus};

/// `LocalDirStore` that answers every call with `Unavailable` while `down` is set.
#[derive(Debug)]
pub struct FaultyStore {
    pub inner: LocalDirStore,
    pub down: AtomicBool,
}

impl FaultyStore {
    fn check(&self) -> Result<(), TransportError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(TransportError::new(
                ErrorKind::Unavailable,
                "test: the store is down",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), TransportError> {
        self.check()?;
        self.inner.put(key, body, content_type).await
    }
    async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        ct: &str,
    ) -> Result<bool, TransportError> {
        self.check()?;
        self.inner.put_if_absent(key, body, ct).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, TransportError> {
        self.check()?;
        self.inner.get(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool, TransportError> {
        self.check()?;
        self.inner.exists(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, TransportError> {
        self.check()?;
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), TransportError> {
        self.check()?;
        self.inner.delete(key).await
    }
}

/// `InProcessQueue` whose publishes wait while `held` and fail transiently `fail_next` times.
#[derive(Debug)]
pub struct GatedQueue {
    pub inner: InProcessQueue,
    held: tokio::sync::watch::Sender<bool>,
    pub fail_next: AtomicU32,
    pub publishes: AtomicU32,
}

impl GatedQueue {
    pub fn hold(&self) {
        self.held.send_replace(true);
    }
    pub fn release(&self) {
        self.held.send_replace(false);
    }
}

#[async_trait]
impl JobQueue for GatedQueue {
    async fn publish(&self, job: &PageJob) -> Result<(), TransportError> {
        let mut rx = self.held.subscribe();
        rx.wait_for(|held| !held)
            .await
            .map_err(|_| TransportError::new(ErrorKind::Unavailable, "gate dropped"))?;
        let fail = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(TransportError::new(
                ErrorKind::Unavailable,
                "test: broker down",
            ));
        }
        self.publishes.fetch_add(1, Ordering::SeqCst);
        self.inner.publish(job).await
    }

    async fn consume(
        &self,
        engine: EngineKind,
        prefetch: u16,
    ) -> Result<Box<dyn JobConsumer>, TransportError> {
        self.inner.consume(engine, prefetch).await
    }
}

/// A router over a temporary bucket, with handles on its store and queue.
pub struct Harness {
    pub bucket: tempfile::TempDir,
    pub store: Arc<FaultyStore>,
    pub queue: Arc<GatedQueue>,
    pub state: AppState,
    pub router: Router,
}

pub fn keys() -> ApiKeys {
    let mut keys = ApiKeys::new();
    keys.insert(KEY_ACME, "acme").unwrap();
    keys.insert(KEY_BETA, "beta").unwrap();
    keys
}

pub fn config() -> ServeConfig {
    let mut cfg = ServeConfig::new("127.0.0.1:0".parse().unwrap(), keys());
    cfg.enqueue_backoff = std::time::Duration::from_millis(20);
    cfg
}

impl Harness {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(adjust: impl FnOnce(&mut ServeConfig)) -> Self {
        let mut cfg = config();
        adjust(&mut cfg);
        let bucket = tempfile::tempdir().unwrap();
        let store = Arc::new(FaultyStore {
            inner: LocalDirStore::new(bucket.path()).unwrap(),
            down: AtomicBool::new(false),
        });
        let queue = Arc::new(GatedQueue {
            inner: InProcessQueue::new(3),
            held: tokio::sync::watch::channel(false).0,
            fail_next: AtomicU32::new(0),
            publishes: AtomicU32::new(0),
        });
        let ingestor = Ingestor::new(IngestConfig::from_runtime_dir(&runtime_dir()));
        let probe = Arc::new(StoreProbe::new(store.clone()));
        let state = AppState::new(cfg, store.clone(), queue.clone(), ingestor, probe).unwrap();
        let router = app(state.clone());
        Harness {
            bucket,
            store,
            queue,
            state,
            router,
        }
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, key: Option<&str>, uri: &str) -> Reply {
        let mut b = Request::get(uri);
        if let Some(k) = key {
            b = b.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    /// Upload `bytes` as a raw body with `query` (e.g. `"?dpi=72"`).
    pub async fn upload(&self, key: &str, bytes: Vec<u8>, query: &str) -> Reply {
        self.send(raw_upload(key, bytes, query)).await
    }

    /// Upload, expect 202, wait for the pages to be enqueued; the document id.
    pub async fn upload_ok(&self, key: &str, bytes: Vec<u8>, query: &str) -> String {
        let reply = self.upload(key, bytes, query).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
        self.state.wait_background().await;
        reply.json()["document_id"].as_str().unwrap().to_string()
    }

    /// Take every job waiting in the `ocr` queue (acked).
    pub async fn drain_jobs(&self) -> Vec<PageJob> {
        let mut consumer = self
            .queue
            .inner
            .consume(EngineKind::Ocr, 1000)
            .await
            .unwrap();
        let mut jobs = Vec::new();
        while let Some(d) = consumer.try_next() {
            jobs.push(d.job.clone().unwrap());
            d.ack().await.unwrap();
        }
        jobs
    }
}

pub fn raw_upload(key: &str, bytes: Vec<u8>, query: &str) -> Request<Body> {
    raw_upload_with(key, bytes, query, &[])
}

/// [`raw_upload`] with more `headers` (`Idempotency-Key`, `X-Folio-Pdf-Password`...).
pub fn raw_upload_with(
    key: &str,
    bytes: Vec<u8>,
    query: &str,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut b = Request::post(format!("/v1/documents{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, bytes.len());
    for (name, value) in headers {
        b = b.header(*name, *value);
    }
    b.body(Body::from(bytes)).unwrap()
}

/// A `multipart/form-data` upload with a `file` part and text `fields`.
pub fn multipart_upload(
    key: &str,
    file: Option<(&str, Vec<u8>)>,
    fields: &[(&str, &str)],
    query: &str,
) -> Request<Body> {
    const BOUNDARY: &str = "folio-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((file_name, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/pdf\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    Request::post(format!("/v1/documents{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(body))
        .unwrap()
}

/// A raw upload whose body is fed through the returned sender (no Content-Length: chunked).
pub fn streamed_upload(
    key: &str,
    query: &str,
) -> (
    http_body_util::channel::Sender<Bytes, std::convert::Infallible>,
    Request<Body>,
) {
    let (tx, body) = http_body_util::Channel::<Bytes, std::convert::Infallible>::new(4);
    let request = Request::post(format!("/v1/documents{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/pdf")
        .body(Body::new(body))
        .unwrap();
    (tx, request)
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The `error.code` of an error body, checking its shape.
    pub fn error_code(&self) -> String {
        let v = self.json();
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "error body without a message: {v}"
        );
        v["error"]["code"].as_str().unwrap().to_string()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
