//! Submitting a document: the path shared by `folio parse`, the upload API and the triggers.
//!
//! 1. [`accept`]: validate the bytes (type, corruption, encryption, page count, pixel budget),
//!    store the source and write `manifest.json`. This is what a 202 waits for.
//!    [`accept_stored`] does the same for a large upload that was streamed to the store as it
//!    arrived: it validates the local copy, and the source is already stored.
//! 2. [`enqueue_pages`]: rasterize the selected pages on a blocking thread, one at a time, and for
//!    each store the PNG and publish its [`PageJob`]. At most [`PAGES_IN_FLIGHT`] encoded pages wait
//!    between the two sides, so a 2,000-page PDF never sits in memory as images.

use bytes::Bytes;
use folio_ingest::stream::{PageSource, PageStream};
use folio_ingest::{IngestError, Ingestor, MediaType, PageRange, SourceSummary};
use folio_results::{clock, to_bytes, try_assemble, AssembleError, Completion};
use folio_schemas::{
    DocKeys, JobOptions, Manifest, PageError, PageJob, ProgressKind, SCHEMA_VERSION,
};
use folio_transport::{JobQueue, ObjectStore, TransportError};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Encoded pages allowed to wait between the rasterizer and the uploader.
pub const PAGES_IN_FLIGHT: usize = 2;

/// A document to submit.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    pub tenant: String,
    /// Chosen by the caller for idempotent re-submission; a new UUIDv7 when `None`.
    pub document_id: Option<String>,
    pub file_name: Option<String>,
    pub bytes: Bytes,
    pub password: Option<String>,
    pub pages: PageRange,
    pub options: JobOptions,
    pub metadata: BTreeMap<String, String>,
}

/// A large upload already written to the store at its source key, with a local copy that
/// inspection and rasterization read (deleted when the last holder drops it).
#[derive(Debug, Clone)]
pub struct StoredSource {
    pub path: Arc<tempfile::TempPath>,
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Sniffed from the first bytes.
    pub media_type: MediaType,
}

/// A [`SubmitRequest`] whose bytes are a [`StoredSource`].
#[derive(Debug, Clone)]
pub struct StoredRequest {
    pub tenant: String,
    pub document_id: String,
    pub file_name: Option<String>,
    pub source: StoredSource,
    pub password: Option<String>,
    pub pages: PageRange,
    pub options: JobOptions,
    pub metadata: BTreeMap<String, String>,
}

/// A stored, validated document whose pages are not enqueued yet.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub manifest: Manifest,
    source: PageSource,
    password: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The file or the options are at fault.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("storage or queue: {0}")]
    Transport(#[from] TransportError),
    #[error("internal: {0}")]
    Internal(String),
}

/// Validate, store the source and the manifest. Runs the inspection on a blocking thread.
pub async fn accept(
    store: &dyn ObjectStore,
    ingestor: &Ingestor,
    req: SubmitRequest,
) -> Result<Accepted, SubmitError> {
    let ing = ingestor.clone();
    let bytes = req.bytes.clone();
    let password = req.password.clone();
    let (summary, sha256) = tokio::task::spawn_blocking(move || {
        let summary = ing.inspect(&bytes, password.as_deref())?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Ok::<_, IngestError>((summary, sha256))
    })
    .await
    .map_err(|e| SubmitError::Internal(format!("inspection task failed: {e}")))??;
    let head = DocumentHead {
        tenant: req.tenant,
        document_id: req
            .document_id
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
        file_name: req.file_name,
        pages: req.pages,
        options: req.options,
        metadata: req.metadata,
    };
    let manifest = head.manifest(summary, sha256, req.bytes.len() as u64)?;
    let keys = DocKeys::new(&manifest.tenant, &manifest.document_id);
    store
        .put(&keys.source(), req.bytes.clone(), summary.media_type.mime())
        .await?;
    put_manifest(store, &manifest).await?;
    tracing::info!(document_id = %manifest.document_id, pages = manifest.pages.len(), "document accepted");
    Ok(Accepted {
        manifest,
        source: PageSource::Memory(req.bytes),
        password: req.password,
    })
}

