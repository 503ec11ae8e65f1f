//! Parity of the GLM-4.5V decoder on the GPU (the CPU suite's checks, run on CUDA).
//!
//! `gpu_parity [--cpu] [--fixtures DIR] [--out FILE.jsonl] [--small] [--only-fused] [--only-fp8]`
//!
//! FP8 (version 5, first; `--only-fp8` stops after them): the FP8 linear (W8A16 GEMV up to 16
//! rows, widened weight + matmul above) at the real q_proj shape [12288 × 4096] for 1, 8, 64
//! and 1,300 tokens against an f64 reference (first 32 tokens) and against the dequantised
//! weights through candle's matmul; the real-shape MoE block with FP8 experts (fused kernel
//! for 1/8/64 tokens, gathered for 64/300) against the f64 reference; the tiny FP8 fixture
//! kept FP8 on the device: f32 logits against transformers' reference, greedy ids, and the
//! bf16-compute logit error.
//!
//! 0. First (new in version 3): the fused CUDA decode kernels against candle's ops on the same
//!    model (tiny fixture f32/bf16 at B = 1 across the KV-cache growth and B = 2; two synthetic
//!    layers of the real shapes), then the f32 real-shape MoE case of 8 tokens (check 3's case
//!    that session D did not reach). `--only-fused` stops after these.
//!    Then (new in version 4) the prefill paths: the candle ops with the grouped MoE against
//!    the fused kernels with `Auto` (the gathered MoE and the prefill attention kernel for a
//!    300-token prefill, then decode steps) on the tiny fixture (f32, bf16) and two synthetic
//!    layers of the real shapes. Then batched generation (`generate_batch`, the worker engine's
//!    ragged decode) against each prompt generated alone, f32 greedy on the tiny fixture.
//! 1. f32, both MoE kernels, the committed tiny fixtures against transformers' reference
//!    (`reference.safetensors`): per-layer hidden states, router choices, logits (≤ 1e-4, max
//!    abs diff over max |ref|), image M-RoPE positions, KV-cache decoding, the FP8 layout.
//! 2. bf16, both kernels: layer-0 hidden state ‖a−b‖/‖b‖ within METHOD.md's bf16 band (≤ 1e-2)
//!    and argmax agreement with the f32 reference (routing flips dominate whole-model bf16).
//! 3. The MoE block at GLM-4.5V's real shapes (4096 × 128 experts of 1408, top-8 + shared;
//!    random weights made on the device) on fresh random inputs of 1, 8 and 64 tokens, each
//!    kernel against an f64 CPU reference that uses the kernel's own routing: bf16 ≤ 1e-2 and
//!    f32 ≤ 1e-4 relative L2 error; both kernels must route identically.
//!
//! Prints one line per check and exits 1 if any fails. `--cpu` runs the same logic on the CPU
//! (the fused kernel is then reported as not applicable) and `--small` shrinks check 3.

#[path = "gpu_common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, D};
use common::fused::{fused_vs_candle, paths_diff, PathDiff, PathSpec};
use common::{rel_l2, rel_max_diff, AnyResult, Args, JsonLines};
use folio_glm45v::checkpoint::config::{ModelConfig, TextConfig};
use folio_glm45v::checkpoint::weights::Checkpoint;
use folio_glm45v::decoder::moe::{Moe, MoeKernel, RouterChoice};
use folio_glm45v::decoder::mrope::text_positions;
use folio_glm45v::decoder::text_model::{
    DecoderInput, DecoderOutput, LogitsSelection, Record, TextModel,
};
use serde_json::json;

const TOL_F32: f64 = 1e-4;
const BAND_BF16: f64 = 1e-2;
/// FP8 linear in bf16 against f64: the output is rounded to bf16 once (≤ 2⁻⁹ relative, ≈ 1e-3
/// RMS) and, on the widened-weight path, each weight too (≈ 1e-3 RMS per weight, averaged over
/// 4,096 products): 5e-3 leaves room for both and still catches a wrong scale or layout
/// (which gives O(1)).
const FP8_LINEAR_BF16: f64 = 5e-3;

/// Collects check results, prints them, and remembers failures.
struct Report {
    lines: JsonLines,
    failed: Vec<String>,
}

impl Report {
    fn check(&mut self, name: &str, value: f64, limit: f64, detail: &str) -> AnyResult<()> {
        let ok = value.is_finite() && value <= limit;
        println!(
            "{:<4} {name:<58} {value:>10.3e} (limit {limit:.0e}) {detail}",
            if ok { "ok" } else { "FAIL" }
        );
        self.lines
            .write(&json!({"check": name, "value": value, "limit": limit,
            "ok": ok, "detail": detail}))?;
        if !ok {
            self.failed.push(name.to_string());
        }
        Ok(())
    }

    fn at_least(&mut self, name: &str, value: f64, min: f64) -> AnyResult<()> {
        let ok = value >= min;
        println!(
            "{:<4} {name:<58} {value:>10.3} (min {min})",
            if ok { "ok" } else { "FAIL" }
        );
        self.lines
            .write(&json!({"check": name, "value": value, "min": min, "ok": ok}))?;
        if !ok {
            self.failed.push(name.to_string());
        }
        Ok(())
    }

    /// Records an error that stopped a group of checks as one failed check, and goes on.
    fn guard(&mut self, group: &str, r: AnyResult<()>) -> AnyResult<()> {
        let Err(e) = r else { return Ok(()) };
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or("").to_string();
        println!("FAIL {group:<58} stopped: {first}");
        self.lines.write(
            &json!({"check": format!("{group} (stopped)"), "value": null,
            "limit": 0.0, "ok": false, "detail": first}),
        )?;
        self.failed.push(format!("{group}: {first}"));
        Ok(())
    }

