//! GLM-4.5V text decoder (GLM-4.5-Air backbone, `Glm4vMoeTextModel` + `lm_head`) in candle.
//!
//! Architecture (spec §2.3–2.5; real sizes in brackets): token embedding [151552 × 4096];
//! `num_hidden_layers` [46] pre-norm layers, each `x + Attn(RMSNorm(x))` then
//! `x + MLP(RMSNorm(x))`, the MLP being a dense SwiGLU [10944] for the first
//! `first_k_dense_replace` [1] layers and an MoE (128 experts of 1408, top-8, one shared expert)
//! after; attention with q/k/v bias, GQA [96 q / 8 kv heads of 128], partial half-split 3-D
//! M-RoPE on the first 64 dims [sections 8/12/12]; final RMSNorm; untied `lm_head`.
//!
//! Tensor names mirror the checkpoint (`model.language_model.*`, `lm_head.weight`; a text-only
//! `model.*` layout is accepted too). One entry point, [`TextModel::forward`], takes input
//! embeddings (so vision embeddings can be spliced in) and explicit [3, B, T] positions, and a
//! [`KvCache`] owned by the caller; prefill and decode are the same call.
//! [`TextModel::forward_ragged`] is the batched decode step of sequences of different lengths,
//! each with its own cache (the batch scheduler, `batch.rs`); both share the layer loop.
//!
//! References: transformers `models/glm4v_moe/modeling_glm4v_moe.py` (v5.24), vLLM
//! `glm4_moe.py`, candle-transformers model files for the idiom.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{embedding, linear_no_bias, Embedding, Linear, VarBuilder};

use crate::checkpoint::config::TextConfig;
use crate::decoder::attention::{causal_mask, Attention};
use crate::decoder::kv_cache::KvCache;
use crate::decoder::layers::{RmsNorm, SwiGlu};
use crate::decoder::moe::{Moe, MoeKernel, RouterChoice};
use crate::decoder::mrope::MropeTable;
use crate::error::{Error, Result};

/// Which positions get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogitsSelection {
    /// Every position ([B, T, V]).
    All,
    /// Only the last position ([B, 1, V]) — what generation needs.
    #[default]
    Last,
    /// No logits (hidden states only).
    None,
}

/// Extra outputs for parity checks and debugging.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record {
    /// Keep each layer's output hidden states (before the final norm).
    pub hidden_states: bool,
    /// Keep each MoE layer's router choice.
    pub router: bool,
}

/// The one input of [`TextModel::forward`].
#[derive(Debug, Clone, Copy)]
pub struct DecoderInput<'a> {
    /// Input embeddings [B, T, hidden] in the model dtype ([`TextModel::embed`] for text).
    pub embeds: &'a Tensor,
    /// M-RoPE positions [3, B, T] (u32 or i64), see [`crate::decoder::mrope`].
    pub positions: &'a Tensor,
    pub logits: LogitsSelection,
    pub record: Record,
}

/// What [`TextModel::forward`] returns.
#[derive(Debug, Clone)]
pub struct DecoderOutput {
    /// Logits in f32 per [`LogitsSelection`].
    pub logits: Option<Tensor>,
    /// Final hidden states after the last norm [B, T, hidden].
    pub last_hidden: Tensor,
    /// Output of every layer (when recorded), index = layer.
    pub layer_hidden: Vec<Tensor>,
    /// Router choice per layer (None for dense layers; when recorded).
    pub router: Vec<Option<RouterChoice>>,
}

#[derive(Debug, Clone)]
enum Mlp {
    Dense(SwiGlu),
    Moe(Moe),
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    self_attn: Attention,
    mlp: Mlp,
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
}

impl DecoderLayer {
    fn new(cfg: &TextConfig, layer: usize, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        let mlp = if layer < cfg.first_k_dense_replace {
            Mlp::Dense(SwiGlu::new(h, cfg.intermediate_size, vb.pp("mlp"))?)
        } else {
            Mlp::Moe(Moe::new(cfg, vb.pp("mlp"))?)
        };
        Ok(Self {
            self_attn: Attention::new(cfg, layer, vb.pp("self_attn"))?,
            mlp,
            input_layernorm: RmsNorm::new(h, cfg.rms_norm_eps, vb.pp("input_layernorm"))?,
            post_attention_layernorm: RmsNorm::new(
                h,
                cfg.rms_norm_eps,
                vb.pp("post_attention_layernorm"),
            )?,
        })
    }
}

/// Where the decoder's tensors live: `model.language_model` (GLM-4.5V) or `model` (text-only).
pub(crate) fn decoder_prefix(vb: &VarBuilder) -> Result<&'static str> {
    if vb.contains_tensor("model.language_model.embed_tokens.weight") {
        Ok("model.language_model")
    } else if vb.contains_tensor("model.embed_tokens.weight") {
        Ok("model")
    } else {
        Err(Error::Checkpoint(
            "no `model.language_model.embed_tokens.weight` (nor `model.embed_tokens.weight`)"
                .into(),
        ))
    }
}

