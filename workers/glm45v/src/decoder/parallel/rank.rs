//! One rank of the parallel decoder: its part of every layer (the table in `parallel/mod.rs`),
//! loaded from a checkpoint sharded for the rank, and the layer loop of
//! [`TextModel`](crate::decoder::text_model::TextModel) with the collectives added — an
//! all-reduce after each attention block and each MLP/MoE block, an all-gather of the logits.
//!
//! The blocks are the unsharded decoder's own ([`Attention`] with the rank's heads, [`SwiGlu`]
//! with its rows, [`Moe`] with its experts): only the shapes they are built with differ.

use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{embedding, linear_no_bias, Embedding, Linear};

use crate::checkpoint::config::{QuantizationConfig, TextConfig};
use crate::checkpoint::fp8::Fp8Weights;
use crate::checkpoint::weights::Checkpoint;
use crate::decoder::attention::{causal_mask, Attention};
use crate::decoder::kv_cache::KvCache;
use crate::decoder::layers::{RmsNorm, SwiGlu};
use crate::decoder::moe::{Moe, MoeKernel, RouterChoice};
use crate::decoder::mrope::MropeTable;
use crate::decoder::parallel::{Communicator, Partition};
use crate::decoder::text_model::{
    decoder_prefix, DecoderInput, DecoderOutput, LogitsSelection, Record,
};
use crate::error::{Error, Result};

/// How the weights are read: compute dtype, and whether FP8 weights stay FP8 (with the
/// checkpoint's `quantization_config`, whose `ignore` list is honoured).
#[derive(Debug, Clone, Copy)]
pub struct WeightLoad<'a> {
    pub dtype: DType,
    pub fp8: Fp8Weights,
    pub quant: Option<&'a QuantizationConfig>,
}

#[derive(Debug, Clone)]
enum RankMlp {
    /// Tensor-parallel dense SwiGLU (intermediate rows split).
    Dense(SwiGlu),
    /// The rank's experts, the replicated router and a tensor-parallel shared expert.
    Moe(Moe),
}

#[derive(Debug, Clone)]
struct RankLayer {
    self_attn: Attention,
    mlp: RankMlp,
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
}

/// One rank's part of the text decoder and its communicator.
#[derive(Debug, Clone)]
pub struct RankDecoder {
    part: Partition,
    comm: Arc<dyn Communicator>,
    embed_tokens: Embedding,
    layers: Vec<RankLayer>,
    norm: RmsNorm,
    /// The rank's vocabulary rows [V/world, hidden].
    lm_head: Linear,
    rope: MropeTable,
    vocab_size: usize,
    hidden_size: usize,
    dtype: DType,
    device: Device,
}

