//! Speed of the GLM-4.5V text decoder on the GPU with random weights of the real shapes
//! (`folio_glm45v::checkpoint::synthetic`): ceilings, decode at batch 1, prefill of a 1,300-token
//! image+prompt sequence, batched decode — medians after warm-up, one JSON line per number.
//!
//! `gpu_bench [--cpu --tiny] [--layers 26] [--weights bf16|fp8] [--kernels grouped,fused] [--prefill 1300]
//! [--prefill-kernels grouped,gathered] [--batch-kernels fused,batched] [--steps 20]
//! [--warmup 3] [--batches 8,32,64] [--batch-context 128] [--events on|off]
//! [--pool keep|default] [--paths candle,fused] [--skip-ceilings] [--out FILE.jsonl]`
//!
//! `--paths`: decode (b = 1 and batched) runs once per path — `candle` (candle's ops for
//! attention and norms) and `fused` (`folio_glm45v::kernels`: fused decode attention with the
//! in-place KV append, fused residual add + RMSNorm) — after a self-check of the fused path
//! against the candle path; if that fails, only the candle path is measured. The prefill runs
//! once per (prefill kernel, path) in the same call: `grouped` + `candle` is the old path,
//! `gathered` + `fused` the new one (gathered MoE, fused norms and prefill attention).
//!
//! `--pool keep` (default) raises the CUDA default memory pool's release threshold so freed
//! memory stays pooled; `--events off` turns off cudarc's per-launch event bookkeeping.
//!
//! `--weights fp8`: the synthetic model in the GLM-4.5V-FP8 layout (decoder linears F8E4M3 +
//! f32 row scales, per-expert tensors, made on the GPU; `synthetic::var_builder_fp8`), loaded
//! through the same per-expert loader as a real checkpoint; the resident size (tensor bytes,
//! the CUDA pool's current and peak use, the device's free memory) and the host's peak RSS are
//! reported after the build. With `--layers 46` nothing is extrapolated.
//!
//! Roofline: the bytes one decode token must read (`synthetic::DecodeBytes`: attention, the
//! top-8 + shared experts, router, norms, lm_head, the KV cache) over the measured copy
//! bandwidth (bytes read + written by a 2 GiB device-to-device copy). The 46-layer figure is
//! extrapolated: head + (step − head) · 46 / layers, with the head (final norm, lm_head, logits
//! to the host) timed on its own. `scripts/gpu/hf_bench.py` times transformers the same way.

#[path = "gpu_common/mod.rs"]
mod common;

use candle_core::{DType, Device, Tensor, D};
use common::{forward_last, median, spread, timed, AnyResult, Args, JsonLines};
use folio_glm45v::checkpoint::config::TextConfig;
use folio_glm45v::checkpoint::synthetic::{self, DecodeBytes};
use folio_glm45v::decoder::moe::MoeKernel;
use folio_glm45v::decoder::mrope::{decode_positions, text_positions, Positions3};
use folio_glm45v::decoder::text_model::TextModel;
use folio_glm45v::kernels::{fused_enabled, set_fused_enabled};
use folio_glm45v::KvCache;
use serde_json::json;

/// Layer count of the real model (for the extrapolation).
const REAL_LAYERS: usize = 46;

