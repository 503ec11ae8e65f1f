//! Mixture-of-experts block of layers ≥ `first_k_dense_replace` (spec §2.5).
//!
//! Router (`mlp.gate`), all in f32: `s = sigmoid(h Wg^T)`; experts are *chosen* on
//! `s + e_score_correction_bias`, group-limited (keep the `topk_group` groups whose top-2 sum is
//! largest), top-k; the *weights* are the un-biased `s` of the chosen experts, normalised when
//! `norm_topk_prob`, times `routed_scaling_factor`. Output = Σ_k w_k·expert_k(h) + shared(h).
//!
//! Three kernels ([`MoeKernel`]). `Grouped` (every device): tokens are bucketed per expert
//! (routing is read back to the host, one small [N, E] copy per layer), each expert does one
//! matmul over its bucket, and results are scattered back with `index_add` in expert order.
//! `Fused` (CUDA, f32/bf16; `moe/cuda.rs`): routing, bucketing and the experts run on the device
//! as five launches with no host round trip — one grouped GEMV over every (token, expert) pair
//! for gate/up, SiLU·up, one for down with the routing weight — for decode-sized batches.
//! `Batched` (`moe/batched.rs`): host routing, padded buckets, two batched GEMMs (an experiment
//! for prefill; measured slower than `Grouped` on the H200, see docs/gpu-notes.md).
//! `Gathered` (CUDA, f32/bf16; `moe/gather.rs`): device routing, each expert's rows packed on
//! the device, two strided-batched GEMMs, and a gather-based combine (each token reads its k
//! rows once; no scatter) — for prefill-sized batches.
//! Expert parallelism (`decoder/parallel`): a block may hold a contiguous part of the experts
//! ([`Moe::load_part`]); it still routes every token, runs only its experts (`Grouped` or
//! `Batched`) and returns its partial sum, which the ranks add up with one all-reduce.
//! Both checkpoint layouts load into stacked [E, 2I, H] / [E, H, I] tensors, dense or FP8 with
//! per-row scales (`weights.rs`). FP8 experts stay FP8: the fused kernel widens them in
//! registers (`kernels/fp8.cu`), `Gathered` and `Batched` widen the block's stacks for the call,
//! `Grouped` widens each active expert.

use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;

use crate::checkpoint::config::TextConfig;
use crate::decoder::layers::SwiGlu;
use crate::error::{Error, Result};

mod batched;
#[cfg(feature = "cuda")]
mod cuda;
#[cfg(feature = "cuda")]
mod gather;
mod weights;

pub use weights::ExpertWeights;

/// Largest token count that [`MoeKernel::Auto`] sends to the fused kernel.
pub const FUSED_MAX_TOKENS: usize = 64;

/// How the routed experts of an MoE block run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MoeKernel {
    /// Host routing, one matmul chain per active expert (every device; the reference path).
    Grouped,
    /// Device routing and grouped GEMVs without a host round trip (CUDA, f32/bf16 only; an
    /// error elsewhere).
    Fused,
    /// Host routing, buckets padded to the largest, two batched GEMMs over all experts
    /// (`moe/batched.rs`; every device). Measured slower than `Grouped` for the 1,300-token
    /// prefill on the H200 (docs/gpu-notes.md), so `Auto` does not pick it.
    Batched,
    /// Device routing, rows packed per expert on the device, two strided-batched GEMMs over
    /// all experts, gather-based combine with the shared expert (`moe/gather.rs`; CUDA,
    /// f32/bf16 only; an error elsewhere). One small device→host copy (bucket sizes) per layer.
    Gathered,
    /// On CUDA (f32/bf16): `Fused` for at most [`FUSED_MAX_TOKENS`] tokens, else `Gathered`.
    /// Elsewhere: `Grouped`.
    #[default]
    Auto,
}

/// The experts chosen for each token and their weights, row-major [tokens, top_k].
#[derive(Debug, Clone, PartialEq)]
pub struct RouterChoice {
    pub top_k: usize,
    pub experts: Vec<u32>,
    pub weights: Vec<f32>,
}

