//! The `Gathered` MoE path for prefill-sized batches on CUDA (feature `cuda`, f32/bf16).
//!
//! Device routing ([`super::cuda::route`]), then: `moe_align` (pairs grouped by expert), one
//! small device→host copy of the E + 1 offsets to size the packed buffer (the largest bucket,
//! `m_max`), `moe_pack_rows` (each expert's token rows packed into [E, m_max, H], zero padding,
//! and the packed row of every (token, expert) pair), two strided-batched cuBLAS GEMMs over the
//! experts (candle matmuls of 3-D tensors against the stacked [E, 2I, H] / [E, H, I] weights)
//! around `moe_silu_mul`, and `moe_combine`: each token reads its k packed rows and weights and
//! writes its output row once, the shared expert added — no atomics and no `index_add`.
//! Seven launches per layer besides the shared expert, whatever the number of experts.

#![allow(unsafe_code)]

use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::CudaDType;
use candle_core::{DType, Tensor};

use super::cuda::{alloc, cuda_device, fail, i32_arg, ptx, view, wrap, MODULE};
use crate::error::{Error, Result};

const PACK_THREADS: u32 = 128;
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
    let (n, h) = x.dims2()?;
    let (n2, k) = ids.dims2()?;
    let (e, two_i, h2) = gate_up.dims3()?;
    let (e2, h3, inter) = down.dims3()?;
    if n2 != n
        || h2 != h
        || h3 != h
        || e2 != e
        || two_i != 2 * inter
        || w.dims() != ids.dims()
        || shared.dims() != x.dims()
        || shared.dtype() != x.dtype()
        || gate_up.dtype() != x.dtype()
        || down.dtype() != x.dtype()
    {
        return Err(Error::InvalidInput(format!(
            "gathered MoE shapes: x {:?} ids {:?} w {:?} gate_up {:?} down {:?} shared {:?}",
            x.dims(),
            ids.dims(),
            w.dims(),
            gate_up.dims(),
            down.dims(),
            shared.dims()
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
    let mut offsets = alloc::<i32>(&dev, e + 1)?;
    let mut sorted = alloc::<i32>(&dev, pairs)?;
    let mut active = alloc::<i32>(&dev, e)?;
    let mut n_active = alloc::<i32>(&dev, 1)?;
    let (pairs_i, e_i, k_i, h_i) = (
        i32_arg(pairs, "pairs")?,
        i32_arg(e, "experts")?,
        i32_arg(k, "top_k")?,
        i32_arg(h, "hidden")?,
    );
    {
        let (is, il) = ids.storage_and_layout();
        let iv = view::<u32>(&is, il)?;
        let func = dev.get_or_load_custom_func("moe_align", MODULE, ptx)?;
        let mut b = func.builder();
        b.arg(&iv)
            .arg(&pairs_i)
            .arg(&e_i)
            .arg(&mut offsets)
            .arg(&mut sorted)
            .arg(&mut active)
            .arg(&mut n_active);
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (1024, 1, 1),
            shared_mem_bytes: 2 * e as u32 * 4,
        };
        // SAFETY: matches `moe_align`'s signature; ids holds `pairs` values < E (from `route`).
        unsafe { b.launch(cfg) }.map_err(|e| fail("launching moe_align")(e.to_string()))?;
    }
    // The one host round trip: the bucket sizes, to size the packed buffer.
    let host_offsets = stream
        .clone_dtoh(&offsets)
        .map_err(|e| fail("reading the expert offsets")(e.to_string()))?;
    stream
        .synchronize()
        .map_err(|e| fail("synchronising")(e.to_string()))?;
    let m_max = host_offsets
        .windows(2)
        .map(|p| (p[1] - p[0]).max(0) as usize)
        .max()
        .unwrap_or(0)
        .max(1);
    let rows = e * m_max;
    let mut packed = alloc::<T>(&dev, rows * h)?;
    let mut slot = alloc::<i32>(&dev, pairs)?;
    {
        let (xs, xl) = x.storage_and_layout();
        let xv = view::<T>(&xs, xl)?;
        let func = dev.get_or_load_custom_func("moe_pack_rows", MODULE, ptx)?;
        let mut b = func.builder();
        let (rb_i, m_i) = (i32_arg(row_bytes, "row bytes")?, i32_arg(m_max, "m_max")?);
        b.arg(&xv)
            .arg(&rb_i)
            .arg(&k_i)
            .arg(&offsets)
            .arg(&sorted)
            .arg(&m_i)
            .arg(&mut packed)
            .arg(&mut slot);
        let cfg = LaunchConfig {
            grid_dim: (m_max as u32, e as u32, 1),
            block_dim: (PACK_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: matches `moe_pack_rows` (byte pointers of T data); x is [N, H] contiguous,
        // packed holds E·m_max rows of `row_bytes`, slot `pairs` ints; every pair has an expert
        // < E, so every slot and every packed row is written.
        unsafe { b.launch(cfg) }.map_err(|e| fail("launching moe_pack_rows")(e.to_string()))?;
    }
    let packed = wrap(packed, &dev, &[e, m_max, h]);
    let gu = packed.matmul(&gate_up.transpose(1, 2)?)?; // [E, m_max, 2I]
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
    let act = wrap(act, &dev, &[e, m_max, inter]);
    let y = act.matmul(&down.transpose(1, 2)?)?; // [E, m_max, H]
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
        // SAFETY: y is [E·m_max, H] and every slot < E·m_max; w is [N·k] f32, shared and out
        // [N, H]; every element of out is written.
        unsafe { b.launch(cfg) }.map_err(|e| fail("launching moe_combine")(e.to_string()))?;
    }
    Ok(wrap(out, &dev, &[n, h]))
}
