//! Launches of `fp8.cu` (feature `cuda`): the FP8 (E4M3, per-output-channel) weight kernels.
//!
//! [`gemv`] is the decode W8A16 linear (weights widened in registers, f32 accumulation, scale
//! and bias applied once per output); [`dequantize`] widens a weight to the activation dtype on
//! the device (the prefill path's weight, made per call and dropped); [`fill_normal`] makes the
//! synthetic model's FP8 weights on the device. The fused MoE path launches `fp8_moe_gemv_*`
//! from `decoder/moe/cuda.rs` through [`ptx`] and [`MODULE`].

#![allow(unsafe_code)]

use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::CudaDevice;
use candle_core::{DType, Device, Tensor};
use float8::F8E4M3;

use super::cuda::{alloc, fail, int, view, wrap};
use super::nvrtc::{compile_once, PtxCell};
use crate::error::{Error, Result};

const SOURCE: &str = include_str!("fp8.cu");
/// The module name the FP8 kernels are loaded under.
pub(crate) const MODULE: &str = "folio_fp8_kernels";
/// Weight rows one block of `fp8_gemv_*` / `fp8_moe_gemv_*` covers (FP8_WARPS · FP8_RPW).
pub(crate) const ROWS_PER_BLOCK: usize = 8 * 2;
/// Threads of one GEMV block (32 · FP8_WARPS).
pub(crate) const GEMV_THREADS: u32 = 256;
/// Largest number of activation rows [`gemv`] takes; more rows go through [`dequantize`] and a
/// matmul (the weights are then read once per row group of FP8_MT = 4 by the GEMV).
pub const GEMV_MAX_ROWS: usize = 16;

static PTX: PtxCell = PtxCell::new();

/// The PTX of `fp8.cu` for `dev`, compiled on first use.
pub(crate) fn ptx(dev: &CudaDevice) -> Result<&'static str> {
    compile_once(&PTX, SOURCE, dev).map_err(|e| fail("compiling fp8.cu with NVRTC", e))
}

fn cuda_of(t: &Tensor) -> Result<CudaDevice> {
    match t.device() {
        Device::Cuda(d) => Ok(d.clone()),
        other => Err(Error::InvalidInput(format!(
            "FP8 kernels need CUDA tensors, got {other:?}"
        ))),
    }
}

fn suffix(dtype: DType) -> Option<&'static str> {
    match dtype {
        DType::F32 => Some("f32"),
        DType::BF16 => Some("bf16"),
        _ => None,
    }
}

/// `x` [.., k] (f32/bf16, contiguous) · `w`ᵀ ([n, k] F8E4M3) · `scale` ([n] f32) (+ `bias` [n])
/// → [.., n] in `x`'s dtype. `None` when the kernel does not apply (CPU, another dtype, more
/// than [`GEMV_MAX_ROWS`] rows, `k` not a multiple of 16).
pub(crate) fn gemv(
    x: &Tensor,
    w: &Tensor,
    scale: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    let Device::Cuda(dev) = x.device() else {
        return Ok(None);
    };
    let Some(sfx) = suffix(x.dtype()) else {
        return Ok(None);
    };
    let (n, k) = w.dims2()?;
    let rows = x.elem_count() / k.max(1);
    if x.dims().last() != Some(&k)
        || rows == 0
        || rows > GEMV_MAX_ROWS
        || k % 16 != 0
        || w.dtype() != DType::F8E4M3
        || scale.dtype() != DType::F32
        || scale.elem_count() != n
        || bias.is_some_and(|b| b.dtype() != x.dtype() || b.elem_count() != n)
    {
        return Ok(None);
    }
    let x = x.contiguous()?;
    let mut out_shape = x.dims().to_vec();
    *out_shape.last_mut().expect("rank ≥ 1") = n;
    let out = match x.dtype() {
        DType::F32 => gemv_t::<f32>(dev, sfx, &x, w, scale, bias, rows, n, k)?,
        _ => gemv_t::<half::bf16>(dev, sfx, &x, w, scale, bias, rows, n, k)?,
    };
    Ok(Some(out.reshape(out_shape)?))
}