    fn note(&mut self, name: &str, detail: &str) -> AnyResult<()> {
        println!("--   {name:<58} {detail}");
        self.lines.write(&json!({"check": name, "note": detail}))
    }
}

fn load(
    dir: &Path,
    dtype: DType,
    dev: &Device,
    kernel: MoeKernel,
) -> AnyResult<(ModelConfig, TextModel)> {
    let cfg = ModelConfig::load(&dir.join("config.json"))?;
    let vb = Checkpoint::open(dir)?.var_builder(dtype, dev)?;
    let mut model = TextModel::new(&cfg.text_config, vb)?;
    model.set_moe_kernel(kernel);
    Ok((cfg, model))
}

fn ids(t: &Tensor) -> AnyResult<Vec<u32>> {
    t.to_vec1::<i64>()?
        .into_iter()
        .map(|v| u32::try_from(v).map_err(|e| e.into()))
        .collect()
}

fn run_all(model: &TextModel, embeds: &Tensor, positions: &Tensor) -> AnyResult<DecoderOutput> {
    let mut cache = model.new_cache();
    let input = DecoderInput {
        embeds,
        positions,
        logits: LogitsSelection::All,
        record: Record {
            hidden_states: true,
            router: true,
        },
    };
    Ok(model.forward(input, &mut cache)?)
}

fn text_inputs(model: &TextModel, ids: &[u32]) -> AnyResult<(Tensor, Tensor)> {
    let dev = model.device();
    let t = Tensor::new(ids, dev)?.unsqueeze(0)?;
    Ok((model.embed(&t)?, text_positions(1, 0, ids.len(), dev)?))
}

/// Largest per-layer hidden diff, router mismatches, logits diff of one prompt.
fn compare(
    out: &DecoderOutput,
    refs: &HashMap<String, Tensor>,
    name: &str,
) -> AnyResult<(f64, usize, f64, f64)> {
    let mut hidden = 0f64;
    for (layer, h) in out.layer_hidden.iter().enumerate() {
        let want = &refs[&format!("{name}.layer{layer}.hidden")];
        hidden = hidden.max(rel_max_diff(&h.squeeze(0)?, want)?);
    }
    let (mut mismatches, mut wdiff) = (0usize, 0f64);
    for (layer, choice) in out.router.iter().enumerate() {
        let Some(choice) = choice else { continue };
        let want_e = refs[&format!("{name}.layer{layer}.router_experts")].to_vec2::<i64>()?;
        let want_w = refs[&format!("{name}.layer{layer}.router_weights")].to_vec2::<f32>()?;
        for (tok, (we, ww)) in want_e.iter().zip(&want_w).enumerate() {
            let got = sorted_choice(choice, tok);
            let got_e: Vec<i64> = got.iter().map(|p| i64::from(p.0)).collect();
            if &got_e != we {
                mismatches += 1;
                continue;
            }
            for (g, w) in got.iter().zip(ww) {
                wdiff = wdiff.max(f64::from((g.1 - w).abs()));
            }
        }
    }
    let logits = out.logits.as_ref().ok_or("no logits")?.squeeze(0)?;
    let l = rel_max_diff(&logits, &refs[&format!("{name}.logits")])?;
    Ok((hidden, mismatches, wdiff, l))
}

fn sorted_choice(choice: &RouterChoice, tok: usize) -> Vec<(u32, f32)> {
    let k = choice.top_k;
    let mut got: Vec<(u32, f32)> = (0..k)
        .map(|j| (choice.experts[tok * k + j], choice.weights[tok * k + j]))
        .collect();
    got.sort_by_key(|p| p.0);
    got
}

fn f32_fixture_checks(
    rep: &mut Report,
    fixtures: &Path,
    dev: &Device,
    kernel: MoeKernel,
    tag: &str,
) -> AnyResult<()> {
    let (_, model) = load(&fixtures.join("tiny"), DType::F32, dev, kernel)?;
    let refs =
        candle_core::safetensors::load(fixtures.join("tiny/reference.safetensors"), &Device::Cpu)?;
    for name in ["chat", "nothink", "raw", "mm"] {
        let (embeds, positions) = if name == "mm" {
            (
                refs["mm.inputs_embeds"].unsqueeze(0)?.to_device(dev)?,
                refs["mm.positions"].unsqueeze(1)?.to_device(dev)?,
            )
        } else {
            text_inputs(&model, &ids(&refs[&format!("{name}.input_ids")])?)?
        };
        let out = run_all(&model, &embeds, &positions)?;
        let (hidden, mism, wdiff, logits) = compare(&out, &refs, name)?;
        rep.check(
            &format!("f32 {tag} tiny/{name} hidden (all layers)"),
            hidden,
            TOL_F32,
            "",
        )?;
        rep.check(
            &format!("f32 {tag} tiny/{name} router weights"),
            wdiff,
            1e-5,
            "",
        )?;
        rep.check(
            &format!("f32 {tag} tiny/{name} router expert-set mismatches"),
            mism as f64,
            0.0,
            "",
        )?;
        rep.check(
            &format!("f32 {tag} tiny/{name} logits"),
            logits,
            TOL_F32,
            "",
        )?;
    }
    // KV-cache decoding: 20-token prefill, then single steps and one 5-token chunk.
    let all = ids(&refs["raw.input_ids"])?;
    let want = &refs["raw.logits"];
    let mut cache = model.new_cache();
    let mut worst = 0f64;
    let mut pos = 0;
    while pos < all.len() {
        let n = match pos {
            0 => 20,
            30 => 5,
            _ => 1,
        }
        .min(all.len() - pos);
        let t = Tensor::new(&all[pos..pos + n], dev)?.unsqueeze(0)?;
        let embeds = model.embed(&t)?;
        let positions = text_positions(1, pos, n, dev)?;
        let input = DecoderInput {
            embeds: &embeds,
            positions: &positions,
            logits: LogitsSelection::All,
            record: Record::default(),
        };
        let out = model
            .forward(input, &mut cache)?
            .logits
            .ok_or("no logits")?;
        worst = worst.max(rel_max_diff(&out.squeeze(0)?, &want.narrow(0, pos, n)?)?);
        pos += n;
    }
    rep.check(
        &format!("f32 {tag} tiny/raw cached decoding logits"),
        worst,
        TOL_F32,
        "",
    )?;
    let (_, fp8) = load(&fixtures.join("tiny-fp8"), DType::F32, dev, kernel)?;
    let refs8 = candle_core::safetensors::load(
        fixtures.join("tiny-fp8/reference.safetensors"),
        &Device::Cpu,
    )?;
    for name in ["chat", "raw"] {
        let (embeds, positions) = text_inputs(&fp8, &ids(&refs8[&format!("{name}.input_ids")])?)?;
        let out = run_all(&fp8, &embeds, &positions)?;
        let l = rel_max_diff(
            &out.logits.ok_or("no logits")?.squeeze(0)?,
            &refs8[&format!("{name}.logits")],
        )?;
        rep.check(&format!("f32 {tag} tiny-fp8/{name} logits"), l, TOL_F32, "")?;
    }
    Ok(())
}

