//! `folio parse FILE... [-o DIR]`: the whole pipeline in one process — the same submit, queue, worker
//! and assembly code as the service, with an in-process queue and a temporary folder as the bucket.
//! `--engine glm45v --model DIR [--profile NAME]` runs GLM-4.5V embedded instead of the ocr engine;
//! `--profile prescription|document|auto` picks the ocr engine's profile. `--format html` (or
//! `both`, the default) also writes `document.html`, the viewer with the page images embedded.

use super::exit::ingest_exit;
use super::files::{
    output_dir, read_input, report_partial, worst, write_outputs, OutputFormat, RecordSource,
};
use super::render::RasterArgs;
use super::{CliError, Exit};
use crate::runtime::RuntimeLayout;
use clap::Args;
use folio_api::submit::{accept, enqueue_pages, SubmitError, SubmitRequest};
use folio_ingest::{IngestConfig, Ingestor, PageRange};
use folio_schemas::{
    DocKeys, DocumentResult, DocumentStatus, EngineKind, JobOptions, OCR_PROFILES,
};
use folio_transport::{InProcessQueue, JobQueue, LocalDirStore, ObjectStore};
use folio_workers::{Worker, WorkerConfig, WorkerEvent};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

const TENANT: &str = "local";
/// Deliveries per page before it is recorded as failed (queue and worker share it).
const DELIVERY_LIMIT: u32 = 3;

#[derive(Debug, Args)]
pub struct ParseArgs {
    /// PDFs or images (PNG, JPEG, TIFF, WebP, BMP).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Output folder; each input gets DIR/<stem>/.
    #[arg(short, long, default_value = "folio-out", value_name = "DIR")]
    output: PathBuf,
    #[arg(long, value_enum, default_value_t = OutputFormat::Both)]
    format: OutputFormat,
    #[command(flatten)]
    raster: RasterArgs,
    /// Run the 0°/180° line-orientation classifier (off by default: it flips some handwritten lines).
    #[arg(long)]
    angle_classifier: bool,
    /// Intra-op threads for the models (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Engine: `ocr` (CPU pipeline) or `glm45v` (GLM-4.5V, needs --model).
    #[arg(long, default_value = "ocr")]
    engine: EngineKind,
    /// Profile. ocr: auto (default: a prescription record on pages that are prescriptions),
    /// document or prescription. glm45v: document, table, chart, prescription or question.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// The question of the `question` profile.
    #[arg(long, value_name = "TEXT")]
    prompt: Option<String>,
    #[command(flatten)]
    glm: super::glm_engine::GlmArgs,
    #[command(flatten)]
    render: super::render_pool::RenderPoolArgs,
}

/// Everything one run shares.
struct Pipeline {
    store: Arc<dyn ObjectStore>,
    queue: Arc<dyn JobQueue>,
    ingestor: Ingestor,
    events: UnboundedReceiver<WorkerEvent>,
}

pub fn run(args: ParseArgs, runtime: &RuntimeLayout) -> Result<Exit, CliError> {
    check_profile(&args)?;
    let rt = match args.engine {
        EngineKind::Ocr => super::ocr_engine::ocr_tokio_runtime(runtime)?,
        EngineKind::Glm45v => {
            runtime.check(&[runtime.pdfium()])?;
            super::ocr_engine::tokio_runtime()?
        }
    };
    rt.block_on(run_async(args, runtime))
}

async fn run_async(args: ParseArgs, runtime: &RuntimeLayout) -> Result<Exit, CliError> {
    let bucket = tempfile::tempdir().map_err(CliError::internal)?;
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalDirStore::new(bucket.path()).map_err(CliError::internal)?);
    let memory_queue = InProcessQueue::new(DELIVERY_LIMIT);
    let queue: Arc<dyn JobQueue> = Arc::new(memory_queue.clone());

    let engine = super::ocr_engine::load_engine(
        args.engine,
        &args.glm,
        runtime,
        args.threads,
        args.angle_classifier,
    )
    .await?;
    let worker_config = WorkerConfig {
        delivery_limit: DELIVERY_LIMIT,
        ..WorkerConfig::default()
    };
    let (tx, events) = tokio::sync::mpsc::unbounded_channel();
    let worker = Worker::new(store.clone(), queue.clone(), engine, worker_config).with_events(tx);
    let shutdown = CancellationToken::new();
    let worker_task = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { worker.run(shutdown).await })
    };

    let mut ingest_cfg = IngestConfig::new(runtime.pdfium());
    ingest_cfg.dpi = args.raster.dpi;
    let mut pipeline = Pipeline {
        store,
        queue,
        ingestor: args.render.attach(Ingestor::new(ingest_cfg), runtime)?,
        events,
    };
    let mut exit = Exit::Ok;
    let mut used_stems = HashSet::new();
    for file in &args.files {
        let out_dir = output_dir(&args.output, file, &mut used_stems);
        match parse_one(&mut pipeline, &args, file, &out_dir).await {
            Ok(doc) if doc.status == DocumentStatus::Complete => {
                eprintln!(
                    "{}: {} page(s) -> {}",
                    file.display(),
                    doc.pages.len(),
                    out_dir.display()
                );
            }
            Ok(doc) => {
                exit = worst(exit, report_partial(file, &doc, &out_dir));
            }
            Err(e) => {
                eprintln!("folio: {}: {:#}", file.display(), e.error);
                if e.code != Exit::InputRejected {
                    // Runtime or internal failures would fail every following file the same way.
                    shutdown.cancel();
                    memory_queue.close();
                    return Err(e);
                }
                exit = worst(exit, e.code);
            }
        }
    }
    shutdown.cancel();
    memory_queue.close();
    let _ = worker_task.await;
    Ok(exit)
}

