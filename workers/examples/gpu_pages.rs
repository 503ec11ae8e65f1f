//! Pages per hour of GLM-4.5V on one GPU (issue #8, deliverable 7), stage by stage, with random
//! weights of the real shapes (`folio_glm45v::checkpoint::synthetic`) and a fixed output length per page.
//!
//! `gpu_pages [--cpu --tiny] [--image PAGE.jpg] [--max-pixels 1048576] [--layers 26]
//! [--out-tokens 600] [--batches 8,16] [--steps 16] [--warmup 3] [--vision-onnx FILE]
//! [--ort-lib libonnxruntime.so.1.31.1] [--out FILE.jsonl]`
//!
//! Stages, each measured here (medians after warm-up):
//! 1. processor — the real image processor on the CPU (JPEG decode, smart resize to the page
//!    budget `--max-pixels`, bicubic, normalise, patchify) on a corpus page;
//! 2. vision — Folio's ONNX vision tower (`vision_onnx`) on ONNX Runtime's CUDA EP, on the
//!    real-shape export that `session.sh vision-export` leaves (`--vision-onnx`); when that file
//!    or the runtime is missing the stage is reported as not measured (never estimated);
//! 3. prefill — the decoder over the page prompt (the processor's image tokens + 30 text
//!    tokens, 3-D M-RoPE positions), batch 1;
//! 4. decode — `--out-tokens` tokens per page, batched across pages (batch 8 and 16 here, one
//!    batch of equal-length sequences over one KV cache): `--steps` steps timed at the prompt's
//!    context, per-page decode = step time × out-tokens ÷ batch (the KV grows by out-tokens
//!    during a real page, so this is slightly optimistic; the step time grows ≈ 2 % per 500
//!    positions at batch 16, from the KV bytes);
//! 5. parse — H4's `page_parse::parse_page` (document profile) on a generated page answer of
//!    that length (headings, paragraphs, tables, a box per block).
//!
//! Pages per hour per batch size: serial (sum of the stages) and overlapped (CPU stages on other
//! cores while the GPU works: the larger of the GPU sum and the CPU sum). The decoder stages are
//! also scaled to the real 46 layers (× 46 / layers).

#[path = "../glm45v/examples/gpu_common/mod.rs"]
mod common;

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, D};
use common::{forward_last, median, timed, AnyResult, Args, JsonLines};
use folio_glm45v::checkpoint::synthetic;
use folio_glm45v::decoder::mrope::{text_positions, Positions3};
use folio_glm45v::decoder::text_model::TextModel;
use folio_glm45v::processor::{ImageProcessor, PreprocessorConfig, ProcessedImage};
use folio_glm45v::vision::onnx::{ExecutionDevice, VisionOptions, VisionTower};
use folio_workers::engines::glm45v::page_parse::{parse_page, PageParseInput};
use folio_workers::engines::glm45v::profiles::{Profile, ProfileKind};
use serde_json::json;

const REAL_LAYERS: usize = 46;
/// Text tokens around the image in a page prompt (system/user turn, instruction).
const TEXT_TOKENS: usize = 30;

struct Opts {
    tiny: bool,
    image: PathBuf,
    max_pixels: u64,
    layers: usize,
    out_tokens: usize,
    batches: Vec<usize>,
    steps: usize,
    warmup: usize,
    vision_onnx: PathBuf,
    ort_lib: PathBuf,
}

/// Seconds of each stage for one page (decode depends on the batch).
#[derive(Default, Clone, Copy)]
struct Stages {
    processor: f64,
    vision: Option<f64>,
    prefill: f64,
    parse: f64,
}

fn main() -> std::process::ExitCode {
    common::exit_code("gpu_pages", run())
}

