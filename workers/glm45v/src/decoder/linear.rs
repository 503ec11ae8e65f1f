//! Linear layers of the text decoder in the checkpoint's weight format (spec §1.5).
//!
//! [`Proj::Dense`] is candle's `Linear` (bf16 / f16 / f32 weights). [`Proj::Fp8`] keeps a
//! compressed-tensors FP8 weight as it is stored — `weight` F8E4M3 [out, in] with one f32
//! `scale` per output row — and never materialises the dequantised matrix at rest:
//! - CUDA, at most [`GEMV_MAX_ROWS`](crate::kernels::fp8::GEMV_MAX_ROWS) rows (decode): the
//!   W8A16 GEMV of `kernels/fp8.cu` (FP8 widened in registers, f32 accumulation, the scale and
//!   the bias applied once per output);
//! - CUDA, more rows (prefill): the weight is widened to the activation dtype on the device for
//!   this call (`kernels/fp8.cu`'s dequantisation), then one cuBLAS matmul, and dropped;
//! - CPU (tests, `folio parse` without a GPU): the reference path, `W = w · scale[row]` in f32
//!   rounded to the activation dtype, then candle's `Linear` — the same numbers as loading the
//!   dequantised model.
//!
//! Whether a weight stays FP8 is the checkpoint's decision ([`crate::checkpoint::fp8::keeps_fp8`]):
//! stored as F8_E4M3, not in `quantization_config.ignore`, and loaded with FP8 kept resident.

use candle_core::{DType, Module, Tensor};
use candle_nn::{linear_b, Linear, VarBuilder};

use crate::checkpoint::fp8;
use crate::error::Result;

/// An FP8 linear weight kept as stored: `weight` F8E4M3 [out, in], `scale` f32 [out], `bias`
/// in the activation dtype.
#[derive(Debug, Clone)]
pub struct Fp8Linear {
    weight: Tensor,
    scale: Tensor,
    bias: Option<Tensor>,
}

impl Fp8Linear {
    /// Loads `weight` (F8E4M3), `weight_scale` ([out, 1] or [out]) and optionally `bias`.
    pub fn load(in_dim: usize, out_dim: usize, bias: bool, vb: &VarBuilder) -> Result<Self> {
        let (weight, scale) = fp8::load_pair(vb, "weight", &[out_dim, in_dim])?;
        let bias = if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        Ok(Self {
            weight,
            scale,
            bias,
        })
    }

    /// The dequantised weight [out, in] in `dtype`, made for one call (on the weight's device).
    pub fn dequantized(&self, dtype: DType) -> Result<Tensor> {
        fp8::dequantize_rows(&self.weight, &self.scale, dtype)
    }

    /// `x` [.., in] → [.., out] without the bias.
    fn forward_no_bias(&self, x: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if let Some(y) = crate::kernels::fp8::gemv(x, &self.weight, &self.scale, None)? {
            return Ok(y);
        }
        let w = self.dequantized(x.dtype())?;
        Ok(Linear::new(w, None).forward(x)?)
    }

    /// `x` [.., in] → [.., out] (+ bias).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if let Some(y) =
            crate::kernels::fp8::gemv(x, &self.weight, &self.scale, self.bias.as_ref())?
        {
            return Ok(y);
        }
        let w = self.dequantized(x.dtype())?;
        Ok(Linear::new(w, self.bias.clone()).forward(x)?)
    }

    /// Bytes held on the device (weight, scales, bias).
    pub fn resident_bytes(&self) -> usize {
        let b = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        b(&self.weight) + b(&self.scale) + self.bias.as_ref().map_or(0, b)
    }
}

/// A projection of the decoder: dense or FP8, as the checkpoint stores it.
#[derive(Debug, Clone)]
pub enum Proj {
    Dense(Linear),
    Fp8(Fp8Linear),
}

impl Proj {
    /// Loads `vb` (= the module, e.g. `…self_attn.q_proj`) as FP8 when the checkpoint keeps it
    /// FP8, else as a dense `Linear` in `vb`'s dtype.
    pub fn load(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        if fp8::keeps_fp8(&vb) {
            return Ok(Self::Fp8(Fp8Linear::load(in_dim, out_dim, bias, &vb)?));
        }
        Ok(Self::Dense(linear_b(in_dim, out_dim, bias, vb)?))
    }

    /// `x` [.., in] → [.., out] (+ bias).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Dense(l) => Ok(l.forward(x)?),
            Self::Fp8(l) => l.forward(x),
        }
    }

    /// `x` [n, in] → [n, out] without the bias, contiguous (the fused decode attention adds
    /// the biases itself).
    pub fn forward_no_bias(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Dense(l) => Ok(x.matmul(&l.weight().t()?)?.contiguous()?),
            Self::Fp8(l) => Ok(l.forward_no_bias(x)?.contiguous()?),
        }
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        match self {
            Self::Dense(l) => l.bias(),
            Self::Fp8(l) => l.bias.as_ref(),
        }
    }

    /// True for an FP8 weight.
    pub fn is_fp8(&self) -> bool {
        matches!(self, Self::Fp8(_))
    }

    /// The dtype the layer computes in: the weight's for a dense layer; FP8 layers take the
    /// activation dtype (`None`).
    pub fn dense_dtype(&self) -> Option<DType> {
        match self {
            Self::Dense(l) => Some(l.weight().dtype()),
            Self::Fp8(_) => None,
        }
    }

    /// Bytes held on the device.
    pub fn resident_bytes(&self) -> usize {
        match self {
            Self::Dense(l) => {
                let b = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
                b(l.weight()) + l.bias().map_or(0, b)
            }
            Self::Fp8(l) => l.resident_bytes(),
        }
    }
}
