//! Launch of `prefill.cu` (feature `cuda`): causal GQA attention over the KV cache for a
//! prefill (several new queries per sequence), flash-attention style.
//!
//! [`attention`] takes q [B, nh, T, D] after bias and RoPE and the cache's full keys and values
//! [B, nkv, S, D] (this call's positions last, so query t sits at position S − T + t) and
//! returns [B, T, nh·D] before `o_proj` — what `Attention::attend` computes with a causal mask,
//! without materialising the [T, S] scores. `Ok(None)` where it does not apply (other dtypes,
//! head sizes other than 32/64/128, strided rows); the caller then runs the candle ops.

#![allow(unsafe_code)]

use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDType, CudaDevice};
use candle_core::{DType, Tensor};

use super::cuda::{alloc, fail, int, view, wrap};
use super::nvrtc::{compile_once, PtxCell};
use crate::error::Result;

const SOURCE: &str = include_str!("prefill.cu");
const MODULE: &str = "folio_prefill_kernels";
/// Query rows per block (`BR` / `FR` in prefill.cu).
const BF16_ROWS: usize = 64;
const F32_ROWS: usize = 16;
const THREADS: u32 = 128;

static PTX: PtxCell = PtxCell::new();

fn ptx(dev: &CudaDevice) -> Result<&'static str> {
    compile_once(&PTX, SOURCE, dev).map_err(|e| fail("compiling prefill.cu with NVRTC", e))
}

/// Causal attention of `q` [B, nh, T, D] over `k`, `v` [B, nkv, S, D] (S ≥ T; the last T
/// positions are this call's) with softmax scale `scale`; returns [B, T, nh·D] in q's dtype.
pub(crate) fn attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Option<Tensor>> {
    let candle_core::Device::Cuda(dev) = q.device() else {
        return Ok(None);
    };
    let dtype = q.dtype();
    let ((b, nh, t, d), (b2, nkv, s, d2)) = (q.dims4()?, k.dims4()?);
    if !matches!(dtype, DType::F32 | DType::BF16)
        || k.dtype() != dtype
        || v.dtype() != dtype
        || v.dims() != k.dims()
        || b2 != b
        || d2 != d
        || !matches!(d, 32 | 64 | 128)
        || nkv == 0
        || nh % nkv != 0
        || s < t
        || t == 0
        || b == 0
    {
        return Ok(None);
    }
    // Rows of D contiguous elements; batch and head strides may be any (cache views); k and v
    // must share them.
    let (ks, vs) = (k.stride(), v.stride());
    if ks != vs
        || ks[3] != 1
        || ks[2] != d
        || (dtype == DType::BF16 && (ks[0] % 8 != 0 || ks[1] % 8 != 0))
    {
        return Ok(None);
    }
    let aligned = |t: &Tensor| t.layout().start_offset() % 8 == 0;
    if dtype == DType::BF16 && !(aligned(k) && aligned(v)) {
        return Ok(None);
    }
    let q = q.contiguous()?;
    if q.layout().start_offset() % 2 != 0 {
        return Ok(None);
    }
    match dtype {
        DType::BF16 => launch::<half::bf16>(
            dev,
            &q,
            k,
            v,
            (b, nh, t, d, nkv, s),
            scale,
            "bf16",
            BF16_ROWS,
        ),
        _ => launch::<f32>(dev, &q, k, v, (b, nh, t, d, nkv, s), scale, "f32", F32_ROWS),
    }
    .map(Some)
}

#[allow(clippy::too_many_arguments)]
fn launch<T: CudaDType + DeviceRepr>(
    dev: &CudaDevice,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    (b, nh, t, d, nkv, s): (usize, usize, usize, usize, usize, usize),
    scale: f64,
    suffix: &str,
    rows: usize,
) -> Result<Tensor> {
    let ks = k.stride();
    let (sb, sh) = (ks[0], ks[1]);
    // Elements from each operand's start offset to its last element.
    let kv_len = (b - 1) * sb + (nkv - 1) * sh + s * d;
    let name = format!("prefill_attn_{suffix}_d{d}");
    let mut out = alloc::<T>(dev, b * t * nh * d)?;
    {
        let (qs, ql) = q.storage_and_layout();
        let (kst, kl) = k.storage_and_layout();
        let (vst, vl) = v.storage_and_layout();
        let qv = view::<T>(&qs, ql, b * nh * t * d)?;
        let kv = view::<T>(&kst, kl, kv_len)?;
        let vv = view::<T>(&vst, vl, kv_len)?;
        let func = dev.get_or_load_custom_func(&name, MODULE, ptx(dev)?)?;
        let mut a = func.builder();
        let (t_i, s_i, nh_i, nkv_i) = (
            int(t, "queries")?,
            int(s, "keys")?,
            int(nh, "heads")?,
            int(nkv, "kv heads")?,
        );
        let (sb_i, sh_i) = (sb as i64, sh as i64);
        let scale = scale as f32;
        a.arg(&qv)
            .arg(&kv)
            .arg(&vv)
            .arg(&mut out)
            .arg(&t_i)
            .arg(&s_i)
            .arg(&nh_i)
            .arg(&nkv_i)
            .arg(&sb_i)
            .arg(&sh_i)
            .arg(&scale);
        let grid_z = u32::try_from(b).map_err(|_| fail("batch", b))?;
        let cfg = LaunchConfig {
            grid_dim: (t.div_ceil(rows) as u32, nh as u32, grid_z),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: argument order and types match the PREFILL_ENTRY signature; q covers
        // [B, nh, T, D], k and v every (b, kv head, position ≤ S, d) at the strides passed (and
        // with 16-byte aligned rows for bf16: D, sb and sh are multiples of 8 elements), out
        // [B, T, nh·D] is fully written (every query row of every head).
        unsafe { a.launch(cfg) }.map_err(|e| fail("launching prefill attention", e))?;
    }
    Ok(wrap(out, dev, &[b, t, nh * d]))
}