fn bf16_fixture_checks(
    rep: &mut Report,
    fixtures: &Path,
    dev: &Device,
    kernel: MoeKernel,
    tag: &str,
) -> AnyResult<()> {
    let (_, model) = load(&fixtures.join("tiny"), DType::BF16, dev, kernel)?;
    let refs =
        candle_core::safetensors::load(fixtures.join("tiny/reference.safetensors"), &Device::Cpu)?;
    for (name, min_agree) in [("raw", 0.8), ("chat", 0.95)] {
        let (embeds, positions) = text_inputs(&model, &ids(&refs[&format!("{name}.input_ids")])?)?;
        let out = run_all(&model, &embeds, &positions)?;
        let h0 = rel_l2(
            &out.layer_hidden[0].squeeze(0)?,
            &refs[&format!("{name}.layer0.hidden")],
        )?;
        rep.check(
            &format!("bf16 {tag} tiny/{name} layer-0 hidden rel L2"),
            h0,
            BAND_BF16,
            "dense layer, no routing",
        )?;
        let logits = out.logits.ok_or("no logits")?.squeeze(0)?;
        let got = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let want = refs[&format!("{name}.logits")]
            .argmax(D::Minus1)?
            .to_vec1::<u32>()?;
        let agree =
            got.iter().zip(&want).filter(|(a, b)| a == b).count() as f64 / want.len() as f64;
        rep.at_least(
            &format!("bf16 {tag} tiny/{name} argmax agreement"),
            agree,
            min_agree,
        )?;
        let l2 = rel_l2(&logits, &refs[&format!("{name}.logits")])?;
        rep.note(
            &format!("bf16 {tag} tiny/{name} logits rel L2"),
            &format!("{l2:.3e} (routing flips; informative)"),
        )?;
    }
    Ok(())
}

/// Check 0: the fused CUDA decode kernels (attention with the in-place KV append, RMSNorm with
/// the residual add) against the candle ops on the same model: the tiny fixture (B = 1 across
/// the 256-position cache growth, B = 2), then two synthetic layers of the real shapes.
fn fused_decode_checks(
    rep: &mut Report,
    fixtures: &Path,
    dev: &Device,
    small: bool,
) -> AnyResult<()> {
    if !dev.is_cuda() {
        return rep.note("fused decode kernels", "not applicable on the CPU");
    }
    for dtype in [DType::F32, DType::BF16] {
        let (cfg, model) = load(&fixtures.join("tiny"), dtype, dev, MoeKernel::Fused)?;
        let vocab = cfg.text_config.vocab_size;
        for (b, t, steps) in [(1usize, 250usize, 12usize), (2, 37, 8)] {
            let ids: Vec<u32> = (0..b * t)
                .map(|i| ((i * 7919 + 13) % vocab) as u32)
                .collect();
            let embeds = model.embed(&Tensor::from_vec(ids, (b, t), dev)?)?;
            let positions = text_positions(b, 0, t, dev)?;
            let next = |len: usize| -> AnyResult<Tensor> { Ok(text_positions(b, len, 1, dev)?) };
            let d = fused_vs_candle(&model, &embeds, &positions, steps, &next)?;
            fused_report(
                rep,
                &format!("{dtype:?} tiny B={b} T={t}+{steps}"),
                dtype,
                &d,
            )?;
        }
    }
    let (t, steps) = if small { (40, 3) } else { (300, 4) };
    for dtype in [DType::BF16, DType::F32] {
        let cfg = folio_glm45v::checkpoint::synthetic::text_config(2)?;
        let vb = folio_glm45v::checkpoint::synthetic::var_builder(dtype, dev, 77)?;
        let mut model = TextModel::new(&cfg, vb)?;
        model.set_moe_kernel(MoeKernel::Fused);
        let embeds =
            (Tensor::randn(0f32, 1f32, (1, t, cfg.hidden_size), dev)? * 0.02)?.to_dtype(dtype)?;
        let positions = text_positions(1, 0, t, dev)?;
        let next = |len: usize| -> AnyResult<Tensor> { Ok(text_positions(1, len, 1, dev)?) };
        let d = fused_vs_candle(&model, &embeds, &positions, steps, &next)?;
        fused_report(
            rep,
            &format!("{dtype:?} real-shape 2 layers T={t}+{steps}"),
            dtype,
            &d,
        )?;
    }
    Ok(())
}

