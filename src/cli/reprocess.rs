//! `folio reprocess s3://bucket/prefix`: enqueue a whole prefix again (see
//! `folio_api::reprocess`), with a progress bar (items, rate, ETA), a checkpoint for `--resume`,
//! and a summary on stderr.
//!
//! Exit codes:
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | finished (or a dry run), nothing failed |
//! | 1 | internal error |
//! | 2 | usage: bad URL or flags, `--tenant` missing for raw objects, an interrupted run exists (pass `--resume` or `--restart`), nothing to resume |
//! | 3 | finished, but some items failed (listed in the summary) |
//! | 4 | PDFium missing (raw objects need it) |
//! | 5 | the store or the broker became unavailable; the checkpoint is written: `--resume` later |
//! | 130 | interrupted (Ctrl-C, SIGTERM); the checkpoint is written: `--resume` continues |

use super::service::{shutdown_signal, BrokerArgs, BucketArgs};
use super::{CliError, Exit};
use crate::runtime::RuntimeLayout;
use clap::Args;
use folio_api::reprocess::rate::parse_rate;
use folio_api::reprocess::{
    parse_date, ItemOutcome, ProgressSink, ReprocessError, ReprocessOptions, Reprocessor,
    RunReport, S3Url,
};
use folio_ingest::{IngestConfig, Ingestor};
use folio_schemas::EngineKind;
use folio_transport::{AmqpQueue, JobQueue, ObjectStore, S3Store};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// The exit codes, for `folio reprocess --help`.
const EXIT_CODES: &str = "\
Exit codes:
  0    finished (or a dry run), nothing failed
  1    internal error
  2    usage: bad URL or flags, --tenant missing for raw objects, an interrupted run exists
       (pass --resume or --restart), nothing to resume
  3    finished, but some items failed (listed in the summary)
  4    PDFium missing (raw objects need it)
  5    the store or the broker became unavailable; the checkpoint is written: --resume later
  130  interrupted (Ctrl-C, SIGTERM); the checkpoint is written: --resume continues";

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct ReprocessArgs {
    /// What to process: Folio's bucket (documents) or a source bucket (raw objects).
    #[arg(value_name = "s3://BUCKET/PREFIX")]
    url: S3Url,
    /// Tenant of raw objects (required for a source bucket); in Folio's bucket, only its documents.
    #[arg(long, env = "FOLIO_TENANT")]
    tenant: Option<String>,
    /// Engine for the new page jobs (default: each document's own).
    #[arg(long)]
    engine: Option<EngineKind>,
    /// Prompt profile for the new page jobs (default: each document's own).
    #[arg(long)]
    profile: Option<String>,
    /// Only documents created at or after this date (`YYYY-MM-DD` or RFC 3339).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// Only the pages that failed (an error record and no result).
    #[arg(long)]
    only_failed: bool,
    /// List and count what would be enqueued; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Page jobs per second, e.g. `50/s`.
    #[arg(long, value_name = "N/s", value_parser = parse_rate)]
    rate: Option<f64>,
    /// Continue the interrupted run with the same arguments.
    #[arg(long, conflicts_with = "restart")]
    resume: bool,
    /// Start over although an interrupted run's checkpoint exists.
    #[arg(long)]
    restart: bool,
    /// Write the checkpoint after this many page jobs (and at least once a second). After a hard
    /// kill, at most this many jobs are published again on `--resume`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    checkpoint_every: u32,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    bucket: BucketArgs,
    #[command(flatten)]
    render: super::render_pool::RenderPoolArgs,
}