struct Opts {
    layers: usize,
    /// The FP8 layout (`--weights fp8`) instead of bf16 weights.
    fp8: bool,
    kernels: Vec<(MoeKernel, &'static str)>,
    prefill_kernels: Vec<(MoeKernel, &'static str)>,
    batch_kernels: Vec<(MoeKernel, &'static str)>,
    prefill: usize,
    steps: usize,
    warmup: usize,
    batches: Vec<usize>,
    batch_context: usize,
    skip_ceilings: bool,
    tiny: bool,
    /// Decode paths compared: "candle" (candle ops) and "fused" (`folio_glm45v::kernels`).
    paths: Vec<&'static str>,
}

/// What every benchmark of a run shares: the model's config, the device, the options and the
/// device's measured ceilings.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    cfg: &'a TextConfig,
    dev: &'a Device,
    opts: &'a Opts,
    ceil: Ceilings,
}

/// Measured ceilings of this device.
#[derive(Default, Clone, Copy)]
struct Ceilings {
    copy_bytes_per_s: f64,
    matmul_flops: f64,
}

fn config(opts: &Opts) -> AnyResult<TextConfig> {
    let mut cfg = synthetic::text_config(opts.layers)?;
    if opts.tiny {
        synthetic::shrink_to_cpu_size(&mut cfg);
    }
    Ok(cfg)
}

/// Bytes a decode token reads per layer kind for these weights.
fn decode_bytes(cfg: &TextConfig, dtype: DType, fp8: bool) -> DecodeBytes {
    if fp8 {
        DecodeBytes::fp8(cfg, dtype)
    } else {
        DecodeBytes::of(cfg, dtype)
    }
}

fn ceilings(dev: &Device, out: &mut JsonLines, tiny: bool) -> AnyResult<Ceilings> {
    let n = if tiny { 1 << 20 } else { 1 << 30 };
    let src = Tensor::randn(0f32, 1f32, n, dev)?.to_dtype(DType::BF16)?;
    let mut copy = Vec::new();
    for i in 0..12 {
        let (_, s) = timed(dev, || Ok(src.copy()?))?;
        if i >= 2 {
            copy.push(s);
        }
    }
    let bytes = 2.0 * 2.0 * n as f64;
    // candle's `copy()` allocates its destination each time; the ceiling is a copy into one
    // buffer allocated once (cuMemcpyDtoD), as METHOD.md measures it.
    let candle_copy_bw = bytes / median(&copy);
    let bw = match common::memcpy_seconds(&src, 12)? {
        Some(t) => bytes / median(&t[2..]),
        None => candle_copy_bw,
    };
    let m = if tiny { 256 } else { 8192 };
    let a = Tensor::randn(0f32, 1f32, (m, m), dev)?.to_dtype(DType::BF16)?;
    let b = Tensor::randn(0f32, 1f32, (m, m), dev)?.to_dtype(DType::BF16)?;
    let mut mm = Vec::new();
    for i in 0..12 {
        let (_, s) = timed(dev, || Ok(a.matmul(&b)?))?;
        if i >= 2 {
            mm.push(s);
        }
    }
    let flops = 2.0 * (m as f64).powi(3) / median(&mm);
    // Host cost of one small candle op (launch + bookkeeping), 2000 in a row.
    let mut x = Tensor::randn(0f32, 1f32, (1, 4096), dev)?.to_dtype(DType::BF16)?;
    let (_, s) = timed(dev, || {
        for _ in 0..2000 {
            x = x.affine(1.0, 0.0)?;
        }
        Ok(())
    })?;
    let per_op_us = s / 2000.0 * 1e6;
    println!(
        "ceilings: copy {:.0} GB/s (read+write; candle copy() with its allocation {:.0}), bf16 matmul {:.0} TFLOP/s, small op {per_op_us:.1} µs",
        bw / 1e9,
        candle_copy_bw / 1e9,
        flops / 1e12
    );
    out.write(
        &json!({"bench": "ceilings", "copy_GBps": bw / 1e9, "matmul_TFLOPs": flops / 1e12,
        "copy_bytes": bytes, "small_op_us": per_op_us, "candle_copy_GBps": candle_copy_bw / 1e9}),
    )?;
    Ok(Ceilings {
        copy_bytes_per_s: bw,
        matmul_flops: flops,
    })
}

/// The 1,300-token prompt of a 1024×1024 page (grid 72×72 patches → 36×36 merged tokens).
fn page_prompt(total: usize) -> Positions3 {
    let side = ((total.saturating_sub(4)) as f64).sqrt() as usize;
    let rest = total - side * side;
    common::page_positions(rest / 2, side, side, rest - rest / 2)
}

/// FLOPs of a prefill of `t` tokens over `layers` layers (causal attention counted as half).
fn prefill_flops(cfg: &TextConfig, layers: usize, t: usize) -> f64 {
    let (h, d) = (cfg.hidden_size as f64, cfg.head_dim() as f64);
    let (nh, nkv) = (
        cfg.num_attention_heads as f64,
        cfg.num_key_value_heads as f64,
    );
    let t = t as f64;
    let proj = 2.0 * t * (h * nh * d * 2.0 + 2.0 * h * nkv * d);
    let attn = 2.0 * 2.0 * nh * d * t * t / 2.0;
    let dense = 2.0 * t * 3.0 * h * cfg.intermediate_size as f64;
    let active = (cfg.num_experts_per_tok + cfg.n_shared_experts) as f64;
    let moe = 2.0 * t * active * 3.0 * h * cfg.moe_intermediate_size as f64;
    let n_dense = cfg.first_k_dense_replace.min(layers) as f64;
    layers as f64 * (proj + attn) + n_dense * dense + (layers as f64 - n_dense) * moe
}

/// Prefills the page prompt; returns (cache, rope delta, median seconds of the timed runs).
fn prefill(
    model: &TextModel,
    dev: &Device,
    opts: &Opts,
    repeats: usize,
) -> AnyResult<(KvCache, i64, Vec<f64>)> {
    let positions = page_prompt(opts.prefill);
    let t = positions.len();
    let pos = positions.to_tensor(dev)?;
    let embeds = (Tensor::randn(0f32, 1f32, (1, t, model.hidden_size()), dev)? * 0.02)?
        .to_dtype(model.dtype())?;
    let mut times = Vec::new();
    let mut cache = model.new_cache();
    for i in 0..=repeats {
        cache = model.new_cache();
        let (_, s) = timed(dev, || forward_last(model, &embeds, &pos, &mut cache))?;
        if i > 0 {
            times.push(s);
        }
    }
    Ok((cache, positions.rope_delta(), times))
}

/// Greedy decode steps at batch 1 after `cache`: per-step seconds (host clock, logits on host).
fn decode_b1(
    model: &TextModel,
    dev: &Device,
    cache: &mut KvCache,
    delta: i64,
    n: usize,
) -> AnyResult<Vec<f64>> {
    let mut token = 1u32;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = std::time::Instant::now();
        let e = model.embed(&Tensor::new(&[[token]], dev)?)?;
        let p = decode_positions(cache.seq_len(), delta, 1, dev)?;
        let logits = forward_last(model, &e, &p, cache)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        token = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i as u32);
        times.push(start.elapsed().as_secs_f64());
    }
    Ok(times)
}