/// Check 0b: a long prefill (≥ 300 tokens, B = 1) and a few decode steps through the new
/// prefill paths (fused kernels on, MoE `Auto` → gathered MoE for the prefill and the fused
/// MoE for the steps) against the candle ops with the grouped MoE, on the tiny fixture and on
/// two synthetic layers of the real shapes.
fn prefill_path_checks(
    rep: &mut Report,
    fixtures: &Path,
    dev: &Device,
    small: bool,
) -> AnyResult<()> {
    if !dev.is_cuda() {
        return rep.note("prefill paths", "not applicable on the CPU");
    }
    let old = PathSpec {
        fused: false,
        moe: MoeKernel::Grouped,
    };
    let new = PathSpec {
        fused: true,
        moe: MoeKernel::Auto,
    };
    let (t, steps) = (300usize, 4usize);
    for dtype in [DType::F32, DType::BF16] {
        let r = (|| -> AnyResult<()> {
            let (cfg, mut model) = load(&fixtures.join("tiny"), dtype, dev, MoeKernel::Grouped)?;
            let vocab = cfg.text_config.vocab_size;
            let ids: Vec<u32> = (0..t).map(|i| ((i * 7919 + 13) % vocab) as u32).collect();
            let embeds = model.embed(&Tensor::from_vec(ids, (1, t), dev)?)?;
            let positions = text_positions(1, 0, t, dev)?;
            let next = |len: usize| -> AnyResult<Tensor> { Ok(text_positions(1, len, 1, dev)?) };
            let d = paths_diff(&mut model, old, new, &embeds, &positions, steps, &next)?;
            prefill_report(rep, &format!("{dtype:?} tiny B=1 T={t}+{steps}"), dtype, &d)
        })();
        rep.guard(&format!("prefill paths {dtype:?} tiny"), r)?;
    }
    let t = if small { 80 } else { t };
    for dtype in [DType::BF16, DType::F32] {
        let r = (|| -> AnyResult<()> {
            let cfg = folio_glm45v::checkpoint::synthetic::text_config(2)?;
            let vb = folio_glm45v::checkpoint::synthetic::var_builder(dtype, dev, 77)?;
            let mut model = TextModel::new(&cfg, vb)?;
            let embeds = (Tensor::randn(0f32, 1f32, (1, t, cfg.hidden_size), dev)? * 0.02)?
                .to_dtype(dtype)?;
            let positions = text_positions(1, 0, t, dev)?;
            let next = |len: usize| -> AnyResult<Tensor> { Ok(text_positions(1, len, 1, dev)?) };
            let d = paths_diff(&mut model, old, new, &embeds, &positions, 2, &next)?;
            prefill_report(
                rep,
                &format!("{dtype:?} real-shape 2 layers T={t}+2"),
                dtype,
                &d,
            )
        })();
        rep.guard(&format!("prefill paths {dtype:?} real-shape"), r)?;
    }
    Ok(())
}

/// Two paths on the same model (`group`: what is compared, `against`: the detail line's
/// description). f32: logits and layer 0 within 1e-4 (every layer, the MoE included, feeds the
/// logits); bf16: layer 0 within the two-path band, logits informative (a routing flip in a later
/// layer moves them by more than rounding).
fn paths_report(
    rep: &mut Report,
    group: &str,
    against: &str,
    what: &str,
    dtype: DType,
    d: &PathDiff,
) -> AnyResult<()> {
    let detail = format!("{} calls, {against}", d.steps);
    if dtype == DType::F32 {
        rep.check(
            &format!("{group} {what} logits"),
            d.rel_max,
            TOL_F32,
            &detail,
        )?;
        rep.check(
            &format!("{group} {what} layer-0 rel L2"),
            d.layer0_rel_l2,
            TOL_F32,
            &detail,
        )
    } else {
        rep.check(
            &format!("{group} {what} layer-0 rel L2"),
            d.layer0_rel_l2,
            common::fused::BF16_PATHS_BAND,
            &detail,
        )?;
        rep.note(
            &format!("{group} {what} logits"),
            &format!(
                "rel L2 {:.3e}, rel max {:.3e} (informative)",
                d.rel_l2, d.rel_max
            ),
        )
    }
}

fn prefill_report(rep: &mut Report, what: &str, dtype: DType, d: &PathDiff) -> AnyResult<()> {
    let against = "fused kernels + MoE auto vs candle ops + grouped";
    paths_report(rep, "prefill paths", against, what, dtype, d)
}

fn fused_report(rep: &mut Report, what: &str, dtype: DType, d: &PathDiff) -> AnyResult<()> {
    let against = "fused kernels vs candle ops";
    paths_report(rep, "fused decode", against, what, dtype, d)
}

/// The MoE kernels checked on `dev` (the fused one needs CUDA).
fn kernels_for(dev: &Device) -> Vec<(MoeKernel, &'static str)> {
    let mut k = vec![
        (MoeKernel::Grouped, "grouped"),
        (MoeKernel::Batched, "batched"),
    ];
    if dev.is_cuda() {
        k.push((MoeKernel::Fused, "fused"));
        k.push((MoeKernel::Gathered, "gathered"));
    }
    k
}

/// The MoE block config of check 3 (real, or shrunk for CPU dry runs).
fn moe_config(small: bool) -> AnyResult<TextConfig> {
    let mut cfg = folio_glm45v::checkpoint::synthetic::text_config(2)?;
    if small {
        cfg.hidden_size = 256;
        cfg.moe_intermediate_size = 128;
        cfg.n_routed_experts = 32;
        cfg.num_experts_per_tok = 4;
    }
    Ok(cfg)
}

