//! The `Gathered` MoE path for prefill-sized batches on CUDA (feature `cuda`, f32/bf16).
//!
//! Device routing ([`super::cuda::route`]), then: `moe_align` (pairs grouped by expert), one
//! small device→host copy of the E + 1 offsets (bucket sizes), `moe_pack_rows` (each expert's
//! first `m_cap` token rows packed into [E, m_cap, H] with zero padding, the rows of buckets
//! larger than `m_cap` after them, and the packed row of every (token, expert) pair), two
//! strided-batched cuBLAS GEMMs over the experts (candle matmuls of 3-D tensors against the
//! stacked [E, 2I, H] / [E, H, I] weights) plus one matmul pair per overflowing expert, around
//! `moe_silu_mul`, and `moe_combine`: each token reads its k packed rows and weights and writes
//! its output row once, the shared expert added — no atomics and no `index_add`.
//! `m_cap` is chosen on the host to minimise padded rows + overflow rows + a launch cost per
//! overflowing expert: with skewed routing (one bucket of 1,270 of 1,300 tokens, seen with
//! random weights) padding every bucket to the largest would multiply the GEMM work by ≈ 15.

#![allow(unsafe_code)]

use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::CudaDType;
use candle_core::{DType, Tensor};

use super::cuda::{
    align, alloc, cuda_device, fail, i32_arg, ptx, view, wrap, Buckets, ExpertShapes, MODULE,
};
use crate::error::{Error, Result};

const PACK_THREADS: u32 = 128;
/// Rows of GEMM work one extra per-expert matmul pair is worth (≈ 6 launches of ≈ 6 µs against
/// ≈ 0.06 µs per row of a 4096 × 1408 expert at ≈ 600 TFLOP/s).
const OVERFLOW_COST_ROWS: usize = 512;
const COMBINE_THREADS: u32 = 256;

/// Σ_k w_k · expert_k(x) + `shared` for `x` [N, H] routed by `ids`/`w` [N, k] (device
/// tensors from `route`); `gate_up` [E, 2I, H], `down` [E, H, I] and `shared` [N, H] in `x`'s
/// dtype. Returns [N, H] in `x`'s dtype.
pub(super) fn experts(
    x: &Tensor,
    ids: &Tensor,
    w: &Tensor,
    gate_up: &Tensor,
    down: &Tensor,
    shared: &Tensor,
) -> Result<Tensor> {
    match x.dtype() {
        DType::F32 => experts_t::<f32>(
            x,
            ids,
            w,
            gate_up,
            down,
            shared,
            "moe_silu_mul_f32",
            "moe_combine_f32",
        ),
        DType::BF16 => experts_t::<half::bf16>(
            x,
            ids,
            w,
            gate_up,
            down,
            shared,
            "moe_silu_mul_bf16",
            "moe_combine_bf16",
        ),
        other => Err(Error::InvalidInput(format!(
            "gathered MoE supports f32 and bf16, not {other:?}"
        ))),
    }
}