/// A profile must exist for the engine; `--prompt` is for glm45v's `question` profile only.
fn check_profile(args: &ParseArgs) -> Result<(), CliError> {
    let usage = |m: String| CliError::new(Exit::Usage, anyhow::anyhow!(m));
    if args.engine != EngineKind::Glm45v {
        if args.prompt.is_some() {
            return Err(usage("--prompt needs --engine glm45v".into()));
        }
        return match &args.profile {
            Some(p) if !OCR_PROFILES.contains(&p.as_str()) => Err(usage(format!(
                "the ocr engine has no profile `{p}` (expected one of {})",
                OCR_PROFILES.join(", ")
            ))),
            _ => Ok(()),
        };
    }
    let profile = match &args.profile {
        Some(name) => folio_workers::engines::glm45v::profiles::Profile::parse(name)
            .map_err(|e| usage(e.to_string()))?,
        None if args.prompt.is_some() => {
            return Err(usage("--prompt needs --profile question".into()))
        }
        None => return Ok(()),
    };
    let is_question =
        profile.kind == folio_workers::engines::glm45v::profiles::ProfileKind::Question;
    let has_prompt = args.prompt.as_deref().is_some_and(|p| !p.trim().is_empty());
    match (is_question, has_prompt) {
        (true, false) => Err(usage("--profile question needs --prompt TEXT".into())),
        (false, true) => Err(usage(format!(
            "--prompt is only read by --profile question, not {}",
            profile.id()
        ))),
        _ => Ok(()),
    }
}

async fn parse_one(
    p: &mut Pipeline,
    args: &ParseArgs,
    file: &Path,
    out_dir: &Path,
) -> Result<DocumentResult, CliError> {
    let bytes = read_input(file)?;
    let request = SubmitRequest {
        tenant: TENANT.into(),
        document_id: None,
        file_name: file.file_name().map(|n| n.to_string_lossy().into_owned()),
        bytes: bytes.into(),
        password: args.raster.password.clone(),
        pages: args.raster.pages.clone().unwrap_or_else(PageRange::all),
        options: JobOptions {
            engine: args.engine,
            profile: args.profile.clone(),
            prompt: args.prompt.clone(),
            dpi: args.raster.dpi,
        },
        metadata: Default::default(),
    };
    let accepted = accept(p.store.as_ref(), &p.ingestor, request)
        .await
        .map_err(submit_error)?;
    let manifest = accepted.manifest.clone();
    let bar = progress_bar(args.quiet, manifest.pages.len() as u64, file);
    let enqueue = enqueue_pages(
        p.store.clone(),
        p.queue.clone(),
        &p.ingestor,
        accepted,
        |_| {},
    );
    let keys = DocKeys::new(TENANT, &manifest.document_id);
    let wait = wait_for_document(
        &mut p.events,
        p.store.as_ref(),
        &keys,
        &manifest.document_id,
        &bar,
    );
    let (enqueued, done) = tokio::join!(enqueue, wait);
    bar.finish_and_clear();
    if let Err(e) = enqueued {
        // Pages that could not be rasterized have error records; the document still completes.
        tracing::warn!(error = %e, "some pages could not be enqueued");
    }
    done?;
    let json = p
        .store
        .get(&keys.document_json())
        .await
        .map_err(CliError::internal)?;
    let doc: DocumentResult = serde_json::from_slice(&json).map_err(CliError::internal)?;
    let records = StoreRecords {
        store: p.store.as_ref(),
        keys: &keys,
    };
    write_outputs(&records, &json, &doc, args.format, out_dir).await?;
    Ok(doc)
}

fn submit_error(e: SubmitError) -> CliError {
    match e {
        SubmitError::Ingest(ie) => CliError::new(ingest_exit(&ie), ie),
        other => CliError::internal(other),
    }
}

/// Wait until the document is assembled, advancing the bar per page: the worker reports it, or
/// (when pages failed to render and the submit side wrote their error records last, so that it
/// assembled the document itself) `document.json` appears in the store.
async fn wait_for_document(
    events: &mut UnboundedReceiver<WorkerEvent>,
    store: &dyn ObjectStore,
    keys: &DocKeys,
    document_id: &str,
    bar: &ProgressBar,
) -> Result<(), CliError> {
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(WorkerEvent::PageDone { document_id: d, .. }) if d == document_id => bar.inc(1),
                Some(WorkerEvent::DocumentDone { document_id: d, .. }) if d == document_id => return Ok(()),
                Some(_) => {}
                None => break,
            },
            _ = poll.tick() => {
                if store.exists(&keys.document_json()).await.map_err(CliError::internal)? {
                    return Ok(());
                }
            }
        }
    }
    Err(CliError::internal(anyhow::anyhow!(
        "the worker stopped before the document was complete"
    )))
}

/// Records of a document in the run's local bucket.
struct StoreRecords<'a> {
    store: &'a dyn ObjectStore,
    keys: &'a DocKeys,
}

#[async_trait::async_trait]
impl RecordSource for StoreRecords<'_> {
    async fn page_record(&self, page: u32, failed: bool) -> Result<Vec<u8>, CliError> {
        let key = if failed {
            self.keys.page_error(page)
        } else {
            self.keys.page_result(page)
        };
        let bytes = self.store.get(&key).await.map_err(CliError::internal)?;
        Ok(bytes.to_vec())
    }

    async fn page_image(&self, page: u32) -> Result<Option<Vec<u8>>, CliError> {
        match self.store.get(&self.keys.page_image(page)).await {
            Ok(bytes) => Ok(Some(bytes.to_vec())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(CliError::internal(e)),
        }
    }
}

fn progress_bar(quiet: bool, pages: u64, file: &Path) -> ProgressBar {
    if quiet || pages < 2 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(pages);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} pages {elapsed} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    bar
}