/// f64 reference of one MoE block output for `x` [N, H] with a given routing (`vb` = `mlp`):
/// plain loops over host copies of the weights, tokens spread over the CPU cores.
fn moe_reference(
    vb: &candle_nn::VarBuilder,
    cfg: &TextConfig,
    x: &Tensor,
    choice: &RouterChoice,
) -> AnyResult<Tensor> {
    let (e, h, i) = (
        cfg.n_routed_experts,
        cfg.hidden_size,
        cfg.moe_intermediate_size,
    );
    let ve = vb.pp("experts");
    let fp8 = folio_glm45v::checkpoint::fp8::keeps_fp8(&ve.pp(0).pp("gate_proj"));
    let vs = vb.pp("shared_experts");
    let shared = (
        host_weight(&vs.pp("gate_proj"), i, h)?,
        host_weight(&vs.pp("up_proj"), i, h)?,
        host_weight(&vs.pp("down_proj"), h, i)?,
    );
    let stacks = if fp8 {
        None
    } else {
        Some((
            ve.get((e, 2 * i, h), "gate_up_proj")?,
            ve.get((e, h, i), "down_proj")?,
        ))
    };
    let mut experts: HashMap<u32, (Vec<f32>, Vec<f32>)> = HashMap::new();
    for &ex in &choice.experts {
        if let std::collections::hash_map::Entry::Vacant(slot) = experts.entry(ex) {
            let (gu, dn) = match &stacks {
                Some((gate_up, down)) => (
                    host_f32(gate_up.get(ex as usize)?)?,
                    host_f32(down.get(ex as usize)?)?,
                ),
                None => {
                    let vx = ve.pp(ex);
                    let mut gu = host_weight(&vx.pp("gate_proj"), i, h)?;
                    gu.extend(host_weight(&vx.pp("up_proj"), i, h)?);
                    (gu, host_weight(&vx.pp("down_proj"), h, i)?)
                }
            };
            slot.insert((gu, dn));
        }
    }
    let host = host_f32;
    let xs = host(x.clone())?;
    let n = xs.len() / h;
    let k = choice.top_k;
    // down · (silu(gate · x) ⊙ (up · x)) in f64; `gate`/`up` rows [i, h], `down` rows [h, i].
    let swiglu = |gate: &[f32], up: &[f32], dn: &[f32], x: &[f32], out: &mut [f64], w: f64| {
        let dot = |row: &[f32]| -> f64 {
            row.iter()
                .zip(x)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum()
        };
        let act: Vec<f64> = (0..i)
            .map(|r| {
                let g = dot(&gate[r * h..(r + 1) * h]);
                let u = dot(&up[r * h..(r + 1) * h]);
                g / (1.0 + (-g).exp()) * u
            })
            .collect();
        for (o, row) in out.iter_mut().zip(dn.chunks_exact(i)) {
            let y: f64 = row.iter().zip(&act).map(|(a, b)| f64::from(*a) * b).sum();
            *o += w * y;
        }
    };
    let mut result = vec![0f64; n * h];
    let threads = std::thread::available_parallelism()
        .map_or(4, |p| p.get())
        .min(n.max(1));
    let per = n.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        for (c, chunk) in result.chunks_mut(per * h).enumerate() {
            let (experts, shared, xs, swiglu) = (&experts, &shared, &xs, &swiglu);
            scope.spawn(move || {
                for (j, out) in chunk.chunks_mut(h).enumerate() {
                    let t = c * per + j;
                    let xt = &xs[t * h..(t + 1) * h];
                    swiglu(&shared.0, &shared.1, &shared.2, xt, out, 1.0);
                    for s in 0..k {
                        let ex = choice.experts[t * k + s];
                        let (gu, dn) = &experts[&ex];
                        let w = f64::from(choice.weights[t * k + s]);
                        swiglu(&gu[..i * h], &gu[i * h..], dn, xt, out, w);
                    }
                }
            });
        }
    });
    Ok(Tensor::from_vec(result, (n, h), &Device::Cpu)?)
}

/// A tensor's values on the host in f32.
fn host_f32(t: Tensor) -> AnyResult<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// The `weight` [rows, cols] of the linear module `vb` on the host in f32: as stored when
/// dense; when kept FP8, the stored bytes and scales copied to the host and widened there by
/// candle's CPU cast (independent of the CUDA kernels under test).
fn host_weight(vb: &candle_nn::VarBuilder, rows: usize, cols: usize) -> AnyResult<Vec<f32>> {
    use folio_glm45v::checkpoint::fp8;
    if !fp8::keeps_fp8(vb) {
        return host_f32(vb.get((rows, cols), "weight")?);
    }
    let (w, s) = fp8::load_pair(vb, "weight", &[rows, cols])?;
    let (w, s) = (w.to_device(&Device::Cpu)?, s.to_device(&Device::Cpu)?);
    host_f32(fp8::dequantize_per_channel(
        &w,
        &s.unsqueeze(1)?,
        DType::F32,
    )?)
}

