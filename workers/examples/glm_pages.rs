//! Pages per hour of the `glm45v` engine through the real worker loop (issue 14, deliverable 4).
//!
//! `glm_pages [--cpu --tiny] [--layers 46] [--weights fp8|bf16] [--pages 200] [--doc-pages 10]
//! [--out-tokens 600] [--max-batch 64] [--max-tokens-in-flight N] [--max-pixels 1048576]
//! [--images DIR] [--vision-onnx FILE] [--ort-lib FILE] [--out FILE.jsonl]`
//!
//! What runs is what `folio work` runs: [`folio_workers::Worker`] over the in-process queue and a
//! local-folder store (the same loop as RabbitMQ + S3, without the network), the `glm45v` engine
//! with the `document` profile, its continuous-batching generator and its page parser. `--pages`
//! jobs are published at once (documents of `--doc-pages` pages, images cycled from `--images`),
//! the worker keeps `--max-batch` pages in flight, and the run ends when every document is
//! assembled.
//!
//! The model: `--tiny` loads the tiny random-weight fixture (CPU dry runs). Otherwise the decoder
//! is GLM-4.5V's real shape with `--layers` layers of synthetic weights made on the GPU
//! (`synthetic::var_builder_fp8`: the zai-org FP8 layout, decoder linears F8E4M3 + row scales; or
//! bf16), the vision tower is the real-shape ONNX export given by `--vision-onnx` (random weights,
//! ONNX Runtime's CUDA EP), the tokenizer is the tiny fixture's byte-level BPE with GLM-4.5V's
//! special tokens moved to their real ids and the rest of the 151,552 ids filled with words
//! (`w<id>`), so any sampled id decodes to text.
//!
//! Output length: random weights would end pages at random lengths, so the generator ignores the
//! stop ids (`GlmGenerator::with_ignore_stop`): every page is exactly `--out-tokens` tokens.
//! There is no `ocr` fallback in the benchmark: a page whose answer cannot be parsed even with
//! the stricter profile is counted as failed.
//!
//! Reported (one JSON line each, and printed): pages/hour over the whole run (first job
//! published → last document assembled), p50/p99 seconds a page in the engine, pages failed, and
//! the split per page (processor, vision, prefill, decode, parse). GPU busy % is sampled outside
//! (`scripts/gpu/glm_pages.sh`, nvidia-smi) over the `run_start`/`run_end` window printed here.

#[path = "../glm45v/examples/gpu_common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use candle_core::{DType, Device};
use common::{median, AnyResult, Args, JsonLines};
use folio_glm45v::chat::tokenizer::{GlmTokenizer, SpecialTokens};
use folio_glm45v::chat::ChatTemplate;
use folio_glm45v::checkpoint::config::{GenerationConfig, ModelConfig, OneOrMany};
use folio_glm45v::checkpoint::synthetic;
use folio_glm45v::decoder::text_model::TextModel;
use folio_glm45v::model::{Glm45v, LoadOptions};
use folio_glm45v::processor::ImageProcessor;
use folio_glm45v::vision::onnx::{ExecutionDevice, VisionOptions};
use folio_schemas::{DocKeys, EngineInfo, EngineKind, JobOptions, PageResult};
use folio_transport::{InProcessQueue, JobQueue, LocalDirStore, ObjectStore};
use folio_workers::engines::glm45v::fallback::LazyOcr;
use folio_workers::engines::glm45v::profiles::ProfileKind;
use folio_workers::engines::glm45v::{EngineSettings, Glm45vEngine, GlmGenerator};
use folio_workers::{Worker, WorkerConfig, WorkerEvent};
use serde_json::json;

/// GLM-4.5V's first special token id (`<|endoftext|>`); the tiny fixture's is 476.
const REAL_FIRST_SPECIAL: u64 = 151_329;

struct Opts {
    tiny: bool,
    cpu: bool,
    layers: usize,
    fp8: bool,
    pages: usize,
    doc_pages: usize,
    out_tokens: usize,
    max_batch: usize,
    max_tokens_in_flight: Option<usize>,
    max_pixels: u64,
    images: PathBuf,
    vision_onnx: PathBuf,
    ort_lib: PathBuf,
}

/// The tiny fixture: where it was at build time, else relative to the repository root (the
/// binary is built here and run from another checkout on the GPU machine).
fn fixture_dir() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("glm45v/tests/fixtures/tiny");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("workers/glm45v/tests/fixtures/tiny")
    }
}

fn main() -> std::process::ExitCode {
    common::exit_code("glm_pages", run())
}

