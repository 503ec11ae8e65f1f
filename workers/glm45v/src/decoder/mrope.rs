//! 3-D multimodal rotary embedding (M-RoPE) of the GLM-4.5V text decoder (spec §2.3, §2.4).
//!
//! Positions are three rows (temporal, height, width) per token, shape [3, B, T]; text tokens
//! carry the same value in all rows, image tokens get (start, start + row, start + col) from the
//! vision side. Frequency j of `inv_freq[j] = θ^(−2j/rotary_dim)` takes its angle from axis T for
//! the first `mrope_section[0]` frequencies, H for the next `[1]`, W for the last `[2]`; cos/sin
//! are duplicated to `rotary_dim` and applied half-split (NeoX) to the first `rotary_dim` dims of
//! each q/k head — not interleaved (that is GLM-4.1V's dense text model).

use candle_core::{DType, Device, Tensor, D};

use crate::checkpoint::config::RopeSettings;
use crate::error::{Error, Result};

/// Inverse frequencies and sections, computed once per model.
#[derive(Debug, Clone)]
pub struct MropeTable {
    inv_freq: Tensor,
    sections: [usize; 3],
    rotary_dim: usize,
}

impl MropeTable {
    /// Builds the table (f32, on `device`).
    pub fn new(rope: &RopeSettings, device: &Device) -> Result<Self> {
        let dim = rope.rotary_dim;
        let theta = rope.theta as f32;
        let inv: Vec<f32> = (0..dim / 2)
            .map(|j| 1.0 / theta.powf((2 * j) as f32 / dim as f32))
            .collect();
        Ok(Self {
            inv_freq: Tensor::from_vec(inv, dim / 2, device)?,
            sections: rope.mrope_section,
            rotary_dim: dim,
        })
    }

    /// Number of rotated leading dims per head.
    pub fn rotary_dim(&self) -> usize {
        self.rotary_dim
    }

    /// cos and sin of shape [B, T, rotary_dim/2] (f32 math, returned in `dtype`).
    pub fn cos_sin(&self, positions: &Tensor, dtype: DType) -> Result<(Tensor, Tensor)> {
        let dims = positions.dims();
        if dims.len() != 3 || dims[0] != 3 {
            return Err(Error::InvalidInput(format!(
                "M-RoPE positions must be [3, batch, seq], got {dims:?}"
            )));
        }
        let pos = positions.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
        let freqs = pos.broadcast_mul(&self.inv_freq.reshape((1, 1, 1, ()))?)?; // [3, B, T, R/2]
        let mut parts = Vec::with_capacity(3);
        let mut start = 0;
        for (axis, &len) in self.sections.iter().enumerate() {
            if len > 0 {
                parts.push(freqs.get(axis)?.narrow(D::Minus1, start, len)?);
            }
            start += len;
        }
        let angles = Tensor::cat(&parts, D::Minus1)?.contiguous()?;
        let cos = angles.cos()?.to_dtype(dtype)?;
        let sin = angles.sin()?.to_dtype(dtype)?;
        Ok((cos, sin))
    }

    /// Rotates the first `rotary_dim` dims of `x` [B, heads, T, head_dim], half-split.
    pub fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let head_dim = x.dim(D::Minus1)?;
        if self.rotary_dim == head_dim {
            return Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)?);
        }
        let rot = x.narrow(D::Minus1, 0, self.rotary_dim)?.contiguous()?;
        let pass = x.narrow(D::Minus1, self.rotary_dim, head_dim - self.rotary_dim)?;
        let rot = candle_nn::rotary_emb::rope(&rot, cos, sin)?;
        Ok(Tensor::cat(&[&rot, &pass], D::Minus1)?)
    }
}

/// Text-only positions `start..start+len` on all three axes, shape [3, batch, len] (u32).
pub fn text_positions(batch: usize, start: usize, len: usize, device: &Device) -> Result<Tensor> {
    let end = start + len;
    if end > u32::MAX as usize {
        return Err(Error::InvalidInput(format!("position {end} overflows u32")));
    }
    let row = Tensor::arange(start as u32, end as u32, device)?;
    Ok(row
        .reshape((1, 1, len))?
        .expand((3, batch, len))?
        .contiguous()?)
}