/// Time of the decoder's head alone: final RMSNorm-sized op, lm_head GEMV, logits to host.
fn head_seconds(cfg: &TextConfig, dev: &Device, dtype: DType) -> AnyResult<f64> {
    let w =
        Tensor::randn(0f32, 0.02f32, (cfg.vocab_size, cfg.hidden_size), dev)?.to_dtype(dtype)?;
    let x = Tensor::randn(0f32, 1f32, (1, cfg.hidden_size), dev)?.to_dtype(dtype)?;
    let mut times = Vec::new();
    for i in 0..13 {
        let start = std::time::Instant::now();
        let y = x
            .matmul(&w.t()?)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        if y.is_empty() {
            return Err("empty logits".into());
        }
        if i >= 3 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(median(&times))
}

fn bench_decode(model: &mut TextModel, ctx: Ctx, out: &mut JsonLines) -> AnyResult<()> {
    let (cfg, dev, opts, ceil) = (ctx.cfg, ctx.dev, ctx.opts, ctx.ceil);
    let head = head_seconds(cfg, dev, model.dtype())?;
    let bytes = decode_bytes(cfg, model.dtype(), opts.fp8);
    let mut cfg46 = cfg.clone();
    cfg46.num_hidden_layers = REAL_LAYERS;
    for &(kernel, tag) in &opts.kernels {
        for &path in &opts.paths {
            set_fused_enabled(path == "fused");
            model.set_moe_kernel(kernel);
            let (mut cache, delta, _) = prefill(model, dev, opts, 0)?;
            let context = cache.seq_len();
            let times = decode_b1(model, dev, &mut cache, delta, opts.warmup + opts.steps)?;
            let timed = &times[opts.warmup..];
            let step = median(timed);
            let (lo, hi) = spread(timed);
            let layers = opts.layers as f64;
            let per_layer = (step - head).max(0.0) / layers;
            let step46 = head + per_layer * REAL_LAYERS as f64;
            let bytes_l = bytes.per_token(cfg, opts.layers, context);
            let bytes46 = bytes.per_token(&cfg46, REAL_LAYERS, context);
            let floor_l = bytes_l / ceil.copy_bytes_per_s;
            let floor46 = bytes46 / ceil.copy_bytes_per_s;
            println!(
            "decode b=1 {tag:<8} {path:<6} {:>8.2} ms/step ({:.2}–{:.2}) {:>7.1} tok/s | per layer {:.3} ms | 46 layers {:.2} ms = {:.1} tok/s | roofline {:.1}% ({}L) {:.1}% (46L)",
            step * 1e3, lo * 1e3, hi * 1e3, 1.0 / step, per_layer * 1e3, step46 * 1e3, 1.0 / step46,
            100.0 * floor_l / step, opts.layers, 100.0 * floor46 / step46
        );
            out.write(
                &json!({"bench": "decode_b1", "engine": "folio", "kernel": tag, "path": path,
            "layers": opts.layers, "context": context, "steps": timed.len(), "step_ms": step * 1e3,
            "step_ms_min": lo * 1e3, "step_ms_max": hi * 1e3, "tok_s": 1.0 / step,
            "head_ms": head * 1e3, "per_layer_ms": per_layer * 1e3, "step46_ms": step46 * 1e3,
            "tok_s_46": 1.0 / step46, "bytes_per_token": bytes_l, "bytes_per_token_46": bytes46,
            "floor_ms": floor_l * 1e3, "floor46_ms": floor46 * 1e3,
            "roofline_pct": 100.0 * floor_l / step, "roofline46_pct": 100.0 * floor46 / step46}),
            )?;
        }
    }
    set_fused_enabled(opts.paths.contains(&"fused"));
    Ok(())
}

fn bench_prefill(model: &mut TextModel, ctx: Ctx, out: &mut JsonLines) -> AnyResult<()> {
    let (cfg, dev, opts, ceil) = (ctx.cfg, ctx.dev, ctx.opts, ctx.ceil);
    for &(kernel, tag) in &opts.prefill_kernels {
        for &path in &opts.paths {
            set_fused_enabled(path == "fused");
            model.set_moe_kernel(kernel);
            prefill_one(model, cfg, dev, opts, ceil, out, tag)?;
        }
    }
    model.set_moe_kernel(MoeKernel::Auto);
    set_fused_enabled(opts.paths.contains(&"fused"));
    Ok(())
}

fn prefill_one(
    model: &TextModel,
    cfg: &TextConfig,
    dev: &Device,
    opts: &Opts,
    ceil: Ceilings,
    out: &mut JsonLines,
    tag: &str,
) -> AnyResult<()> {
    let path = if fused_enabled() { "fused" } else { "candle" };
    let (_, _, times) = prefill(model, dev, opts, 3)?;
    let s = median(&times);
    let flops = prefill_flops(cfg, opts.layers, opts.prefill);
    let tflops = flops / s / 1e12;
    println!(
        "prefill {tag:<8} {path:<6} {} tokens: {:.1} ms = {:.0} tok/s, {:.1} TFLOP/s ({:.1}% of the matmul ceiling)",
        opts.prefill,
        s * 1e3,
        opts.prefill as f64 / s,
        tflops,
        100.0 * flops / s / ceil.matmul_flops.max(1.0)
    );
    out.write(&json!({"bench": "prefill", "engine": "folio", "kernel": tag, "path": path, "layers": opts.layers,
        "tokens": opts.prefill, "ms": s * 1e3, "runs": times.len(), "tok_s": opts.prefill as f64 / s,
        "flops": flops, "TFLOPs": tflops, "matmul_pct": 100.0 * flops / s / ceil.matmul_flops.max(1.0)}))?;
    Ok(())
}

/// Bytes and FLOPs one batched decode step needs (random routing: expected distinct experts).
fn batch_bounds(
    cfg: &TextConfig,
    layers: usize,
    batch: usize,
    context: usize,
    dtype: DType,
    fp8: bool,
) -> (f64, f64) {
    let b = dtype.size_in_bytes() as f64;
    let per = decode_bytes(cfg, dtype, fp8);
    let (h, i) = (cfg.hidden_size as f64, cfg.moe_intermediate_size as f64);
    let (e, k) = (cfg.n_routed_experts as f64, cfg.num_experts_per_tok as f64);
    let distinct = e * (1.0 - (1.0 - k / e).powi(batch as i32));
    let expert = if fp8 {
        3.0 * h * i + 4.0 * (2.0 * i + h)
    } else {
        3.0 * h * i * b
    };
    let moe_layer = per.moe_layer - k * expert + distinct * expert;
    let n_dense = cfg.first_k_dense_replace.min(layers) as f64;
    let bytes = n_dense * per.dense_layer
        + (layers as f64 - n_dense) * moe_layer
        + per.lm_head
        + (batch * context * layers) as f64 * per.kv_per_position;
    let active_params = if fp8 {
        DecodeBytes::of(cfg, dtype).per_token(cfg, layers, 0) / b
    } else {
        per.per_token(cfg, layers, 0) / b
    };
    let flops = 2.0 * batch as f64 * active_params;
    (bytes, flops)
}

fn bench_batched(model: &mut TextModel, ctx: Ctx, out: &mut JsonLines) -> AnyResult<()> {
    let (cfg, dev, opts, ceil) = (ctx.cfg, ctx.dev, ctx.opts, ctx.ceil);
    let h = model.hidden_size();
    for &batch in &opts.batches {
        for &path in &opts.paths {
            set_fused_enabled(path == "fused");
            for &(kernel, tag) in &opts.batch_kernels {
                let ctx = opts.batch_context;
                model.set_moe_kernel(MoeKernel::Auto);
                let embeds = (Tensor::randn(0f32, 1f32, (batch, ctx, h), dev)? * 0.02)?
                    .to_dtype(model.dtype())?;
                let mut cache = model.new_cache();
                forward_last(
                    model,
                    &embeds,
                    &text_positions(batch, 0, ctx, dev)?,
                    &mut cache,
                )?;
                model.set_moe_kernel(kernel);
                let mut ids = vec![1u32; batch];
                let mut times = Vec::new();
                for step in 0..opts.warmup + opts.steps {
                    let start = std::time::Instant::now();
                    let tok = Tensor::from_vec(ids.clone(), (batch, 1), dev)?;
                    let e = model.embed(&tok)?;
                    let p = text_positions(batch, ctx + step, 1, dev)?;
                    let logits = forward_last(model, &e, &p, &mut cache)?;
                    ids = logits.squeeze(1)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
                    if step >= opts.warmup {
                        times.push(start.elapsed().as_secs_f64());
                    }
                }
                let s = median(&times);
                let (bytes, flops) = batch_bounds(
                    cfg,
                    opts.layers,
                    batch,
                    ctx + opts.warmup + opts.steps / 2,
                    model.dtype(),
                    opts.fp8,
                );
                let t_bw = bytes / ceil.copy_bytes_per_s;
                let t_fl = flops / ceil.matmul_flops.max(1.0);
                let bound = t_bw.max(t_fl);
                println!(
                "decode b={batch:<3} {tag:<8} {path:<6} {:>8.2} ms/step {:>8.1} tok/s | bound {:.2} ms ({}) → {:.1}%",
                s * 1e3,
                batch as f64 / s,
                bound * 1e3,
                if t_bw >= t_fl { "bandwidth" } else { "compute" },
                100.0 * bound / s
            );
                out.write(
                &json!({"bench": "decode_batched", "engine": "folio", "kernel": tag, "path": path,
                "layers": opts.layers, "batch": batch, "context": ctx, "step_ms": s * 1e3,
                "tok_s": batch as f64 / s, "bytes": bytes, "flops": flops, "bound_ms": bound * 1e3,
                "bound": if t_bw >= t_fl { "bandwidth" } else { "compute" },
                "bound_pct": 100.0 * bound / s}),
            )?;
            }
        }
    }
    set_fused_enabled(opts.paths.contains(&"fused"));
    Ok(())
}

fn parse() -> AnyResult<(bool, String, Option<String>, Opts)> {
    let mut a = Args::from_env();
    let cpu = a.flag("--cpu");
    let tiny = a.flag("--tiny");
    let skip_ceilings = a.flag("--skip-ceilings");
    let events = a.value("--events")?.unwrap_or_else(|| "on".into());
    let pool = a.value("--pool")?.unwrap_or_else(|| "keep".into());
    let out = a.value("--out")?;
    let fp8 = match a.value("--weights")?.as_deref() {
        None | Some("bf16") => false,
        Some("fp8") => true,
        Some(other) => return Err(format!("unknown --weights {other} (bf16, fp8)").into()),
    };
    let opts = Opts {
        layers: a.parsed("--layers", if tiny { 3 } else { 26 })?,
        fp8,
        kernels: kernel_list(a.value("--kernels")?, "grouped,fused")?,
        prefill_kernels: kernel_list(a.value("--prefill-kernels")?, "grouped,gathered")?,
        batch_kernels: kernel_list(a.value("--batch-kernels")?, "fused,batched")?,
        prefill: a.parsed("--prefill", if tiny { 40 } else { 1300 })?,
        steps: a.parsed("--steps", 20)?,
        warmup: a.parsed("--warmup", 3)?,
        batches: a.list("--batches", &[8, 32, 64])?,
        batch_context: a.parsed("--batch-context", 128)?,
        skip_ceilings,
        tiny,
        paths: path_list(a.value("--paths")?)?,
    };
    a.finish()?;
    Ok((cpu, format!("events {events}, pool {pool}"), out, opts))
}

fn path_list(v: Option<String>) -> AnyResult<Vec<&'static str>> {
    v.unwrap_or_else(|| "candle,fused".into())
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p {
            "candle" => Ok("candle"),
            "fused" => Ok("fused"),
            other => Err(format!("unknown path {other} (candle, fused)").into()),
        })
        .collect()
}