fn run() -> AnyResult<()> {
    let mut a = Args::from_env();
    let cpu = a.flag("--cpu");
    let tiny = a.flag("--tiny");
    let out = a.value("--out")?;
    let weights = a.value("--weights")?.unwrap_or_else(|| "fp8".into());
    let fixture = fixture_dir();
    let opts = Opts {
        tiny,
        cpu,
        layers: a.parsed("--layers", 46)?,
        fp8: match weights.as_str() {
            "fp8" => true,
            "bf16" => false,
            w => return Err(format!("--weights {w}: fp8 or bf16").into()),
        },
        pages: a.parsed("--pages", if tiny { 12 } else { 200 })?,
        doc_pages: a.parsed("--doc-pages", 10)?,
        out_tokens: a.parsed("--out-tokens", if tiny { 24 } else { 600 })?,
        max_batch: a.parsed("--max-batch", if tiny { 4 } else { 64 })?,
        max_tokens_in_flight: a
            .value("--max-tokens-in-flight")?
            .map(|v| v.parse())
            .transpose()?,
        max_pixels: a.parsed("--max-pixels", if tiny { 56 * 56 } else { 1 << 20 })?,
        images: PathBuf::from(
            a.value("--images")?
                .unwrap_or_else(|| "gpu-carry/pages".into()),
        ),
        vision_onnx: PathBuf::from(a.value("--vision-onnx")?.unwrap_or_else(|| {
            if tiny {
                fixture.join("vision.onnx").display().to_string()
            } else {
                "/tmp/folio-vision/vision.fp16.onnx".into()
            }
        })),
        ort_lib: PathBuf::from(
            a.value("--ort-lib")?
                .unwrap_or_else(|| "/tmp/ortpy/onnxruntime/capi/libonnxruntime.so.1.31.1".into()),
        ),
    };
    a.finish()?;
    if opts.pages == 0 || opts.doc_pages == 0 || opts.out_tokens == 0 {
        return Err("--pages, --doc-pages and --out-tokens must be ≥ 1".into());
    }
    let dev = common::device(opts.cpu)?;
    let mut out = JsonLines::open(out.as_deref())?;
    let images = page_images(&opts.images)?;
    println!(
        "glm_pages: {} pages ({} distinct images), {} tokens each, batch {}, device {dev:?}",
        opts.pages,
        images.len(),
        opts.out_tokens,
        opts.max_batch
    );

    let start = Instant::now();
    let glm = if opts.tiny {
        tiny_model(&dev)?
    } else {
        synthetic_model(&opts, &dev)?
    };
    let load_s = start.elapsed().as_secs_f64();
    if opts.cpu && !opts.tiny {
        // A dry run of the synthetic model's assembly (config, real-size tokenizer, special
        // ids, FP8 layout) at CPU size; the page loop needs the real-shape vision export.
        let probe = glm.tokenizer.decode(&[0, 476, 151_328], false)?;
        println!(
            "synthetic model assembled on the CPU in {load_s:.1} s: {} layers (CPU size), tokenizer {} ids, image token {}, stop ids {:?}, ids 0/476/151328 decode to {probe:?}; the page loop needs the GPU",
            glm.config.text_config.num_hidden_layers,
            glm.tokenizer.vocab_size(),
            glm.config.image_token_id,
            glm.special.eos,
        );
        return Ok(());
    }
    let mut glm = glm;
    glm.processor.config.size.longest_edge =
        opts.max_pixels.max(glm.processor.config.size.shortest_edge);
    let mut vopts = VisionOptions::new(&opts.vision_onnx, &opts.ort_lib);
    if let Device::Cuda(_) = dev {
        vopts.device = ExecutionDevice::Cuda { device_id: 0 };
    }
    glm.attach_vision(&vopts)?;
    println!("model ready in {load_s:.1} s");
    let layers = glm.config.text_config.num_hidden_layers;
    let weights = match (opts.tiny, opts.fp8) {
        (true, _) => "tiny fixture, f32",
        (false, true) => "synthetic fp8",
        (false, false) => "synthetic bf16",
    };
    out.write(&json!({"kind": "load", "seconds": load_s, "layers": layers, "weights": weights}))?;

    let generator = GlmGenerator::new(glm, 0)
        .with_max_batch(opts.max_batch)
        .with_max_tokens_in_flight(opts.max_tokens_in_flight)
        .with_ignore_stop(true);
    let settings = EngineSettings {
        max_batch: opts.max_batch,
        max_new_tokens: opts.out_tokens,
        thinking: Some(false),
        layout_first: false,
        default_profile: ProfileKind::Document,
    };
    let info = EngineInfo {
        name: "glm45v".into(),
        model: "GLM-4.5V synthetic".into(),
        revision: None,
        device: format!("{dev:?}"),
        profile: None,
    };
    let no_fallback = LazyOcr::new(Box::new(|| {
        Err("the benchmark has no ocr fallback: the page counts as failed".into())
    }));
    let engine = Arc::new(Glm45vEngine::new(
        Arc::new(generator),
        no_fallback,
        settings,
        info,
    ));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    rt.block_on(measure(&opts, engine, images, (layers, weights), &mut out))
}

