//! Small building blocks of the text decoder: RMSNorm (spec §2.3 numerics) and the SwiGLU MLP.
//! On CUDA the norm (and the residual add before it) is one kernel of `kernels/decode.cu`.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::decoder::linear::Proj;

use crate::error::Result;

/// RMSNorm as in transformers: statistics in f32, cast back, *then* multiply by the weight.
///
/// The normalisation is candle's fused `rms_norm` (one kernel, f32 math, one rounding to the
/// input dtype) with a unit scale; the weight multiply stays a separate op in the input dtype so
/// the roundings are transformers' (two launches instead of nine on the GPU).
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    ones: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Loads `weight` [size] under `vb`.
    pub fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get(size, "weight")?;
        let ones = Tensor::ones(size, weight.dtype(), weight.device())?;
        Ok(Self { weight, ones, eps })
    }

    /// Normalises over the last dim.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if crate::kernels::fused_enabled() {
            if let Some((_, normed)) =
                crate::kernels::cuda::rms_norm(x, None, &self.weight, self.eps)?
            {
                return Ok(normed);
            }
        }
        let ones = if x.dtype() == self.ones.dtype() {
            self.ones.clone()
        } else {
            self.ones.to_dtype(x.dtype())?
        };
        let normed = candle_nn::ops::rms_norm(&x.contiguous()?, &ones, self.eps as f32)?;
        Ok(normed.broadcast_mul(&self.weight)?)
    }
}

impl RmsNorm {
    /// Bytes of its weight (and the unit scale) on the device.
    pub fn resident_bytes(&self) -> usize {
        2 * self.weight.elem_count() * self.weight.dtype().size_in_bytes()
    }

    /// `(x + delta, self.forward(x + delta))`: the residual add fused into the norm on CUDA
    /// (one kernel instead of three launches), the same ops as before elsewhere.
    pub fn forward_residual(&self, x: &Tensor, delta: &Tensor) -> Result<(Tensor, Tensor)> {
        #[cfg(feature = "cuda")]
        if crate::kernels::fused_enabled() {
            if let Some((Some(sum), normed)) =
                crate::kernels::cuda::rms_norm(x, Some(delta), &self.weight, self.eps)?
            {
                return Ok((sum, normed));
            }
        }
        let sum = (x + delta)?;
        let normed = self.forward(&sum)?;
        Ok((sum, normed))
    }
}

/// `down(silu(gate(x)) ⊙ up(x))`, no biases: layer-0 dense MLP and the shared expert (dense or
/// FP8 projections, as the checkpoint stores them).
#[derive(Debug, Clone)]
pub struct SwiGlu {
    gate_proj: Proj,
    up_proj: Proj,
    down_proj: Proj,
}

impl SwiGlu {
    /// Loads `gate_proj`, `up_proj`, `down_proj` under `vb`.
    pub fn new(hidden: usize, intermediate: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            gate_proj: Proj::load(hidden, intermediate, false, vb.pp("gate_proj"))?,
            up_proj: Proj::load(hidden, intermediate, false, vb.pp("up_proj"))?,
            down_proj: Proj::load(intermediate, hidden, false, vb.pp("down_proj"))?,
        })
    }

    /// Applies the MLP to [.., hidden].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x)?.silu()?;
        let up = self.up_proj.forward(x)?;
        self.down_proj.forward(&(gate * up)?)
    }

    /// Bytes of its weights on the device.
    pub fn resident_bytes(&self) -> usize {
        [&self.gate_proj, &self.up_proj, &self.down_proj]
            .iter()
            .map(|p| p.resident_bytes())
            .sum()
    }
}