#[allow(clippy::too_many_arguments)]
fn experts_t<T: CudaDType + DeviceRepr>(
    x: &Tensor,
    ids: &Tensor,
    w: &Tensor,
    gate_up: &Tensor,
    down: &Tensor,
    shared: &Tensor,
    silu_mul: &str,
    combine: &str,
) -> Result<Tensor> {
    let dev = cuda_device(x)?;
    let ExpertShapes { n, h, k, e, inter } =
        ExpertShapes::of("gathered MoE", x, ids, w, gate_up, down)?;
    if shared.dims() != x.dims()
        || shared.dtype() != x.dtype()
        || gate_up.dtype() != x.dtype()
        || down.dtype() != x.dtype()
    {
        return Err(Error::InvalidInput(format!(
            "gathered MoE: shared {:?} {:?}, gate_up {:?}, down {:?} against x {:?} {:?}",
            shared.dims(),
            shared.dtype(),
            gate_up.dtype(),
            down.dtype(),
            x.dims(),
            x.dtype()
        )));
    }
    let row_bytes = h * std::mem::size_of::<T>();
    if row_bytes % 16 != 0 {
        return Err(Error::InvalidInput(format!(
            "gathered MoE: hidden size {h} is not a multiple of 16 bytes"
        )));
    }
    let pairs = n * k;
    let ptx = ptx(&dev)?;
    let stream = dev.cuda_stream();
    let (k_i, h_i) = (i32_arg(k, "top_k")?, i32_arg(h, "hidden")?);
    let Buckets {
        offsets, sorted, ..
    } = {
        let (is, il) = ids.storage_and_layout();
        let iv = view::<u32>(&is, il)?;
        align(&dev, ptx, &iv, pairs, e)?
    };
    // The one host round trip: the bucket sizes, to size the packed buffer.
    let host_offsets = stream
        .clone_dtoh(&offsets)
        .map_err(|e| fail("reading the expert offsets")(e.to_string()))?;
    stream
        .synchronize()
        .map_err(|e| fail("synchronising")(e.to_string()))?;
    let counts: Vec<usize> = host_offsets
        .windows(2)
        .map(|p| (p[1] - p[0]).max(0) as usize)
        .collect();
    let m_max = counts.iter().copied().max().unwrap_or(0).max(1);
    let m_cap = bucket_cap(&counts);
    // Overflow rows of the buckets larger than m_cap: (expert, first packed row, rows).
    let mut over = vec![0i32; e];
    let mut hot = Vec::new();
    let mut n_over = 0usize;
    for (ex, &c) in counts.iter().enumerate() {
        over[ex] = i32_arg(n_over, "overflow rows")?;
        if c > m_cap {
            hot.push((ex, e * m_cap + n_over, c - m_cap));
            n_over += c - m_cap;
        }
    }
    let rows = e * m_cap + n_over;
    let over = stream
        .clone_htod(&over)
        .map_err(|e| fail("uploading the overflow offsets")(e.to_string()))?;
    let mut packed = alloc::<T>(&dev, rows * h)?;
    let mut slot = alloc::<i32>(&dev, pairs)?;
    {
        let (xs, xl) = x.storage_and_layout();
        let xv = view::<T>(&xs, xl)?;
        let func = dev.get_or_load_custom_func("moe_pack_rows", MODULE, ptx)?;
        let mut b = func.builder();
        let (rb_i, m_i) = (i32_arg(row_bytes, "row bytes")?, i32_arg(m_cap, "m_cap")?);
        b.arg(&xv)
            .arg(&rb_i)
            .arg(&k_i)
            .arg(&offsets)
            .arg(&sorted)
            .arg(&m_i)
            .arg(&over)
            .arg(&mut packed)
            .arg(&mut slot);
        let cfg = LaunchConfig {
            grid_dim: (m_max.max(m_cap) as u32, e as u32, 1),
            block_dim: (PACK_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: matches `moe_pack_rows` (byte pointers of T data); x is [N, H] contiguous,
        // packed holds E·m_cap + overflow rows of `row_bytes`, slot `pairs` ints, over E ints;
        // every pair has an expert < E, so every slot and every packed row is written.
        unsafe { b.launch(cfg) }.map_err(|e| fail("launching moe_pack_rows")(e.to_string()))?;
    }
    let packed = wrap(packed, &dev, &[rows, h]);
    let gu = per_expert(&packed, gate_up, e, m_cap, &hot)?; // [rows, 2I]
    let mut act = alloc::<T>(&dev, rows * inter)?;
    {
        let (gs, gl) = gu.storage_and_layout();
        let gv = view::<T>(&gs, gl)?;
        let func = dev.get_or_load_custom_func(silu_mul, MODULE, ptx)?;
        let mut b = func.builder();
        let (rows_i, inter_i) = (i32_arg(rows, "rows")?, i32_arg(inter, "inter")?);
        b.arg(&gv).arg(&mut act).arg(&rows_i).arg(&inter_i);
        let total = (rows * inter) as u32;
        let cfg = LaunchConfig {
            grid_dim: (total.div_ceil(256).clamp(1, 65_535), 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: gu is [rows, 2I] contiguous (a fresh matmul output), act [rows, I].
        unsafe { b.launch(cfg) }.map_err(|e| fail("launching silu_mul")(e.to_string()))?;
    }
    let act = wrap(act, &dev, &[rows, inter]);
    let y = per_expert(&act, down, e, m_cap, &hot)?; // [rows, H]
    let mut out = alloc::<T>(&dev, n * h)?;
    {
        let (ys, yl) = y.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let (ss, sl) = shared.storage_and_layout();
        let yv = view::<T>(&ys, yl)?;
        let wv = view::<f32>(&ws, wl)?;
        let sv = view::<T>(&ss, sl)?;
        let func = dev.get_or_load_custom_func(combine, MODULE, ptx)?;
        let mut b = func.builder();
        b.arg(&yv)
            .arg(&slot)
            .arg(&wv)
            .arg(&sv)
            .arg(&mut out)
            .arg(&k_i)
            .arg(&h_i);
        let cfg = LaunchConfig {
            grid_dim: (n as u32, (h as u32).div_ceil(COMBINE_THREADS), 1),
            block_dim: (COMBINE_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: y is [rows, H] and every slot < rows; w is [N·k] f32, shared and out
        // [N, H]; every element of out is written.
        unsafe { b.launch(cfg) }.map_err(|e| fail("launching moe_combine")(e.to_string()))?;
    }
    Ok(wrap(out, &dev, &[n, h]))
}

/// `rows` [E·m_cap + overflow, K] times each expert's `weights` [E, N, K] transposed: one
/// strided-batched GEMM over the padded part, one matmul per overflowing expert; [rows, N].
fn per_expert(
    rows: &Tensor,
    weights: &Tensor,
    e: usize,
    m_cap: usize,
    hot: &[(usize, usize, usize)],
) -> Result<Tensor> {
    let (_, k) = rows.dims2()?;
    let n = weights.dim(1)?;
    let main = rows
        .narrow(0, 0, e * m_cap)?
        .reshape((e, m_cap, k))?
        .matmul(&weights.transpose(1, 2)?)?
        .reshape((e * m_cap, n))?;
    if hot.is_empty() {
        return Ok(main);
    }
    let mut parts = Vec::with_capacity(hot.len() + 1);
    parts.push(main);
    for &(ex, start, len) in hot {
        parts.push(rows.narrow(0, start, len)?.matmul(&weights.get(ex)?.t()?)?);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Rows per expert in the padded part: the m minimising E·m (padded rows) + the rows above m
/// + [`OVERFLOW_COST_ROWS`] per bucket larger than m.
fn bucket_cap(counts: &[usize]) -> usize {
    let mut candidates: Vec<usize> = counts.iter().copied().filter(|&c| c > 0).collect();
    candidates.push(1);
    candidates.sort_unstable();
    candidates.dedup();
    let cost = |m: usize| {
        let (rows, buckets) = counts
            .iter()
            .filter(|&&c| c > m)
            .fold((0, 0), |(r, b), &c| (r + c - m, b + 1));
        counts.len() * m + rows + OVERFLOW_COST_ROWS * buckets
    };
    candidates.into_iter().min_by_key(|&m| cost(m)).unwrap_or(1)
}