/// Router parameters (`mlp.gate.weight` f32 and `mlp.gate.e_score_correction_bias` f32).
#[derive(Debug, Clone)]
pub struct Router {
    weight: Tensor,
    bias: Vec<f32>,
    /// The same correction bias on the weights' device (for the fused kernel).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    bias_device: Tensor,
    n_experts: usize,
    top_k: usize,
    n_group: usize,
    topk_group: usize,
    norm_topk_prob: bool,
    scaling: f32,
}

impl Router {
    /// Loads the router under `vb` (= `mlp.gate`), always in f32.
    pub fn new(cfg: &TextConfig, vb: VarBuilder) -> Result<Self> {
        let (e, h) = (cfg.n_routed_experts, cfg.hidden_size);
        let vb = vb.to_dtype(DType::F32);
        let weight = vb.get((e, h), "weight")?;
        let bias_device = vb.get(e, "e_score_correction_bias")?;
        let bias = bias_device.to_vec1::<f32>()?;
        Ok(Self {
            weight,
            bias,
            bias_device,
            n_experts: e,
            top_k: cfg.num_experts_per_tok,
            n_group: cfg.n_group,
            topk_group: cfg.topk_group,
            norm_topk_prob: cfg.norm_topk_prob,
            scaling: cfg.routed_scaling_factor as f32,
        })
    }

    /// Routes `x` [N, H] → chosen experts and weights.
    pub fn route(&self, x: &Tensor) -> Result<RouterChoice> {
        let logits = x.to_dtype(DType::F32)?.matmul(&self.weight.t()?)?;
        let scores = candle_nn::ops::sigmoid(&logits)?;
        let scores = scores.flatten_all()?.to_vec1::<f32>()?;
        Ok(self.select(&scores))
    }

    /// Selection on host scores [N·E] (separate for unit tests).
    fn select(&self, scores: &[f32]) -> RouterChoice {
        let (e, k) = (self.n_experts, self.top_k);
        let per_group = e / self.n_group;
        let n = scores.len() / e;
        let mut experts = Vec::with_capacity(n * k);
        let mut weights = Vec::with_capacity(n * k);
        let by_value_desc =
            |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        for row in scores.chunks_exact(e) {
            let choice: Vec<f32> = row.iter().zip(&self.bias).map(|(s, b)| s + b).collect();
            let mut allowed = vec![true; e];
            if self.n_group > 1 {
                let mut groups: Vec<(usize, f32)> = (0..self.n_group)
                    .map(|g| {
                        let mut v: Vec<f32> = choice[g * per_group..(g + 1) * per_group].to_vec();
                        v.sort_by(|a, b| b.total_cmp(a));
                        (g, v.iter().take(2).sum())
                    })
                    .collect();
                groups.sort_by(by_value_desc);
                allowed = vec![false; e];
                for &(g, _) in groups.iter().take(self.topk_group) {
                    allowed[g * per_group..(g + 1) * per_group].fill(true);
                }
            }
            let mut ranked: Vec<(usize, f32)> = choice
                .iter()
                .enumerate()
                .filter(|(i, _)| allowed[*i])
                .map(|(i, &c)| (i, c))
                .collect();
            ranked.sort_by(by_value_desc);
            let chosen: Vec<usize> = ranked.iter().take(k).map(|&(i, _)| i).collect();
            let mut w: Vec<f32> = chosen.iter().map(|&i| row[i]).collect();
            if self.norm_topk_prob {
                let denom = w.iter().sum::<f32>() + 1e-20;
                w.iter_mut().for_each(|x| *x /= denom);
            }
            w.iter_mut().for_each(|x| *x *= self.scaling);
            experts.extend(chosen.iter().map(|&i| i as u32));
            weights.extend(w);
        }
        RouterChoice {
            top_k: k,
            experts,
            weights,
        }
    }
}

/// One routed expert with gate and up fused: `gate_up` [2I, H], `down` [H, I] (views of the
/// block's stacked tensors, or widened from FP8 for one call).
#[derive(Debug, Clone)]
struct Expert {
    gate_up: Tensor,
    down: Tensor,
    inter: usize,
}

