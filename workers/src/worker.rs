//! The consumer loop: keep up to `max_batch` pages in flight, run the engine on each, write each page's
//! result at its deterministic key, settle the message, and assemble the document when its last page lands.
//!
//! No job is trusted: before any key it names is used, [`crate::job_check`] checks its ids, its
//! image key and its manifest; a job that fails is dead-lettered with reason `invalid_job`.
//!
//! Nothing is acked before its outcome is durable: a result (or error record) is written first; when
//! that write fails the message is requeued. On shutdown the loop stops taking deliveries and finishes
//! the pages in hand; anything unsettled returns to the queue.
//!
//! An object-store outage does not spend a page's delivery budget: while the store answers with
//! transient errors, the worker holds the page unsettled and retries the same call with backoff
//! (for up to [`WorkerConfig::outage_wait`]); only then does the failure policy apply. Otherwise a
//! short outage would push every page in hand past the queue's delivery limit, and the broker would
//! dead-letter a page whose error record could not be written either.
//!
//! Before a page goes to the engine its document's cancel marker is checked: a cancelled
//! document's pages are acked without running the engine. After a page's record is written,
//! its entry is appended to the document's progress log (`folio_results::progress`).

use crate::disposition::{disposition, error_code, Disposition, Failure};
use crate::engine::{Engine, EngineError, EngineOutput, PageInput};
use crate::job_check::{check_job, check_manifest, InvalidJob, INVALID_JOB};
use crate::metrics;
use folio_results::{clock, page_markdown, progress, to_bytes, try_assemble, Completion};
use folio_schemas::{
    DocKeys, Manifest, PageError, PageImage, PageJob, PageResult, ProgressKind, SCHEMA_VERSION,
};
use folio_transport::{Delivery, JobQueue, ObjectStore, TransportError};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Worker settings (validated by the caller's configuration layer).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Deliveries after which a transiently failing page is recorded and dead-lettered.
    pub delivery_limit: u32,
    /// Wait before requeueing a transient failure, so a broken dependency is not hammered; also
    /// the first wait before retrying a store call in place (doubled up to [`MAX_STORE_BACKOFF`]).
    pub retry_delay: Duration,
    /// How long a page is held while the object store is unreachable before the failure policy
    /// applies (zero: at once).
    pub outage_wait: Duration,
}

/// Longest wait between two tries of a store call during an outage.
pub const MAX_STORE_BACKOFF: Duration = Duration::from_secs(5);

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            delivery_limit: 5,
            retry_delay: Duration::from_millis(500),
            outage_wait: Duration::from_secs(300),
        }
    }
}

/// What the worker did, for progress displays and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerEvent {
    PageDone {
        document_id: String,
        page: u32,
        ok: bool,
    },
    DocumentDone {
        tenant: String,
        document_id: String,
    },
    /// A job failed a check of [`crate::job_check`] and was dead-lettered (`invalid_job`);
    /// `document_id` when it is a valid id.
    JobRejected {
        document_id: Option<String>,
        check: &'static str,
    },
}

/// Why the manifest check did not pass.
enum ManifestCheck {
    Invalid(InvalidJob),
    Store(TransportError),
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot consume the queue: {0}")]
    Consume(#[source] TransportError),
}

pub struct Worker {
    store: Arc<dyn ObjectStore>,
    queue: Arc<dyn JobQueue>,
    engine: Arc<dyn Engine>,
    config: WorkerConfig,
    events: Option<UnboundedSender<WorkerEvent>>,
}

/// A page ready for the engine, with its message.
struct Prepared {
    delivery: Delivery,
    job: PageJob,
    input: PageInput,
}

impl Worker {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        queue: Arc<dyn JobQueue>,
        engine: Arc<dyn Engine>,
        config: WorkerConfig,
    ) -> Self {
        Worker {
            store,
            queue,
            engine,
            config,
            events: None,
        }
    }

