//! The grid-dependent inputs of the vision tower, computed on the host (spec §2.2c–e, §5.3):
//! per-patch (row, col) in merge-block order, the 2-D rotary cos/sin, the 16 bicubic taps and
//! weights that resample the learned position table to the image's grid, and attention segments.
//!
//! Shared by every backend of the tower (the exported ONNX graph takes them as inputs). The
//! arithmetic follows transformers in f32 step by step: `inv_freq = 1 / θ^(2k/(d/2))`, angles
//! `pos · inv_freq`; bicubic source coordinate `(i + 0.5)·side/size − 0.5`, taps `⌊s⌋−1 … ⌊s⌋+2`
//! clamped to the table (border padding), Keys kernel with a = −0.75 (PyTorch's `grid_sample`).

use crate::error::{Error, Result};
use crate::processor::GridThw;

/// Taps per patch of the 2-D bicubic resampling (4 × 4).
pub const POS_TAPS: usize = 16;

/// Shape parameters of a vision tower that the inputs depend on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VisionGeometry {
    /// Per-head dimension (rotary tables are this wide).
    pub head_dim: usize,
    /// Patches per side of a merged token (2).
    pub merge_size: usize,
    /// Side of the learned position table (`image_size / patch_size`, 24 for GLM-4.5V).
    pub pos_side: usize,
    /// Rotary base (10000).
    pub rope_theta: f32,
}

/// Everything the tower needs besides the pixels, for a batch of grids (row-major buffers).
#[derive(Debug, Clone, PartialEq)]
pub struct VisionInputs {
    /// Number of patches N.
    pub patches: usize,
    /// [N, head_dim]
    pub rope_cos: Vec<f32>,
    /// [N, head_dim]
    pub rope_sin: Vec<f32>,
    /// [N, 16] indices into the flattened `pos_side × pos_side` table.
    pub pos_idx: Vec<i64>,
    /// [N, 16]
    pub pos_w: Vec<f32>,
    /// [N]: one segment per image and per temporal patch of a video.
    pub segment_ids: Vec<i64>,
}