/// The text decoder with its embedding and `lm_head`.
#[derive(Debug, Clone)]
pub struct TextModel {
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Linear,
    rope: MropeTable,
    vocab_size: usize,
    hidden_size: usize,
    /// `num_key_value_heads · head_dim` (cached values per token, per layer, for K and for V).
    kv_width: usize,
    dtype: DType,
    device: Device,
}

impl TextModel {
    /// Builds the decoder from the checkpoint root `vb` (dtype and device come from `vb`).
    pub fn new(cfg: &TextConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let vm = vb.pp(decoder_prefix(&vb)?);
        let (v, h) = (cfg.vocab_size, cfg.hidden_size);
        let embed_tokens = embedding(v, h, vm.pp("embed_tokens"))?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|l| DecoderLayer::new(cfg, l, vm.pp("layers").pp(l)))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::new(h, cfg.rms_norm_eps, vm.pp("norm"))?;
        let lm_head = if cfg.tie_word_embeddings && !vb.contains_tensor("lm_head.weight") {
            Linear::new(embed_tokens.embeddings().clone(), None)
        } else {
            linear_no_bias(h, v, vb.pp("lm_head"))?
        };
        let rope = MropeTable::new(&cfg.rope()?, vb.device())?;
        tracing::info!(
            layers = cfg.num_hidden_layers,
            experts = cfg.n_routed_experts,
            dtype = ?vb.dtype(),
            "GLM-4.5V text decoder loaded"
        );
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            lm_head,
            rope,
            vocab_size: v,
            hidden_size: h,
            kv_width: cfg.num_key_value_heads * cfg.head_dim(),
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// Chooses the MoE kernel of every MoE layer (see [`MoeKernel`]).
    pub fn set_moe_kernel(&mut self, kernel: MoeKernel) {
        for layer in &mut self.layers {
            if let Mlp::Moe(m) = &mut layer.mlp {
                m.set_kernel(kernel);
            }
        }
    }