/// [`accept`] for a source already in the store: validate its local copy and write
/// `manifest.json`. When this fails (a refused file, a bad page selection, an outage) the
/// stored source is deleted (best effort), so a refused upload leaves nothing behind.
pub async fn accept_stored(
    store: &dyn ObjectStore,
    ingestor: &Ingestor,
    req: StoredRequest,
) -> Result<Accepted, SubmitError> {
    let source_key = DocKeys::new(&req.tenant, &req.document_id).source();
    let accepted = accept_stored_inner(store, ingestor, req).await;
    if accepted.is_err() {
        if let Err(e) = store.delete(&source_key).await {
            tracing::warn!(key = %source_key, error = %e, "cannot delete the source of a refused upload");
        }
    }
    accepted
}

async fn accept_stored_inner(
    store: &dyn ObjectStore,
    ingestor: &Ingestor,
    req: StoredRequest,
) -> Result<Accepted, SubmitError> {
    let ing = ingestor.clone();
    let path = req.source.path.clone();
    let password = req.password.clone();
    let summary = tokio::task::spawn_blocking(move || ing.inspect_file(&path, password.as_deref()))
        .await
        .map_err(|e| SubmitError::Internal(format!("inspection task failed: {e}")))??;
    let head = DocumentHead {
        tenant: req.tenant,
        document_id: req.document_id,
        file_name: req.file_name,
        pages: req.pages,
        options: req.options,
        metadata: req.metadata,
    };
    let manifest = head.manifest(summary, req.source.sha256, req.source.size)?;
    put_manifest(store, &manifest).await?;
    tracing::info!(document_id = %manifest.document_id, pages = manifest.pages.len(), bytes = manifest.size_bytes, "streamed document accepted");
    Ok(Accepted {
        manifest,
        source: PageSource::File(req.source.path),
        password: req.password,
    })
}

/// Rasterize the accepted document's pages, store each image and publish its job, in page order.
/// Returns the number of pages enqueued. `on_enqueued` is called after each page (progress).
pub async fn enqueue_pages(
    store: Arc<dyn ObjectStore>,
    queue: Arc<dyn JobQueue>,
    ingestor: &Ingestor,
    accepted: Accepted,
    mut on_enqueued: impl FnMut(u32) + Send,
) -> Result<u32, SubmitError> {
    let manifest = accepted.manifest;
    let mut stream = PageStream::spawn(
        ingestor.with_dpi(manifest.options.dpi),
        accepted.source,
        accepted.password,
        manifest.pages.clone(),
        PAGES_IN_FLIGHT,
    );
    let keys = DocKeys::new(&manifest.tenant, &manifest.document_id);
    let submitted_at = now_rfc3339();
    let mut enqueued = 0u32;
    let mut upload_error = None;
    while let Some(page) = stream.next().await {
        let image_key = keys.page_image(page.page);
        let job = PageJob {
            schema_version: SCHEMA_VERSION.into(),
            tenant: manifest.tenant.clone(),
            document_id: manifest.document_id.clone(),
            page: page.page,
            page_count: manifest.pages.len() as u32,
            image_key: image_key.clone(),
            options: manifest.options.clone(),
            dpi: page.dpi,
            traceparent: None,
            submitted_at: submitted_at.clone(),
        };
        let stored = store.put(&image_key, page.png, "image/png").await;
        if let Err(e) = stored.and(queue.publish(&job).await) {
            upload_error = Some(e);
            break;
        }
        enqueued += 1;
        on_enqueued(page.page);
    }
    let raster_result = stream
        .finish()
        .await
        .map_err(|e| SubmitError::Internal(format!("rasterizer task failed: {e}")))?;
    if let Some(e) = upload_error {
        return Err(e.into());
    }
    if let Err(e) = raster_result {
        // The source passed inspection but a page failed to render: record every page that was
        // not enqueued, so the document can still complete (as partial) once the others are done.
        let never = manifest.pages.iter().skip(enqueued as usize).copied();
        let record = NeverEnqueued {
            code: e.code(),
            message: format!("page could not be rasterized: {e}"),
            attempts: 1,
        };
        record_never_enqueued(store.as_ref(), &manifest, never, &record).await?;
        return Err(e.into());
    }
    Ok(enqueued)
}

