//! Launches of `decode.cu` (feature `cuda`): fused decode attention and fused RMSNorm.
//!
//! The PTX is compiled once per process with NVRTC for the device's architecture; every call
//! checks shapes, dtypes and contiguity and returns `Ok(None)` where the kernels do not apply,
//! so the callers fall back to candle's ops.

#![allow(unsafe_code)]

use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, CudaDevice};
use candle_core::op::BackpropOp;
use candle_core::{CudaStorage, DType, Layout, Storage, Tensor};

use super::nvrtc::{compile_once, PtxCell};
use crate::error::{Error, Result};

const SOURCE: &str = include_str!("decode.cu");
const MODULE: &str = "folio_decode_kernels";
/// Cached positions per attention block (`CHUNK` in decode.cu).
const CHUNK: usize = 32;
const ATTN_THREADS: u32 = 256;
const NORM_THREADS: u32 = 256;
/// Shared memory a block may use without opting in.
const SMEM_LIMIT: usize = 48 * 1024;

static PTX: PtxCell = PtxCell::new();

pub(super) fn fail(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Candle(candle_core::Error::Msg(format!(
        "fused decode kernels: {what}: {e}"
    )))
}

fn cuda_device(t: &Tensor) -> Option<CudaDevice> {
    match t.device() {
        candle_core::Device::Cuda(d) => Some(d.clone()),
        _ => None,
    }
}

fn ptx(dev: &CudaDevice) -> Result<&'static str> {
    compile_once(&PTX, SOURCE, dev).map_err(|e| fail("compiling decode.cu with NVRTC", e))
}

/// The contiguous device data of `t` from element `skip` on, `len` elements.
pub(super) fn view<'a, T: CudaDType>(
    storage: &'a Storage,
    layout: &Layout,
    len: usize,
) -> Result<CudaView<'a, T>> {
    let Storage::Cuda(c) = storage else {
        return Err(fail("operand", "tensor is not on CUDA"));
    };
    let slice = c.as_cuda_slice::<T>()?;
    let start = layout.start_offset();
    if start + len > slice.len() {
        return Err(fail(
            "operand",
            format!(
                "{len} elements from {start} exceed its buffer of {}",
                slice.len()
            ),
        ));
    }
    Ok(slice.slice(start..start + len))
}

pub(super) fn wrap<T: CudaDType>(slice: CudaSlice<T>, dev: &CudaDevice, shape: &[usize]) -> Tensor {
    let storage = CudaStorage::wrap_cuda_slice(slice, dev.clone());
    Tensor::from_storage(
        Storage::Cuda(storage),
        shape.to_vec(),
        BackpropOp::none(),
        false,
    )
}

pub(super) fn alloc<T: DeviceRepr>(dev: &CudaDevice, len: usize) -> Result<CudaSlice<T>> {
    // SAFETY: every buffer allocated here is fully written by the kernel that receives it
    // before anything reads it (partial: every (sequence, head, chunk) row; combine and norm:
    // every output element).
    Ok(unsafe { dev.alloc::<T>(len.max(1)) }?)
}

pub(super) fn int(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| fail(what, format!("{v} overflows i32")))
}

/// The device's (free, total) memory in bytes.
pub(crate) fn device_memory(dev: &CudaDevice) -> Result<(u64, u64)> {
    use candle_core::cuda_backend::cudarc::driver::result;
    let stream = dev.cuda_stream();
    stream
        .context()
        .bind_to_thread()
        .map_err(|e| fail("binding the context", format!("{e:?}")))?;
    let (free, total) =
        result::mem_get_info().map_err(|e| fail("cuMemGetInfo", format!("{e:?}")))?;
    Ok((free as u64, total as u64))
}

fn suffix(dtype: DType) -> Option<&'static str> {
    match dtype {
        DType::F32 => Some("f32"),
        DType::BF16 => Some("bf16"),
        _ => None,
    }
}

/// `weight · RMSNorm(x + delta)` over the last dim (`delta` optional), in `x`'s dtype; returns
/// (`x + delta` when `delta` is given, the normalised rows). `None` when not applicable.
pub(crate) fn rms_norm(
    x: &Tensor,
    delta: Option<&Tensor>,
    weight: &Tensor,
    eps: f64,
) -> Result<Option<(Option<Tensor>, Tensor)>> {
    let Some(dev) = cuda_device(x) else {
        return Ok(None);
    };
    let Some(sfx) = suffix(x.dtype()) else {
        return Ok(None);
    };
    let cols = weight.elem_count();
    if weight.dtype() != x.dtype()
        || weight.rank() != 1
        || x.dims().last() != Some(&cols)
        || delta.is_some_and(|d| d.dims() != x.dims() || d.dtype() != x.dtype())
        || !weight.is_contiguous()
    {
        return Ok(None);
    }
    match x.dtype() {
        DType::F32 => norm_t::<f32>(&dev, sfx, x, delta, weight, eps),
        _ => norm_t::<half::bf16>(&dev, sfx, x, delta, weight, eps),
    }
    .map(Some)
}

