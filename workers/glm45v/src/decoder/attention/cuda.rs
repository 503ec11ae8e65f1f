//! CUDA fast path of [`Attention::forward`] for decode steps (one new token per sequence):
//! three projection GEMMs without bias (the FP8 GEMV for FP8 weights), then `kernels/decode.cu`'s fused attention (bias,
//! partial RoPE, KV-cache append in place, single-query GQA attention: two launches), then
//! `o_proj` — ≈ 6 launches instead of ≈ 30 candle ops. Used when [`fused_enabled`] and the
//! kernel supports the shapes; returns `None` otherwise and the candle path runs.
//!
//! [`fused_enabled`]: crate::kernels::fused_enabled

use candle_core::{DType, Device, Tensor};

use super::Attention;
use crate::decoder::kv_cache::KvCache;
use crate::decoder::linear::Proj;
use crate::error::Result;
use crate::kernels::cuda::{decode_attention, AttnArgs, AttnShape};

/// What both paths compute before the attention kernel, for `n` single-token rows: the three
/// projections without bias [n, ·], the biases (zeros where a projection has none), cos/sin
/// [n, rotary/2], and the kernel's shape with `past`/`capacity` still to fill in.
struct Prepared {
    n: usize,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_bias: Tensor,
    k_bias: Tensor,
    v_bias: Tensor,
    cos: Tensor,
    sin: Tensor,
    probe: AttnShape,
    dtype: DType,
    device: Device,
}

/// `None` when the fused kernel does not apply (switched off, not CUDA, another dtype, more than
/// one token per row, an unsupported shape). `batch` is the kernel's batch per launch.
fn prepare(
    attn: &Attention,
    x: &Tensor,
    rotary: usize,
    cos: &Tensor,
    sin: &Tensor,
    batch: Option<usize>,
) -> Result<Option<Prepared>> {
    let (n, t, hidden) = x.dims3()?;
    let dtype = x.dtype();
    if t != 1
        || !crate::kernels::fused_enabled()
        || !x.device().is_cuda()
        || !matches!(dtype, DType::F32 | DType::BF16)
        || cos.dtype() != dtype
        || attn.q_proj.dense_dtype().is_some_and(|w| w != dtype)
    {
        return Ok(None);
    }
    let (nh, nkv, d) = (attn.num_heads, attn.num_kv_heads, attn.head_dim);
    let probe = AttnShape {
        batch: batch.unwrap_or(n),
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
    let proj = |l: &Proj| l.forward_no_bias(&x2);
    let bias = |l: &Proj, len: usize| -> Result<Tensor> {
        match l.bias() {
            Some(bias) => Ok(bias.contiguous()?),
            None => Ok(Tensor::zeros(len, dtype, x.device())?),
        }
    };
    let half = rotary / 2;
    Ok(Some(Prepared {
        n,
        q: proj(&attn.q_proj)?,
        k: proj(&attn.k_proj)?,
        v: proj(&attn.v_proj)?,
        q_bias: bias(&attn.q_proj, nh * d)?,
        k_bias: bias(&attn.k_proj, nkv * d)?,
        v_bias: bias(&attn.v_proj, nkv * d)?,
        cos: cos.reshape((n, half))?.contiguous()?,
        sin: sin.reshape((n, half))?.contiguous()?,
        probe,
        dtype,
        device: x.device().clone(),
    }))
}

/// `[n, nh·D]` attention output → `o_proj` → `[n, 1, hidden]`.
fn output(attn: &Attention, out: &Tensor, n: usize) -> Result<Tensor> {
    let width = attn.num_heads * attn.head_dim;
    attn.o_proj.forward(&out.reshape((n, 1, width))?)
}

/// `x` [B, 1, hidden], `cos`/`sin` [B, 1, rotary/2]; the new keys/values go into `cache`.
pub(super) fn try_forward(
    attn: &Attention,
    x: &Tensor,
    rotary: usize,
    cos: &Tensor,
    sin: &Tensor,
    cache: &mut KvCache,
) -> Result<Option<Tensor>> {
    let Some(p) = prepare(attn, x, rotary, cos, sin, None)? else {
        return Ok(None);
    };
    let kv_shape = (p.n, attn.num_kv_heads, attn.head_dim);
    let (k_cache, v_cache, past) = cache.reserve_one(attn.layer, kv_shape, p.dtype, &p.device)?;
    let shape = AttnShape {
        past,
        capacity: k_cache.dim(2)?,
        ..p.probe
    };
    let out = decode_attention(
        &AttnArgs {
            q: &p.q,
            k: &p.k,
            v: &p.v,
            q_bias: &p.q_bias,
            k_bias: &p.k_bias,
            v_bias: &p.v_bias,
            cos: &p.cos,
            sin: &p.sin,
            k_cache: &k_cache,
            v_cache: &v_cache,
        },
        &shape,
    )?;
    cache.commit_one(attn.layer, past)?;
    Ok(Some(output(attn, &out, p.n)?))
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
    if x.dim(0)? != caches.len() {
        return Ok(None);
    }
    let Some(p) = prepare(attn, x, rotary, cos, sin, Some(1))? else {
        return Ok(None);
    };
    let kv_shape = (1, attn.num_kv_heads, attn.head_dim);
    let mut outs = Vec::with_capacity(p.n);
    for (i, cache) in caches.iter_mut().enumerate() {
        let (k_cache, v_cache, past) =
            cache.reserve_one(attn.layer, kv_shape, p.dtype, &p.device)?;
        let shape = AttnShape {
            past,
            capacity: k_cache.dim(2)?,
            ..p.probe
        };
        let row = |t: &Tensor| t.narrow(0, i, 1);
        outs.push(decode_attention(
            &AttnArgs {
                q: &row(&p.q)?,
                k: &row(&p.k)?,
                v: &row(&p.v)?,
                q_bias: &p.q_bias,
                k_bias: &p.k_bias,
                v_bias: &p.v_bias,
                cos: &row(&p.cos)?,
                sin: &row(&p.sin)?,
                k_cache: &k_cache,
                v_cache: &v_cache,
            },
            &shape,
        )?);
        cache.commit_one(attn.layer, past)?;
    }
    let out = Tensor::cat(&outs, 0)?; // [N, nh·D]
    Ok(Some(output(attn, &out, p.n)?))
}