fn run() -> AnyResult<()> {
    let mut a = Args::from_env();
    let cpu = a.flag("--cpu");
    let tiny = a.flag("--tiny");
    let out = a.value("--out")?;
    let opts = Opts {
        tiny,
        image: PathBuf::from(
            a.value("--image")?
                .unwrap_or_else(|| "gpu-carry/page/page.jpg".into()),
        ),
        max_pixels: a.parsed("--max-pixels", if tiny { 56 * 56 } else { 1 << 20 })?,
        layers: a.parsed("--layers", if tiny { 3 } else { 26 })?,
        out_tokens: a.parsed("--out-tokens", if tiny { 32 } else { 600 })?,
        batches: a.list("--batches", if tiny { &[2, 4] } else { &[8, 16] })?,
        steps: a.parsed("--steps", if tiny { 3 } else { 16 })?,
        warmup: a.parsed("--warmup", if tiny { 1 } else { 3 })?,
        vision_onnx: PathBuf::from(
            a.value("--vision-onnx")?
                .unwrap_or_else(|| "/tmp/folio-vision/vision.fp16.onnx".into()),
        ),
        ort_lib: PathBuf::from(
            a.value("--ort-lib")?
                .unwrap_or_else(|| "/tmp/ortpy/onnxruntime/capi/libonnxruntime.so.1.31.1".into()),
        ),
    };
    a.finish()?;
    let dev = common::device(cpu)?;
    common::keep_pool_memory(&dev)?;
    let mut out = JsonLines::open(out.as_deref())?;
    println!(
        "device {dev:?}, layers {}, {} output tokens per page",
        opts.layers, opts.out_tokens
    );

    let (processed, processor_s) = processor_stage(&opts, &mut out)?;
    let vision_s = vision_stage(&opts, cpu, &processed, &mut out)?;
    let mut cfg = synthetic::text_config(opts.layers)?;
    if opts.tiny {
        folio_glm45v::checkpoint::synthetic::shrink_to_cpu_size(&mut cfg);
    }
    let vb = synthetic::var_builder(DType::BF16, &dev, 42)?;
    let model = TextModel::new(&cfg, vb)?;
    let (grid_h, grid_w) = (processed.grid[1] / 2, processed.grid[2] / 2);
    let prompt = page_prompt(grid_h, grid_w);
    let t = prompt.len();
    self_check(&model, &dev, &mut out)?;
    let prefill_s = prefill_stage(&model, &dev, &prompt, &mut out)?;
    let parse_s = parse_stage(&opts, &processed, &mut out)?;
    let stages = Stages {
        processor: processor_s,
        vision: vision_s,
        prefill: prefill_s,
        parse: parse_s,
    };
    for &batch in &opts.batches {
        let step = decode_step(&model, &dev, &opts, batch, t)?;
        summary(&opts, &stages, batch, step, t, &mut out)?;
    }
    Ok(())
}

/// JPEG decode + the real processor at the page budget; median of 7 after one warm-up.
fn processor_stage(opts: &Opts, out: &mut JsonLines) -> AnyResult<(ProcessedImage, f64)> {
    let bytes = std::fs::read(&opts.image)
        .map_err(|e| format!("page image {}: {e}", opts.image.display()))?;
    let mut cfg = PreprocessorConfig::default();
    cfg.size.longest_edge = opts.max_pixels;
    cfg.size.shortest_edge = cfg.size.shortest_edge.min(opts.max_pixels);
    let processor = ImageProcessor::new(cfg)?;
    let mut times = Vec::new();
    let mut last = None;
    for i in 0..8 {
        let start = std::time::Instant::now();
        let img = image::load_from_memory(&bytes)?;
        let p = processor.process(&img)?;
        if i > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
        last = Some(p);
    }
    let p = last.ok_or("processor produced nothing")?;
    let s = median(&times);
    println!(
        "processor: {} {}x{} → {}x{} ({} patches, {} image tokens) {:.1} ms",
        opts.image.display(),
        p.original_size.0,
        p.original_size.1,
        p.resized_size.0,
        p.resized_size.1,
        p.num_patches(),
        p.num_tokens(2),
        s * 1e3
    );
    out.write(&json!({"bench": "pages_stage", "stage": "processor", "measured": true,
        "ms": s * 1e3, "image": opts.image.display().to_string(),
        "original": [p.original_size.0, p.original_size.1],
        "resized": [p.resized_size.0, p.resized_size.1], "patches": p.num_patches(),
        "image_tokens": p.num_tokens(2), "threads": std::thread::available_parallelism().map_or(1, |n| n.get())}))?;
    Ok((p, s))
}