fn kernel_list(v: Option<String>, default: &str) -> AnyResult<Vec<(MoeKernel, &'static str)>> {
    v.unwrap_or_else(|| default.into())
        .split(',')
        .filter(|k| !k.is_empty())
        .map(|k| match k {
            "grouped" => Ok((MoeKernel::Grouped, "grouped")),
            "fused" => Ok((MoeKernel::Fused, "fused")),
            "batched" => Ok((MoeKernel::Batched, "batched")),
            "gathered" => Ok((MoeKernel::Gathered, "gathered")),
            "auto" => Ok((MoeKernel::Auto, "auto")),
            other => Err(format!("unknown kernel {other}").into()),
        })
        .collect()
}

fn main() -> std::process::ExitCode {
    common::exit_code("gpu_bench", run())
}

fn run() -> AnyResult<()> {
    let (cpu, settings, out, mut opts) = parse()?;
    let dev = common::device(cpu)?;
    if settings.contains("events off") {
        disable_event_tracking(&dev);
    }
    if settings.contains("pool keep") {
        common::keep_pool_memory(&dev)?;
    }
    if cpu {
        for list in [
            &mut opts.kernels,
            &mut opts.prefill_kernels,
            &mut opts.batch_kernels,
        ] {
            list.retain(|(k, _)| !matches!(k, MoeKernel::Fused | MoeKernel::Gathered));
        }
    }
    let mut out = JsonLines::open(out.as_deref())?;
    println!("device {dev:?}, layers {}, {settings}", opts.layers);
    let ceil = if opts.skip_ceilings {
        Ceilings {
            copy_bytes_per_s: 4.3e12,
            matmul_flops: 7.9e14,
        }
    } else {
        ceilings(&dev, &mut out, opts.tiny)?
    };
    let cfg = config(&opts)?;
    let before = common::device_memory(&dev)?;
    let start = std::time::Instant::now();
    let vb = if opts.fp8 {
        synthetic::var_builder_fp8(DType::BF16, &dev, 42)?
    } else {
        synthetic::var_builder(DType::BF16, &dev, 42)?
    };
    let mut model = TextModel::new(&cfg, vb)?;
    dev.synchronize()?;
    let build_s = start.elapsed().as_secs_f64();
    let weights = if opts.fp8 { "fp8" } else { "bf16" };
    println!(
        "model: {} layers of random {weights} weights in {build_s:.1} s",
        opts.layers
    );
    out.write(
        &json!({"bench": "build", "engine": "folio", "layers": opts.layers, "seconds": build_s,
        "weights": weights, "settings": settings}),
    )?;
    resident_report(&model, &dev, weights, opts.layers, before, &mut out)?;
    if opts.paths.contains(&"fused") && dev.is_cuda() {
        fused_self_check(&model, &dev, &mut opts, &mut out)?;
    }
    set_fused_enabled(opts.paths.contains(&"fused"));
    let ctx = Ctx {
        cfg: &cfg,
        dev: &dev,
        opts: &opts,
        ceil,
    };
    bench_decode(&mut model, ctx, &mut out)?;
    bench_prefill(&mut model, ctx, &mut out)?;
    bench_batched(&mut model, ctx, &mut out)?;
    Ok(())
}