#[allow(clippy::too_many_arguments)]
fn gemv_t<T>(
    dev: &CudaDevice,
    sfx: &str,
    x: &Tensor,
    w: &Tensor,
    scale: &Tensor,
    bias: Option<&Tensor>,
    m: usize,
    n: usize,
    k: usize,
) -> Result<Tensor>
where
    T: candle_core::cuda_backend::CudaDType + candle_core::cuda_backend::cudarc::driver::DeviceRepr,
{
    let mut y = alloc::<T>(dev, m * n)?;
    let null = 0u64;
    {
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let (ss, sl) = scale.storage_and_layout();
        let xv = view::<T>(&xs, xl, m * k)?;
        let wv = view::<F8E4M3>(&ws, wl, n * k)?;
        let sv = view::<f32>(&ss, sl, n)?;
        let bias_guard = bias.map(|b| b.storage_and_layout());
        let bv = match &bias_guard {
            Some((bs, bl)) => Some(view::<T>(bs, bl, n)?),
            None => None,
        };
        let func = dev.get_or_load_custom_func(&format!("fp8_gemv_{sfx}"), MODULE, ptx(dev)?)?;
        let mut b = func.builder();
        let (m_i, n_i, k_i) = (int(m, "rows")?, int(n, "out")?, int(k, "in")?);
        b.arg(&xv).arg(&wv).arg(&sv);
        match &bv {
            Some(v) => b.arg(v),
            None => b.arg(&null),
        };
        b.arg(&mut y).arg(&m_i).arg(&n_i).arg(&k_i);
        let cfg = LaunchConfig {
            grid_dim: (n.div_ceil(ROWS_PER_BLOCK) as u32, 1, 1),
            block_dim: (GEMV_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: argument order and types match `fp8_gemv_*`; x holds m·k, w n·k bytes, scale
        // and bias n values, y m·n; k % 16 == 0 and every row is 16-byte aligned (checked).
        unsafe { b.launch(cfg) }.map_err(|e| fail("launching fp8_gemv", e))?;
    }
    Ok(wrap(y, dev, &[m, n]))
}

/// `w` [.., rows, cols] F8E4M3 times `scale` (one f32 per row, `rows` · leading values) →
/// the same shape in `dtype` (f32 or bf16), on the device.
pub(crate) fn dequantize(w: &Tensor, scale: &Tensor, dtype: DType) -> Result<Tensor> {
    let dev = cuda_of(w)?;
    let Some(sfx) = suffix(dtype) else {
        return Err(Error::InvalidInput(format!(
            "FP8 dequantisation to {dtype:?}: only f32 and bf16"
        )));
    };
    let cols = *w.dims().last().unwrap_or(&0);
    let rows = w.elem_count() / cols.max(1);
    if w.dtype() != DType::F8E4M3
        || cols % 16 != 0
        || scale.dtype() != DType::F32
        || scale.elem_count() != rows
    {
        return Err(Error::InvalidInput(format!(
            "FP8 dequantisation of {:?} {:?} with scale {:?} {:?}",
            w.dims(),
            w.dtype(),
            scale.dims(),
            scale.dtype()
        )));
    }
    let w = w.contiguous()?;
    let scale = scale.contiguous()?;
    let out = match dtype {
        DType::F32 => dequant_t::<f32>(&dev, sfx, &w, &scale, rows, cols)?,
        _ => dequant_t::<half::bf16>(&dev, sfx, &w, &scale, rows, cols)?,
    };
    Ok(out.reshape(w.dims())?)
}

fn dequant_t<T>(
    dev: &CudaDevice,
    sfx: &str,
    w: &Tensor,
    scale: &Tensor,
    rows: usize,
    cols: usize,
) -> Result<Tensor>
where
    T: candle_core::cuda_backend::CudaDType + candle_core::cuda_backend::cudarc::driver::DeviceRepr,
{
    let mut out = alloc::<T>(dev, rows * cols)?;
    {
        let (ws, wl) = w.storage_and_layout();
        let (ss, sl) = scale.storage_and_layout();
        let wv = view::<F8E4M3>(&ws, wl, rows * cols)?;
        let sv = view::<f32>(&ss, sl, rows)?;
        let func = dev.get_or_load_custom_func(&format!("fp8_dequant_{sfx}"), MODULE, ptx(dev)?)?;
        let mut b = func.builder();
        let rows_i = rows as i64;
        let cols_i = int(cols, "columns")?;
        b.arg(&wv).arg(&sv).arg(&mut out).arg(&rows_i).arg(&cols_i);
        let groups = (rows * cols / 16) as u64;
        let cfg = LaunchConfig {
            grid_dim: (groups.div_ceil(256).clamp(1, 1 << 20) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: matches `fp8_dequant_*`; w holds rows·cols bytes, scale rows values, out
        // rows·cols elements; cols % 16 == 0 (checked).
        unsafe { b.launch(cfg) }.map_err(|e| fail("launching fp8_dequant", e))?;
    }
    Ok(wrap(out, dev, &[rows, cols]))
}

/// A new F8E4M3 tensor of `shape` on `dev` holding e4m3(N(0, sigma²)) values (saturating at
/// ±448) from the counter-based generator of `fp8.cu`, keyed by `seed`.
pub(crate) fn fill_normal(
    shape: &[usize],
    sigma: f32,
    seed: u64,
    dev: &CudaDevice,
) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    if n % 4 != 0 {
        return Err(Error::InvalidInput(format!(
            "synthetic FP8 tensor of {shape:?}: element count must be a multiple of 4"
        )));
    }
    let mut out = alloc::<F8E4M3>(dev, n)?;
    {
        let func = dev.get_or_load_custom_func("fp8_fill_normal", MODULE, ptx(dev)?)?;
        let mut b = func.builder();
        let n4 = (n / 4) as i64;
        b.arg(&mut out).arg(&n4).arg(&seed).arg(&sigma);
        let cfg = LaunchConfig {
            grid_dim: ((n as u64 / 4).div_ceil(256).clamp(1, 1 << 16) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: matches `fp8_fill_normal`; out holds n bytes written as n/4 words.
        unsafe { b.launch(cfg) }.map_err(|e| fail("launching fp8_fill_normal", e))?;
    }
    Ok(wrap(out, dev, shape))
}
