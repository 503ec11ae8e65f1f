//! Bookkeeping of a run: the checkpoint in memory and when to write it, and the [`RunQueue`]
//! every page job of the run goes through (rate limit, stop, resume skip, counting).

use super::checkpoint::{self, Checkpoint, InProgress};
use super::rate::RateLimiter;
use super::{ItemOutcome, ProgressSink, MAX_LISTED_FAILURES};
use crate::events::metrics;
use crate::events::records::now_rfc3339;
use async_trait::async_trait;
use folio_schemas::{EngineKind, PageJob};
use folio_transport::{ErrorKind, JobConsumer, JobQueue, ObjectStore, TransportError};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// The message of the error a stopped run's publishes fail with.
pub const STOPPED: &str = "the run was stopped";

/// The checkpoint and its write policy. Dry runs never write.
pub struct Tracker {
    store: Arc<dyn ObjectStore>,
    pub cp: Checkpoint,
    every_pages: u32,
    every: Duration,
    unsaved: u32,
    last_save: Instant,
    write: bool,
}

impl Tracker {
    pub fn new(store: Arc<dyn ObjectStore>, cp: Checkpoint, every_pages: u32, write: bool) -> Self {
        Tracker {
            store,
            cp,
            every_pages: every_pages.max(1),
            every: Duration::from_secs(1),
            unsaved: 0,
            last_save: Instant::now(),
            write,
        }
    }

    /// Write the checkpoint now.
    pub async fn save(&mut self) -> Result<(), TransportError> {
        if !self.write {
            return Ok(());
        }
        self.cp.updated_at = now_rfc3339();
        checkpoint::save(self.store.as_ref(), &self.cp).await?;
        self.unsaved = 0;
        self.last_save = Instant::now();
        Ok(())
    }

    async fn save_if_due(&mut self) -> Result<(), TransportError> {
        if self.unsaved >= self.every_pages || self.last_save.elapsed() >= self.every {
            self.save().await?;
        }
        Ok(())
    }

    /// The item now in progress (written at once when `prepared`: from then on its old outputs are
    /// gone, and a resume must not clear them again after workers wrote new ones).
    pub async fn begin(&mut self, key: &str, prepared: bool) -> Result<(), TransportError> {
        let published = match &self.cp.current {
            Some(c) if c.key == key => c.published,
            _ => 0,
        };
        self.cp.current = Some(InProgress {
            key: key.to_string(),
            prepared,
            published,
        });
        if prepared {
            self.save().await?;
        }
        Ok(())
    }

    /// Page jobs of `key` published before (by an interrupted run).
    pub fn published_before(&self, key: &str) -> u32 {
        match &self.cp.current {
            Some(c) if c.key == key => c.published,
            _ => 0,
        }
    }

    pub fn prepared_before(&self, key: &str) -> bool {
        matches!(&self.cp.current, Some(c) if c.key == key && c.prepared)
    }

    async fn published(&mut self) -> Result<(), TransportError> {
        if let Some(c) = self.cp.current.as_mut() {
            c.published += 1;
        }
        self.cp.counts.pages += 1;
        self.unsaved += 1;
        self.save_if_due().await
    }

    /// A dry run's count of the page jobs an item would publish.
    pub fn count_dry(&mut self, pages: u32) {
        self.cp.counts.pages += u64::from(pages);
    }

    /// The item is handled: it moves behind `done_through`.
    pub async fn finish(&mut self, key: &str, outcome: &ItemOutcome) -> Result<(), TransportError> {
        let counts = &mut self.cp.counts;
        match outcome {
            ItemOutcome::Submitted { .. } => counts.submitted += 1,
            ItemOutcome::Skipped(_) => counts.skipped += 1,
            ItemOutcome::Failed(reason) => {
                counts.failed += 1;
                if counts.failures.len() < MAX_LISTED_FAILURES {
                    counts.failures.push(format!("{key}: {reason}"));
                }
            }
        }
        self.cp.done_through = Some(key.to_string());
        self.cp.current = None;
        self.save_if_due().await
    }
}

/// The queue as the run sees it: page jobs wait for the rate limiter, fail once the run is
/// stopped, the first `skip` ones (published by the interrupted run) are dropped, and each one
/// published is counted in the checkpoint.
#[derive(custom_debug::Debug)]
pub struct RunQueue {
    inner: Arc<dyn JobQueue>,
    #[debug(skip)]
    tracker: Arc<Mutex<Tracker>>,
    #[debug(skip)]
    rate: Option<Mutex<RateLimiter>>,
    skip: AtomicU32,
    #[debug(skip)]
    stop: CancellationToken,
    #[debug(skip)]
    progress: Arc<dyn ProgressSink>,
}

impl RunQueue {
    pub fn new(
        inner: Arc<dyn JobQueue>,
        tracker: Arc<Mutex<Tracker>>,
        rate: Option<f64>,
        stop: CancellationToken,
        progress: Arc<dyn ProgressSink>,
    ) -> Self {
        RunQueue {
            inner,
            tracker,
            rate: rate.map(|r| Mutex::new(RateLimiter::new(r))),
            skip: AtomicU32::new(0),
            stop,
            progress,
        }
    }

    /// Drop the next `n` publishes (already published by the interrupted run).
    pub fn skip_next(&self, n: u32) {
        self.skip.store(n, Ordering::SeqCst);
    }
}

#[async_trait]
impl JobQueue for RunQueue {
    async fn publish(&self, job: &PageJob) -> Result<(), TransportError> {
        let skipped = self
            .skip
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if skipped {
            return Ok(());
        }
        if self.stop.is_cancelled() {
            return Err(TransportError::new(ErrorKind::Unavailable, STOPPED));
        }
        if let Some(rate) = &self.rate {
            rate.lock().await.acquire().await;
        }
        self.inner.publish(job).await?;
        metrics::reprocess_pages(1);
        self.tracker.lock().await.published().await?;
        self.progress.page_enqueued();
        Ok(())
    }

    async fn consume(
        &self,
        engine: EngineKind,
        prefetch: u16,
    ) -> Result<Box<dyn JobConsumer>, TransportError> {
        self.inner.consume(engine, prefetch).await
    }
}
