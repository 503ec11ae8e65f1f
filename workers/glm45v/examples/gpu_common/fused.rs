//! The fused CUDA decode kernels (`folio_glm45v::kernels`) against the candle path on the same
//! model and inputs: used by `gpu_parity` (checks) and by `gpu_bench`/`gpu_pages` (a self-check
//! that switches the kernels off when they disagree, so the benchmarks still measure).

use candle_core::{Tensor, D};
use folio_glm45v::decoder::moe::MoeKernel;
use folio_glm45v::decoder::text_model::{DecoderInput, LogitsSelection, Record, TextModel};
use folio_glm45v::kernels::set_fused_enabled;

use super::{rel_l2, rel_max_diff, AnyResult};

/// Worst differences of the fused path against the candle path over a prefill and its decode
/// steps: (rel L2, rel max diff), each the largest over the steps.
#[derive(Debug, Clone, Copy, Default)]
pub struct PathDiff {
    /// Logits (the last position of each forward call).
    pub rel_l2: f64,
    pub rel_max: f64,
    /// Output of layer 0 (every position of each call): attention and norms without routing.
    pub layer0_rel_l2: f64,
    pub steps: usize,
}

/// Largest layer-0 ‖fused − candle‖ / ‖candle‖ accepted when BOTH paths run in bf16. Each path
/// alone is within METHOD.md's bf16 band (≤ 1e-2) of the exact function; two such approximations
/// with different rounding orders (the fused kernels accumulate in f32 and round once, candle
/// rounds after every op) can differ by up to the sum of their errors, hence 2 × 1e-2. That they
/// compute the same function is checked separately in f32, at ≤ 1e-4.
pub const BF16_PATHS_BAND: f64 = 2e-2;

/// Prefill of `embeds` [B, T, hidden] at `positions` [3, B, T], then `steps` decode steps; the
/// tokens fed back are the candle path's greedy choices (the same for both paths).
/// `next_positions(cache_len)` gives the [3, B, 1] positions of the next step. Leaves the
/// fused kernels switched on.
pub fn fused_vs_candle(
    model: &TextModel,
    embeds: &Tensor,
    positions: &Tensor,
    steps: usize,
    next_positions: &dyn Fn(usize) -> AnyResult<Tensor>,
) -> AnyResult<PathDiff> {
    set_fused_enabled(false);
    let old = run(model, embeds, positions, steps, next_positions, None);
    let old = match old {
        Ok(o) => o,
        Err(e) => {
            set_fused_enabled(true);
            return Err(e);
        }
    };
    set_fused_enabled(true);
    replay_and_diff(model, &old, embeds, positions, steps, next_positions)
}

/// One way of running the decoder: the fused CUDA kernels on or off, and the MoE kernel.
#[derive(Debug, Clone, Copy)]
pub struct PathSpec {
    pub fused: bool,
    pub moe: MoeKernel,
}

/// Like [`fused_vs_candle`] between two arbitrary paths (e.g. the candle ops with the grouped
/// MoE against the fused kernels with `Auto`, which takes the gathered MoE for a long prefill).
/// Leaves the model and the switch on the `new` path.
#[allow(clippy::too_many_arguments)]
pub fn paths_diff(
    model: &mut TextModel,
    old: PathSpec,
    new: PathSpec,
    embeds: &Tensor,
    positions: &Tensor,
    steps: usize,
    next_positions: &dyn Fn(usize) -> AnyResult<Tensor>,
) -> AnyResult<PathDiff> {
    set_fused_enabled(old.fused);
    model.set_moe_kernel(old.moe);
    let before = run(model, embeds, positions, steps, next_positions, None);
    set_fused_enabled(new.fused);
    model.set_moe_kernel(new.moe);
    replay_and_diff(model, &before?, embeds, positions, steps, next_positions)
}

