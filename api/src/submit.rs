//! Submitting a document: the path shared by `folio parse`, the upload API and the triggers.
//!
//! 1. [`accept`]: validate the bytes (type, corruption, encryption, page count, pixel budget),
//!    store the source and write `manifest.json`. This is what a 202 waits for.
//!    [`accept_stored`] does the same for a large upload that was streamed to the store as it
//!    arrived: it validates the local copy, and the source is already stored.
//! 2. [`enqueue_pages`]: rasterize the selected pages on a blocking thread, one at a time, and for
//!    each store the PNG and publish its [`PageJob`]. At most [`PAGES_IN_FLIGHT`] encoded pages wait
//!    between the two sides, so a 2,000-page PDF never sits in memory as images.

use crate::ingest::{IngestError, Ingestor, MediaType, PageRange, RasterPage};
use crate::page_png::encode_png;
use bytes::Bytes;
use folio_results::{clock, to_bytes, try_assemble, AssembleError, Completion};
use folio_schemas::{DocKeys, JobOptions, Manifest, PageError, PageJob, SCHEMA_VERSION};
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

/// Where an accepted document's bytes are read from for rasterization.
#[derive(Debug, Clone)]
enum SourceData {
    Memory(Bytes),
    File(Arc<tempfile::TempPath>),
}

/// A stored, validated document whose pages are not enqueued yet.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub manifest: Manifest,
    source: SourceData,
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
    let pages = req.pages.select(summary.page_count)?;
    let document_id = req
        .document_id
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION.into(),
        tenant: req.tenant,
        document_id,
        file_name: req.file_name,
        media_type: summary.media_type.mime().into(),
        sha256,
        size_bytes: req.bytes.len() as u64,
        pages,
        source_page_count: summary.page_count,
        options: req.options,
        created_at: now_rfc3339(),
        metadata: req.metadata,
    };
    let keys = DocKeys::new(&manifest.tenant, &manifest.document_id);
    store
        .put(&keys.source(), req.bytes.clone(), summary.media_type.mime())
        .await?;
    let manifest_json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| SubmitError::Internal(format!("manifest serialisation: {e}")))?;
    store
        .put(
            &keys.manifest(),
            Bytes::from(manifest_json),
            "application/json",
        )
        .await?;
    tracing::info!(document_id = %manifest.document_id, pages = manifest.pages.len(), "document accepted");
    Ok(Accepted {
        manifest,
        source: SourceData::Memory(req.bytes),
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
    let pages = req.pages.select(summary.page_count)?;
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION.into(),
        tenant: req.tenant,
        document_id: req.document_id,
        file_name: req.file_name,
        media_type: summary.media_type.mime().into(),
        sha256: req.source.sha256,
        size_bytes: req.source.size,
        pages,
        source_page_count: summary.page_count,
        options: req.options,
        created_at: now_rfc3339(),
        metadata: req.metadata,
    };
    let keys = DocKeys::new(&manifest.tenant, &manifest.document_id);
    let manifest_json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| SubmitError::Internal(format!("manifest serialisation: {e}")))?;
    store
        .put(
            &keys.manifest(),
            Bytes::from(manifest_json),
            "application/json",
        )
        .await?;
    tracing::info!(document_id = %manifest.document_id, pages = manifest.pages.len(), bytes = manifest.size_bytes, "streamed document accepted");
    Ok(Accepted {
        manifest,
        source: SourceData::File(req.source.path),
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
    let ing = ingestor.with_dpi(manifest.options.dpi);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(RasterPage, Bytes)>(PAGES_IN_FLIGHT);
    let pages = manifest.pages.clone();
    let (source, password) = (accepted.source, accepted.password);
    let rasterizer = tokio::task::spawn_blocking(move || {
        let mut on_page = |page: RasterPage| {
            let png = encode_png(&page.image)?;
            let page = RasterPage {
                image: image::RgbImage::new(0, 0),
                ..page
            };
            // The receiver is gone only when the uploader failed; its error is reported instead.
            tx.blocking_send((page, png))
                .map_err(|_| IngestError::Sink("uploader stopped".into()))
        };
        match &source {
            SourceData::Memory(bytes) => {
                ing.rasterize(bytes, password.as_deref(), &pages, &mut on_page)
            }
            SourceData::File(path) => {
                ing.rasterize_file(path, password.as_deref(), &pages, &mut on_page)
            }
        }
    });
    let keys = DocKeys::new(&manifest.tenant, &manifest.document_id);
    let submitted_at = now_rfc3339();
    let mut enqueued = 0u32;
    let mut upload_error = None;
    while let Some((page, png)) = rx.recv().await {
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
        let stored = store.put(&image_key, png, "image/png").await;
        if let Err(e) = stored.and(queue.publish(&job).await) {
            upload_error = Some(e);
            break;
        }
        enqueued += 1;
        on_enqueued(page.page);
    }
    drop(rx);
    let raster_result = rasterizer
        .await
        .map_err(|e| SubmitError::Internal(format!("rasterizer task failed: {e}")))?;
    if let Some(e) = upload_error {
        return Err(e.into());
    }
    if let Err(e) = raster_result {
        // The source passed inspection but a page failed to render: record every page that was
        // not enqueued, so the document can still complete (as partial) once the others are done.
        record_unenqueued(store.as_ref(), &manifest, enqueued, &e).await?;
        return Err(e.into());
    }
    Ok(enqueued)
}

async fn record_unenqueued(
    store: &dyn ObjectStore,
    manifest: &Manifest,
    enqueued: u32,
    error: &IngestError,
) -> Result<(), TransportError> {
    let keys = DocKeys::new(&manifest.tenant, &manifest.document_id);
    for &page in manifest.pages.iter().skip(enqueued as usize) {
        let record = PageError {
            schema_version: SCHEMA_VERSION.into(),
            document_id: manifest.document_id.clone(),
            page,
            code: error.code().into(),
            message: format!("page could not be rasterized: {error}"),
            attempts: 1,
            finished_at: Some(clock::now()),
        };
        store
            .put(
                &keys.page_error(page),
                to_bytes(&record),
                "application/json",
            )
            .await?;
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

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}
