//! CUDA side of the fused MoE path (feature `cuda`): the kernels of `kernels.cu`, compiled once
//! per process with NVRTC for the device's architecture, and their launches.
//!
//! [`route`] replaces the host router (no device→host copy), [`experts`] runs the top-k experts
//! of every token as two grouped GEMVs around a SiLU·up kernel and returns Σ_k w_k·expert_k(x)
//! in f32 (the experts dense in the activation dtype, or FP8 through `kernels/fp8.cu`'s
//! `fp8_moe_gemv_*`). Supported: f32 and bf16 activations, hidden and expert widths that are
//! multiples of 8, up to 1024 experts in up to 32 groups ([`supported`]).

#![allow(unsafe_code)]

use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, CudaDevice};
use candle_core::op::BackpropOp;
use candle_core::{CudaStorage, DType, Layout, Storage, Tensor};

use super::{ExpertWeights, Router};
use crate::error::{Error, Result};
use crate::kernels::nvrtc::{compile_once, PtxCell};

const SOURCE: &str = include_str!("kernels.cu");
pub(super) const MODULE: &str = "folio_moe_kernels";
const ROUTE_WARPS: u32 = 4;
const GEMV_ROWS_PER_BLOCK: usize = 8 * 2;
const GEMV_THREADS: u32 = 256;

/// PTX of `kernels.cu` for one architecture, compiled on first use.
static PTX: PtxCell = PtxCell::new();

pub(super) fn fail(what: &str) -> impl FnOnce(String) -> Error + '_ {
    move |e| Error::Candle(candle_core::Error::Msg(format!("fused MoE: {what}: {e}")))
}

pub(super) fn cuda_device(t: &Tensor) -> Result<CudaDevice> {
    match t.device() {
        candle_core::Device::Cuda(d) => Ok(d.clone()),
        other => Err(Error::InvalidInput(format!(
            "fused MoE needs CUDA tensors, got {other:?}"
        ))),
    }
}

pub(super) fn ptx(dev: &CudaDevice) -> Result<&'static str> {
    compile_once(&PTX, SOURCE, dev).map_err(fail("compiling kernels.cu with NVRTC"))
}

/// The (token, slot) pairs bucketed per expert on the device by `moe_align`.
pub(super) struct Buckets {
    /// [E + 1]: where each expert's pairs start in `sorted`.
    pub offsets: CudaSlice<i32>,
    /// [pairs]: pair indices ordered by expert.
    pub sorted: CudaSlice<i32>,
    /// [E]: the experts with at least one pair first.
    pub active: CudaSlice<i32>,
    /// [1]: how many experts are active.
    pub n_active: CudaSlice<i32>,
}

/// Launch `moe_align` over the `pairs` expert ids of `ids` (each < `experts`, from [`route`]).
pub(super) fn align(
    dev: &CudaDevice,
    ptx: &str,
    ids: &CudaView<'_, u32>,
    pairs: usize,
    experts: usize,
) -> Result<Buckets> {
    let mut buckets = Buckets {
        offsets: alloc::<i32>(dev, experts + 1)?,
        sorted: alloc::<i32>(dev, pairs)?,
        active: alloc::<i32>(dev, experts)?,
        n_active: alloc::<i32>(dev, 1)?,
    };
    let (pairs_i, e_i) = (i32_arg(pairs, "pairs")?, i32_arg(experts, "experts")?);
    let func = dev.get_or_load_custom_func("moe_align", MODULE, ptx)?;
    let mut b = func.builder();
    b.arg(ids)
        .arg(&pairs_i)
        .arg(&e_i)
        .arg(&mut buckets.offsets)
        .arg(&mut buckets.sorted)
        .arg(&mut buckets.active)
        .arg(&mut buckets.n_active);
    let cfg = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (1024, 1, 1),
        shared_mem_bytes: 2 * experts as u32 * 4,
    };
    // SAFETY: matches `moe_align`'s signature; ids holds `pairs` values < E (from `route`).
    unsafe { b.launch(cfg) }.map_err(|e| fail("launching moe_align")(e.to_string()))?;
    Ok(buckets)
}

/// True when [`route`] and [`experts`] can run this block on `x`'s device and dtype.
pub(super) fn supported(x: &Tensor, router: &Router, hidden: usize, inter: usize) -> bool {
    x.device().is_cuda()
        && matches!(x.dtype(), DType::F32 | DType::BF16)
        && router.n_group <= 32
        && router.n_experts <= 1024
        && router.top_k <= router.n_experts
        && hidden % 8 == 0
        && inter % 8 == 0
}

