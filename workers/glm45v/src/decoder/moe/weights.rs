//! The routed experts' weights of one MoE block, stacked once at load: gate/up [E, 2I, H]
//! (gate rows first) and down [E, H, I], dense in the compute dtype or FP8 with one f32 scale
//! per output row ([E, 2I] and [E, H]).
//!
//! Both checkpoint layouts load without temporaries of the block's size: the fused
//! transformers-v5 tensors (`experts.gate_up_proj`, `experts.down_proj`, with
//! `…_proj_scale` when FP8) are taken as they are; the per-expert tensors
//! (`experts.E.{gate,up,down}_proj.weight`, the zai-org layout) are written one by one into
//! buffers allocated once for the whole block (`slice_set`), so loading holds at most one
//! expert's tensor beside the block.

use std::ops::Range;

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use crate::checkpoint::config::TextConfig;
use crate::checkpoint::fp8;
use crate::error::{Error, Result};

/// The stacked expert weights of one block.
#[derive(Debug, Clone)]
pub enum ExpertWeights {
    /// In the compute dtype.
    Dense { gate_up: Tensor, down: Tensor },
    /// F8E4M3 with per-row f32 scales.
    Fp8 {
        gate_up: Tensor,
        gate_up_scale: Tensor,
        down: Tensor,
        down_scale: Tensor,
    },
}

impl ExpertWeights {
    /// Loads the experts `experts` (all of them: `0..n_routed_experts`) under `ve`
    /// (= `mlp.experts`), either layout, stacked from index 0. A part of the experts is what a
    /// rank of the expert-parallel decoder holds (`decoder/parallel`): the per-expert layout
    /// reads only those experts' tensors; the fused layout asks for `[E/world, ..]`, which a
    /// sharded checkpoint answers with the rank's chunk (`checkpoint/shard.rs`), the same
    /// contiguous range.
    pub fn load(cfg: &TextConfig, ve: &VarBuilder, experts: Range<usize>) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.moe_intermediate_size);
        if experts.is_empty() || experts.end > cfg.n_routed_experts {
            return Err(Error::InvalidInput(format!(
                "experts {experts:?} of {}",
                cfg.n_routed_experts
            )));
        }
        let e = experts.len();
        if ve.contains_tensor("gate_up_proj") {
            if fp8::keeps_fp8_named(ve, "gate_up_proj") {
                let (gate_up, gate_up_scale) = fp8::load_pair(ve, "gate_up_proj", &[e, 2 * i, h])?;
                let (down, down_scale) = fp8::load_pair(ve, "down_proj", &[e, h, i])?;
                return Ok(Self::Fp8 {
                    gate_up,
                    gate_up_scale,
                    down,
                    down_scale,
                });
            }
            return Ok(Self::Dense {
                gate_up: ve.get((e, 2 * i, h), "gate_up_proj")?,
                down: ve.get((e, h, i), "down_proj")?,
            });
        }
        let fp8 = fp8::keeps_fp8(&ve.pp(experts.start).pp("gate_proj"));
        let gate_up = Stack::load(ve, &experts, &[("gate_proj", i), ("up_proj", i)], h, fp8)?;
        let down = Stack::load(ve, &experts, &[("down_proj", h)], i, fp8)?;
        Ok(match (gate_up.scale, down.scale) {
            (Some(gate_up_scale), Some(down_scale)) => Self::Fp8 {
                gate_up: gate_up.weight,
                gate_up_scale,
                down: down.weight,
                down_scale,
            },
            _ => Self::Dense {
                gate_up: gate_up.weight,
                down: down.weight,
            },
        })
    }

    /// Bytes held on the device (weights and scales).
    pub fn resident_bytes(&self) -> usize {
        let b = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        match self {
            Self::Dense { gate_up, down } => b(gate_up) + b(down),
            Self::Fp8 {
                gate_up,
                gate_up_scale,
                down,
                down_scale,
            } => b(gate_up) + b(gate_up_scale) + b(down) + b(down_scale),
        }
    }

    /// (E, 2I, H) of the gate/up stack.
    pub fn dims(&self) -> Result<(usize, usize, usize)> {
        let gate_up = match self {
            Self::Dense { gate_up, .. } | Self::Fp8 { gate_up, .. } => gate_up,
        };
        Ok(gate_up.dims3()?)
    }

    /// The stacked (gate_up, down) in `dtype`: the tensors themselves when dense, widened for
    /// this call when FP8.
    pub fn dense(&self, dtype: DType) -> Result<(Tensor, Tensor)> {
        self.widened(dtype, |t| Ok(t.clone()))
    }

    /// Expert `x`'s (gate_up [2I, H], down [H, I]) in `dtype` (views when dense).
    pub fn expert(&self, x: usize, dtype: DType) -> Result<(Tensor, Tensor)> {
        self.widened(dtype, |t| Ok(t.get(x)?))
    }

    /// `pick` applied to every stored tensor (weights and scales alike), FP8 widened to `dtype`.
    fn widened(
        &self,
        dtype: DType,
        pick: impl Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        match self {
            Self::Dense { gate_up, down } => Ok((pick(gate_up)?, pick(down)?)),
            Self::Fp8 {
                gate_up,
                gate_up_scale,
                down,
                down_scale,
            } => Ok((
                fp8::dequantize_rows(&pick(gate_up)?, &pick(gate_up_scale)?, dtype)?,
                fp8::dequantize_rows(&pick(down)?, &pick(down_scale)?, dtype)?,
            )),
        }
    }
}

/// One stacked weight [E, Σ rows, cols] (+ its scales [E, Σ rows] when FP8) being filled.
struct Stack {
    weight: Tensor,
    scale: Option<Tensor>,
}

impl Stack {
    /// Writes `experts.{x}.{part}.weight` of every expert x of `range` into one buffer, the
    /// parts of an expert one after the other (gate rows then up rows).
    fn load(
        ve: &VarBuilder,
        range: &Range<usize>,
        parts: &[(&str, usize)],
        cols: usize,
        fp8: bool,
    ) -> Result<Self> {
        let experts = range.len();
        let per: usize = parts.iter().map(|p| p.1).sum();
        let dev = ve.device();
        let wdtype = if fp8 { DType::F8E4M3 } else { ve.dtype() };
        let weight = Tensor::zeros((experts * per, cols), wdtype, dev)?;
        let scale = if fp8 {
            Some(Tensor::zeros(experts * per, DType::F32, dev)?)
        } else {
            None
        };
        for (slot, x) in range.clone().enumerate() {
            let mut row = slot * per;
            for &(part, rows) in parts {
                let vp = ve.pp(x).pp(part);
                if fp8::keeps_fp8(&vp) != fp8 {
                    return Err(Error::Checkpoint(format!(
                        "`{}.weight` is {}FP8 but expert {}'s gate_proj is {}: mixed expert formats",
                        vp.prefix(),
                        if fp8 { "not " } else { "" },
                        range.start,
                        if fp8 { "FP8" } else { "not" }
                    )));
                }
                match &scale {
                    Some(sbuf) => {
                        let (w, s) = fp8::load_pair(&vp, "weight", &[rows, cols])?;
                        weight.slice_set(&w, 0, row)?;
                        sbuf.slice_set(&s, 0, row)?;
                    }
                    None => weight.slice_set(&vp.get((rows, cols), "weight")?, 0, row)?,
                }
                row += rows;
            }
        }
        Ok(Self {
            weight: weight.reshape((experts, per, cols))?,
            scale: scale.map(|s| s.reshape((experts, per))).transpose()?,
        })
    }
}
