//! [`Reprocessor`]: one run over a prefix (see the module docs of [`super`]).

use super::checkpoint::{self, Checkpoint, FORMAT_VERSION};
use super::listing::{self, DocListing, Item};
use super::tracker::{RunQueue, Tracker};
use super::{ItemOutcome, ProgressSink, ReprocessError, ReprocessOptions, RunReport, Summary};
use crate::events::records::{index_key, now_rfc3339, ObjectVersion, SourceIndex};
use crate::submit::{accept, enqueue_pages, SubmitError, SubmitRequest};
use bytes::Bytes;
use folio_ingest::{Ingestor, PageRange, DEFAULT_DPI};
use folio_schemas::{DocKeys, EngineKind, JobOptions, Manifest, PageJob, SCHEMA_VERSION};
use folio_transport::valid_tenant;
use folio_transport::{JobQueue, ObjectStore, TransportError};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Runs one reprocessing over a prefix.
#[derive(Debug)]
pub struct Reprocessor {
    folio: Arc<dyn ObjectStore>,
    source: Arc<dyn ObjectStore>,
    queue: Arc<dyn JobQueue>,
    ingestor: Ingestor,
    options: ReprocessOptions,
}

/// What an item's handling needs from the run.
struct Ctx<'a> {
    tracker: &'a Arc<Mutex<Tracker>>,
    queue: &'a Arc<RunQueue>,
    run_id: &'a str,
}

impl Reprocessor {
    /// `folio` is Folio's bucket (documents, checkpoint), `source` the listed bucket (the same
    /// store when the URL names Folio's bucket).
    pub fn new(
        folio: Arc<dyn ObjectStore>,
        source: Arc<dyn ObjectStore>,
        queue: Arc<dyn JobQueue>,
        ingestor: Ingestor,
        options: ReprocessOptions,
    ) -> Self {
        Reprocessor {
            folio,
            source,
            queue,
            ingestor,
            options,
        }
    }

    /// The id of this run's checkpoint: a digest of the arguments that select and shape the work.
    pub fn run_id(&self) -> String {
        let o = &self.options;
        let since = o.since.map(|t| t.unix_timestamp().to_string());
        checkpoint::run_id(&[
            &o.source.to_string(),
            o.tenant.as_deref().unwrap_or(""),
            o.engine.map_or("", |e| e.as_str()),
            o.profile.as_deref().unwrap_or(""),
            since.as_deref().unwrap_or(""),
            if o.only_failed { "only-failed" } else { "" },
        ])
    }

    fn in_folio_bucket(&self) -> bool {
        self.options.source.bucket == self.options.folio_bucket
    }