impl Expert {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = x.matmul(&self.gate_up.t()?)?;
        let gate = h.narrow(D::Minus1, 0, self.inter)?.silu()?;
        let up = h.narrow(D::Minus1, self.inter, self.inter)?;
        Ok((gate * up)?.matmul(&self.down.t()?)?)
    }
}

/// The MoE block (`mlp.*` of an MoE layer).
#[derive(Debug, Clone)]
pub struct Moe {
    router: Router,
    /// The held experts' gate/up [E', 2I, H] and down [E', H, I] (dense or FP8): all E of
    /// them, or one rank's part under expert parallelism.
    experts: ExpertWeights,
    /// Global index of `experts`' first expert (0 unless expert-parallel).
    first_expert: usize,
    shared: SwiGlu,
    kernel: MoeKernel,
}

impl Moe {
    /// Loads router, experts (either layout) and the shared expert under `vb` (= `mlp`).
    pub fn new(cfg: &TextConfig, vb: VarBuilder) -> Result<Self> {
        let shared = cfg.moe_intermediate_size * cfg.n_shared_experts;
        Self::load_part(cfg, vb, 0..cfg.n_routed_experts, shared)
    }

    /// One rank's part of the block (`decoder/parallel`): the router whole (every rank routes
    /// every token the same way), the routed experts `experts` only, and a shared expert of
    /// `shared_intermediate` rows (a tensor-parallel slice when `vb` is a sharded checkpoint's).
    /// [`Moe::forward`] then returns this rank's partial sum: the held experts' contributions
    /// for the tokens routed to them plus the shared slice's.
    pub fn load_part(
        cfg: &TextConfig,
        vb: VarBuilder,
        experts: std::ops::Range<usize>,
        shared_intermediate: usize,
    ) -> Result<Self> {
        let router = Router::new(cfg, vb.pp("gate"))?;
        let first_expert = experts.start;
        let experts = ExpertWeights::load(cfg, &vb.pp("experts"), experts)?;
        let shared = SwiGlu::new(
            cfg.hidden_size,
            shared_intermediate,
            vb.pp("shared_experts"),
        )?;
        Ok(Self {
            router,
            experts,
            first_expert,
            shared,
            kernel: MoeKernel::default(),
        })
    }

    /// True when the block holds only part of the routed experts (expert parallelism).
    fn is_partial(&self) -> Result<bool> {
        Ok(self.experts.dims()?.0 != self.router.n_experts)
    }

    /// Chooses how the routed experts run from now on.
    pub fn set_kernel(&mut self, kernel: MoeKernel) {
        self.kernel = kernel;
    }