impl RankDecoder {
    /// Loads rank `comm.rank()` of `comm.world()` from `ckpt` onto `device`: every split tensor
    /// is read as this rank's chunk only. Refuses a world that does not split `cfg`
    /// ([`Partition::new`]).
    pub fn load(
        cfg: &TextConfig,
        ckpt: &Checkpoint,
        weights: WeightLoad<'_>,
        device: &Device,
        comm: Arc<dyn Communicator>,
    ) -> Result<Self> {
        cfg.validate()?;
        let part = Partition::new(comm.rank(), comm.world(), cfg)?;
        let ckpt = ckpt.sharded(part.shard());
        let vb = match weights.fp8 {
            Fp8Weights::Resident => ckpt.var_builder_fp8(weights.dtype, device, weights.quant)?,
            Fp8Weights::Dequantized => ckpt.var_builder(weights.dtype, device)?,
        };
        let vm = vb.pp(decoder_prefix(&vb)?);
        let (v, h) = (cfg.vocab_size, cfg.hidden_size);
        let w = part.world;
        let attn_cfg = part.local_attention_config(cfg);
        let layers = (0..cfg.num_hidden_layers)
            .map(|l| {
                let vl = vm.pp("layers").pp(l);
                let mlp = if l < cfg.first_k_dense_replace {
                    RankMlp::Dense(SwiGlu::new(h, cfg.intermediate_size / w, vl.pp("mlp"))?)
                } else {
                    let shared = cfg.moe_intermediate_size * cfg.n_shared_experts / w;
                    RankMlp::Moe(Moe::load_part(
                        cfg,
                        vl.pp("mlp"),
                        part.experts(cfg),
                        shared,
                    )?)
                };
                Ok(RankLayer {
                    self_attn: Attention::new(&attn_cfg, l, vl.pp("self_attn"))?,
                    mlp,
                    input_layernorm: RmsNorm::new(h, cfg.rms_norm_eps, vl.pp("input_layernorm"))?,
                    post_attention_layernorm: RmsNorm::new(
                        h,
                        cfg.rms_norm_eps,
                        vl.pp("post_attention_layernorm"),
                    )?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let embed_tokens = embedding(v, h, vm.pp("embed_tokens"))?;
        let lm_head = if cfg.tie_word_embeddings && !vb.contains_tensor("lm_head.weight") {
            let rows = part.vocab(cfg);
            let mine = embed_tokens
                .embeddings()
                .narrow(0, rows.start, rows.len())?
                .contiguous()?;
            Linear::new(mine, None)
        } else {
            linear_no_bias(h, v / w, vb.pp("lm_head"))?
        };
        tracing::info!(
            rank = part.rank,
            world = part.world,
            experts = ?part.experts(cfg),
            "GLM-4.5V decoder rank loaded"
        );
        Ok(Self {
            part,
            comm,
            embed_tokens,
            layers,
            norm: RmsNorm::new(h, cfg.rms_norm_eps, vm.pp("norm"))?,
            lm_head,
            rope: MropeTable::new(&cfg.rope()?, device)?,
            vocab_size: v,
            hidden_size: h,
            dtype: weights.dtype,
            device: device.clone(),
        })
    }

    /// Which part of the model this rank holds.
    pub fn partition(&self) -> Partition {
        self.part
    }

    /// Device of the rank's weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of decoder layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Vocabulary size (width of the gathered logits).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// A fresh cache for this rank (it holds the rank's KV heads only).
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers.len())
    }

    /// Chooses the MoE kernel of every MoE layer (`Auto` and `Grouped` run the rank's experts
    /// on every device; see [`Moe::forward`]).
    pub fn set_moe_kernel(&mut self, kernel: MoeKernel) {
        for layer in &mut self.layers {
            if let RankMlp::Moe(m) = &mut layer.mlp {
                m.set_kernel(kernel);
            }
        }
    }

    /// Bytes of the routed experts this rank holds (all MoE layers).
    pub fn expert_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| match &l.mlp {
                RankMlp::Moe(m) => m.expert_bytes(),
                RankMlp::Dense(_) => 0,
            })
            .sum()
    }

    /// Bytes of every weight this rank holds on its device.
    pub fn resident_bytes(&self) -> usize {
        let b = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                let mlp = match &l.mlp {
                    RankMlp::Dense(m) => m.resident_bytes(),
                    RankMlp::Moe(m) => m.resident_bytes(),
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

    /// Token embeddings [B, T, hidden] of `ids` [B, T] (the embedding is whole on every rank).
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let max = ids.flatten_all()?.to_dtype(DType::U32)?.max(0)?;
        let max = max.to_scalar::<u32>()? as usize;
        if max >= self.vocab_size {
            return Err(Error::InvalidInput(format!(
                "token id {max} is outside the vocabulary ({})",
                self.vocab_size
            )));
        }
        Ok(self.embed_tokens.forward(ids)?)
    }

    /// This rank's part of [`TextModel::forward`](crate::decoder::text_model::TextModel::forward):
    /// every rank of the group must call it with the same input; each gets the full output.
    pub fn forward(&self, input: DecoderInput<'_>, cache: &mut KvCache) -> Result<DecoderOutput> {
        self.check_input(&input, cache)?;
        let t = input.embeds.dim(1)?;
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
            LogitsSelection::All => Some(self.logits(&last_hidden)?),
            LogitsSelection::Last => Some(self.logits(&last_hidden.narrow(1, t - 1, 1)?)?),
        };
        Ok(DecoderOutput {
            logits,
            last_hidden,
            layer_hidden,
            router,
        })
    }