/// f64 reference of `x` [n, k] · Wᵀ (+ b) for `w` [out, k] host rows, threads over tokens.
fn linear_reference(x: &[f32], w: &[f32], b: Option<&[f32]>, k: usize) -> Vec<f64> {
    let out = w.len() / k;
    let n = x.len() / k;
    let mut y = vec![0f64; n * out];
    let threads = std::thread::available_parallelism().map_or(4, |p| p.get());
    let per = (n * out).div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (c, chunk) in y.chunks_mut(per).enumerate() {
            scope.spawn(move || {
                for (j, v) in chunk.iter_mut().enumerate() {
                    let idx = c * per + j;
                    let (t, o) = (idx / out, idx % out);
                    let xr = &x[t * k..(t + 1) * k];
                    let wr = &w[o * k..(o + 1) * k];
                    let dot: f64 = xr
                        .iter()
                        .zip(wr)
                        .map(|(a, b)| f64::from(*a) * f64::from(*b))
                        .sum();
                    *v = dot + b.map_or(0.0, |b| f64::from(b[o]));
                }
            });
        }
    });
    y
}

/// The FP8 linear at the real q_proj shape (synthetic FP8 weights made on the device): for
/// 1, 8, 64 and 1,300 tokens (the GEMV up to 16 rows, the widened weight above), against an
/// f64 reference on the first 32 tokens and against candle's matmul with the dequantised
/// weight in the same dtype.
fn fp8_linear_checks(rep: &mut Report, dev: &Device, small: bool) -> AnyResult<()> {
    use folio_glm45v::decoder::linear::Proj;
    let (out_dim, in_dim) = if small { (384, 256) } else { (12_288, 4096) };
    let sizes: &[usize] = if small {
        &[1, 8, 40]
    } else {
        &[1, 8, 64, 1300]
    };
    for dtype in [DType::BF16, DType::F32] {
        let vb = folio_glm45v::checkpoint::synthetic::var_builder_fp8(dtype, dev, 99)?;
        let vq = vb.pp("model.language_model.layers.0.self_attn.q_proj");
        let proj = Proj::load(in_dim, out_dim, true, vq.clone())?;
        if !proj.is_fp8() {
            return Err("the synthetic q_proj did not load as FP8".into());
        }
        let w = host_weight(&vq, out_dim, in_dim)?;
        let bias = host_f32(vq.get(out_dim, "bias")?)?;
        let w_dev = Tensor::from_slice(&w, (out_dim, in_dim), dev)?.to_dtype(dtype)?;
        let b_dev = vq.get(out_dim, "bias")?;
        let limit = if dtype == DType::BF16 {
            FP8_LINEAR_BF16
        } else {
            TOL_F32
        };
        for &n in sizes {
            let x = Tensor::randn(0f32, 1f32, (n, in_dim), dev)?.to_dtype(dtype)?;
            let y = proj.forward(&x)?;
            let m = n.min(32);
            let xs = host_f32(x.narrow(0, 0, m)?)?;
            let want = Tensor::from_vec(
                linear_reference(&xs, &w, Some(&bias), in_dim),
                (m, out_dim),
                &Device::Cpu,
            )?;
            let path = if n <= 16 && dev.is_cuda() {
                "gemv"
            } else {
                "widened"
            };
            rep.check(
                &format!("fp8 linear {dtype:?} {path} N={n} vs f64"),
                rel_l2(&y.narrow(0, 0, m)?, &want)?,
                limit,
                &format!("[{out_dim} x {in_dim}], first {m} tokens"),
            )?;
            let deq = x.matmul(&w_dev.t()?)?.broadcast_add(&b_dev)?;
            rep.check(
                &format!("fp8 linear {dtype:?} {path} N={n} vs dequantised matmul"),
                rel_l2(&y, &deq)?,
                limit,
                "",
            )?;
        }
    }
    Ok(())
}

/// The MoE block with FP8 experts at the real shapes (the per-expert FP8 layout, loaded into
/// the stacked buffers) against the f64 reference with the kernel's own routing.
fn moe_real_shape_fp8_checks(rep: &mut Report, dev: &Device, small: bool) -> AnyResult<()> {
    let cfg = moe_config(small)?;
    let runs: Vec<(MoeKernel, &str, usize)> = if dev.is_cuda() {
        vec![
            (MoeKernel::Fused, "fused", 1),
            (MoeKernel::Fused, "fused", 8),
            (MoeKernel::Fused, "fused", 64),
            (MoeKernel::Gathered, "gathered", 64),
            (MoeKernel::Gathered, "gathered", 300),
        ]
    } else {
        vec![(MoeKernel::Grouped, "grouped", 8)]
    };
    for dtype in [DType::BF16, DType::F32] {
        let vb = folio_glm45v::checkpoint::synthetic::var_builder_fp8(dtype, dev, 4321)?;
        let vm = vb.pp("model.language_model.layers.1.mlp");
        let mut moe = Moe::new(&cfg, vm.clone())?;
        let limit = if dtype == DType::BF16 {
            BAND_BF16
        } else {
            TOL_F32
        };
        for &(kernel, tag, n) in &runs {
            if dtype == DType::F32 && n > 64 {
                continue; // the f64 reference of 300 tokens is minutes of host time
            }
            let x = Tensor::randn(0f32, 1f32, (1, n, cfg.hidden_size), dev)?.to_dtype(dtype)?;
            moe.set_kernel(kernel);
            let (y, choice) = moe.forward(&x, true)?;
            let choice = choice.ok_or("no router record")?;
            let reference = moe_reference(&vm, &cfg, &x.squeeze(0)?, &choice)?;
            rep.check(
                &format!("fp8 moe {dtype:?} {tag} real-shape N={n} vs f64"),
                rel_l2(&y.squeeze(0)?, &reference)?,
                limit,
                &format!(
                    "H={} E={} I={}",
                    cfg.hidden_size, cfg.n_routed_experts, cfg.moe_intermediate_size
                ),
            )?;
        }
    }
    Ok(())
}