    /// `x` [B, T, H] → ([B, T, H], routing of the B·T tokens when `record`).
    pub fn forward(&self, x: &Tensor, record: bool) -> Result<(Tensor, Option<RouterChoice>)> {
        let (b, t, h) = x.dims3()?;
        let flat = x.reshape((b * t, h))?;
        let partial = self.is_partial()?;
        let kernel = match self.kernel {
            // The device-routed kernels index the full expert stack: not with a part of it.
            MoeKernel::Auto if partial => MoeKernel::Grouped,
            MoeKernel::Auto if self.fused_supported(&flat) && b * t <= FUSED_MAX_TOKENS => {
                MoeKernel::Fused
            }
            MoeKernel::Auto if self.fused_supported(&flat) => MoeKernel::Gathered,
            MoeKernel::Auto => MoeKernel::Grouped,
            other => other,
        };
        if matches!(kernel, MoeKernel::Fused | MoeKernel::Gathered) {
            if partial {
                return Err(Error::InvalidInput(format!(
                    "the {kernel:?} MoE kernel needs every expert; this block holds experts from {} of {} (expert parallel): use Grouped, Batched or Auto",
                    self.first_expert, self.router.n_experts
                )));
            }
            let gathered = kernel == MoeKernel::Gathered;
            let (out, choice) = self.forward_fused(&flat, record, gathered)?;
            return Ok((out.reshape((b, t, h))?, choice));
        }
        let choice = self.router.route(&flat)?;
        let (held, _, _) = self.experts.dims()?;
        let inter = self.expert_inter()?;
        // Buckets of the held experts only (local index); tokens routed elsewhere are another
        // rank's work.
        let mut tokens: Vec<Vec<u32>> = vec![Vec::new(); held];
        let mut weights: Vec<Vec<f32>> = vec![Vec::new(); held];
        for (slot, (&ex, &w)) in choice.experts.iter().zip(&choice.weights).enumerate() {
            let ex = ex as usize;
            if ex >= self.router.n_experts {
                return Err(Error::InvalidInput(format!("router chose expert {ex}")));
            }
            let Some(bucket) = ex.checked_sub(self.first_expert).filter(|&l| l < held) else {
                continue;
            };
            tokens[bucket].push((slot / choice.top_k) as u32);
            weights[bucket].push(w);
        }
        if kernel == MoeKernel::Batched {
            let (gate_up, down) = self.experts.dense(x.dtype())?;
            let routed = batched::experts(&flat, &tokens, &weights, &gate_up, &down)?;
            let out = (routed.to_dtype(x.dtype())? + self.shared.forward(&flat)?)?;
            return Ok((out.reshape((b, t, h))?, record.then_some(choice)));
        }
        let mut out = flat.zeros_like()?;
        for ex in 0..held {
            if tokens[ex].is_empty() {
                continue;
            }
            let (gate_up, down) = self.experts.expert(ex, x.dtype())?;
            let expert = Expert {
                gate_up,
                down,
                inter,
            };
            let n = tokens[ex].len();
            let idx = Tensor::from_slice(&tokens[ex], n, x.device())?;
            let w = Tensor::from_slice(&weights[ex], (n, 1), x.device())?;
            let y = expert.forward(&flat.index_select(&idx, 0)?)?;
            let y = y
                .to_dtype(DType::F32)?
                .broadcast_mul(&w)?
                .to_dtype(x.dtype())?;
            out = out.index_add(&idx, &y, 0)?;
        }
        let out = (out + self.shared.forward(&flat)?)?;
        Ok((out.reshape((b, t, h))?, record.then_some(choice)))
    }

    /// I of the routed experts (half the gate/up rows).
    fn expert_inter(&self) -> Result<usize> {
        Ok(self.experts.dims()?.1 / 2)
    }

    /// Bytes of the routed experts held on the device (all of them, or a rank's part).
    pub fn expert_bytes(&self) -> usize {
        self.experts.resident_bytes()
    }

    /// Bytes of the block's weights on the device (router, experts, shared expert).
    pub fn resident_bytes(&self) -> usize {
        let b = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        b(&self.router.weight)
            + b(&self.router.bias_device)
            + self.experts.resident_bytes()
            + self.shared.resident_bytes()
    }

    #[cfg(feature = "cuda")]
    fn fused_supported(&self, flat: &Tensor) -> bool {
        let (_, two_i, h) = self.experts.dims().unwrap_or((0, 1, 1));
        cuda::supported(flat, &self.router, h, two_i / 2)
    }

    #[cfg(not(feature = "cuda"))]
    fn fused_supported(&self, _flat: &Tensor) -> bool {
        false
    }

    /// The device-routed paths on `flat` [N, H]: device router, then either the grouped GEMVs
    /// (`Fused`, f32 sum, + shared expert) or, when `gathered`, the packed batched GEMMs with
    /// the gather-based combine (`Gathered`).
    #[cfg(feature = "cuda")]
    fn forward_fused(
        &self,
        flat: &Tensor,
        record: bool,
        gathered: bool,
    ) -> Result<(Tensor, Option<RouterChoice>)> {
        if !self.fused_supported(flat) {
            return Err(Error::InvalidInput(format!(
                "the device-routed MoE kernels do not support {:?} {:?} tensors on {:?}",
                flat.dims(),
                flat.dtype(),
                flat.device()
            )));
        }
        let logits = flat
            .to_dtype(DType::F32)?
            .matmul(&self.router.weight.t()?)?;
        let (ids, weights) = cuda::route(&logits, &self.router)?;
        let flat = flat.contiguous()?;
        let out = if gathered {
            let shared = self.shared.forward(&flat)?.contiguous()?;
            let (gate_up, down) = self.experts.dense(flat.dtype())?;
            gather::experts(&flat, &ids, &weights, &gate_up, &down, &shared)?
        } else {
            let routed = cuda::experts(&flat, &ids, &weights, &self.experts)?;
            (routed.to_dtype(flat.dtype())? + self.shared.forward(&flat)?)?
        };
        let choice = if record {
            Some(RouterChoice {
                top_k: self.router.top_k,
                experts: ids.flatten_all()?.to_vec1::<u32>()?,
                weights: weights.flatten_all()?.to_vec1::<f32>()?,
            })
        } else {
            None
        };
        Ok((out, choice))
    }

