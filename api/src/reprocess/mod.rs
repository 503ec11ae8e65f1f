//! `folio reprocess s3://bucket/prefix`: process a whole prefix again, e.g. with another engine or
//! prompt profile, resumably.
//!
//! - In Folio's own bucket the prefix holds documents (`{tenant}/docs/{id}/`): their stored page
//!   images are enqueued again, nothing is rasterized. Before its pages are enqueued a document's
//!   manifest takes the new options and its assembled outputs (and the results of the pages
//!   enqueued) are removed, so the workers assemble it afresh from the new results only.
//!   `--only-failed` takes the pages with an error record and no result; `--since` the documents
//!   created since a date.
//! - In any other bucket the prefix holds raw objects, submitted for `--tenant`. An object the
//!   triggers already submitted (their source index names its document) is handled as that
//!   document; any other is ingested through the upload path ([`crate::submit`]).
//!
//! The listing comes from [`ObjectStore::list`] (paginated `ListObjectsV2` on S3). Items are
//! handled in key order with a [`checkpoint`] so that `--resume` continues after Ctrl-C or a crash;
//! `--rate N/s` paces page jobs; `--dry-run` lists and counts without writing anything.

pub mod checkpoint;
pub mod listing;
pub mod rate;
mod runner;
pub mod target;
pub mod tracker;

pub use runner::Reprocessor;
pub use target::{parse_date, S3Url};

use folio_schemas::EngineKind;
use folio_transport::TransportError;
use serde::{Deserialize, Serialize};

/// Failures listed by name in the summary (the rest are counted).
pub const MAX_LISTED_FAILURES: usize = 50;

/// What to reprocess and how.
#[derive(Debug, Clone)]
pub struct ReprocessOptions {
    pub source: S3Url,
    /// Folio's bucket: a source in it is read as documents, any other as raw objects.
    pub folio_bucket: String,
    /// Tenant of raw objects (required for them); in Folio's bucket, only this tenant's documents.
    pub tenant: Option<String>,
    pub engine: Option<EngineKind>,
    pub profile: Option<String>,
    /// Documents created at or after this time.
    pub since: Option<time::OffsetDateTime>,
    pub only_failed: bool,
    pub dry_run: bool,
    /// Page jobs per second.
    pub rate: Option<f64>,
    /// Continue the interrupted run with these options.
    pub resume: bool,
    /// Start over even though an interrupted run's checkpoint exists.
    pub restart: bool,
    /// Write the checkpoint after this many page jobs (and at least once a second).
    pub checkpoint_every: u32,
}

/// Counts of a run (kept in the checkpoint, so a resumed run reports the whole run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Items the listing selected.
    pub items: u64,
    /// Documents whose pages were enqueued (or objects ingested).
    pub submitted: u64,
    /// Page jobs published (a dry run: that would be published).
    pub pages: u64,
    pub skipped: u64,
    pub failed: u64,
    /// `key: reason` of the first failures.
    #[serde(default)]
    pub failures: Vec<String>,
}

/// What became of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Submitted { pages: u32 },
    Skipped(String),
    Failed(String),
}

/// The end of a run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub summary: Summary,
    /// Stopped by the caller before the end; the checkpoint allows `--resume`.
    pub interrupted: bool,
    pub resumed: bool,
    pub dry_run: bool,
    pub checkpoint_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ReprocessError {
    /// The arguments cannot work (a missing tenant, a checkpoint conflict...).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// The store or the broker failed; the checkpoint (when it could be written) allows `--resume`.
    #[error("store or queue unavailable: {0}")]
    Transport(#[from] TransportError),
}

/// Progress reports for a bar.
pub trait ProgressSink: Send + Sync {
    /// `items` selected, of which `done_before` were handled by the interrupted run.
    fn planned(&self, _items: u64, _done_before: u64) {}
    fn page_enqueued(&self) {}
    fn item_done(&self, _key: &str, _outcome: &ItemOutcome) {}
}

/// No progress reports.
#[derive(Debug)]
pub struct NoProgress;

impl ProgressSink for NoProgress {}