fn norm_t<T: CudaDType + DeviceRepr>(
    dev: &CudaDevice,
    sfx: &str,
    x: &Tensor,
    delta: Option<&Tensor>,
    weight: &Tensor,
    eps: f64,
) -> Result<(Option<Tensor>, Tensor)> {
    let x = x.contiguous()?;
    let delta = delta.map(Tensor::contiguous).transpose()?;
    let n = x.elem_count();
    let cols = weight.elem_count();
    let rows = n / cols.max(1);
    let mut out = alloc::<T>(dev, n)?;
    let mut sum = alloc::<T>(dev, if delta.is_some() { n } else { 1 })?;
    let cols_i = int(cols, "columns")?;
    let eps = eps as f32;
    let null_ptr = 0u64;
    {
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = weight.storage_and_layout();
        let xv = view::<T>(&xs, xl, n)?;
        let wv = view::<T>(&ws, wl, cols)?;
        let func =
            dev.get_or_load_custom_func(&format!("rms_norm_add_{sfx}"), MODULE, ptx(dev)?)?;
        let mut b = func.builder();
        let cfg = LaunchConfig {
            grid_dim: (int(rows, "rows")? as u32, 1, 1),
            block_dim: (NORM_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        match &delta {
            Some(d) => {
                let (ds, dl) = d.storage_and_layout();
                let dv = view::<T>(&ds, dl, n)?;
                b.arg(&xv)
                    .arg(&dv)
                    .arg(&wv)
                    .arg(&mut sum)
                    .arg(&mut out)
                    .arg(&cols_i)
                    .arg(&eps);
                // SAFETY: argument order and types match `rms_norm_add_*`; x, delta, sum and
                // out hold rows × cols elements, weight cols.
                unsafe { b.launch(cfg) }.map_err(|e| fail("launching rms_norm_add", e))?;
            }
            None => {
                b.arg(&xv)
                    .arg(&null_ptr)
                    .arg(&wv)
                    .arg(&null_ptr)
                    .arg(&mut out)
                    .arg(&cols_i)
                    .arg(&eps);
                // SAFETY: as above; delta and sum are null, which the kernel checks.
                unsafe { b.launch(cfg) }.map_err(|e| fail("launching rms_norm_add", e))?;
            }
        }
    }
    let shape = x.dims().to_vec();
    let normed = wrap(out, dev, &shape);
    let sum = delta.map(|_| wrap(sum, dev, &shape));
    Ok((sum, normed))
}

/// Shapes of one decode attention call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttnShape {
    pub batch: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Rotated leading dims per head (even, ≤ head_dim).
    pub rotary: usize,
    /// Positions already cached (the new one is written at this index).
    pub past: usize,
    /// Positions the cache buffers hold room for (> past).
    pub capacity: usize,
    pub scale: f64,
}

impl AttnShape {
    /// True when `decode.cu` handles these shapes.
    pub(crate) fn supported(&self) -> bool {
        let rep = self.heads / self.kv_heads.max(1);
        let smem = (CHUNK * (2 * self.head_dim + 1) + rep * (self.head_dim + CHUNK)) * 4;
        self.kv_heads > 0
            && self.heads % self.kv_heads == 0
            && self.head_dim > 0
            && self.head_dim <= 1024
            && self.rotary % 2 == 0
            && self.rotary <= self.head_dim
            && smem <= SMEM_LIMIT
            && self.capacity > self.past
    }
}

/// The projections and caches of one decode attention call (see `decode_attn_partial`).
pub(crate) struct AttnArgs<'a> {
    /// [B, heads·D], [B, kv·D], [B, kv·D] without bias, contiguous.
    pub q: &'a Tensor,
    pub k: &'a Tensor,
    pub v: &'a Tensor,
    /// Biases [heads·D], [kv·D], [kv·D] (zeros where the model has none).
    pub q_bias: &'a Tensor,
    pub k_bias: &'a Tensor,
    pub v_bias: &'a Tensor,
    /// [B, rotary/2] in the activation dtype.
    pub cos: &'a Tensor,
    pub sin: &'a Tensor,
    /// Cache buffers [B, kv, capacity, D] (contiguous); position `past` is written in place.
    pub k_cache: &'a Tensor,
    pub v_cache: &'a Tensor,
}