/// Folio's ONNX vision tower on ORT's CUDA EP when the export and the runtime are present.
fn vision_stage(
    opts: &Opts,
    cpu: bool,
    processed: &ProcessedImage,
    out: &mut JsonLines,
) -> AnyResult<Option<f64>> {
    let missing = [&opts.vision_onnx, &opts.ort_lib]
        .into_iter()
        .find(|p| !p.is_file());
    if let Some(m) = missing {
        let why = format!(
            "{} not found (run `session.sh vision-export` first)",
            m.display()
        );
        println!("vision: NOT MEASURED — {why}");
        out.write(
            &json!({"bench": "pages_stage", "stage": "vision", "measured": false, "why": why}),
        )?;
        return Ok(None);
    }
    let mut vo = VisionOptions::new(&opts.vision_onnx, &opts.ort_lib);
    vo.device = if cpu {
        ExecutionDevice::Cpu
    } else {
        ExecutionDevice::Cuda { device_id: 0 }
    };
    let tower = match VisionTower::load(&vo, &synthetic::vision_config()) {
        Ok(t) => t,
        Err(e) => {
            let why = format!("loading {}: {e}", opts.vision_onnx.display());
            println!("vision: NOT MEASURED — {why}");
            out.write(
                &json!({"bench": "pages_stage", "stage": "vision", "measured": false, "why": why}),
            )?;
            return Ok(None);
        }
    };
    let images = std::slice::from_ref(processed);
    let mut times = Vec::new();
    for i in 0..7 {
        let start = std::time::Instant::now();
        let e = tower.embed(images)?;
        if e.is_empty() {
            return Err("vision tower returned no rows".into());
        }
        if i >= 2 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let s = median(&times);
    let provider = tower.provider();
    println!(
        "vision: {} on {provider} ({} patches, {}) {:.1} ms",
        opts.vision_onnx.display(),
        processed.num_patches(),
        tower.meta().dtype,
        s * 1e3
    );
    out.write(&json!({"bench": "pages_stage", "stage": "vision", "measured": true,
        "ms": s * 1e3, "provider": provider, "onnx": opts.vision_onnx.display().to_string(),
        "dtype": tower.meta().dtype, "patches": processed.num_patches(),
        "note": if provider == "cuda" { "ORT CUDA EP, host arrays in and out" } else { "CUDA EP did not register: CPU provider" }}))?;
    Ok(Some(s))
}

/// Positions of a page prompt: text, a `h`×`w` merged image grid, text.
fn page_prompt(h: usize, w: usize) -> Positions3 {
    let pre = TEXT_TOKENS / 2;
    let post = TEXT_TOKENS - pre;
    common::page_positions(pre, h, w, post)
}

/// The fused decode kernels against candle's ops on this model; off when they disagree.
fn self_check(model: &TextModel, dev: &Device, out: &mut JsonLines) -> AnyResult<()> {
    if !dev.is_cuda() {
        return Ok(());
    }
    let (ok, detail) = common::fused::self_check(model, dev, 3)?;
    folio_glm45v::kernels::set_fused_enabled(ok);
    println!(
        "fused kernels self-check: {} ({detail})",
        if ok {
            "ok, fused path"
        } else {
            "FAILED, candle path"
        }
    );
    out.write(&json!({"bench": "fused_selfcheck", "ok": ok, "detail": detail, "by": "gpu_pages"}))?;
    Ok(())
}

/// Batch-1 prefill of the page prompt: median of 3 after one warm-up.
fn prefill_stage(
    model: &TextModel,
    dev: &Device,
    prompt: &Positions3,
    out: &mut JsonLines,
) -> AnyResult<f64> {
    let t = prompt.len();
    let pos = prompt.to_tensor(dev)?;
    let embeds = (Tensor::randn(0f32, 1f32, (1, t, model.hidden_size()), dev)? * 0.02)?
        .to_dtype(model.dtype())?;
    let mut times = Vec::new();
    for i in 0..4 {
        let mut cache = model.new_cache();
        let (_, s) = timed(dev, || forward_last(model, &embeds, &pos, &mut cache))?;
        if i > 0 {
            times.push(s);
        }
    }
    let s = median(&times);
    println!("prefill: {t} tokens {:.1} ms", s * 1e3);
    out.write(
        &json!({"bench": "pages_stage", "stage": "prefill", "measured": true,
        "ms": s * 1e3, "tokens": t, "layers": model.num_layers(),
        "fused": folio_glm45v::kernels::fused_enabled()}),
    )?;
    Ok(s)
}

/// One decode step of `batch` pages at context `t`: the cache is filled by a chunked batched
/// prefill (not timed), then `steps` greedy steps are timed after `warmup`.
fn decode_step(
    model: &TextModel,
    dev: &Device,
    opts: &Opts,
    batch: usize,
    t: usize,
) -> AnyResult<f64> {
    let mut cache = model.new_cache();
    let chunk = 256;
    let mut start = 0;
    while start < t {
        let n = chunk.min(t - start);
        let e = (Tensor::randn(0f32, 1f32, (batch, n, model.hidden_size()), dev)? * 0.02)?
            .to_dtype(model.dtype())?;
        forward_last(
            model,
            &e,
            &text_positions(batch, start, n, dev)?,
            &mut cache,
        )?;
        start += n;
    }
    let mut ids = vec![1u32; batch];
    let mut times = Vec::new();
    for step in 0..opts.warmup + opts.steps {
        let begin = std::time::Instant::now();
        let e = model.embed(&Tensor::from_vec(ids.clone(), (batch, 1), dev)?)?;
        let p = text_positions(batch, t + step, 1, dev)?;
        let logits = forward_last(model, &e, &p, &mut cache)?;
        ids = logits.squeeze(1)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
        if step >= opts.warmup {
            times.push(begin.elapsed().as_secs_f64());
        }
    }
    Ok(median(&times))
}

/// A `document`-profile page answer of about `tokens` tokens (≈ 4 characters each): a box
/// before each block (the prompted layout), headings, paragraphs and an HTML table now and then;
/// words drawn from a fixed list by a small LCG so no stretch repeats (the parser rejects loops).
fn page_answer(tokens: usize) -> String {
    const WORDS: [&str; 48] = [
        "annual",
        "report",
        "district",
        "revenue",
        "expenses",
        "committee",
        "noted",
        "rose",
        "while",
        "remained",
        "stable",
        "compared",
        "with",
        "previous",
        "year",
        "figures",
        "show",
        "increase",
        "decrease",
        "staff",
        "materials",
        "services",
        "budget",
        "total",
        "north",
        "south",
        "regional",
        "office",
        "approved",
        "plan",
        "meeting",
        "minutes",
        "members",
        "agreed",
        "proposal",
        "review",
        "quarter",
        "results",
        "growth",
        "cost",
        "summary",
        "table",
        "section",
        "page",
        "level",
        "period",
        "average",
        "rate",
    ];
    let mut state = 0x2545_f491_u64;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) as usize) % n
    };
    let mut s = String::from("<think></think>\n");
    let mut y = 40;
    let block = |s: &mut String, y: &mut usize, h: usize| {
        s.push_str(&format!(
            "<|begin_of_box|>[60,{},940,{}]<|end_of_box|>\n",
            *y % 1000,
            (*y + h).min(999)
        ));
        *y = (*y + h + 10) % 900;
    };
    let mut section = 1;
    while s.len() < tokens * 4 {
        block(&mut s, &mut y, 30);
        let title: Vec<&str> = (0..4).map(|_| WORDS[next(WORDS.len())]).collect();
        s.push_str(&format!("## {section}. {}\n\n", title.join(" ")));
        block(&mut s, &mut y, 120);
        let words: Vec<String> = (0..60)
            .map(|i| {
                let w = WORDS[next(WORDS.len())];
                if i % 11 == 5 {
                    format!("{w} {}.{}%", next(100), next(10))
                } else {
                    w.to_string()
                }
            })
            .collect();
        s.push_str(&format!("{}.\n\n", words.join(" ")));
        if section % 3 == 0 {
            block(&mut s, &mut y, 150);
            s.push_str("<table><tr><th>Item</th><th>2023</th><th>2024</th></tr>");
            for _ in 0..4 {
                s.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    WORDS[next(WORDS.len())],
                    next(5000),
                    next(5000)
                ));
            }
            s.push_str("</table>\n\n");
        }
        section += 1;
    }
    s
}