    /// Number of decoder layers (the size a [`KvCache`] needs).
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Vocabulary size (logit width).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Hidden size.
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// Compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Device of the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Bytes of the decoder's weights as held on the device (FP8 weights count one byte per
    /// value plus their scales): what the memory planner and the benchmarks report.
    pub fn resident_bytes(&self) -> usize {
        let b = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                let mlp = match &l.mlp {
                    Mlp::Dense(m) => m.resident_bytes(),
                    Mlp::Moe(m) => m.resident_bytes(),
                };
                l.self_attn.resident_bytes()
                    + mlp
                    + l.input_layernorm.resident_bytes()
                    + l.post_attention_layernorm.resident_bytes()
            })
            .sum();
        b(self.embed_tokens.embeddings())
            + layers
            + self.norm.resident_bytes()
            + b(self.lm_head.weight())
    }

    /// Bytes the KV cache holds per token of one sequence (keys and values of every layer, in
    /// the compute dtype): what a token budget of the batch scheduler costs in memory.
    pub fn kv_bytes_per_token(&self) -> usize {
        2 * self.layers.len() * self.kv_width * self.dtype.size_in_bytes()
    }

    /// A fresh cache for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers.len())
    }

    /// Token embeddings [B, T, hidden] of `ids` [B, T] (u32); ids must be < vocab.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let max = ids
            .flatten_all()?
            .to_dtype(DType::U32)?
            .max(0)?
            .to_scalar::<u32>();
        if let Ok(max) = max {
            if max as usize >= self.vocab_size {
                return Err(Error::InvalidInput(format!(
                    "token id {max} is outside the vocabulary ({})",
                    self.vocab_size
                )));
            }
        }
        Ok(self.embed_tokens.forward(ids)?)
    }

    /// Runs the decoder over `input.embeds` after whatever `cache` holds, appending to it.
    pub fn forward(&self, input: DecoderInput<'_>, cache: &mut KvCache) -> Result<DecoderOutput> {
        let (b, t, h) = input.embeds.dims3()?;
        if h != self.hidden_size || t == 0 {
            return Err(Error::InvalidInput(format!(
                "embeds must be [B, T>0, {}], got {:?}",
                self.hidden_size,
                input.embeds.dims()
            )));
        }
        if input.positions.dims() != [3, b, t] {
            return Err(Error::InvalidInput(format!(
                "positions must be [3, {b}, {t}], got {:?}",
                input.positions.dims()
            )));
        }
        if cache.num_layers() != self.layers.len() {
            return Err(Error::InvalidInput(format!(
                "KV cache has {} layers, the model {}",
                cache.num_layers(),
                self.layers.len()
            )));
        }
        let past = cache.seq_len();
        let (cos, sin) = self.rope.cos_sin(input.positions, self.dtype)?;
        let mask = if t > 1 {
            Some(causal_mask(t, past, &self.device)?)
        } else {
            None
        };
        let x = input.embeds.to_dtype(self.dtype)?;
        let (x, layer_hidden, router) =
            self.layers_forward(x, input.record, &mut |attn, normed| {
                attn.forward(normed, &self.rope, &cos, &sin, mask.as_ref(), cache)
            })?;
        let last_hidden = self.norm.forward(&x)?;
        let logits = match input.logits {
            LogitsSelection::None => None,
            LogitsSelection::All => Some(self.lm_head.forward(&last_hidden)?),
            LogitsSelection::Last => {
                Some(self.lm_head.forward(&last_hidden.narrow(1, t - 1, 1)?)?)
            }
        };
        let logits = logits.map(|l| l.to_dtype(DType::F32)).transpose()?;
        Ok(DecoderOutput {
            logits,
            last_hidden,
            layer_hidden,
            router,
        })
    }

    /// One decode step of N independent sequences: `embeds` [N, 1, hidden] is the next token of
    /// each, `positions` [3, N, 1] their M-RoPE positions, `caches[i]` sequence i's cache (of any
    /// length; each is appended to). Projections, norms, MoE and `lm_head` run batched over the N
    /// tokens; attention is ragged (each token attends to its own cache only, no padding).
    /// Returns f32 logits [N, vocab].
    pub fn forward_ragged(
        &self,
        embeds: &Tensor,
        positions: &Tensor,
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        let (n, t, h) = embeds.dims3()?;
        if h != self.hidden_size || t != 1 || n == 0 || n != caches.len() {
            return Err(Error::InvalidInput(format!(
                "ragged decode takes embeds [N>0, 1, {}] and N caches, got {:?} and {}",
                self.hidden_size,
                embeds.dims(),
                caches.len()
            )));
        }
        if positions.dims() != [3, n, 1] {
            return Err(Error::InvalidInput(format!(
                "positions must be [3, {n}, 1], got {:?}",
                positions.dims()
            )));
        }
        if let Some(c) = caches.iter().find(|c| c.num_layers() != self.layers.len()) {
            return Err(Error::InvalidInput(format!(
                "KV cache has {} layers, the model {}",
                c.num_layers(),
                self.layers.len()
            )));
        }
        let (cos, sin) = self.rope.cos_sin(positions, self.dtype)?;
        let x = embeds.to_dtype(self.dtype)?;
        let (x, _, _) = self.layers_forward(x, Record::default(), &mut |attn, normed| {
            attn.forward_ragged(normed, &self.rope, &cos, &sin, caches)
        })?;
        let last_hidden = self.norm.forward(&x)?;
        let logits = self.lm_head.forward(&last_hidden)?.to_dtype(DType::F32)?;
        Ok(logits.reshape((n, self.vocab_size))?)
    }

    /// The decoder layers over `x`, attention supplied by `attend` (plain or ragged).
    #[allow(clippy::type_complexity)]
    fn layers_forward(
        &self,
        mut x: Tensor,
        record: Record,
        attend: &mut dyn FnMut(&Attention, &Tensor) -> Result<Tensor>,
    ) -> Result<(Tensor, Vec<Tensor>, Vec<Option<RouterChoice>>)> {
        let mut layer_hidden = Vec::new();
        let mut router = Vec::new();
        // Each residual add is fused with the norm that follows it (`forward_residual`: one
        // kernel on CUDA, the same ops elsewhere); `next_normed` carries the next layer's input.
        let mut next_normed = None;
        for (i, layer) in self.layers.iter().enumerate() {
            let normed = match next_normed.take() {
                Some(n) => n,
                None => layer.input_layernorm.forward(&x)?,
            };
            let attn = attend(&layer.self_attn, &normed)?;
            let (sum, normed) = layer.post_attention_layernorm.forward_residual(&x, &attn)?;
            x = sum;
            let (mlp, choice) = match &layer.mlp {
                Mlp::Dense(m) => (m.forward(&normed)?, None),
                Mlp::Moe(m) => m.forward(&normed, record.router)?,
            };
            match self.layers.get(i + 1) {
                Some(next) => {
                    let (sum, normed) = next.input_layernorm.forward_residual(&x, &mlp)?;
                    x = sum;
                    next_normed = Some(normed);
                }
                None => x = (x + mlp)?,
            }
            if record.hidden_states {
                layer_hidden.push(x.clone());
            }
            if record.router {
                router.push(choice);
            }
        }
        Ok((x, layer_hidden, router))
    }
}
