//! Random weights of GLM-4.5V's real shapes, created directly on the device — for measuring
//! speed without the 200 GB checkpoint (GPU benchmarks, `examples/gpu_bench.rs`).
//!
//! [`text_config`] is the real `text_config` (hidden 4096, 96 query / 8 KV heads of 128, 128
//! experts of 1408 with top-8 and one shared expert, dense layer 0 of 10944, vocabulary 151552)
//! with a chosen number of decoder layers; [`vision_config`] the real tower (depth 24 × 1536).
//! [`var_builder`] hands any tensor the decoder asks for as N(0, σ²) values drawn on the target
//! device (f32, then cast), norms as ones; it answers "present" for every name, so the decoder
//! takes the fused expert layout (`experts.gate_up_proj` [E, 2I, H], `experts.down_proj`
//! [E, H, I]). Each tensor is made once per name and kept, so a caller can ask the same
//! [`VarBuilder`] again for the exact weights a module got (kernel checks against a reference).
//! The Python side (`scripts/gpu/hf_bench.py`) builds the same shapes in transformers.
//!
//! [`var_builder_fp8`] is the same model in the zai-org/GLM-4.5V-FP8 layout: every decoder
//! linear (`*_proj.weight` of the layers: attention, dense MLP, the per-expert
//! `experts.E.{gate,up,down}_proj` and the shared expert) is F8E4M3 with an f32
//! `weight_scale` [out, 1]; embeddings, norms, router, biases and `lm_head` stay in the compute
//! dtype. The FP8 values are e4m3(N(0, [`FP8_SIGMA`]²)) — a row's largest |value| lands near
//! 448, as compressed-tensors' `max|w| / 448` scale puts it — made on the GPU by a counter-based
//! generator (no host data, no f32 temporary), and the scales are
//! `WEIGHT_STD / FP8_SIGMA · exp(N(0, SCALE_SPREAD²))` per row, so the effective weights have the
//! dense model's spread with a log-normal spread of the channel magnitudes (the real
//! checkpoint's scale distribution is not known here; this is the assumption). Both are a pure
//! function of (seed, tensor name): asking again gives the same tensor, and nothing is kept.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::checkpoint::config::{RopeParameters, TextConfig, VisionConfig};
use crate::checkpoint::fp8::KEEP_SUFFIX;
use crate::error::{Error, Result};

/// Standard deviation of the random weights (transformers' `initializer_range` of GLM-4.5V).
pub const WEIGHT_STD: f64 = 0.02;

/// Standard deviation of the synthetic FP8 values (before the scale): a 4096-wide row's
/// largest |value| is then ≈ 3.9 · 112 ≈ 440 of E4M3's 448.
pub const FP8_SIGMA: f32 = 112.0;

/// Standard deviation of log(scale) across output channels of the synthetic FP8 weights.
pub const SCALE_SPREAD: f32 = 0.25;

/// Shrinks a real-shape config to the CPU-sized model of tests and dry runs (hidden 64, 4/2
/// heads of 32, 16 experts of 32, vocabulary 512): the same structure, layer count and routing.
pub fn shrink_to_cpu_size(cfg: &mut TextConfig) {
    cfg.vocab_size = 512;
    cfg.hidden_size = 64;
    cfg.num_attention_heads = 4;
    cfg.num_key_value_heads = 2;
    cfg.head_dim = Some(32);
    cfg.intermediate_size = 96;
    cfg.moe_intermediate_size = 32;
    cfg.n_routed_experts = 16;
    cfg.num_experts_per_tok = 4;
    cfg.rope_parameters = Some(RopeParameters {
        rope_type: Some("default".into()),
        legacy_type: None,
        rope_theta: Some(10_000.0),
        partial_rotary_factor: Some(0.5),
        mrope_section: Some(vec![2, 3, 3]),
    });
}