    /// Run until done or `stop` is cancelled (then the item in progress stops between two page
    /// jobs and the checkpoint is written).
    pub async fn run(
        &self,
        stop: CancellationToken,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<RunReport, ReprocessError> {
        let o = &self.options;
        let usage = |m: String| Err(ReprocessError::Usage(m));
        if let Some(t) = o.tenant.as_deref().filter(|t| !valid_tenant(t)) {
            return usage(format!("{t:?} is not a tenant name"));
        }
        if !self.in_folio_bucket() && o.tenant.is_none() {
            return usage(format!(
                "{} is not Folio's bucket ({}): its objects are ingested for a tenant; pass --tenant",
                o.source, o.folio_bucket
            ));
        }
        let run_id = self.run_id();
        let cp_key = checkpoint::key(&run_id);
        let existing = checkpoint::load(self.folio.as_ref(), &run_id).await?;
        let (cp, resumed) = match existing {
            Some(cp) if o.resume && !cp.finished => (cp, true),
            Some(_) if o.resume => {
                return usage(format!("the run of {cp_key} already finished; run again without --resume to start over"))
            }
            None if o.resume => {
                return usage(format!("nothing to resume: no checkpoint {cp_key} for these arguments"))
            }
            Some(cp) if !cp.finished && !o.restart && !o.dry_run => {
                return usage(format!(
                    "an interrupted run of these arguments stopped after {} (checkpoint {cp_key}); pass --resume to continue or --restart to start over",
                    cp.done_through.as_deref().unwrap_or("its first item")
                ))
            }
            _ => (self.fresh_checkpoint(&run_id), false),
        };
        let keys = self.source.list(&o.source.prefix).await?;
        let mut items = if self.in_folio_bucket() {
            listing::documents(&keys)
        } else {
            listing::objects(&keys)
        };
        if let (true, Some(t)) = (self.in_folio_bucket(), o.tenant.as_deref()) {
            items.retain(|i| matches!(i, Item::Document(d) if d.tenant == t));
        }
        let done = |key: &str| cp.done_through.as_deref().is_some_and(|d| key <= d);
        let done_before = items.iter().filter(|i| done(&i.key())).count() as u64;
        let pending: Vec<Item> = items.iter().filter(|i| !done(&i.key())).cloned().collect();
        let mut cp = cp;
        cp.counts.items = items.len() as u64;
        let tracker = Arc::new(Mutex::new(Tracker::new(
            self.folio.clone(),
            cp,
            o.checkpoint_every,
            !o.dry_run,
        )));
        tracker.lock().await.save().await?;
        let queue = Arc::new(RunQueue::new(
            self.queue.clone(),
            tracker.clone(),
            o.rate,
            stop.clone(),
            progress.clone(),
        ));
        progress.planned(items.len() as u64, done_before);
        tracing::info!(
            run_id,
            items = items.len(),
            done_before,
            resumed,
            "reprocessing"
        );
        let ctx = Ctx {
            tracker: &tracker,
            queue: &queue,
            run_id: &run_id,
        };
        let mut interrupted = false;
        for item in &pending {
            if stop.is_cancelled() {
                interrupted = true;
                break;
            }
            let key = item.key();
            let outcome = match item {
                Item::Document(d) => self.document(d, &key, &ctx).await,
                Item::Object(k) => self.object(k, &ctx).await,
            };
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(_) if stop.is_cancelled() => {
                    interrupted = true;
                    break;
                }
                Err(e) => {
                    if let Err(save) = tracker.lock().await.save().await {
                        tracing::warn!(error = %save, "the checkpoint could not be written");
                    }
                    return Err(e);
                }
            };
            if let ItemOutcome::Failed(reason) = &outcome {
                tracing::warn!(%key, %reason, "item failed");
            }
            tracker.lock().await.finish(&key, &outcome).await?;
            progress.item_done(&key, &outcome);
        }
        let mut t = tracker.lock().await;
        t.cp.finished = !interrupted;
        t.save().await?;
        Ok(RunReport {
            summary: t.cp.counts.clone(),
            interrupted,
            resumed,
            dry_run: o.dry_run,
            checkpoint_key: cp_key,
        })
    }

    fn fresh_checkpoint(&self, run_id: &str) -> Checkpoint {
        let o = &self.options;
        let now = now_rfc3339();
        Checkpoint {
            version: FORMAT_VERSION,
            run_id: run_id.to_string(),
            source: o.source.to_string(),
            options: format!(
                "tenant={} engine={} profile={} since={} only_failed={}",
                o.tenant.as_deref().unwrap_or("-"),
                o.engine.map_or("-", |e| e.as_str()),
                o.profile.as_deref().unwrap_or("-"),
                o.since.map_or("-".to_string(), |t| t.to_string()),
                o.only_failed
            ),
            done_through: None,
            current: None,
            counts: Summary::default(),
            started_at: now.clone(),
            updated_at: now,
            finished: false,
        }
    }

    fn options_for(&self, base: &JobOptions) -> JobOptions {
        let mut opts = base.clone();
        if let Some(engine) = self.options.engine {
            opts.engine = engine;
        }
        if let Some(profile) = &self.options.profile {
            opts.profile = Some(profile.clone());
        }
        opts
    }