/// The contiguous device data of `t` as a view (errors on CPU tensors, strided or unaligned data).
pub(super) fn view<'a, T: CudaDType>(
    storage: &'a Storage,
    layout: &Layout,
) -> Result<CudaView<'a, T>> {
    let Storage::Cuda(c) = storage else {
        return Err(Error::InvalidInput(
            "fused MoE: tensor is not on CUDA".into(),
        ));
    };
    let slice = c.as_cuda_slice::<T>()?;
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| Error::InvalidInput("fused MoE: tensor is not contiguous".into()))?;
    if (start * std::mem::size_of::<T>()) % 16 != 0 {
        return Err(Error::InvalidInput(
            "fused MoE: tensor data is not 16-byte aligned".into(),
        ));
    }
    Ok(slice.slice(start..end))
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
    // before anything reads it (route: ids/w per token; align: all outputs; gemv: every row of
    // every pair, since each pair belongs to exactly one active expert; silu_mul: all elements).
    Ok(unsafe { dev.alloc::<T>(len.max(1)) }?)
}

pub(super) fn i32_arg(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| Error::InvalidInput(format!("fused MoE: {what} {v} overflows i32")))
}

/// Router on the device: `logits` [N, E] f32 → (ids [N, k] u32, weights [N, k] f32).
pub(super) fn route(logits: &Tensor, router: &Router) -> Result<(Tensor, Tensor)> {
    let dev = cuda_device(logits)?;
    let (n, e) = logits.dims2()?;
    if e != router.n_experts || logits.dtype() != DType::F32 {
        return Err(Error::InvalidInput(format!(
            "fused MoE: router logits {:?} {:?}, want [N, {}] f32",
            logits.dims(),
            logits.dtype(),
            router.n_experts
        )));
    }
    let k = router.top_k;
    let mut ids = alloc::<u32>(&dev, n * k)?;
    let mut w = alloc::<f32>(&dev, n * k)?;
    {
        let (ls, ll) = logits.storage_and_layout();
        let (bs, bl) = router.bias_device.storage_and_layout();
        let lv = view::<f32>(&ls, ll)?;
        let bv = view::<f32>(&bs, bl)?;
        let func = dev.get_or_load_custom_func("moe_route", MODULE, ptx(&dev)?)?;
        let mut b = func.builder();
        let (n_i, e_i, k_i) = (
            i32_arg(n, "tokens")?,
            i32_arg(e, "experts")?,
            i32_arg(k, "top_k")?,
        );
        let (g_i, tg_i) = (
            i32_arg(router.n_group, "n_group")?,
            i32_arg(router.topk_group, "topk_group")?,
        );
        let norm = i32::from(router.norm_topk_prob);
        b.arg(&lv)
            .arg(&bv)
            .arg(&n_i)
            .arg(&e_i)
            .arg(&k_i)
            .arg(&g_i)
            .arg(&tg_i)
            .arg(&norm)
            .arg(&router.scaling)
            .arg(&mut ids)
            .arg(&mut w);
        let cfg = LaunchConfig {
            grid_dim: ((n as u32).div_ceil(ROUTE_WARPS).max(1), 1, 1),
            block_dim: (32 * ROUTE_WARPS, 1, 1),
            shared_mem_bytes: ROUTE_WARPS * 2 * e as u32 * 4,
        };
        // SAFETY: argument order and types match `moe_route`; the views cover [N, E] and [E]
        // and the outputs hold N·k elements; shared memory is sized as the kernel expects.
        unsafe { b.launch(cfg) }.map_err(|e| fail("launching moe_route")(e.to_string()))?;
    }
    Ok((wrap(ids, &dev, &[n, k]), wrap(w, &dev, &[n, k])))
}

/// The sizes of an experts call, checked against each other: `x` [N, H], `ids`/`w` [N, k],
/// `gate_up` [E, 2I, H], `down` [E, H, I].
pub(super) struct ExpertShapes {
    pub n: usize,
    pub h: usize,
    pub k: usize,
    pub e: usize,
    pub inter: usize,
}