pub fn run(args: ReprocessArgs, runtime: &RuntimeLayout) -> Result<Exit, CliError> {
    let usage = |m: String| CliError::new(Exit::Usage, anyhow::anyhow!(m));
    let since = args
        .since
        .as_deref()
        .map(parse_date)
        .transpose()
        .map_err(usage)?;
    let raw_objects = args.url.bucket != args.bucket.s3_bucket;
    if raw_objects && !args.dry_run {
        runtime.check(&[runtime.pdfium()])?;
    }
    let options = ReprocessOptions {
        source: args.url.clone(),
        folio_bucket: args.bucket.s3_bucket.clone(),
        tenant: args.tenant.clone(),
        engine: args.engine,
        profile: args.profile.clone(),
        since,
        only_failed: args.only_failed,
        dry_run: args.dry_run,
        rate: args.rate,
        resume: args.resume,
        restart: args.restart,
        checkpoint_every: args.checkpoint_every,
    };
    let ingestor = args
        .render
        .attach(Ingestor::new(IngestConfig::new(runtime.pdfium())), runtime)?;
    let rt = super::ocr_engine::tokio_runtime()?;
    let outcome = rt.block_on(async move {
        let folio = args.bucket.connect().await?;
        let source: Arc<dyn ObjectStore> = if raw_objects {
            let mut cfg = args.bucket.config();
            cfg.bucket = args.url.bucket.clone();
            cfg.create_bucket = false;
            Arc::new(S3Store::new(cfg).map_err(|e| CliError::new(Exit::Usage, e))?)
        } else {
            folio.clone()
        };
        // A dry run publishes nothing: the queue is created without connecting.
        let queue: Arc<dyn JobQueue> = if args.dry_run {
            Arc::new(
                AmqpQueue::new(args.broker.config()).map_err(|e| CliError::new(Exit::Usage, e))?,
            )
        } else {
            args.broker.connect().await?
        };
        let reprocessor = Reprocessor::new(folio, source, queue, ingestor, options);
        let stop = CancellationToken::new();
        let signals = tokio::spawn(stop_on_signals(stop.clone()));
        let bar = Arc::new(Bar::new(args.quiet));
        let started = Instant::now();
        let result = reprocessor.run(stop, bar.clone()).await;
        signals.abort();
        bar.bar.finish_and_clear();
        Ok::<_, CliError>((result, started.elapsed().as_secs_f64(), args.url))
    })?;
    drop(rt);
    let (result, secs, url) = outcome;
    match result {
        Ok(report) => finish(&url, &report, secs),
        Err(ReprocessError::Usage(m)) => Err(usage(m)),
        Err(e @ ReprocessError::Checkpoint(_)) => Err(CliError::new(Exit::Usage, e)),
        Err(e @ ReprocessError::Transport(_)) => Err(CliError::new(
            Exit::Unavailable,
            anyhow::Error::new(e).context(
                "folio reprocess stopped; the checkpoint is written, run again with --resume",
            ),
        )),
    }
}

/// Print the summary and choose the exit code.
fn finish(url: &S3Url, report: &RunReport, secs: f64) -> Result<Exit, CliError> {
    let s = &report.summary;
    let verb = if report.dry_run {
        "would submit"
    } else {
        "submitted"
    };
    eprintln!(
        "folio reprocess: {url}: {} item(s): {} {verb} ({} page jobs), {} skipped, {} failed in {secs:.1} s ({:.0} page jobs/s){}",
        s.items,
        s.submitted,
        s.pages,
        s.skipped,
        s.failed,
        s.pages as f64 / secs.max(1e-3),
        if report.resumed { ", whole run" } else { "" }
    );
    for failure in &s.failures {
        eprintln!("  failed: {failure}");
    }
    if report.interrupted {
        eprintln!(
            "folio reprocess: interrupted; checkpoint {}: run the same command with --resume to continue",
            report.checkpoint_key
        );
        return Ok(Exit::Interrupted);
    }
    Ok(if s.failed > 0 {
        Exit::InputRejected
    } else {
        Exit::Ok
    })
}

/// First Ctrl-C/SIGTERM: stop after the page job in flight (the checkpoint is then exact). Second:
/// leave at once.
async fn stop_on_signals(stop: CancellationToken) {
    shutdown_signal().await;
    eprintln!("folio reprocess: stopping after the current page job (Ctrl-C again to abort)");
    stop.cancel();
    shutdown_signal().await;
    // The run is mid-publish: no checkpoint write to wait for, leave now.
    std::process::exit(Exit::Interrupted as i32);
}

/// The progress bar: items with rate and ETA, page jobs in the message.
struct Bar {
    bar: ProgressBar,
    pages: AtomicU64,
}

impl Bar {
    fn new(quiet: bool) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "[{bar:30}] {pos}/{len} items {per_sec} eta {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        };
        Bar {
            bar,
            pages: AtomicU64::new(0),
        }
    }
}

impl ProgressSink for Bar {
    fn planned(&self, items: u64, done_before: u64) {
        self.bar.set_length(items);
        self.bar.set_position(done_before);
        self.bar.reset_eta();
    }

    fn page_enqueued(&self) {
        let n = self.pages.fetch_add(1, Ordering::Relaxed) + 1;
        if n % 50 == 0 {
            self.bar.set_message(format!("{n} page jobs"));
        }
    }

    fn item_done(&self, _key: &str, _outcome: &ItemOutcome) {
        self.bar.inc(1);
    }
}
