//! FP8 (E4M3) per-output-channel dequantisation of GLM-4.5V-FP8 weights (spec §1.5).
//!
//! compressed-tensors stores a linear weight as `w` F8_E4M3 [out, in] and `weight_scale` [out, 1]
//! (fp32 or bf16); the real weight is `w · scale` row by row. Computed in f32 (exact: an E4M3 value
//! times a bf16/f32 scale fits f32's mantissa for bf16 scales), then cast to the compute dtype.

use candle_core::{DType, Result, Tensor};

/// `w_fp8 · scale` broadcast over rows, returned in `dtype`.
///
/// `scale` must have the weight's rank with a last dim of 1 (e.g. [out, 1] for [out, in]);
/// a 1-D [out] scale is accepted for 2-D weights.
pub fn dequantize_per_channel(w: &Tensor, scale: &Tensor, dtype: DType) -> Result<Tensor> {
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
