//! Self-attention of the text decoder (spec §2.3): q/k/v with bias, GQA, partial half-split
//! M-RoPE on the first `rotary_dim` dims of each head, causal softmax in f32, o_proj without bias.
//!
//! GQA without copying K/V: the query heads that share a KV head are folded into the sequence
//! axis ([B, kv, rep·T, D]), so one batched matmul per KV head serves all of its query heads.
//!
//! Two entry points share the projection (`qkv`) and the softmax attention (`attend`):
//! [`Attention::forward`] (one batch of equal-length sequences over one [`KvCache`]) and
//! [`Attention::forward_ragged`] (decode of N sequences with their own caches, `batch.rs`).

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use crate::checkpoint::config::TextConfig;
use crate::decoder::kv_cache::KvCache;
use crate::decoder::linear::Proj;
use crate::decoder::mrope::MropeTable;
use crate::error::{Error, Result};

/// The fused decode-attention fast path (CUDA only).
#[cfg(feature = "cuda")]
mod cuda;

/// One attention block (`self_attn.*`).
#[derive(Debug, Clone)]
pub struct Attention {
    q_proj: Proj,
    k_proj: Proj,
    v_proj: Proj,
    o_proj: Proj,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    scale: f64,
    layer: usize,
}

impl Attention {
    /// Loads `q_proj`, `k_proj`, `v_proj` (with bias when `attention_bias`) and `o_proj` under `vb`.
    pub fn new(cfg: &TextConfig, layer: usize, vb: VarBuilder) -> Result<Self> {
        let (h, d) = (cfg.hidden_size, cfg.head_dim());
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let bias = cfg.attention_bias;
        Ok(Self {
            q_proj: Proj::load(h, nh * d, bias, vb.pp("q_proj"))?,
            k_proj: Proj::load(h, nkv * d, bias, vb.pp("k_proj"))?,
            v_proj: Proj::load(h, nkv * d, bias, vb.pp("v_proj"))?,
            o_proj: Proj::load(nh * d, h, false, vb.pp("o_proj"))?,
            num_heads: nh,
            num_kv_heads: nkv,
            head_dim: d,
            scale: (d as f64).powf(-0.5),
            layer,
        })
    }

    /// Bytes of its projections on the device.
    pub fn resident_bytes(&self) -> usize {
        [&self.q_proj, &self.k_proj, &self.v_proj, &self.o_proj]
            .iter()
            .map(|p| p.resident_bytes())
            .sum()
    }

    /// `x` [B, T, hidden]; `cos`/`sin` [B, T, rotary/2]; `mask` [T, S] additive (None when T = 1).
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &MropeTable,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if let Some(out) = cuda::try_forward(self, x, rope.rotary_dim(), cos, sin, cache)? {
            return Ok(out);
        }
        let (q, k, v) = self.qkv(x, rope, cos, sin)?;
        let (k, v) = cache.append(self.layer, &k, &v.contiguous()?)?;
        // Prefill (the mask is the causal one of `causal_mask`): flash attention on CUDA.
        #[cfg(feature = "cuda")]
        if mask.is_some() && q.dim(2)? > 1 && crate::kernels::fused_enabled() {
            if let Some(out) = crate::kernels::prefill::attention(&q, &k, &v, self.scale)? {
                return self.o_proj.forward(&out);
            }
        }
        let out = self.attend(&q, &k, &v, mask)?;
        self.o_proj.forward(&out)
    }

    /// Ragged decode: `x` [N, 1, hidden] holds the next token of N independent sequences,
    /// `cos`/`sin` [N, 1, rotary/2] their positions, `caches[i]` sequence i's cache (any length).
    /// Projections run batched over the N tokens; each token attends only to its own cache.
    pub fn forward_ragged(
        &self,
        x: &Tensor,
        rope: &MropeTable,
        cos: &Tensor,
        sin: &Tensor,
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        let (n, t, _) = x.dims3()?;
        if t != 1 || n != caches.len() {
            return Err(Error::InvalidInput(format!(
                "ragged decode takes [N, 1, hidden] with N caches, got {:?} and {} caches",
                x.dims(),
                caches.len()
            )));
        }
        #[cfg(feature = "cuda")]
        if let Some(out) = cuda::try_forward_ragged(self, x, rope.rotary_dim(), cos, sin, caches)? {
            return Ok(out);
        }
        let (q, k, v) = self.qkv(x, rope, cos, sin)?;
        let mut outs = Vec::with_capacity(n);
        for (i, cache) in caches.iter_mut().enumerate() {
            let (ki, vi) = cache.append(
                self.layer,
                &k.narrow(0, i, 1)?,
                &v.narrow(0, i, 1)?.contiguous()?,
            )?;
            outs.push(self.attend(&q.narrow(0, i, 1)?, &ki, &vi, None)?);
        }
        let out = Tensor::cat(&outs, 0)?; // [N, 1, nh*D]
        self.o_proj.forward(&out)
    }

    /// Projections with rotary applied: q [B, nh, T, D], k and v [B, nkv, T, D] (v strided).
    fn qkv(
        &self,
        x: &Tensor,
        rope: &MropeTable,
        cos: &Tensor,
        sin: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = x.dims3()?;
        let (nh, nkv, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let q = self
            .q_proj
            .forward(x)?
            .reshape((b, t, nh, d))?
            .transpose(1, 2)?;
        let k = self
            .k_proj
            .forward(x)?
            .reshape((b, t, nkv, d))?
            .transpose(1, 2)?;
        let v = self
            .v_proj
            .forward(x)?
            .reshape((b, t, nkv, d))?
            .transpose(1, 2)?;
        let q = rope.apply(&q, cos, sin)?;
        let k = rope.apply(&k, cos, sin)?;
        Ok((q, k, v))
    }

    /// Causal softmax attention of `q` [B, nh, T, D] over the full `k`, `v` [B, nkv, S, D]
    /// (cache included); returns [B, T, nh·D] before `o_proj`.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, _, t, _) = q.dims4()?;
        let (nh, nkv, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let s = k.dim(2)?;
        let rep = nh / nkv;
        // [B, nh, T, D] -> [B, nkv, rep*T, D]: heads h = kv*rep + r share KV head kv.
        let q = q.contiguous()?.reshape((b, nkv, rep * t, d))?;
        let scores = (q.matmul(&k.t()?)? * self.scale)?; // [B, nkv, rep*T, S]
        let scores = scores.reshape((b, nh, t, s))?.to_dtype(DType::F32)?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(v.dtype())?;
        let out = probs.reshape((b, nkv, rep * t, s))?.matmul(v)?; // [B, nkv, rep*T, D]
        Ok(out
            .reshape((b, nh, t, d))?
            .transpose(1, 2)?
            .reshape((b, t, nh * d))?)
    }
}

/// Additive causal mask [T, past + T] in f32: 0 where key j ≤ past + i, −∞ elsewhere.
pub fn causal_mask(t: usize, past: usize, device: &candle_core::Device) -> Result<Tensor> {
    let s = past + t;
    let data: Vec<f32> = (0..t)
        .flat_map(|i| (0..s).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(data, (t, s), device)?)
}