/// 3-row positions of one sequence as plain data (rows T, H, W), e.g. from the vision side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Positions3 {
    pub rows: [Vec<u32>; 3],
}

impl Positions3 {
    /// Text positions `0..len`.
    pub fn text(len: usize) -> Self {
        let row: Vec<u32> = (0..len as u32).collect();
        Self {
            rows: [row.clone(), row.clone(), row],
        }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.rows[0].len()
    }

    /// True when there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.rows[0].is_empty()
    }

    /// `max(position) + 1 − len`: the offset decode steps add to the cache length (spec §2.4).
    pub fn rope_delta(&self) -> i64 {
        let max = self
            .rows
            .iter()
            .flatten()
            .copied()
            .max()
            .map_or(-1, i64::from);
        max + 1 - self.len() as i64
    }

    /// As a [3, 1, T] u32 tensor; errors if the rows differ in length.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        let n = self.len();
        if self.rows.iter().any(|r| r.len() != n) {
            return Err(Error::InvalidInput(
                "the three M-RoPE position rows differ in length".into(),
            ));
        }
        let flat: Vec<u32> = self.rows.iter().flatten().copied().collect();
        Ok(Tensor::from_vec(flat, (3, 1, n), device)?)
    }
}

/// Positions of `len` decode tokens after `cache_len` cached ones: `cache_len + delta + i` on all axes.
pub fn decode_positions(
    cache_len: usize,
    rope_delta: i64,
    len: usize,
    device: &Device,
) -> Result<Tensor> {
    let start = cache_len as i64 + rope_delta;
    if start < 0 {
        return Err(Error::InvalidInput(format!(
            "decode position {start} is negative (cache {cache_len}, delta {rope_delta})"
        )));
    }
    text_positions(1, start as usize, len, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> MropeTable {
        let rope = RopeSettings {
            theta: 10000.0,
            rotary_dim: 16,
            mrope_section: [2, 3, 3],
        };
        MropeTable::new(&rope, &Device::Cpu).expect("table")
    }

    #[test]
    fn sections_take_their_axis() -> Result<()> {
        let t = table();
        // One token with distinct (t, h, w) = (1, 2, 3).
        let pos = Tensor::new(&[[[1u32]], [[2]], [[3]]], &Device::Cpu)?;
        let (cos, _) = t.cos_sin(&pos, DType::F32)?;
        let got = cos.flatten_all()?.to_vec1::<f32>()?;
        for (j, g) in got.iter().enumerate() {
            let axis_pos = if j < 2 {
                1.0
            } else if j < 5 {
                2.0
            } else {
                3.0
            };
            let inv = 1.0 / 10000f32.powf(2.0 * j as f32 / 16.0);
            assert!((g - (axis_pos * inv).cos()).abs() < 1e-6, "freq {j}");
        }
        Ok(())
    }

    #[test]
    fn rotation_is_half_split_and_keeps_the_pass_dims() -> Result<()> {
        let t = table();
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 32.0, &dev)?.reshape((1, 1, 1, 32))?;
        let pos = text_positions(1, 5, 1, &dev)?;
        let (cos, sin) = t.cos_sin(&pos, DType::F32)?;
        let y = t.apply(&x, &cos, &sin)?.flatten_all()?.to_vec1::<f32>()?;
        let c = cos.flatten_all()?.to_vec1::<f32>()?;
        let s = sin.flatten_all()?.to_vec1::<f32>()?;
        for i in 0..8 {
            let (a, b) = (i as f32, (i + 8) as f32);
            assert!((y[i] - (a * c[i] - b * s[i])).abs() < 1e-4);
            assert!((y[i + 8] - (b * c[i] + a * s[i])).abs() < 1e-4);
        }
        for (i, v) in y.iter().enumerate().skip(16) {
            assert_eq!(*v, i as f32);
        }
        Ok(())
    }

    #[test]
    fn rope_delta_follows_the_largest_position() {
        let p = Positions3 {
            rows: [
                vec![0, 1, 2, 2, 2, 2, 4],
                vec![0, 1, 2, 2, 3, 3, 4],
                vec![0, 1, 2, 3, 2, 3, 4],
            ],
        };
        assert_eq!(p.rope_delta(), 4 + 1 - 7);
        assert_eq!(Positions3::text(5).rope_delta(), 0);
    }
}