/// Publishes the jobs, runs the worker until every document is assembled, reads the results.
async fn measure(
    opts: &Opts,
    engine: Arc<Glm45vEngine>,
    images: Vec<Bytes>,
    (layers, weights): (usize, &str),
    out: &mut JsonLines,
) -> AnyResult<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalDirStore::new(dir.path())?);
    let queue = InProcessQueue::new(3);
    let job_options = JobOptions {
        engine: EngineKind::Glm45v,
        ..JobOptions::default()
    };
    let mut docs = Vec::new();
    let mut next_image = images.iter().cycle();
    let mut left = opts.pages;
    let run_start = Instant::now();
    let wall_start = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
    while left > 0 {
        let n = left.min(opts.doc_pages);
        let doc = format!("bench{:04}", docs.len());
        let bodies: Vec<Bytes> = (0..n).filter_map(|_| next_image.next().cloned()).collect();
        support::submit_pages(
            store.as_ref(),
            &queue,
            &doc,
            &job_options,
            ("bench.png", "image/png"),
            bodies,
        )
        .await;
        docs.push(doc);
        left -= n;
    }
    println!("run_start {wall_start:.3}");

    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let config = WorkerConfig {
        delivery_limit: 3,
        retry_delay: Duration::from_millis(100),
        outage_wait: Duration::from_secs(10),
    };
    let worker = Worker::new(
        store.clone(),
        Arc::new(queue.clone()) as Arc<dyn JobQueue>,
        engine,
        config,
    )
    .with_events(tx);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { worker.run(shutdown).await })
    };
    let mut pending: std::collections::BTreeSet<&String> = docs.iter().collect();
    let mut done_pages = 0usize;
    while let Some(e) = events.recv().await {
        match e {
            WorkerEvent::PageDone { .. } => {
                done_pages += 1;
                if done_pages % 20 == 0 {
                    println!(
                        "{done_pages} pages in {:.1} s",
                        run_start.elapsed().as_secs_f64()
                    );
                }
            }
            WorkerEvent::DocumentDone { document_id, .. } => {
                pending.retain(|d| **d != document_id);
                if pending.is_empty() {
                    break;
                }
            }
            WorkerEvent::JobRejected { check, .. } => {
                return Err(format!("the worker rejected a benchmark job ({check})").into());
            }
        }
    }
    let wall = run_start.elapsed().as_secs_f64();
    let wall_end = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
    println!("run_end {wall_end:.3}");
    shutdown.cancel();
    task.await??;

    let mut totals = Vec::new();
    let mut stages: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut ok = 0usize;
    for doc in &docs {
        let keys = DocKeys::new("t", doc);
        for page in 1..=opts.doc_pages as u32 {
            let Ok(bytes) = store.get(&keys.page_result(page)).await else {
                continue;
            };
            let result: PageResult = serde_json::from_slice(&bytes)?;
            ok += 1;
            for (stage, ms) in &result.timings {
                stages.entry(stage.clone()).or_default().push(*ms / 1e3);
            }
            if let Some(total) = result.timings.get("total") {
                totals.push(*total / 1e3);
            }
        }
    }
    totals.sort_by(f64::total_cmp);
    let p99 = totals
        .get(((totals.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(f64::NAN);
    let pages_per_hour = opts.pages as f64 * 3600.0 / wall;
    let split: serde_json::Map<String, serde_json::Value> = stages
        .iter()
        .map(|(k, v)| (k.clone(), json!(median(v))))
        .collect();
    let line = json!({
        "kind": "glm_pages",
        "pages": opts.pages,
        "pages_ok": ok,
        "pages_failed": opts.pages - ok,
        "out_tokens": opts.out_tokens,
        "max_batch": opts.max_batch,
        "layers": layers,
        "weights": weights,
        "wall_seconds": wall,
        "run_start": wall_start,
        "run_end": wall_end,
        "pages_per_hour": pages_per_hour,
        "output_tokens_per_second": (ok * opts.out_tokens) as f64 / wall,
        "page_seconds_p50": median(&totals),
        "page_seconds_p99": p99,
        "split_median_seconds": split,
    });
    println!("{line}");
    out.write(&line)?;
    Ok(())
}

/// Every PNG/JPEG of `dir` (sorted), re-encoded as PNG (what the API stores for a page).
fn page_images(dir: &Path) -> AnyResult<Vec<Bytes>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("--images {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!("no page images in {}", dir.display()).into());
    }
    paths
        .iter()
        .map(|p| {
            let img = image::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let mut png = std::io::Cursor::new(Vec::new());
            img.write_to(&mut png, image::ImageFormat::Png)?;
            Ok(Bytes::from(png.into_inner()))
        })
        .collect()
}

/// The tiny random-weight fixture as `folio work` would load it (f32 on the CPU).
fn tiny_model(dev: &Device) -> AnyResult<Glm45v> {
    let opts = LoadOptions {
        dtype: DType::F32,
        device: dev.clone(),
        ..LoadOptions::default()
    };
    Ok(Glm45v::load(&fixture_dir(), &opts)?)
}

/// GLM-4.5V's real shapes with synthetic weights (see the module docs).
fn synthetic_model(opts: &Opts, dev: &Device) -> AnyResult<Glm45v> {
    let fixture = fixture_dir();
    let work = std::env::temp_dir().join("folio-glm-pages");
    std::fs::create_dir_all(&work)?;
    let mut config = ModelConfig::load(&fixture.join("config.json"))?;
    let shift = |id: u32| id + (REAL_FIRST_SPECIAL - 476) as u32;
    config.text_config = synthetic::text_config(opts.layers)?;
    if opts.cpu {
        // Small layers, the real vocabulary (what the tokenizer and special ids are checked on).
        synthetic::shrink_to_cpu_size(&mut config.text_config);
        config.text_config.vocab_size = 151_552;
    }
    config.vision_config = Some(synthetic::vision_config());
    config.image_token_id = shift(config.image_token_id);
    config.image_start_token_id = shift(config.image_start_token_id);
    config.image_end_token_id = shift(config.image_end_token_id);
    config.video_token_id = config.video_token_id.map(shift);
    config.video_start_token_id = config.video_start_token_id.map(shift);
    config.video_end_token_id = config.video_end_token_id.map(shift);
    let tokenizer_path = work.join("tokenizer.json");
    std::fs::write(
        &tokenizer_path,
        real_size_tokenizer(&fixture.join("tokenizer.json"))?,
    )?;
    let tokenizer = GlmTokenizer::from_file(&tokenizer_path)?;
    let mut generation_config = GenerationConfig::load(&fixture.join("generation_config.json"))?;
    generation_config.eos_token_id = generation_config
        .eos_token_id
        .map(|ids| OneOrMany::Many(ids.to_vec().into_iter().map(shift).collect()));
    generation_config.pad_token_id = generation_config.pad_token_id.map(shift);
    let special = SpecialTokens::resolve(&config, &generation_config, &tokenizer)?;
    let template = ChatTemplate::from_dir(&fixture)?;
    let vb = if opts.fp8 {
        synthetic::var_builder_fp8(DType::BF16, dev, 42)?
    } else {
        synthetic::var_builder(DType::BF16, dev, 42)?
    };
    let model = TextModel::new(&config.text_config, vb)?;
    let processor = ImageProcessor::from_dir(&fixture)?;
    Ok(Glm45v {
        dir: work,
        config,
        generation_config,
        tokenizer,
        template,
        special,
        model,
        processor,
        vision: None,
        memory_plan: None,
    })
}

/// The fixture's tokenizer with the special tokens at GLM-4.5V's real ids and every other id
/// below them a word token, so that all 151,552 ids decode.
fn real_size_tokenizer(fixture: &Path) -> AnyResult<String> {
    let mut t: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture)?)?;
    let offset = REAL_FIRST_SPECIAL - 476;
    for added in t["added_tokens"]
        .as_array_mut()
        .ok_or("tokenizer.json has no added_tokens")?
    {
        let id = added["id"].as_u64().ok_or("added token without id")?;
        added["id"] = json!(id + offset);
    }
    let vocab = t["model"]["vocab"]
        .as_object_mut()
        .ok_or("tokenizer.json has no model.vocab")?;
    let first_free = vocab.values().filter_map(|v| v.as_u64()).max().unwrap_or(0) + 1;
    for id in first_free..REAL_FIRST_SPECIAL {
        // 'Ġ' is the byte-level form of a space: each filler decodes to " w<id>".
        vocab.insert(format!("\u{120}w{id}"), json!(id));
    }
    Ok(serde_json::to_string(&t)?)
}