/// GLM-4.5V's real `text_config` with `layers` decoder layers (layer 0 dense, the rest MoE).
pub fn text_config(layers: usize) -> Result<TextConfig> {
    if layers == 0 {
        return Err(Error::InvalidInput(
            "synthetic model needs ≥ 1 layer".into(),
        ));
    }
    let cfg = TextConfig {
        vocab_size: 151_552,
        hidden_size: 4096,
        num_hidden_layers: layers,
        num_attention_heads: 96,
        num_key_value_heads: 8,
        head_dim: Some(128),
        intermediate_size: 10_944,
        moe_intermediate_size: 1408,
        n_routed_experts: 128,
        n_shared_experts: 1,
        num_experts_per_tok: 8,
        first_k_dense_replace: 1,
        n_group: 1,
        topk_group: 1,
        norm_topk_prob: true,
        routed_scaling_factor: 1.0,
        attention_bias: true,
        use_qk_norm: false,
        rms_norm_eps: 1e-5,
        hidden_act: "silu".into(),
        max_position_embeddings: 65_536,
        tie_word_embeddings: false,
        rope_theta: None,
        partial_rotary_factor: None,
        rope_scaling: None,
        rope_parameters: Some(RopeParameters {
            rope_type: Some("default".into()),
            legacy_type: None,
            rope_theta: Some(10_000.0),
            partial_rotary_factor: Some(0.5),
            mrope_section: Some(vec![8, 12, 12]),
        }),
        eos_token_id: None,
        pad_token_id: None,
        num_nextn_predict_layers: None,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// GLM-4.5V's real `vision_config` (24 blocks of 1536, 12 heads, patch 14, merge 2 → 4096).
pub fn vision_config() -> VisionConfig {
    VisionConfig {
        depth: 24,
        hidden_size: 1536,
        num_heads: 12,
        patch_size: 14,
        temporal_patch_size: 2,
        spatial_merge_size: 2,
        image_size: 336,
        in_channels: 3,
        out_hidden_size: 4096,
        intermediate_size: 10_944,
        hidden_act: "silu".into(),
        rms_norm_eps: 1e-5,
        attention_bias: false,
    }
}

/// Bytes of decoder weights one decode token must read, per layer kind, in `dtype`
/// (attention projections + biases, dense MLP or top-k + shared experts, router, norms) and the
/// `lm_head`; the basis of the roofline in the GPU benchmark.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeBytes {
    pub dense_layer: f64,
    pub moe_layer: f64,
    pub lm_head: f64,
    /// K and V of one cached position of one layer (read once per decode step).
    pub kv_per_position: f64,
}

/// Bytes per element of a layer's linear weights: the compute dtype's, or FP8 (1 byte plus an
/// f32 scale per output row, counted by [`DecodeBytes::fp8`]).
fn linear_bytes(rows: f64, cols: f64, fp8: bool, b: f64) -> f64 {
    if fp8 {
        rows * cols + 4.0 * rows
    } else {
        rows * cols * b
    }
}

impl DecodeBytes {
    /// Counts the bytes for `cfg` with weights of `dtype` (router in f32, as loaded).
    pub fn of(cfg: &TextConfig, dtype: DType) -> Self {
        Self::count(cfg, dtype, false)
    }

    /// The same for the FP8 layout: decoder linears as FP8 + f32 row scales, the rest
    /// (biases, norms, `lm_head`, KV cache) in the activation dtype `dtype`, router f32.
    pub fn fp8(cfg: &TextConfig, dtype: DType) -> Self {
        Self::count(cfg, dtype, true)
    }

    fn count(cfg: &TextConfig, dtype: DType, fp8: bool) -> Self {
        let b = dtype.size_in_bytes() as f64;
        let (h, d) = (cfg.hidden_size as f64, cfg.head_dim() as f64);
        let (nh, nkv) = (
            cfg.num_attention_heads as f64,
            cfg.num_key_value_heads as f64,
        );
        let lin = |rows: f64, cols: f64| linear_bytes(rows, cols, fp8, b);
        let attn =
            lin(nh * d, h) + 2.0 * lin(nkv * d, h) + lin(h, nh * d) + (nh + 2.0 * nkv) * d * b;
        let norms = 2.0 * h * b;
        let (inter, moe_i) = (
            cfg.intermediate_size as f64,
            cfg.moe_intermediate_size as f64,
        );
        let dense = 2.0 * lin(inter, h) + lin(h, inter);
        let active = (cfg.num_experts_per_tok + cfg.n_shared_experts) as f64;
        let experts = active * (2.0 * lin(moe_i, h) + lin(h, moe_i));
        let router = cfg.n_routed_experts as f64 * (h + 1.0) * 4.0;
        Self {
            dense_layer: attn + norms + dense,
            moe_layer: attn + norms + experts + router,
            lm_head: cfg.vocab_size as f64 * h * b + h * b,
            kv_per_position: 2.0 * nkv * d * b,
        }
    }

    /// Bytes of one decode step of a model with `layers` layers after `context` cached tokens.
    pub fn per_token(&self, cfg: &TextConfig, layers: usize, context: usize) -> f64 {
        let dense = cfg.first_k_dense_replace.min(layers) as f64;
        let moe = layers as f64 - dense;
        dense * self.dense_layer
            + moe * self.moe_layer
            + self.lm_head
            + layers as f64 * context as f64 * self.kv_per_position
    }
}

/// The `SimpleBackend` behind [`var_builder`]: random tensors by name, made once and kept.
struct SyntheticBackend {
    std: f64,
    made: Mutex<HashMap<String, Tensor>>,
    /// `Some(seed)`: the FP8 layout (linears F8E4M3, made from (seed, name) and not kept).
    fp8: Option<u64>,
}

/// True for the decoder linears that the FP8 checkpoint stores as F8E4M3.
fn is_fp8_linear(name: &str) -> bool {
    name.contains(".layers.") && name.ends_with("_proj.weight")
}

/// FNV-1a of a tensor name (the synthetic FP8 generator's per-tensor key).
fn name_key(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `n` standard normal draws from a generator seeded with `seed` (host side).
fn host_normals(n: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u1: f32 = 1.0 - rng.random::<f32>();
            let u2: f32 = rng.random::<f32>();
            (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect()
}

impl SyntheticBackend {
    /// The FP8 values of `name` (F8E4M3, `shape`): on the GPU by `kernels/fp8.cu`, on the CPU
    /// from host draws (dry runs and tests).
    fn make_fp8(
        &self,
        shape: &Shape,
        name: &str,
        seed: u64,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let key = seed ^ name_key(name);
        #[cfg(feature = "cuda")]
        if let Device::Cuda(cuda) = dev {
            return crate::kernels::fp8::fill_normal(shape.dims(), FP8_SIGMA, key, cuda)
                .map_err(|e| candle_core::Error::Msg(format!("synthetic `{name}`: {e}")));
        }
        let vals: Vec<f32> = host_normals(shape.elem_count(), key)
            .into_iter()
            .map(|z| (z * FP8_SIGMA).clamp(-448.0, 448.0))
            .collect();
        Tensor::from_vec(vals, shape, dev)?.to_dtype(DType::F8E4M3)
    }

    /// The per-row scales `<w>_scale` of an FP8 weight (any asked shape, f32 then `dtype`).
    fn make_scale(
        &self,
        shape: &Shape,
        name: &str,
        seed: u64,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let base = (self.std as f32) / FP8_SIGMA;
        let vals: Vec<f32> = host_normals(shape.elem_count(), seed ^ name_key(name))
            .into_iter()
            .map(|z| base * (SCALE_SPREAD * z).exp())
            .collect();
        Tensor::from_vec(vals, shape, dev)?.to_dtype(dtype)
    }

    fn make(
        &self,
        shape: &Shape,
        name: &str,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let leaf = name.rsplit('.').next().unwrap_or(name);
        let is_norm = leaf == "weight" && name.contains("norm");
        let t = if is_norm {
            Tensor::ones(shape, DType::F32, dev)?
        } else if leaf == "bias" || leaf == "e_score_correction_bias" {
            Tensor::randn(0f32, 0.01f32, shape, dev)?
        } else {
            Tensor::randn(0f32, self.std as f32, shape, dev)?
        };
        t.to_dtype(dtype)
    }
}

impl SimpleBackend for SyntheticBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Some(seed) = self.fp8 {
            if dtype == DType::F8E4M3 {
                if !is_fp8_linear(name) {
                    candle_core::bail!("synthetic tensor `{name}` is not an FP8 linear weight");
                }
                return self.make_fp8(&s, name, seed, dev);
            }
            if name.ends_with("_proj.weight_scale")
                && is_fp8_linear(name.trim_end_matches("_scale"))
            {
                return self.make_scale(&s, name, seed, dtype, dev);
            }
        }
        let mut made = self
            .made
            .lock()
            .map_err(|_| candle_core::Error::Msg("synthetic weights: lock poisoned".into()))?;
        if let Some(t) = made.get(name) {
            if t.shape() != &s {
                candle_core::bail!(
                    "synthetic tensor `{name}` was made as {:?}, now asked as {:?}",
                    t.shape(),
                    s
                );
            }
            return t.to_dtype(dtype);
        }
        let t = self.make(&s, name, dtype, dev)?;
        made.insert(name.to_string(), t.clone());
        Ok(t)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let made = self
            .made
            .lock()
            .map_err(|_| candle_core::Error::Msg("synthetic weights: lock poisoned".into()))?;
        match made.get(name) {
            Some(t) => t.to_dtype(dtype),
            None => candle_core::bail!("synthetic tensor `{name}` has no known shape yet"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        match (self.fp8, name.strip_suffix(KEEP_SUFFIX)) {
            (fp8, Some(stored)) => fp8.is_some() && is_fp8_linear(stored),
            // The FP8 layout is zai-org's: per-expert tensors, no fused `experts.*_proj`.
            (Some(_), None) => {
                !(name.ends_with("experts.gate_up_proj") || name.ends_with("experts.down_proj"))
            }
            (None, None) => true,
        }
    }
}

/// A `VarBuilder` of random weights in `dtype` on `device`, seeded with `seed`.
///
/// Asking it for a name twice returns the same tensor (in the asked dtype).
pub fn var_builder(dtype: DType, device: &Device, seed: u64) -> Result<VarBuilder<'static>> {
    if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
        return Err(Error::InvalidInput(format!(
            "synthetic weights in {dtype:?}: only bf16, f16, f32"
        )));
    }
    // The CPU backend cannot be seeded (its draws differ per run); CPU use is for dry runs.
    if !device.is_cpu() {
        device.set_seed(seed)?;
    }
    let backend = SyntheticBackend {
        std: WEIGHT_STD,
        made: Mutex::new(HashMap::new()),
        fp8: None,
    };
    Ok(VarBuilder::from_backend(
        Box::new(backend),
        dtype,
        device.clone(),
    ))
}

/// The same random model in the zai-org/GLM-4.5V-FP8 layout (see the module docs): decoder
/// linears F8E4M3 + f32 scales (per-expert tensors), the rest in `dtype`.
pub fn var_builder_fp8(dtype: DType, device: &Device, seed: u64) -> Result<VarBuilder<'static>> {
    var_builder(dtype, device, seed)?; // the dtype check and the device seed
    let backend = SyntheticBackend {
        std: WEIGHT_STD,
        made: Mutex::new(HashMap::new()),
        fp8: Some(seed),
    };
    Ok(VarBuilder::from_backend(
        Box::new(backend),
        dtype,
        device.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::text_model::TextModel;

    #[test]
    fn real_config_validates_and_counts_bytes() {
        let cfg = text_config(46).expect("config");
        let bytes = DecodeBytes::of(&cfg, DType::BF16);
        // 9 experts × 3 × 4096 × 1408 × 2 B ≈ 311 MB plus ≈ 218 MB of attention per MoE layer.
        assert!(
            (bytes.moe_layer / 1e6 - 530.0).abs() < 5.0,
            "{}",
            bytes.moe_layer
        );
        let total = bytes.per_token(&cfg, 46, 0) / 1e9;
        assert!((24.0..27.0).contains(&total), "{total} GB per token");
    }

    #[test]
    fn same_name_gives_the_same_tensor_and_a_small_model_runs() {
        let mut cfg = text_config(2).expect("config");
        // The shapes logic is what is under test.
        shrink_to_cpu_size(&mut cfg);
        let vb = var_builder(DType::F32, &Device::Cpu, 7).expect("vb");
        let model = TextModel::new(&cfg, vb.clone()).expect("model");
        let w = vb
            .pp("model.language_model.layers.1.mlp.experts")
            .get((16, 64, 64), "gate_up_proj")
            .expect("cached");
        let again = vb
            .pp("model.language_model.layers.1.mlp.experts")
            .get((16, 64, 64), "gate_up_proj")
            .expect("cached");
        let diff = (w - again)
            .expect("sub")
            .abs()
            .expect("abs")
            .sum_all()
            .expect("sum")
            .to_scalar::<f32>()
            .expect("scalar");
        assert_eq!(diff, 0.0);
        let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).expect("ids");
        let embeds = model.embed(&ids).expect("embed");
        let pos = crate::decoder::mrope::text_positions(1, 0, 3, &Device::Cpu).expect("pos");
        let mut cache = model.new_cache();
        let out = model
            .forward(
                crate::decoder::text_model::DecoderInput {
                    embeds: &embeds,
                    positions: &pos,
                    logits: crate::decoder::text_model::LogitsSelection::Last,
                    record: Default::default(),
                },
                &mut cache,
            )
            .expect("forward");
        let logits = out.logits.expect("logits");
        assert_eq!(logits.dims(), &[1, 1, 512]);
        let max = logits.abs().expect("abs").max_all().expect("max");
        assert!(max.to_scalar::<f32>().expect("scalar") > 0.0);
    }
}