    /// Send a [`WorkerEvent`] for every page and document finished.
    pub fn with_events(mut self, events: UnboundedSender<WorkerEvent>) -> Self {
        self.events = Some(events);
        self
    }

    /// Consume until `shutdown` is cancelled or the queue closes.
    ///
    /// Up to the engine's `max_batch` pages are in flight at once (the queue's prefetch is the
    /// same number), each on its own path: fetch → engine → write → settle. A page that finishes
    /// frees its slot for the next delivery at once, so an engine that batches internally (the
    /// GLM decoder's continuous batching) always has the next pages to admit, and no page waits
    /// for the slowest one of a batch. On shutdown the loop stops taking deliveries and finishes
    /// the pages in hand; anything unsettled returns to the queue.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let limit = self.engine.max_batch().max(1);
        let prefetch = u16::try_from(limit).unwrap_or(u16::MAX);
        let mut consumer = self
            .queue
            .consume(self.engine.kind(), prefetch)
            .await
            .map_err(WorkerError::Consume)?;
        let mut in_flight = FuturesUnordered::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                next = consumer.next(), if in_flight.len() < limit => match next {
                    None => break,
                    Some(Ok(delivery)) => in_flight.push(self.process_page(delivery)),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "queue error; retrying shortly");
                        tokio::time::sleep(self.config.retry_delay).await;
                    }
                },
            }
        }
        while in_flight.next().await.is_some() {}
        Ok(())
    }

    /// One page from its delivery to its settlement.
    async fn process_page(&self, delivery: Delivery) {
        let Some(p) = self.prepare(delivery).await else {
            return;
        };
        let engine = self.engine.clone();
        let input = p.input.clone();
        let started = Instant::now();
        let output =
            tokio::task::spawn_blocking(move || engine.run(std::slice::from_ref(&input))).await;
        let elapsed = started.elapsed();
        let output = match output {
            Ok(mut outputs) if outputs.len() == 1 => outputs
                .pop()
                .unwrap_or_else(|| Err(EngineError::Transient("engine returned no result".into()))),
            Ok(outputs) => Err(EngineError::Transient(format!(
                "engine returned {} results for 1 page",
                outputs.len()
            ))),
            // A panic is an engine bug triggered by this input: retrying the same page would
            // panic again, so the page is recorded as failed instead of looping to the delivery
            // limit.
            Err(panic) => Err(EngineError::Permanent {
                code: "engine_panicked",
                message: format!("engine task failed: {panic}"),
            }),
        };
        let span = tracing::info_span!("page", document_id = %p.job.document_id, page = p.job.page);
        self.finish(p, output, elapsed).instrument(span).await;
    }

    /// Decode the message and fetch the page image; settle what cannot go to the engine.
    async fn prepare(&self, delivery: Delivery) -> Option<Prepared> {
        let engine = self.engine.kind().as_str();
        let job = match &delivery.job {
            Ok(job) => job.clone(),
            Err(reason) => {
                tracing::error!(%reason, "message is not a page job; dead-lettering");
                metrics::poison_message(engine);
                let _ = delivery.dead_letter().await;
                return None;
            }
        };
        let keys = match check_job(&job) {
            Ok(keys) => keys,
            Err(why) => {
                self.reject(delivery, None, why).await;
                return None;
            }
        };
        let span = tracing::info_span!("page", document_id = %job.document_id, page = job.page);
        match self
            .manifest_check(&job, &keys)
            .instrument(span.clone())
            .await
        {
            Ok(()) => {}
            Err(ManifestCheck::Invalid(why)) => {
                self.reject(delivery, Some(&job), why)
                    .instrument(span)
                    .await;
                return None;
            }
            Err(ManifestCheck::Store(e)) => {
                self.fail(delivery, &job, Failure::Transient(e.to_string()))
                    .instrument(span)
                    .await;
                return None;
            }
        }
        let cancelled = DocKeys::new(&job.tenant, &job.document_id).cancelled();
        match self
            .store_call("checking for a cancel", || self.store.exists(&cancelled))
            .instrument(span.clone())
            .await
        {
            Ok(false) => {}
            Ok(true) => {
                // Cancelled documents' pages are settled without running the engine.
                span.in_scope(|| tracing::info!("document cancelled; page skipped"));
                metrics::page_finished(engine, "cancelled");
                let _ = delivery.ack().await;
                return None;
            }
            Err(e) => {
                let f = Failure::Transient(format!("checking for a cancel: {e}"));
                self.fail(delivery, &job, f).instrument(span).await;
                return None;
            }
        }
        let bytes = match self
            .store_call("reading the page image", || self.store.get(&job.image_key))
            .instrument(span.clone())
            .await
        {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                let f = Failure::Permanent {
                    code: "image_missing",
                    message: e.to_string(),
                };
                self.fail(delivery, &job, f).instrument(span).await;
                return None;
            }
            Err(e) => {
                self.fail(delivery, &job, Failure::Transient(e.to_string()))
                    .instrument(span)
                    .await;
                return None;
            }
        };
        let image = match image::load_from_memory(&bytes) {
            Ok(img) => img.into_rgb8(),
            Err(e) => {
                let f = Failure::Permanent {
                    code: "image_undecodable",
                    message: format!("page image {} cannot be decoded: {e}", job.image_key),
                };
                self.fail(delivery, &job, f).instrument(span).await;
                return None;
            }
        };
        let input = PageInput {
            document_id: job.document_id.clone(),
            page: job.page,
            image,
            dpi: job.dpi,
            options: job.options.clone(),
        };
        Some(Prepared {
            delivery,
            job,
            input,
        })
    }

    async fn finish(
        &self,
        p: Prepared,
        output: Result<EngineOutput, EngineError>,
        elapsed: Duration,
    ) {
        let engine = self.engine.kind().as_str();
        let output = match output {
            Ok(o) => o,
            Err(EngineError::Permanent { code, message }) => {
                self.fail(p.delivery, &p.job, Failure::Permanent { code, message })
                    .await;
                return;
            }
            Err(EngineError::Transient(msg)) => {
                self.fail(p.delivery, &p.job, Failure::Transient(msg)).await;
                return;
            }
        };
        metrics::page_engine_time(engine, elapsed);
        let result = self.page_result(&p, output, elapsed);
        let keys = DocKeys::new(&p.job.tenant, &p.job.document_id);
        let (key, body) = (keys.page_result(p.job.page), to_bytes(&result));
        if let Err(e) = self
            .store_call("writing the result", || {
                self.store.put(&key, body.clone(), "application/json")
            })
            .await
        {
            self.fail(
                p.delivery,
                &p.job,
                Failure::Transient(format!("writing the result: {e}")),
            )
            .await;
            return;
        }
        if let Err(e) = self.log_page(&p.job, true, None).await {
            let f = Failure::Transient(format!("logging the page's progress: {e}"));
            self.fail(p.delivery, &p.job, f).await;
            return;
        }
        if !self.complete_if_last(&p.job).await {
            // The result is durable; the redelivery rewrites the same key and checks completion again.
            tokio::time::sleep(self.config.retry_delay).await;
            let _ = p.delivery.requeue().await;
            return;
        }
        if let Err(e) = p.delivery.ack().await {
            // The result is durable; a redelivery will overwrite it with the same page.
            tracing::warn!(error = %e, "ack failed after the result was written");
        }
        metrics::page_finished(engine, "ok");
        tracing::info!(
            blocks = result.blocks.len(),
            ms = elapsed.as_millis() as u64,
            "page done"
        );
        self.emit(WorkerEvent::PageDone {
            document_id: p.job.document_id.clone(),
            page: p.job.page,
            ok: true,
        });
    }

    fn page_result(&self, p: &Prepared, output: EngineOutput, elapsed: Duration) -> PageResult {
        let mut engine = self.engine.info();
        engine.profile = output.profile.or(engine.profile);
        let mut timings = output.timings;
        timings
            .entry("total".into())
            .or_insert(elapsed.as_secs_f64() * 1000.0);
        PageResult {
            schema_version: SCHEMA_VERSION.into(),
            document_id: p.job.document_id.clone(),
            page: p.job.page,
            image: PageImage {
                width: p.input.image.width(),
                height: p.input.image.height(),
                dpi: p.job.dpi,
            },
            engine,
            markdown: page_markdown(&output.blocks),
            blocks: output.blocks,
            timings,
            warnings: output.warnings,
            finished_at: Some(clock::now()),
        }
    }

    /// Check 3 of [`crate::job_check`]: the manifest under the job's own prefix vouches for it.
    async fn manifest_check(&self, job: &PageJob, keys: &DocKeys) -> Result<(), ManifestCheck> {
        let key = keys.manifest();
        let read = self
            .store_call("reading the manifest", || self.store.get(&key))
            .await;
        let bytes = match read {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(ManifestCheck::Invalid(InvalidJob::NoManifest))
            }
            Err(e) => return Err(ManifestCheck::Store(e)),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|_| ManifestCheck::Invalid(InvalidJob::NoManifest))?;
        check_manifest(job, &manifest).map_err(ManifestCheck::Invalid)
    }

    /// Dead-letter a job that failed a check of [`crate::job_check`], with reason `invalid_job`;
    /// nothing is written for it. `job` only once its ids passed the syntax check: only those
    /// are logged (by the span), never its keys or prompt.
    async fn reject(&self, delivery: Delivery, job: Option<&PageJob>, why: InvalidJob) {
        let engine = self.engine.kind().as_str();
        metrics::invalid_job(engine, why.check());
        tracing::error!(
            check = why.check(),
            reason = %why,
            attempt = delivery.attempt(),
            "invalid page job; dead-lettered ({INVALID_JOB})"
        );
        if let Err(e) = delivery.dead_letter_because(INVALID_JOB).await {
            tracing::warn!(error = %e, "dead-lettering the invalid job failed; the broker returns it");
        }
        self.emit(WorkerEvent::JobRejected {
            document_id: job.map(|j| j.document_id.clone()),
            check: why.check(),
        });
    }

    /// Apply the failure policy: requeue, or record the error and dead-letter.
    async fn fail(&self, delivery: Delivery, job: &PageJob, failure: Failure) {
        let engine = self.engine.kind().as_str();
        let attempt = delivery.attempt();
        let limit = self.config.delivery_limit;
        match disposition(&failure, attempt, limit) {
            Disposition::Retry => {
                tracing::warn!(?failure, attempt, "page failed transiently; requeueing");
                metrics::page_finished(engine, "retried");
                tokio::time::sleep(self.config.retry_delay).await;
                let _ = delivery.requeue().await;
            }
            Disposition::RecordAndDeadLetter => {
                let message = match &failure {
                    Failure::Transient(m) | Failure::Permanent { message: m, .. } => m.clone(),
                };
                let record = PageError {
                    schema_version: SCHEMA_VERSION.into(),
                    document_id: job.document_id.clone(),
                    page: job.page,
                    code: error_code(&failure, attempt, limit).into(),
                    message,
                    attempts: attempt,
                    finished_at: Some(clock::now()),
                };
                let key = DocKeys::new(&job.tenant, &job.document_id).page_error(job.page);
                let body = to_bytes(&record);
                if let Err(e) = self
                    .store_call("writing the error record", || {
                        self.store.put(&key, body.clone(), "application/json")
                    })
                    .await
                {
                    tracing::warn!(error = %e, "cannot write the error record; requeueing");
                    tokio::time::sleep(self.config.retry_delay).await;
                    let _ = delivery.requeue().await;
                    return;
                }
                if let Err(e) = self.log_page(job, false, Some(record.code.clone())).await {
                    tracing::warn!(error = %e, "cannot log the page's progress; requeueing");
                    tokio::time::sleep(self.config.retry_delay).await;
                    let _ = delivery.requeue().await;
                    return;
                }
                if !self.complete_if_last(job).await {
                    tokio::time::sleep(self.config.retry_delay).await;
                    let _ = delivery.requeue().await;
                    return;
                }
                tracing::error!(code = %record.code, message = %record.message, "page failed; recorded and dead-lettered");
                let _ = delivery.dead_letter().await;
                metrics::page_finished(engine, "failed");
                self.emit(WorkerEvent::PageDone {
                    document_id: job.document_id.clone(),
                    page: job.page,
                    ok: false,
                });
            }
        }
    }

    /// Assemble the document if this was its last page. `false` when the check itself failed
    /// transiently, so the caller requeues instead of settling (the document must not be left
    /// unassembled after its last page is acked).
    async fn complete_if_last(&self, job: &PageJob) -> bool {
        let assembled = self
            .retry_while_unavailable(
                "assembling the document",
                || try_assemble(self.store.as_ref(), &job.tenant, &job.document_id),
                |e| e.is_transient(),
            )
            .await;
        match assembled {
            Ok(Completion::Assembled(_)) => {
                metrics::document_assembled(self.engine.kind().as_str());
                tracing::info!("document assembled");
                self.emit(WorkerEvent::DocumentDone {
                    tenant: job.tenant.clone(),
                    document_id: job.document_id.clone(),
                });
                true
            }
            Ok(Completion::Incomplete { .. }) => true,
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "completion check failed; the page will be retried");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "document cannot be assembled");
                true
            }
        }
    }

    /// Append the page's entry to the document's progress log (after its record is durable).
    async fn log_page(
        &self,
        job: &PageJob,
        ok: bool,
        code: Option<String>,
    ) -> Result<u64, TransportError> {
        let keys = DocKeys::new(&job.tenant, &job.document_id);
        let kind = ProgressKind::Page {
            page: job.page,
            ok,
            code,
        };
        self.store_call("logging the page's progress", || {
            progress::append(self.store.as_ref(), &keys, kind.clone())
        })
        .await
    }

    /// A store call, retried in place while the store is unreachable (see the module docs).
    async fn store_call<T, Fut>(
        &self,
        what: &'static str,
        op: impl FnMut() -> Fut,
    ) -> Result<T, TransportError>
    where
        Fut: Future<Output = Result<T, TransportError>>,
    {
        self.retry_while_unavailable(what, op, TransportError::is_transient)
            .await
    }

    /// Run `op` until it succeeds, fails for good, or has failed transiently for
    /// `outage_wait`; backoff from `retry_delay`, doubled up to [`MAX_STORE_BACKOFF`].
    async fn retry_while_unavailable<T, E, Fut>(
        &self,
        what: &'static str,
        mut op: impl FnMut() -> Fut,
        transient: impl Fn(&E) -> bool,
    ) -> Result<T, E>
    where
        E: std::fmt::Display,
        Fut: Future<Output = Result<T, E>>,
    {
        let deadline = Instant::now() + self.config.outage_wait;
        let mut delay = self.config.retry_delay.min(MAX_STORE_BACKOFF);
        let mut tries = 0u32;
        loop {
            let result = op().await;
            match &result {
                Err(e) if transient(e) && Instant::now() + delay <= deadline => {
                    if tries == 0 {
                        tracing::warn!(error = %e, what, "object store unavailable; holding the page until it answers");
                    }
                    tries += 1;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_STORE_BACKOFF);
                }
                _ => {
                    if tries > 0 && result.is_ok() {
                        tracing::info!(what, tries, "object store answers again");
                    }
                    return result;
                }
            }
        }
    }

    fn emit(&self, event: WorkerEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }
}