/// Single-query attention of every sequence over its cache plus the new position; returns
/// [B, heads·D] in the activation dtype and writes the new key/value into the caches.
pub(crate) fn decode_attention(a: &AttnArgs<'_>, s: &AttnShape) -> Result<Tensor> {
    let dev = cuda_device(a.q).ok_or_else(|| fail("decode attention", "not on CUDA"))?;
    let sfx = suffix(a.q.dtype())
        .ok_or_else(|| fail("decode attention", format!("dtype {:?}", a.q.dtype())))?;
    let (b, d, kvd) = (s.batch, s.head_dim, s.kv_heads * s.head_dim);
    let half = s.rotary / 2;
    let expect = [
        (a.q, vec![b, s.heads * d]),
        (a.k, vec![b, kvd]),
        (a.v, vec![b, kvd]),
        (a.q_bias, vec![s.heads * d]),
        (a.k_bias, vec![kvd]),
        (a.v_bias, vec![kvd]),
        (a.cos, vec![b, half]),
        (a.sin, vec![b, half]),
        (a.k_cache, vec![b, s.kv_heads, s.capacity, d]),
        (a.v_cache, vec![b, s.kv_heads, s.capacity, d]),
    ];
    for (t, dims) in &expect {
        if t.dims() != dims.as_slice() || t.dtype() != a.q.dtype() || !t.is_contiguous() {
            return Err(fail(
                "decode attention operands",
                format!(
                    "{:?} {:?}, want {dims:?} {:?} contiguous",
                    t.dims(),
                    t.dtype(),
                    a.q.dtype()
                ),
            ));
        }
    }
    if !s.supported() {
        return Err(fail("decode attention", format!("unsupported shape {s:?}")));
    }
    match a.q.dtype() {
        DType::F32 => attn_t::<f32>(&dev, sfx, a, s),
        _ => attn_t::<half::bf16>(&dev, sfx, a, s),
    }
}

fn attn_t<T: CudaDType + DeviceRepr>(
    dev: &CudaDevice,
    sfx: &str,
    a: &AttnArgs<'_>,
    s: &AttnShape,
) -> Result<Tensor> {
    let (b, nh, nkv, d) = (s.batch, s.heads, s.kv_heads, s.head_dim);
    let rep = nh / nkv;
    let splits = (s.past + 1).div_ceil(CHUNK);
    let mut ws_acc = alloc::<f32>(dev, b * nh * splits * d)?;
    let mut ws_ml = alloc::<f32>(dev, b * nh * splits * 2)?;
    let mut out = alloc::<T>(dev, b * nh * d)?;
    let (past_i, cap_i) = (int(s.past, "past")?, int(s.capacity, "capacity")?);
    let (nh_i, nkv_i, d_i) = (
        int(nh, "heads")?,
        int(nkv, "kv heads")?,
        int(d, "head dim")?,
    );
    let half_i = int(s.rotary / 2, "rotary")?;
    let splits_i = int(splits, "chunks")?;
    let scale = s.scale as f32;
    let ptx = ptx(dev)?;
    {
        let guards = [
            a.q, a.k, a.v, a.q_bias, a.k_bias, a.v_bias, a.cos, a.sin, a.k_cache, a.v_cache,
        ]
        .map(|t| t.storage_and_layout());
        let views = guards
            .iter()
            .zip([
                b * nh * d,
                b * nkv * d,
                b * nkv * d,
                nh * d,
                nkv * d,
                nkv * d,
                b * (s.rotary / 2),
                b * (s.rotary / 2),
                b * nkv * s.capacity * d,
                b * nkv * s.capacity * d,
            ])
            .map(|((st, l), len)| view::<T>(st, l, len))
            .collect::<Result<Vec<_>>>()?;
        let func =
            dev.get_or_load_custom_func(&format!("decode_attn_partial_{sfx}"), MODULE, ptx)?;
        let mut bld = func.builder();
        for v in &views {
            bld.arg(v);
        }
        bld.arg(&past_i)
            .arg(&cap_i)
            .arg(&nh_i)
            .arg(&nkv_i)
            .arg(&d_i)
            .arg(&half_i)
            .arg(&scale)
            .arg(&mut ws_acc)
            .arg(&mut ws_ml);
        let smem = (CHUNK * (2 * d + 1) + rep * (d + CHUNK)) * 4;
        let cfg = LaunchConfig {
            grid_dim: (splits as u32, nkv as u32, int(b, "batch")? as u32),
            block_dim: (ATTN_THREADS, 1, 1),
            shared_mem_bytes: smem as u32,
        };
        // SAFETY: argument order and types match `decode_attn_partial_*`; every view covers
        // the extent the kernel indexes (checked shapes above); the caches are written only at
        // position `past` < capacity, which no live tensor view covers (the cache's views end
        // at `past`); shared memory is sized as the kernel lays it out.
        unsafe { bld.launch(cfg) }.map_err(|e| fail("launching decode_attn_partial", e))?;

        let func =
            dev.get_or_load_custom_func(&format!("decode_attn_combine_{sfx}"), MODULE, ptx)?;
        let mut bld = func.builder();
        bld.arg(&ws_acc)
            .arg(&ws_ml)
            .arg(&mut out)
            .arg(&nh_i)
            .arg(&d_i)
            .arg(&splits_i);
        let cfg = LaunchConfig {
            grid_dim: (nh as u32, b as u32, 1),
            block_dim: (d.div_ceil(32) as u32 * 32, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: matches `decode_attn_combine_*`; the workspace was filled by the launch above.
        unsafe { bld.launch(cfg) }.map_err(|e| fail("launching decode_attn_combine", e))?;
    }
    Ok(wrap(out, dev, &[b, nh * d]))
}