/// (row, col) of every patch of one grid, merge-block order, repeated for each temporal patch.
pub fn patch_positions(grid: GridThw, merge: usize) -> Result<Vec<(usize, usize)>> {
    let [t, h, w] = grid;
    if merge == 0 || h % merge != 0 || w % merge != 0 || t == 0 {
        return Err(Error::InvalidInput(format!(
            "grid {grid:?} is not a whole number of {merge}x{merge} blocks"
        )));
    }
    let mut out = Vec::with_capacity(t * h * w);
    for _ in 0..t {
        for br in 0..h / merge {
            for bc in 0..w / merge {
                for ir in 0..merge {
                    for ic in 0..merge {
                        out.push((br * merge + ir, bc * merge + ic));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Per-axis taps and weights (transformers' `_interpolation_axis_taps_weights`, bicubic, border).
fn axis_taps(index: usize, size: usize, side: usize) -> ([i64; 4], [f32; 4]) {
    const A: f32 = -0.75;
    let src = (index as f32 + 0.5) * side as f32 / size as f32 - 0.5;
    let floor = src.floor();
    let last = side as i64 - 1;
    let mut taps = [0i64; 4];
    let mut weights = [0f32; 4];
    for (j, offset) in (-1i64..3).enumerate() {
        taps[j] = (floor as i64 + offset).clamp(0, last);
        let d = (src - floor - offset as f32).abs();
        weights[j] = if d <= 1.0 {
            ((A + 2.0) * d - (A + 3.0)) * d * d + 1.0
        } else {
            ((A * d - 5.0 * A) * d + 8.0 * A) * d - 4.0 * A
        };
    }
    (taps, weights)
}

impl VisionGeometry {
    /// Rotary inverse frequencies: `head_dim / 4` of them, shared by the row and column axes.
    pub fn inv_freq(&self) -> Vec<f32> {
        let spatial = (self.head_dim / 2) as f32;
        (0..self.head_dim / 4)
            .map(|k| 1.0 / self.rope_theta.powf((2 * k) as f32 / spatial))
            .collect()
    }

    /// Builds the inputs for `grids`, in order (several images share one call).
    pub fn inputs(&self, grids: &[GridThw]) -> Result<VisionInputs> {
        if self.head_dim % 4 != 0 || self.head_dim == 0 || self.pos_side == 0 {
            return Err(Error::Config(format!(
                "vision head_dim {} must be a multiple of 4 and the position table non-empty",
                self.head_dim
            )));
        }
        let n: usize = grids.iter().map(|g| g.iter().product::<usize>()).sum();
        let hd = self.head_dim;
        let quarter = hd / 4;
        let inv = self.inv_freq();
        let mut out = VisionInputs {
            patches: n,
            rope_cos: Vec::with_capacity(n * hd),
            rope_sin: Vec::with_capacity(n * hd),
            pos_idx: Vec::with_capacity(n * POS_TAPS),
            pos_w: Vec::with_capacity(n * POS_TAPS),
            segment_ids: Vec::with_capacity(n),
        };
        let mut segment = 0i64;
        let mut angles = vec![0f32; hd / 2];
        for &grid in grids {
            let [t, h, w] = grid;
            let positions = patch_positions(grid, self.merge_size)?;
            let frame = h * w;
            for (i, &(r, c)) in positions.iter().enumerate() {
                if i > 0 && i % frame == 0 {
                    segment += 1;
                }
                for k in 0..quarter {
                    angles[k] = r as f32 * inv[k];
                    angles[quarter + k] = c as f32 * inv[k];
                }
                for _ in 0..2 {
                    out.rope_cos.extend(angles.iter().map(|a| a.cos()));
                    out.rope_sin.extend(angles.iter().map(|a| a.sin()));
                }
                let (ht, hw) = axis_taps(r, h, self.pos_side);
                let (wt, ww) = axis_taps(c, w, self.pos_side);
                for (yt, yw) in ht.iter().zip(hw) {
                    for (xt, xw) in wt.iter().zip(ww) {
                        out.pos_idx.push(yt * self.pos_side as i64 + xt);
                        out.pos_w.push(yw * xw);
                    }
                }
                out.segment_ids.push(segment);
            }
            if t > 0 {
                segment += 1;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo() -> VisionGeometry {
        VisionGeometry {
            head_dim: 32,
            merge_size: 2,
            pos_side: 4,
            rope_theta: 10000.0,
        }
    }

    #[test]
    fn positions_follow_merge_blocks() {
        let p = patch_positions([1, 2, 4], 2).expect("grid");
        assert_eq!(
            p,
            vec![
                (0, 0),
                (0, 1),
                (1, 0),
                (1, 1),
                (0, 2),
                (0, 3),
                (1, 2),
                (1, 3)
            ]
        );
        assert!(patch_positions([1, 3, 4], 2).is_err());
    }

    #[test]
    fn taps_reproduce_the_table_on_its_own_grid() {
        // Sampling a 4x4 table at a 4x4 grid hits the table entries exactly.
        let inputs = geo().inputs(&[[1, 4, 4]]).expect("inputs");
        let table: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let positions = patch_positions([1, 4, 4], 2).expect("grid");
        for (i, (r, c)) in positions.iter().enumerate() {
            let v: f32 = (0..POS_TAPS)
                .map(|j| table[inputs.pos_idx[i * 16 + j] as usize] * inputs.pos_w[i * 16 + j])
                .sum();
            assert!((v - (r * 4 + c) as f32).abs() < 1e-5, "{r},{c}: {v}");
        }
    }

    #[test]
    fn segments_and_rotary_layout() {
        let inputs = geo().inputs(&[[1, 2, 2], [2, 2, 4]]).expect("inputs");
        assert_eq!(inputs.patches, 4 + 16);
        assert_eq!(&inputs.segment_ids[..4], &[0; 4]);
        assert_eq!(&inputs.segment_ids[4..12], &[1; 8]);
        assert_eq!(&inputs.segment_ids[12..], &[2; 8]);
        // Patch 3 is (1, 1): first quarter is row angles, second column angles, then repeated.
        let row = &inputs.rope_cos[3 * 32..4 * 32];
        let inv = geo().inv_freq();
        assert!((row[1] - inv[1].cos()).abs() < 1e-7);
        assert_eq!(row[..16], row[16..]);
        let sum: f32 = inputs.pos_w[..16].iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
    }
}