/// H4's `page_parse::parse_page` (document profile) on the answer; median of 50.
fn parse_stage(opts: &Opts, processed: &ProcessedImage, out: &mut JsonLines) -> AnyResult<f64> {
    let text = page_answer(opts.out_tokens);
    let profile = Profile::new(ProfileKind::Document);
    let input = PageParseInput {
        profile: &profile,
        raw: &text,
        truncated: false,
        image_size: processed.original_size,
        region: None,
        block_id_prefix: "p1-",
    };
    let mut times = Vec::new();
    let mut blocks = 0;
    for i in 0..51 {
        let start = std::time::Instant::now();
        let parsed = parse_page(&input).map_err(|e| format!("parse_page: {e}"))?;
        if i > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
        blocks = parsed.blocks.len();
    }
    let s = median(&times);
    println!(
        "parse: {} characters → {blocks} blocks {:.3} ms (page_parse::parse_page, document)",
        text.len(),
        s * 1e3
    );
    out.write(
        &json!({"bench": "pages_stage", "stage": "parse", "measured": true, "ms": s * 1e3,
        "chars": text.len(), "blocks": blocks, "parser": "page_parse::parse_page (document)"}),
    )?;
    Ok(s)
}

fn summary(
    opts: &Opts,
    st: &Stages,
    batch: usize,
    step: f64,
    t: usize,
    out: &mut JsonLines,
) -> AnyResult<()> {
    let decode = step * opts.out_tokens as f64 / batch as f64;
    let scale = REAL_LAYERS as f64 / opts.layers as f64;
    let vision = st.vision.unwrap_or(0.0);
    let cpu = st.processor + st.parse;
    let per_page = |layers_scale: f64| {
        let gpu = vision + (st.prefill + decode) * layers_scale;
        (cpu + gpu, gpu.max(cpu))
    };
    let (serial, overlapped) = per_page(1.0);
    let (serial46, overlapped46) = per_page(scale);
    let ph = |s: f64| 3600.0 / s;
    println!(
        "pages b={batch:<3} decode step {:.2} ms ({:.0} tok/s) → per page: processor {:.1} + vision {} + prefill {:.1} + decode {:.1} + parse {:.2} ms | {:.0} pages/h serial, {:.0} overlapped ({} layers) | 46 layers: {:.0} / {:.0} pages/h",
        step * 1e3,
        batch as f64 / step,
        st.processor * 1e3,
        st.vision.map_or("not measured".to_string(), |v| format!("{:.1}", v * 1e3)),
        st.prefill * 1e3,
        decode * 1e3,
        st.parse * 1e3,
        ph(serial),
        ph(overlapped),
        opts.layers,
        ph(serial46),
        ph(overlapped46)
    );
    out.write(
        &json!({"bench": "pages", "engine": "folio", "batch": batch, "layers": opts.layers,
        "prompt_tokens": t, "out_tokens": opts.out_tokens, "decode_step_ms": step * 1e3,
        "processor_ms": st.processor * 1e3, "vision_ms": st.vision.map(|v| v * 1e3),
        "vision_measured": st.vision.is_some(), "prefill_ms": st.prefill * 1e3,
        "decode_ms_per_page": decode * 1e3, "parse_ms": st.parse * 1e3,
        "pages_per_hour_serial": ph(serial), "pages_per_hour_overlapped": ph(overlapped),
        "pages_per_hour_serial_46": ph(serial46), "pages_per_hour_overlapped_46": ph(overlapped46),
        "fused": folio_glm45v::kernels::fused_enabled()}),
    )?;
    Ok(())
}