    /// A stored document: enqueue its page images again.
    async fn document(
        &self,
        d: &DocListing,
        key: &str,
        ctx: &Ctx<'_>,
    ) -> Result<ItemOutcome, ReprocessError> {
        let o = &self.options;
        let keys = DocKeys::new(&d.tenant, &d.document_id);
        let manifest: Manifest = match self.folio.get(&keys.manifest()).await {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    return Ok(ItemOutcome::Failed(format!(
                        "manifest.json unreadable: {e}"
                    )))
                }
            },
            Err(e) if e.is_not_found() => return Ok(ItemOutcome::Skipped("deleted".into())),
            Err(e) => return Err(e.into()),
        };
        if let Some(since) = o.since {
            let created = time::OffsetDateTime::parse(
                &manifest.created_at,
                &time::format_description::well_known::Rfc3339,
            );
            if created.is_ok_and(|c| c < since) {
                return Ok(ItemOutcome::Skipped("created before --since".into()));
            }
        }
        let failed = d.failed_pages();
        let selected: Vec<u32> = manifest
            .pages
            .iter()
            .copied()
            .filter(|p| !o.only_failed || failed.contains(p))
            .collect();
        if selected.is_empty() {
            let why = if o.only_failed {
                "no failed pages"
            } else {
                "no pages"
            };
            return Ok(ItemOutcome::Skipped(why.into()));
        }
        let (ready, missing): (Vec<u32>, Vec<u32>) =
            selected.iter().partition(|p| d.images.contains(p));
        if ready.is_empty() {
            return Ok(ItemOutcome::Failed(format!(
                "no stored page image for page(s) {missing:?}; submit the source again"
            )));
        }
        if !missing.is_empty() {
            tracing::warn!(document_id = %d.document_id, ?missing, "pages without a stored image are not enqueued");
        }
        let options = self.options_for(&manifest.options);
        if o.dry_run {
            ctx.tracker.lock().await.count_dry(ready.len() as u32);
            return Ok(ItemOutcome::Submitted {
                pages: ready.len() as u32,
            });
        }
        let already = ctx.tracker.lock().await.prepared_before(key);
        if !already {
            self.clear_outputs(d, &keys, &manifest, &options, &ready)
                .await?;
        }
        let skip = ctx.tracker.lock().await.published_before(key) as usize;
        ctx.tracker.lock().await.begin(key, true).await?;
        let submitted_at = now_rfc3339();
        let is_pdf = manifest.media_type == "application/pdf";
        for &page in ready.iter().skip(skip) {
            let job = PageJob {
                schema_version: SCHEMA_VERSION.into(),
                tenant: d.tenant.clone(),
                document_id: d.document_id.clone(),
                page,
                page_count: manifest.pages.len() as u32,
                image_key: keys.page_image(page),
                options: options.clone(),
                // The render DPI of PDFs; an image's own resolution is not kept per page.
                dpi: is_pdf.then_some(options.dpi),
                traceparent: None,
                submitted_at: submitted_at.clone(),
            };
            ctx.queue.publish(&job).await?;
        }
        Ok(ItemOutcome::Submitted {
            pages: ready.len() as u32,
        })
    }

    /// New options into the manifest; assembled outputs and the selected pages' records out, so
    /// the document is assembled again from the new results only.
    async fn clear_outputs(
        &self,
        d: &DocListing,
        keys: &DocKeys,
        manifest: &Manifest,
        options: &JobOptions,
        pages: &[u32],
    ) -> Result<(), TransportError> {
        if *options != manifest.options {
            let mut updated = manifest.clone();
            updated.options = options.clone();
            let body = serde_json::to_vec_pretty(&updated).unwrap_or_default();
            self.folio
                .put(&keys.manifest(), Bytes::from(body), "application/json")
                .await?;
        }
        if d.assembled {
            self.folio.delete(&keys.document_json()).await?;
            self.folio.delete(&keys.document_md()).await?;
        }
        // A new round: the document is no longer cancelled, and it will end (and call its
        // callback) again.
        self.folio.delete(&keys.cancelled()).await?;
        folio_results::progress::start_round(self.folio.as_ref(), keys).await?;
        for &p in pages {
            if d.results.contains(&p) {
                self.folio.delete(&keys.page_result(p)).await?;
            }
            if d.errors.contains(&p) {
                self.folio.delete(&keys.page_error(p)).await?;
            }
        }
        Ok(())
    }

    /// A raw object: its document when the triggers submitted it, else ingest it.
    async fn object(&self, key: &str, ctx: &Ctx<'_>) -> Result<ItemOutcome, ReprocessError> {
        let o = &self.options;
        let tenant = o.tenant.clone().unwrap_or_default();
        if let Some(doc) = self.known_document(&tenant, key).await? {
            return self.document(&doc, key, ctx).await;
        }
        if o.only_failed {
            return Ok(ItemOutcome::Skipped("never processed".into()));
        }
        if o.dry_run {
            return Ok(ItemOutcome::Submitted { pages: 0 });
        }
        let bytes = match self.source.get(key).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(ItemOutcome::Skipped("deleted".into())),
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => return Ok(ItemOutcome::Failed(format!("unreadable: {e}"))),
        };
        let version = ObjectVersion {
            tenant: tenant.clone(),
            bucket: o.source.bucket.clone(),
            key: key.to_string(),
            version: format!("reprocess:{}", ctx.run_id),
        };
        let options = self.options_for(&JobOptions {
            engine: EngineKind::Ocr,
            profile: None,
            prompt: None,
            dpi: DEFAULT_DPI,
        });
        let mut metadata = BTreeMap::new();
        metadata.insert("source".into(), format!("s3://{}/{key}", o.source.bucket));
        metadata.insert("reprocess_run".into(), ctx.run_id.to_string());
        let request = SubmitRequest {
            tenant: tenant.clone(),
            document_id: Some(version.document_id()),
            file_name: key.rsplit('/').next().map(str::to_string),
            bytes,
            password: None,
            pages: PageRange::all(),
            options,
            metadata,
        };
        let accepted = match accept(self.folio.as_ref(), &self.ingestor, request).await {
            Ok(a) => a,
            Err(SubmitError::Ingest(e)) if e.is_input_error() => {
                return Ok(ItemOutcome::Failed(format!("{}: {e}", e.code())))
            }
            Err(SubmitError::Transport(e)) => return Err(e.into()),
            Err(e) => return Ok(ItemOutcome::Failed(e.to_string())),
        };
        let document_id = accepted.manifest.document_id.clone();
        let skip = {
            let mut t = ctx.tracker.lock().await;
            let skip = t.published_before(key);
            t.begin(key, false).await?;
            skip
        };
        ctx.queue.skip_next(skip);
        let queue: Arc<dyn JobQueue> = ctx.queue.clone();
        let enqueued =
            enqueue_pages(self.folio.clone(), queue, &self.ingestor, accepted, |_| {}).await;
        ctx.queue.skip_next(0);
        let pages = match enqueued {
            Ok(n) => n,
            Err(SubmitError::Ingest(e)) => {
                return Ok(ItemOutcome::Failed(format!(
                    "some pages could not be rasterized: {e}"
                )))
            }
            Err(SubmitError::Transport(e)) => return Err(e.into()),
            Err(e) => return Ok(ItemOutcome::Failed(e.to_string())),
        };
        let index = SourceIndex {
            bucket: o.source.bucket.clone(),
            key: key.to_string(),
            version: version.version.clone(),
            sequencer: None,
            document_id,
            updated_at: now_rfc3339(),
        };
        let body = serde_json::to_vec_pretty(&index).unwrap_or_default();
        self.folio
            .put(&version.index_key(), Bytes::from(body), "application/json")
            .await?;
        Ok(ItemOutcome::Submitted { pages })
    }

    /// The stored document of a source object, from the triggers' source index, when it still
    /// has its page images.
    async fn known_document(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<DocListing>, TransportError> {
        let index_key = index_key(tenant, &self.options.source.bucket, key);
        let index: SourceIndex = match self.folio.get(&index_key).await {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(i) => i,
                Err(_) => return Ok(None),
            },
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let prefix = DocKeys::new(tenant, &index.document_id).prefix();
        let keys = self.folio.list(&prefix).await?;
        let doc = listing::document(tenant, &index.document_id, &keys);
        Ok((doc.has_manifest && !doc.images.is_empty()).then_some(doc))
    }
}