    /// This rank's part of
    /// [`TextModel::forward_ragged`](crate::decoder::text_model::TextModel::forward_ragged):
    /// one decode step of N sequences, each with its own (rank's) cache; f32 logits [N, vocab].
    pub fn forward_ragged(
        &self,
        embeds: &Tensor,
        positions: &Tensor,
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        let n = embeds.dim(0)?;
        self.check_ragged(embeds, positions, caches.iter().map(|c| &**c))?;
        let (cos, sin) = self.rope.cos_sin(positions, self.dtype)?;
        let x = embeds.to_dtype(self.dtype)?;
        let (x, _, _) = self.layers_forward(x, Record::default(), &mut |attn, normed| {
            attn.forward_ragged(normed, &self.rope, &cos, &sin, caches)
        })?;
        let logits = self.logits(&self.norm.forward(&x)?)?;
        Ok(logits.reshape((n, self.vocab_size))?)
    }

    /// The checks of [`RankDecoder::forward`]'s input (also made by the group before any rank
    /// starts, so that a bad input fails without aborting the group's communicators).
    pub(crate) fn check_input(&self, input: &DecoderInput<'_>, cache: &KvCache) -> Result<()> {
        let (b, t, h) = input.embeds.dims3()?;
        if h != self.hidden_size || t == 0 || input.positions.dims() != [3, b, t] {
            return Err(Error::InvalidInput(format!(
                "embeds must be [B, T>0, {}] and positions [3, B, T], got {:?} and {:?}",
                self.hidden_size,
                input.embeds.dims(),
                input.positions.dims()
            )));
        }
        self.check_cache(cache)
    }

    /// The checks of [`RankDecoder::forward_ragged`]'s input.
    pub(crate) fn check_ragged<'c>(
        &self,
        embeds: &Tensor,
        positions: &Tensor,
        caches: impl ExactSizeIterator<Item = &'c KvCache>,
    ) -> Result<()> {
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
        for c in caches {
            self.check_cache(c)?;
        }
        Ok(())
    }

    /// Aborts the rank's communicator (the rank cannot go on; its peers stop waiting).
    pub(crate) fn abort(&self, why: &str) {
        self.comm.abort(why);
    }

    fn check_cache(&self, cache: &KvCache) -> Result<()> {
        if cache.num_layers() != self.layers.len() {
            return Err(Error::InvalidInput(format!(
                "KV cache has {} layers, the model {}",
                cache.num_layers(),
                self.layers.len()
            )));
        }
        Ok(())
    }

    /// f32 logits [.., vocab] of `hidden` [.., hidden]: the rank's vocabulary slice, then the
    /// slices of every rank side by side (rank order is vocabulary order).
    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let mine = self.lm_head.forward(hidden)?.contiguous()?; // [.., V/w]
        let all = self.comm.all_gather(&mine)?; // [w, .., V/w]
        let rank = all.rank();
        let mut order: Vec<usize> = (1..rank - 1).collect();
        order.extend([0, rank - 1]);
        let mut dims = mine.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = self.vocab_size;
        }
        Ok(all
            .permute(order)?
            .contiguous()?
            .reshape(dims)?
            .to_dtype(DType::F32)?)
    }

    /// The layers over `x` as in `TextModel`, each block's partial output summed over the ranks.
    #[allow(clippy::type_complexity)]
    fn layers_forward(
        &self,
        mut x: Tensor,
        record: Record,
        attend: &mut dyn FnMut(&Attention, &Tensor) -> Result<Tensor>,
    ) -> Result<(Tensor, Vec<Tensor>, Vec<Option<RouterChoice>>)> {
        let mut layer_hidden = Vec::new();
        let mut router = Vec::new();
        let mut next_normed = None;
        for (i, layer) in self.layers.iter().enumerate() {
            let normed = match next_normed.take() {
                Some(n) => n,
                None => layer.input_layernorm.forward(&x)?,
            };
            let attn = self
                .comm
                .all_reduce_sum(&attend(&layer.self_attn, &normed)?)?;
            let (sum, normed) = layer.post_attention_layernorm.forward_residual(&x, &attn)?;
            x = sum;
            let (mlp, choice) = match &layer.mlp {
                RankMlp::Dense(m) => (m.forward(&normed)?, None),
                RankMlp::Moe(m) => m.forward(&normed, record.router)?,
            };
            let mlp = self.comm.all_reduce_sum(&mlp)?;
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