/// Why some pages of a document were never enqueued, as their error records say.
#[derive(Debug, Clone)]
pub struct NeverEnqueued {
    /// The records' `code` (an [`IngestError::code`], or `enqueue_failed`).
    pub code: &'static str,
    pub message: String,
    /// Enqueue attempts made.
    pub attempts: u32,
}

/// Write an error record for each of `pages` (of `manifest`) that no worker will ever see, then
/// assemble the document if those were its last missing pages. Stops at the first store error.
pub async fn record_never_enqueued(
    store: &dyn ObjectStore,
    manifest: &Manifest,
    pages: impl IntoIterator<Item = u32>,
    why: &NeverEnqueued,
) -> Result<(), TransportError> {
    let keys = DocKeys::new(&manifest.tenant, &manifest.document_id);
    for page in pages {
        let record = PageError {
            schema_version: SCHEMA_VERSION.into(),
            document_id: manifest.document_id.clone(),
            page,
            code: why.code.into(),
            message: why.message.clone(),
            attempts: why.attempts,
            finished_at: Some(clock::now()),
        };
        store
            .put(
                &keys.page_error(page),
                to_bytes(&record),
                "application/json",
            )
            .await?;
        let logged = ProgressKind::Page {
            page,
            ok: false,
            code: Some(why.code.into()),
        };
        folio_results::progress::append(store, &keys, logged).await?;
    }
    assemble_if_complete(store, manifest).await
}

/// Assemble the document when the error records the API just wrote were its last missing
/// pages (the workers may have finished every other page already, and no worker will see
/// these). A transient store error is returned so that the caller retries; a corrupt page
/// record is logged, since assembling again would not fix it.
pub async fn assemble_if_complete(
    store: &dyn ObjectStore,
    manifest: &Manifest,
) -> Result<(), TransportError> {
    match try_assemble(store, &manifest.tenant, &manifest.document_id).await {
        Ok(Completion::Assembled(doc)) => {
            tracing::info!(document_id = %manifest.document_id, status = ?doc.status, "document assembled by the api");
            Ok(())
        }
        Ok(Completion::Incomplete { done, total }) => {
            tracing::debug!(document_id = %manifest.document_id, done, total, "pages still pending");
            Ok(())
        }
        Err(AssembleError::Store(e)) => Err(e),
        Err(e) => {
            tracing::error!(document_id = %manifest.document_id, error = %e, "document cannot be assembled");
            Ok(())
        }
    }
}

/// What both kinds of request say about the document besides its bytes.
struct DocumentHead {
    tenant: String,
    document_id: String,
    file_name: Option<String>,
    pages: PageRange,
    options: JobOptions,
    metadata: BTreeMap<String, String>,
}

impl DocumentHead {
    /// The manifest of the inspected source (`sha256` in hex, `size_bytes` long); fails when
    /// the page selection does not fit the source.
    fn manifest(
        self,
        summary: SourceSummary,
        sha256: String,
        size_bytes: u64,
    ) -> Result<Manifest, SubmitError> {
        Ok(Manifest {
            schema_version: SCHEMA_VERSION.into(),
            pages: self.pages.select(summary.page_count)?,
            tenant: self.tenant,
            document_id: self.document_id,
            file_name: self.file_name,
            media_type: summary.media_type.mime().into(),
            sha256,
            size_bytes,
            source_page_count: summary.page_count,
            options: self.options,
            created_at: now_rfc3339(),
            metadata: self.metadata,
        })
    }
}

/// Store `manifest.json`.
async fn put_manifest(store: &dyn ObjectStore, manifest: &Manifest) -> Result<(), SubmitError> {
    let keys = DocKeys::new(&manifest.tenant, &manifest.document_id);
    let json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| SubmitError::Internal(format!("manifest serialisation: {e}")))?;
    store
        .put(&keys.manifest(), Bytes::from(json), "application/json")
        .await?;
    Ok(())
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}