/// The tiny FP8 fixture with its weights kept FP8 on the device: f32 logits against
/// transformers' reference (≤ 1e-4, as every f32 fixture check), the 16 greedy ids of the
/// chat prompt decoded with the KV cache, and the bf16-compute logits' error against the f32
/// reference (reported: routing flips dominate bf16 on this random model).
fn fp8_fixture_checks(rep: &mut Report, fixtures: &Path, dev: &Device) -> AnyResult<()> {
    let dir = fixtures.join("tiny-fp8");
    let cfg = ModelConfig::load(&dir.join("config.json"))?;
    let refs = candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu)?;
    for dtype in [DType::F32, DType::BF16] {
        let vb = Checkpoint::open(&dir)?.var_builder_fp8(
            dtype,
            dev,
            cfg.quantization_config.as_ref(),
        )?;
        let model = TextModel::new(&cfg.text_config, vb)?;
        for name in ["chat", "raw"] {
            let (embeds, positions) =
                text_inputs(&model, &ids(&refs[&format!("{name}.input_ids")])?)?;
            let out = run_all(&model, &embeds, &positions)?;
            let logits = out.logits.ok_or("no logits")?.squeeze(0)?;
            let d = rel_max_diff(&logits, &refs[&format!("{name}.logits")])?;
            if dtype == DType::F32 {
                rep.check(
                    &format!("fp8 fixture f32 resident {name} logits"),
                    d,
                    TOL_F32,
                    "",
                )?;
            } else {
                rep.note(
                    &format!("fp8 fixture bf16 resident {name} logits"),
                    &format!("rel max diff {d:.3e} vs the f32 reference"),
                )?;
            }
        }
        let prompt = ids(&refs["chat.input_ids"])?;
        let want = ids(&refs["chat.greedy"])?;
        let got = greedy_ids(&model, &prompt, want.len())?;
        let same = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        if dtype == DType::F32 {
            rep.at_least(
                "fp8 fixture f32 resident greedy ids (leading tokens equal)",
                same as f64,
                want.len() as f64,
            )?;
        } else {
            rep.note(
                "fp8 fixture bf16 resident greedy ids",
                &format!("{same} of {} leading tokens equal", want.len()),
            )?;
        }
    }
    Ok(())
}

/// Greedy decoding of `n` tokens after `prompt` with the KV cache (prefill, then one token per
/// step).
fn greedy_ids(model: &TextModel, prompt: &[u32], n: usize) -> AnyResult<Vec<u32>> {
    let dev = model.device();
    let mut cache = model.new_cache();
    let mut out = Vec::with_capacity(n);
    let (mut embeds, mut positions) = text_inputs(model, prompt)?;
    for _ in 0..n {
        let input = DecoderInput {
            embeds: &embeds,
            positions: &positions,
            logits: LogitsSelection::Last,
            record: Record::default(),
        };
        let logits = model
            .forward(input, &mut cache)?
            .logits
            .ok_or("no logits")?;
        let next = logits.flatten_all()?.argmax(0)?.to_scalar::<u32>()?;
        out.push(next);
        let t = Tensor::new(&[[next]], dev)?;
        embeds = model.embed(&t)?;
        positions = text_positions(1, cache.seq_len(), 1, dev)?;
    }
    Ok(out)
}