    #[cfg(not(feature = "cuda"))]
    fn forward_fused(
        &self,
        flat: &Tensor,
        _record: bool,
        _gathered: bool,
    ) -> Result<(Tensor, Option<RouterChoice>)> {
        Err(Error::InvalidInput(format!(
            "the fused and gathered MoE kernels need a CUDA build (tensors on {:?})",
            flat.device()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn router(n_group: usize, topk_group: usize, bias: Vec<f32>) -> Router {
        Router {
            weight: Tensor::zeros((8, 2), DType::F32, &Device::Cpu).expect("zeros"),
            bias_device: Tensor::new(bias.as_slice(), &Device::Cpu).expect("bias"),
            bias,
            n_experts: 8,
            top_k: 2,
            n_group,
            topk_group,
            norm_topk_prob: true,
            scaling: 2.0,
        }
    }

    #[test]
    fn batched_kernel_matches_grouped() {
        let mut cfg = crate::checkpoint::synthetic::text_config(2).expect("config");
        cfg.hidden_size = 32;
        cfg.moe_intermediate_size = 16;
        cfg.n_routed_experts = 8;
        cfg.num_experts_per_tok = 3;
        let vb =
            crate::checkpoint::synthetic::var_builder(DType::F32, &Device::Cpu, 1).expect("vb");
        // Larger router weights than the 0.02 default so that routing spreads over experts.
        let vb = vb.pp("mlp");
        let mut moe = Moe::new(&cfg, vb).expect("moe");
        let x = Tensor::randn(0f32, 1f32, (2, 5, 32), &Device::Cpu).expect("x");
        moe.set_kernel(MoeKernel::Grouped);
        let (a, ca) = moe.forward(&x, true).expect("grouped");
        moe.set_kernel(MoeKernel::Batched);
        let (b, cb) = moe.forward(&x, true).expect("batched");
        assert_eq!(ca, cb);
        let diff = (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.max_all())
            .and_then(|d| d.to_scalar::<f32>())
            .expect("diff");
        assert!(diff < 1e-5, "max diff {diff}");
        let experts = ca.expect("choice").experts;
        let distinct: std::collections::BTreeSet<u32> = experts.iter().copied().collect();
        assert!(distinct.len() > 3, "routing used only {distinct:?}");
    }

    #[test]
    fn bias_chooses_but_does_not_weigh() {
        let r = router(1, 1, vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        let scores = [0.9, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2];
        let c = r.select(&scores);
        assert_eq!(c.experts, vec![7, 0]);
        // weights from un-biased scores 0.2 and 0.9, normalised then scaled by 2.
        assert!((c.weights[0] - 2.0 * 0.2 / 1.1).abs() < 1e-6);
        assert!((c.weights[1] - 2.0 * 0.9 / 1.1).abs() < 1e-6);
    }

    #[test]
    fn groups_limit_the_choice() {
        // 4 groups of 2; the best single expert (3) sits in a group whose top-2 sum is low.
        let r = router(4, 1, vec![0.0; 8]);
        let scores = [0.6, 0.6, 0.0, 0.95, 0.1, 0.1, 0.2, 0.2];
        let c = r.select(&scores);
        let mut got = c.experts.clone();
        got.sort();
        assert_eq!(got, vec![0, 1]);
    }
}
