//! FP8 (E4M3) per-output-channel weights of GLM-4.5V-FP8 (compressed-tensors, spec §1.5).
//!
//! compressed-tensors stores a linear weight as `w` F8_E4M3 [out, in] and `weight_scale`
//! [out, 1] (fp32 or bf16); the real weight is `w · scale` row by row.
//!
//! Two ways to load it ([`Fp8Weights`]): kept resident as FP8 (the default: the decoder's
//! [`Proj::Fp8`](crate::decoder::linear::Proj) and the MoE experts hold the F8E4M3 bytes plus
//! one f32 scale per output row, and widen them per call — in registers on CUDA, through
//! [`dequantize_rows`] elsewhere), or dequantised once at load into the compute dtype (the
//! layout of a bf16 checkpoint; twice the memory).
//!
//! The loader and the layers meet through one convention of the `VarBuilder` backends
//! (`weights.rs`, `synthetic.rs`): `contains_tensor("<name>@fp8")` is true when the tensor
//! `<name>` is to be kept FP8 (stored as F8_E4M3, not in `quantization_config.ignore`, FP8 kept
//! resident), and asking for `<name>` in dtype F8E4M3 returns the stored bytes unchanged;
//! its scale is `<name>_scale` (`weight` → `weight_scale`; the fused expert tensors
//! `gate_up_proj` / `down_proj` → `gate_up_proj_scale` / `down_proj_scale`).

use candle_core::{DType, Result as CResult, Tensor, D};
use candle_nn::VarBuilder;

use crate::error::{Error, Result};

/// Suffix of the virtual tensor name a backend answers for a tensor kept FP8.
pub const KEEP_SUFFIX: &str = "@fp8";

/// The E4M3 maximum (compressed-tensors' scale = max|w| / 448).
pub const E4M3_MAX: f32 = 448.0;

/// How FP8 weights of a checkpoint are held after loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fp8Weights {
    /// Kept as F8E4M3 + per-row f32 scales (≈ half the memory of bf16).
    #[default]
    Resident,
    /// Dequantised once at load into the compute dtype.
    Dequantized,
}

/// True when the backend keeps `<vb prefix>.<name>` FP8.
pub fn keeps_fp8_named(vb: &VarBuilder, name: &str) -> bool {
    vb.contains_tensor(&format!("{name}{KEEP_SUFFIX}"))
}

/// True when the linear module at `vb` keeps its `weight` FP8.
pub fn keeps_fp8(vb: &VarBuilder) -> bool {
    keeps_fp8_named(vb, "weight")
}

/// Loads the F8E4M3 tensor `name` of `shape` and its scale `<name>_scale` ([.., out, 1] or
/// [.., out], any float dtype) as (weight, scale f32 with the weight's leading dims).
pub fn load_pair(vb: &VarBuilder, name: &str, shape: &[usize]) -> Result<(Tensor, Tensor)> {
    let w = vb.get_with_hints_dtype(shape, name, Default::default(), DType::F8E4M3)?;
    if w.dtype() != DType::F8E4M3 {
        return Err(Error::Checkpoint(format!(
            "`{}.{name}` was asked for as FP8 but came as {:?}",
            vb.prefix(),
            w.dtype()
        )));
    }
    let scale_name = format!("{name}_scale");
    let rows = &shape[..shape.len() - 1];
    let with_one = [rows, &[1]].concat();
    // compressed-tensors stores [.., out, 1]; a bare [.., out] is accepted too.
    let scale = match vb.get_with_hints_dtype(
        with_one.as_slice(),
        &scale_name,
        Default::default(),
        DType::F32,
    ) {
        Ok(s) => s,
        Err(first) => vb
            .get_with_hints_dtype(rows, &scale_name, Default::default(), DType::F32)
            .map_err(|_| first)?,
    };
    Ok((w, scale.reshape(rows)?.contiguous()?))
}

/// `w` [.., rows, cols] F8E4M3 · `scale` [.., rows] f32 → `dtype`, on `w`'s device (the NVRTC
/// kernel on CUDA, [`dequantize_per_channel`] elsewhere; the same f32 product, one rounding).
pub fn dequantize_rows(w: &Tensor, scale: &Tensor, dtype: DType) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if w.device().is_cuda() && matches!(dtype, DType::F32 | DType::BF16) {
        return crate::kernels::fp8::dequantize(w, scale, dtype);
    }
    Ok(dequantize_per_channel(
        w,
        &scale.unsqueeze(D::Minus1)?,
        dtype,
    )?)
}

/// `w_fp8 · scale` broadcast over rows, returned in `dtype`.
///
/// `scale` must have the weight's rank with a last dim of 1 (e.g. [out, 1] for [out, in]);
/// a 1-D [out] scale is accepted for 2-D weights.
pub fn dequantize_per_channel(w: &Tensor, scale: &Tensor, dtype: DType) -> CResult<Tensor> {
    let dims = w.dims();
    let scale = if scale.rank() == 1 && dims.len() == 2 {
        scale.unsqueeze(1)?
    } else {
        scale.clone()
    };
    let sdims = scale.dims();
    let n = dims.len();
    let ok = n >= 2 && sdims.len() == n && sdims[n - 1] == 1 && sdims[..n - 1] == dims[..n - 1];
    if !ok {
        candle_core::bail!(
            "weight_scale shape {sdims:?} does not fit a per-output-channel scale of {dims:?}"
        )
    }
    let deq = w
        .to_dtype(DType::F32)?
        .broadcast_mul(&scale.to_dtype(DType::F32)?)?;
    deq.to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn dequantises_row_by_row() -> Result<()> {
        let dev = Device::Cpu;
        let vals = Tensor::new(&[[1.0f32, -2.0, 0.5], [448.0, 0.0, -0.25]], &dev)?;
        let w = vals.to_dtype(DType::F8E4M3)?;
        let scale = Tensor::new(&[[0.5f32], [2.0]], &dev)?.to_dtype(DType::BF16)?;
        let got = dequantize_per_channel(&w, &scale, DType::F32)?.to_vec2::<f32>()?;
        assert_eq!(got, vec![vec![0.5, -1.0, 0.25], vec![896.0, 0.0, -0.5]]);
        Ok(())
    }

    #[test]
    fn rejects_a_scale_of_the_wrong_shape() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::zeros((2, 3), DType::F32, &dev)?.to_dtype(DType::F8E4M3)?;
        let scale = Tensor::ones((3, 1), DType::F32, &dev)?;
        assert!(dequantize_per_channel(&w, &scale, DType::F32).is_err());
        Ok(())
    }
}