fn moe_real_shape_checks(
    rep: &mut Report,
    dev: &Device,
    small: bool,
    cases: &[(DType, usize)],
) -> AnyResult<()> {
    let cfg = moe_config(small)?;
    let kernels = kernels_for(dev);
    for dtype in [DType::F32, DType::BF16] {
        let sizes: Vec<usize> = cases
            .iter()
            .filter(|(d, _)| *d == dtype)
            .map(|(_, n)| *n)
            .collect();
        if sizes.is_empty() {
            continue;
        }
        let vb = folio_glm45v::checkpoint::synthetic::var_builder(dtype, dev, 1234)?;
        let mut moe = Moe::new(&cfg, vb.pp("mlp"))?;
        let limit = if dtype == DType::BF16 {
            BAND_BF16
        } else {
            TOL_F32
        };
        for &n in &sizes {
            // Fresh inputs per size: unit-variance rows like normed hidden states.
            let x = Tensor::randn(0f32, 1f32, (1, n, cfg.hidden_size), dev)?.to_dtype(dtype)?;
            let mut choices = Vec::new();
            for (kernel, tag) in &kernels {
                moe.set_kernel(*kernel);
                let (y, choice) = moe.forward(&x, true)?;
                let choice = choice.ok_or("no router record")?;
                let reference = moe_reference(&vb.pp("mlp"), &cfg, &x.squeeze(0)?, &choice)?;
                let err = rel_l2(&y.squeeze(0)?, &reference)?;
                rep.check(
                    &format!("moe {dtype:?} {tag} real-shape N={n} vs f64"),
                    err,
                    limit,
                    &format!(
                        "H={} E={} I={}",
                        cfg.hidden_size, cfg.n_routed_experts, cfg.moe_intermediate_size
                    ),
                )?;
                choices.push(choice);
            }
            if let Some(fused) = kernels.iter().position(|(k, _)| *k == MoeKernel::Fused) {
                let (host, device) = (&choices[0], &choices[fused]);
                let same = (0..n)
                    .filter(|&t| {
                        sorted_choice(host, t)
                            .iter()
                            .map(|p| p.0)
                            .eq(sorted_choice(device, t).iter().map(|p| p.0))
                    })
                    .count();
                let wd = (0..n)
                    .flat_map(|t| {
                        sorted_choice(host, t)
                            .into_iter()
                            .zip(sorted_choice(device, t))
                            .map(|(a, b)| f64::from((a.1 - b.1).abs()))
                            .collect::<Vec<_>>()
                    })
                    .fold(0f64, f64::max);
                rep.check(
                    &format!("moe {dtype:?} N={n} device vs host routing: tokens differing"),
                    (n - same) as f64,
                    0.0,
                    "",
                )?;
                rep.check(
                    &format!("moe {dtype:?} N={n} device vs host routing: weight diff"),
                    wd,
                    1e-5,
                    "",
                )?;
            }
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("gpu_parity: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> AnyResult<bool> {
    let mut args = Args::from_env();
    let cpu = args.flag("--cpu");
    let small = args.flag("--small");
    let only_fused = args.flag("--only-fused");
    let only_fp8 = args.flag("--only-fp8");
    let fixtures = PathBuf::from(
        args.value("--fixtures")?
            .unwrap_or_else(|| "workers/glm45v/tests/fixtures".into()),
    );
    let out = args.value("--out")?;
    args.finish()?;
    let dev = common::device(cpu)?;
    let mut rep = Report {
        lines: JsonLines::open(out.as_deref())?,
        failed: Vec::new(),
    };
    println!("device: {dev:?}");
    if !dev.is_cuda() {
        rep.note("fused MoE kernel", "not applicable on the CPU")?;
    }
    let r = fp8_linear_checks(&mut rep, &dev, small);
    rep.guard("fp8 linear", r)?;
    let r = moe_real_shape_fp8_checks(&mut rep, &dev, small);
    rep.guard("fp8 moe real-shape", r)?;
    let r = fp8_fixture_checks(&mut rep, &fixtures, &dev);
    rep.guard("fp8 fixture", r)?;
    if only_fp8 {
        return Ok(finish(&rep));
    }
    let r = fused_decode_checks(&mut rep, &fixtures, &dev, small);
    rep.guard("fused decode kernels", r)?;
    let r = prefill_path_checks(&mut rep, &fixtures, &dev, small);
    rep.guard("prefill paths", r)?;
    let r = batched_generation_checks(&mut rep, &fixtures, &dev);
    rep.guard("batched generation", r)?;
    if only_fused {
        return Ok(finish(&rep));
    }
    // The f32 real-shape MoE case of 8 tokens first: it was not reached in session D.
    let r = moe_real_shape_checks(&mut rep, &dev, small, &[(DType::F32, 8)]);
    rep.guard("moe real-shape f32 N=8", r)?;
    for (kernel, tag) in kernels_for(&dev) {
        let r = f32_fixture_checks(&mut rep, &fixtures, &dev, kernel, tag);
        rep.guard(&format!("f32 {tag} fixtures"), r)?;
        let r = bf16_fixture_checks(&mut rep, &fixtures, &dev, kernel, tag);
        rep.guard(&format!("bf16 {tag} fixtures"), r)?;
    }
    let cases = [
        (DType::BF16, 1),
        (DType::BF16, 8),
        (DType::BF16, 64),
        (DType::F32, 1),
    ];
    let r = moe_real_shape_checks(&mut rep, &dev, small, &cases);
    rep.guard("moe real-shape", r)?;
    rep.note(
        "vision tower",
        "checked by scripts/gpu/vision_bench.py (ONNX export on ORT's CUDA EP vs transformers fp32)",
    )?;
    Ok(finish(&rep))
}

/// Batched generation across pages (`batch::generate_batch`, the engine's path: ragged decode
/// with one fused attention launch pair per sequence over its own KV cache) against each prompt
/// generated alone (`generation::generate`: the batch-1 fused path), f32 greedy on the tiny
/// fixture, prompts of different lengths: every sequence's tokens must be identical.
fn batched_generation_checks(rep: &mut Report, fixtures: &Path, dev: &Device) -> AnyResult<()> {
    use folio_glm45v::generate::batch::{generate_batch, BatchOptions, BatchRequest};
    use folio_glm45v::generate::{generate, Flow, GenerationParams, Prompt};
    let (cfg, model) = load(&fixtures.join("tiny"), DType::F32, dev, MoeKernel::Auto)?;
    let vocab = cfg.text_config.vocab_size as u32;
    // Deterministic prompts of 5, 37 and 260 tokens (the last crosses the cache's first doubling).
    let prompts: Vec<Vec<u32>> = [5usize, 37, 260]
        .iter()
        .enumerate()
        .map(|(p, &len)| {
            (0..len)
                .map(|i| ((i * 7919 + p * 104_729 + 13) as u32) % vocab)
                .collect()
        })
        .collect();
    let params = GenerationParams::greedy(12, Vec::new());
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|ids| {
            generate(
                &model,
                &Prompt::text(ids.clone()),
                &params,
                None,
                &mut |_| Flow::Continue,
            )
            .map(|g| g.tokens)
        })
        .collect::<Result<_, _>>()?;
    let requests = prompts
        .iter()
        .map(|ids| BatchRequest::new(Prompt::text(ids.clone()), params.clone()))
        .collect();
    let opts = BatchOptions {
        max_batch: prompts.len(),
        max_tokens_in_flight: 4096,
    };
    let batched = generate_batch(&model, requests, &opts, &mut |_, _| Flow::Continue)?;
    let mut differing = 0usize;
    for (a, b) in alone.iter().zip(batched) {
        if *a != b?.tokens {
            differing += 1;
        }
    }
    rep.check(
        "batched generation F32 tiny 3 prompts (5/37/260 tokens) + 12: sequences differing from alone",
        differing as f64,
        0.0,
        "generate_batch (ragged decode) vs generate, greedy",
    )
}

/// Prints the verdict; true when every check passed.
fn finish(rep: &Report) -> bool {
    if rep.failed.is_empty() {
        println!("parity: all checks passed");
        true
    } else {
        println!("parity: {} FAILED: {:?}", rep.failed.len(), rep.failed);
        false
    }
}