/// The model's resident size: its tensors' bytes, the CUDA pool's current use and peak during
/// the build (over what was in use before), the device's free memory, the host's peak RSS.
fn resident_report(
    model: &TextModel,
    dev: &Device,
    weights: &str,
    layers: usize,
    before: Option<[u64; 4]>,
    out: &mut JsonLines,
) -> AnyResult<()> {
    const GIB: f64 = (1u64 << 30) as f64;
    let tensors = model.resident_bytes() as f64;
    let after = common::device_memory(dev)?;
    let rss = common::host_peak_rss().map_or(f64::NAN, |b| b as f64);
    let (pool_now, pool_peak, free, total) = match (before, after) {
        (Some(b), Some(a)) => (
            (a[0] - b[0].min(a[0])) as f64,
            (a[1] - b[0].min(a[1])) as f64,
            a[2] as f64,
            a[3] as f64,
        ),
        _ => (f64::NAN, f64::NAN, f64::NAN, f64::NAN),
    };
    println!(
        "resident ({weights}, {layers} layers): tensors {:.2} GiB, pool in use {:.2} GiB, pool peak during load {:.2} GiB, device free {:.2} of {:.2} GiB, host peak RSS {:.2} GiB",
        tensors / GIB, pool_now / GIB, pool_peak / GIB, free / GIB, total / GIB, rss / GIB
    );
    out.write(&json!({"bench": "resident", "weights": weights, "layers": layers,
        "tensor_GiB": tensors / GIB, "pool_GiB": pool_now / GIB, "pool_peak_GiB": pool_peak / GIB,
        "device_free_GiB": free / GIB, "device_total_GiB": total / GIB, "host_peak_rss_GiB": rss / GIB}))?;
    Ok(())
}