impl ExpertShapes {
    /// `what` names the kernel in the error.
    pub(super) fn of(
        what: &str,
        x: &Tensor,
        ids: &Tensor,
        w: &Tensor,
        gate_up: &Tensor,
        down: &Tensor,
    ) -> Result<Self> {
        let (n, h) = x.dims2()?;
        let (n2, k) = ids.dims2()?;
        let (e, two_i, h2) = gate_up.dims3()?;
        let (e2, h3, inter) = down.dims3()?;
        if n2 != n || h2 != h || h3 != h || e2 != e || two_i != 2 * inter || w.dims() != ids.dims()
        {
            return Err(Error::InvalidInput(format!(
                "{what} shapes: x {:?} ids {:?} w {:?} gate_up {:?} down {:?}",
                x.dims(),
                ids.dims(),
                w.dims(),
                gate_up.dims(),
                down.dims()
            )));
        }
        Ok(ExpertShapes { n, h, k, e, inter })
    }
}

/// Names of the kernels for one activation dtype.
struct Kernels {
    gemv_same: &'static str,
    gemv_f32_out: &'static str,
    fp8_same: &'static str,
    fp8_f32_out: &'static str,
    silu_mul: &'static str,
}

/// Σ_k w_k · down_e(silu(gate_e x) ⊙ up_e x) for `x` [N, H] with the experts of `ids`/`w`
/// [N, k]; `experts` [E, 2I, H] / [E, H, I] in `x`'s dtype, or FP8 with per-row scales
/// (widened in registers by `kernels/fp8.cu`'s GEMV). Returns [N, H] f32.
pub(super) fn experts(
    x: &Tensor,
    ids: &Tensor,
    w: &Tensor,
    experts: &ExpertWeights,
) -> Result<Tensor> {
    match x.dtype() {
        DType::F32 => experts_t::<f32>(
            x,
            ids,
            w,
            experts,
            &Kernels {
                gemv_same: "moe_gemv_f32_f32",
                gemv_f32_out: "moe_gemv_f32_f32",
                fp8_same: "fp8_moe_gemv_f32_f32",
                fp8_f32_out: "fp8_moe_gemv_f32_f32",
                silu_mul: "moe_silu_mul_f32",
            },
        ),
        DType::BF16 => experts_t::<half::bf16>(
            x,
            ids,
            w,
            experts,
            &Kernels {
                gemv_same: "moe_gemv_bf16_bf16",
                gemv_f32_out: "moe_gemv_bf16_f32",
                fp8_same: "fp8_moe_gemv_bf16_bf16",
                fp8_f32_out: "fp8_moe_gemv_bf16_f32",
                silu_mul: "moe_silu_mul_bf16",
            },
        ),
        other => Err(Error::InvalidInput(format!(
            "fused MoE supports f32 and bf16, not {other:?}"
        ))),
    }
}

/// One grouped GEMV launch over the buckets: `input` rows (pair / `x_div`), weights `stack`
/// [E, n, k] in T (`scale` None) or FP8 with `scale` [E, n]; `pair_w` scales each pair's row.
struct GroupedGemv<'a, 'b> {
    dev: &'a CudaDevice,
    buckets: &'a Buckets,
    slots: u32,
    names: (&'static str, &'static str),
    stack: &'b Tensor,
    scale: Option<&'b Tensor>,
    n: usize,
    k: usize,
    x_div: i32,
}