/// Runs the model's current path with `before`'s tokens forced (same inputs step for step) and
/// compares the two runs.
fn replay_and_diff(
    model: &TextModel,
    before: &[Step],
    embeds: &Tensor,
    positions: &Tensor,
    steps: usize,
    next_positions: &dyn Fn(usize) -> AnyResult<Tensor>,
) -> AnyResult<PathDiff> {
    let tokens: Vec<Vec<u32>> = before.iter().map(|s| s.tokens.clone()).collect();
    let after = run(
        model,
        embeds,
        positions,
        steps,
        next_positions,
        Some(&tokens),
    )?;
    diff_steps(&after, before)
}

/// Worst differences of `new` against `old`, step by step.
fn diff_steps(new: &[Step], old: &[Step]) -> AnyResult<PathDiff> {
    let mut diff = PathDiff {
        steps: new.len(),
        ..PathDiff::default()
    };
    for (a, b) in new.iter().zip(old) {
        diff.rel_l2 = diff.rel_l2.max(rel_l2(&a.logits, &b.logits)?);
        diff.rel_max = diff.rel_max.max(rel_max_diff(&a.logits, &b.logits)?);
        diff.layer0_rel_l2 = diff.layer0_rel_l2.max(rel_l2(&a.layer0, &b.layer0)?);
    }
    Ok(diff)
}

/// One forward call's outputs.
struct Step {
    logits: Tensor,
    layer0: Tensor,
    tokens: Vec<u32>,
}

/// Logits [B, V] and layer-0 output of the prefill and each step, with the tokens fed next.
fn run(
    model: &TextModel,
    embeds: &Tensor,
    positions: &Tensor,
    steps: usize,
    next_positions: &dyn Fn(usize) -> AnyResult<Tensor>,
    forced: Option<&[Vec<u32>]>,
) -> AnyResult<Vec<Step>> {
    let mut cache = model.new_cache();
    let mut out = Vec::with_capacity(steps + 1);
    let mut e = embeds.clone();
    let mut p = positions.clone();
    for step in 0..=steps {
        let input = DecoderInput {
            embeds: &e,
            positions: &p,
            logits: LogitsSelection::Last,
            record: Record {
                hidden_states: true,
                router: false,
            },
        };
        let o = model.forward(input, &mut cache)?;
        let logits = o.logits.ok_or("no logits")?.squeeze(1)?;
        let layer0 = o.layer_hidden.first().ok_or("no layer output")?.clone();
        let greedy = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let next = match forced {
            Some(f) => f.get(step).cloned().ok_or("forced tokens too short")?,
            None => greedy,
        };
        out.push(Step {
            logits,
            layer0,
            tokens: next.clone(),
        });
        if step < steps {
            let b = next.len();
            e = model.embed(&Tensor::from_vec(next, (b, 1), model.device())?)?;
            p = next_positions(cache.seq_len())?;
        }
    }
    Ok(out)
}

/// The fused decode kernels against candle's ops on this model: a 64-token random prompt, then
/// `steps` decode steps. `(agree, detail)`: they agree when layer 0 is inside
/// [`BF16_PATHS_BAND`] and the logits are finite.
pub fn self_check(
    model: &TextModel,
    dev: &candle_core::Device,
    steps: usize,
) -> AnyResult<(bool, String)> {
    use folio_glm45v::decoder::mrope::text_positions;
    let t = 64;
    let embeds = (Tensor::randn(0f32, 1f32, (1, t, model.hidden_size()), dev)? * 0.02)?
        .to_dtype(model.dtype())?;
    let positions = text_positions(1, 0, t, dev)?;
    let next = |len: usize| -> AnyResult<Tensor> { Ok(text_positions(1, len, 1, dev)?) };
    Ok(
        match fused_vs_candle(model, &embeds, &positions, steps, &next) {
            Ok(d) => (
                d.layer0_rel_l2 <= BF16_PATHS_BAND && d.rel_l2.is_finite(),
                format!(
                    "layer-0 rel L2 {:.3e}, logits rel L2 {:.3e}",
                    d.layer0_rel_l2, d.rel_l2
                ),
            ),
            Err(e) => (false, format!("error: {e}")),
        },
    )
}