/// The fused kernels against the candle ops on this model (a 64-token prompt, 4 steps); when
/// they disagree (layer 0 outside the bf16 band) or fail, the benchmark measures the candle
/// path only and says so.
fn fused_self_check(
    model: &TextModel,
    dev: &Device,
    opts: &mut Opts,
    out: &mut JsonLines,
) -> AnyResult<()> {
    let (ok, detail) = common::fused::self_check(model, dev, 4)?;
    println!(
        "fused kernels self-check: {} ({detail})",
        if ok {
            "ok"
        } else {
            "FAILED — measuring the candle path only"
        }
    );
    out.write(&json!({"bench": "fused_selfcheck", "ok": ok, "detail": detail}))?;
    if !ok {
        opts.paths.retain(|p| *p != "fused");
        if opts.paths.is_empty() {
            opts.paths.push("candle");
        }
    }
    Ok(())
}

/// Turns off cudarc's per-launch event bookkeeping for tensors made from now on (one stream).
#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
fn disable_event_tracking(dev: &Device) {
    if let Device::Cuda(c) = dev {
        // SAFETY: this program uses the device's single stream only, so no cross-stream
        // synchronisation (what the events are for) is ever needed.
        unsafe { c.disable_event_tracking() };
    }
}

#[cfg(not(feature = "cuda"))]
fn disable_event_tracking(_dev: &Device) {}