impl GroupedGemv<'_, '_> {
    fn launch<T, O>(
        &self,
        input: &CudaView<'_, T>,
        pair_w: Option<&CudaView<'_, f32>>,
        out: &mut CudaSlice<O>,
    ) -> Result<()>
    where
        T: CudaDType + DeviceRepr,
        O: DeviceRepr,
    {
        let (n_i, k_i) = (i32_arg(self.n, "rows")?, i32_arg(self.k, "columns")?);
        let null_ptr = 0u64;
        let (ws, wl) = self.stack.storage_and_layout();
        let scale_guard = self.scale.map(|s| s.storage_and_layout());
        let fp8 = match &scale_guard {
            Some((ss, sl)) => Some((view::<float8::F8E4M3>(&ws, wl)?, view::<f32>(ss, sl)?)),
            None => None,
        };
        let dense = if fp8.is_none() {
            Some(view::<T>(&ws, wl)?)
        } else {
            None
        };
        let func = match &fp8 {
            Some(_) => self.dev.get_or_load_custom_func(
                self.names.1,
                crate::kernels::fp8::MODULE,
                crate::kernels::fp8::ptx(self.dev)?,
            )?,
            None => self
                .dev
                .get_or_load_custom_func(self.names.0, MODULE, ptx(self.dev)?)?,
        };
        let mut b = func.builder();
        b.arg(input);
        match (&fp8, &dense) {
            (Some((wv, sv)), _) => b.arg(wv).arg(sv),
            (None, Some(wv)) => b.arg(wv),
            (None, None) => unreachable!("one of the two views exists"),
        };
        let bk = self.buckets;
        b.arg(&bk.offsets)
            .arg(&bk.sorted)
            .arg(&bk.active)
            .arg(&bk.n_active);
        match pair_w {
            Some(p) => b.arg(p),
            None => b.arg(&null_ptr),
        };
        b.arg(out).arg(&n_i).arg(&k_i).arg(&self.x_div);
        let cfg = LaunchConfig {
            grid_dim: (
                self.n.div_ceil(GEMV_ROWS_PER_BLOCK) as u32,
                self.slots.max(1),
                1,
            ),
            block_dim: (GEMV_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the argument order matches `moe_gemv_*` / `fp8_moe_gemv_*`; input rows are
        // pair / x_div of the buckets' pairs; weights [E, n, k] (+ scales [E, n]); out holds
        // pairs × n; pair weights (when given) one per pair.
        unsafe { b.launch(cfg) }.map_err(|e| fail("launching a grouped GEMV")(e.to_string()))?;
        Ok(())
    }
}

fn experts_t<T: CudaDType + DeviceRepr>(
    x: &Tensor,
    ids: &Tensor,
    w: &Tensor,
    weights: &ExpertWeights,
    names: &Kernels,
) -> Result<Tensor> {
    let dev = cuda_device(x)?;
    let ((gate_up, gu_scale), (down, down_scale)) = match weights {
        ExpertWeights::Dense { gate_up, down } => ((gate_up, None), (down, None)),
        ExpertWeights::Fp8 {
            gate_up,
            gate_up_scale,
            down,
            down_scale,
        } => ((gate_up, Some(gate_up_scale)), (down, Some(down_scale))),
    };
    let ExpertShapes { n, h, k, e, inter } =
        ExpertShapes::of("fused MoE", x, ids, w, gate_up, down)?;
    if gu_scale.is_some() && (h % 16 != 0 || inter % 16 != 0) {
        return Err(Error::InvalidInput(format!(
            "fused MoE with FP8 experts needs widths that are multiples of 16 (hidden {h}, inter {inter})"
        )));
    }
    let two_i = 2 * inter;
    let pairs = n * k;
    let ptx = ptx(&dev)?;
    let mut gu = alloc::<T>(&dev, pairs * two_i)?;
    let mut act = alloc::<T>(&dev, pairs * inter)?;
    let mut out = alloc::<f32>(&dev, pairs * h)?;
    let pairs_i = i32_arg(pairs, "pairs")?;
    let inter_i = i32_arg(inter, "inter")?;
    let k_i = i32_arg(k, "top_k")?;
    let slots = pairs.min(e) as u32;
    {
        let (xs, xl) = x.storage_and_layout();
        let (is, il) = ids.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let xv = view::<T>(&xs, xl)?;
        let iv = view::<u32>(&is, il)?;
        let wv = view::<f32>(&ws, wl)?;

        let buckets = align(&dev, ptx, &iv, pairs, e)?;
        GroupedGemv {
            dev: &dev,
            buckets: &buckets,
            slots,
            names: (names.gemv_same, names.fp8_same),
            stack: gate_up,
            scale: gu_scale,
            n: two_i,
            k: h,
            x_div: k_i,
        }
        .launch::<T, T>(&xv, None, &mut gu)?;

        let func = dev.get_or_load_custom_func(names.silu_mul, MODULE, ptx)?;
        let mut b = func.builder();
        b.arg(&gu).arg(&mut act).arg(&pairs_i).arg(&inter_i);
        let total = (pairs * inter) as u32;
        let cfg = LaunchConfig {
            grid_dim: (total.div_ceil(256).clamp(1, 65_535), 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: gu is [pairs, 2I], act [pairs, I].
        unsafe { b.launch(cfg) }.map_err(|e| fail("launching silu_mul")(e.to_string()))?;

        GroupedGemv {
            dev: &dev,
            buckets: &buckets,
            slots,
            names: (names.gemv_f32_out, names.fp8_f32_out),
            stack: down,
            scale: down_scale,
            n: h,
            k: inter,
            x_div: 1,
        }
        .launch::<T, f32>(&act.as_view(), Some(&wv), &mut out)?;
    }
    let per_pair = wrap(out, &dev, &[n, k, h]);
    Ok(per_pair.sum(1)?)
}
