//! CUDA fast path of [`Attention::forward`] for decode steps (one new token per sequence):
//! three projection GEMMs without bias, then `kernels/decode.cu`'s fused attention (bias,
//! partial RoPE, KV-cache append in place, single-query GQA attention: two launches), then
//! `o_proj` — ≈ 6 launches instead of ≈ 30 candle ops. Used when [`fused_enabled`] and the
//! kernel supports the shapes; returns `None` otherwise and the candle path runs.
//!
//! [`fused_enabled`]: crate::kernels::fused_enabled

use candle_core::{DType, Module, Tensor};

use super::Attention;
use crate::error::Result;
use crate::kernels::cuda::{decode_attention, AttnArgs, AttnShape};
use crate::kv_cache::KvCache;

/// `x` [B, 1, hidden], `cos`/`sin` [B, 1, rotary/2]; the new keys/values go into `cache`.
pub(super) fn try_forward(
    attn: &Attention,
    x: &Tensor,
    rotary: usize,
    cos: &Tensor,
    sin: &Tensor,
    cache: &mut KvCache,
) -> Result<Option<Tensor>> {
    let (b, t, hidden) = x.dims3()?;
    let dtype = x.dtype();
    if t != 1
        || !crate::kernels::fused_enabled()
        || !x.device().is_cuda()
        || !matches!(dtype, DType::F32 | DType::BF16)
        || cos.dtype() != dtype
        || attn.q_proj.weight().dtype() != dtype
    {
        return Ok(None);
    }
    let (nh, nkv, d) = (attn.num_heads, attn.num_kv_heads, attn.head_dim);
    let probe = AttnShape {
        batch: b,
        heads: nh,
        kv_heads: nkv,
        head_dim: d,
        rotary,
        past: 0,
        capacity: 1,
        scale: attn.scale,
    };
    if !probe.supported() {
        return Ok(None);
    }
    let x2 = x.reshape((b, hidden))?;
    let proj = |l: &candle_nn::Linear| -> Result<Tensor> {
        Ok(x2.matmul(&l.weight().t()?)?.contiguous()?)
    };
    let (q, k, v) = (
        proj(&attn.q_proj)?,
        proj(&attn.k_proj)?,
        proj(&attn.v_proj)?,
    );
    let bias = |l: &candle_nn::Linear, n: usize| -> Result<Tensor> {
        match l.bias() {
            Some(bias) => Ok(bias.contiguous()?),
            None => Ok(Tensor::zeros(n, dtype, x.device())?),
        }
    };
    let (qb, kb, vb) = (
        bias(&attn.q_proj, nh * d)?,
        bias(&attn.k_proj, nkv * d)?,
        bias(&attn.v_proj, nkv * d)?,
    );
    let half = rotary / 2;
    let cos = cos.reshape((b, half))?.contiguous()?;
    let sin = sin.reshape((b, half))?.contiguous()?;
    let (k_cache, v_cache, past) = cache.reserve_one(attn.layer, (b, nkv, d), dtype, x.device())?;
    let shape = AttnShape {
        past,
        capacity: k_cache.dim(2)?,
        ..probe
    };
    let out = decode_attention(
        &AttnArgs {
            q: &q,
            k: &k,
            v: &v,
            q_bias: &qb,
            k_bias: &kb,
            v_bias: &vb,
            cos: &cos,
            sin: &sin,
            k_cache: &k_cache,
            v_cache: &v_cache,
        },
        &shape,
    )?;
    cache.commit_one(attn.layer, past)?;
    Ok(Some(attn.o_proj.forward(&out.reshape((
        b,
        1,
        nh * d,
    ))?)?))
}

/// Ragged decode (`batch.rs`): `x` [N, 1, hidden], `cos`/`sin` [N, 1, rotary/2], one cache per
/// sequence. Projections run batched; each sequence gets its own two attention launches over
/// its own cache (any length).
pub(super) fn try_forward_ragged(
    attn: &Attention,
    x: &Tensor,
    rotary: usize,
    cos: &Tensor,
    sin: &Tensor,
    caches: &mut [&mut KvCache],
) -> Result<Option<Tensor>> {
    let (n, t, hidden) = x.dims3()?;
    let dtype = x.dtype();
    if t != 1
        || n != caches.len()
        || !crate::kernels::fused_enabled()
        || !x.device().is_cuda()
        || !matches!(dtype, DType::F32 | DType::BF16)
        || cos.dtype() != dtype
        || attn.q_proj.weight().dtype() != dtype
    {
        return Ok(None);
    }
    let (nh, nkv, d) = (attn.num_heads, attn.num_kv_heads, attn.head_dim);
    let probe = AttnShape {
        batch: 1,
        heads: nh,
        kv_heads: nkv,
        head_dim: d,
        rotary,
        past: 0,
        capacity: 1,
        scale: attn.scale,
    };
    if !probe.supported() {
        return Ok(None);
    }
    let x2 = x.reshape((n, hidden))?;
    let proj = |l: &candle_nn::Linear| -> Result<Tensor> {
        Ok(x2.matmul(&l.weight().t()?)?.contiguous()?)
    };
    let (q, k, v) = (
        proj(&attn.q_proj)?,
        proj(&attn.k_proj)?,
        proj(&attn.v_proj)?,
    );
    let bias = |l: &candle_nn::Linear, len: usize| -> Result<Tensor> {
        match l.bias() {
            Some(bias) => Ok(bias.contiguous()?),
            None => Ok(Tensor::zeros(len, dtype, x.device())?),
        }
    };
    let (qb, kb, vb) = (
        bias(&attn.q_proj, nh * d)?,
        bias(&attn.k_proj, nkv * d)?,
        bias(&attn.v_proj, nkv * d)?,
    );
    let half = rotary / 2;
    let cos = cos.reshape((n, half))?.contiguous()?;
    let sin = sin.reshape((n, half))?.contiguous()?;
    let mut outs = Vec::with_capacity(n);
    for (i, cache) in caches.iter_mut().enumerate() {
        let (k_cache, v_cache, past) =
            cache.reserve_one(attn.layer, (1, nkv, d), dtype, x.device())?;
        let shape = AttnShape {
            past,
            capacity: k_cache.dim(2)?,
            ..probe
        };
        let row = |t: &Tensor| t.narrow(0, i, 1);
        outs.push(decode_attention(
            &AttnArgs {
                q: &row(&q)?,
                k: &row(&k)?,
                v: &row(&v)?,
                q_bias: &qb,
                k_bias: &kb,
                v_bias: &vb,
                cos: &row(&cos)?,
                sin: &row(&sin)?,
                k_cache: &k_cache,
                v_cache: &v_cache,
            },
            &shape,
        )?);
        cache.commit_one(attn.layer, past)?;
    }
    let out = Tensor::cat(&outs, 0)?; // [N, nh·D]
    Ok(Some(attn.o_proj.forward(&out.reshape((
        n,
        1,
        nh * d,
    ))?)?))
}
