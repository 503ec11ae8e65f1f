//! GLM-4.5V image processor (spec §3.1–§3.4): `smart_resize`, bicubic resize, CLIP
//! normalisation and patchify into `pixel_values` rows, with `image_grid_thw` per image.
//!
//! The reference is transformers' `Glm4vImageProcessorPil` (the processor transformers picks when
//! torchvision is absent): RGB conversion with transparency over white, Pillow BICUBIC resize
//! ([`crate::processor::resize`], bit-exact), `x·rescale_factor` in f64 cast to f32, then
//! `(x − mean) / std` in f32 — so the pixel values equal the reference's, not just approximately.
//! Budgets and statistics come from the checkpoint's `preprocessor_config.json`
//! ([`PreprocessorConfig`]); its absence means transformers' class defaults.
//!
//! Row layout (merge-block order): for block row, block column, in-block row, in-block column,
//! one row of `C·T·P·P` values indexed `((c·T + t)·P + py)·P + px`; for images the T temporal
//! slices are copies of the one frame.

pub mod prompt;
pub mod resize;
pub mod video;

use std::path::Path;

use image::{DynamicImage, RgbImage};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::processor::resize::{resize_bicubic, to_rgb_over_white};

/// OPENAI CLIP mean (transformers' `OPENAI_CLIP_MEAN`).
pub const CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OPENAI CLIP std (transformers' `OPENAI_CLIP_STD`).
pub const CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];
/// PIL's BICUBIC resample code, the only resampling implemented.
pub const PIL_BICUBIC: u32 = 3;

/// The pixel budget of `size` (`shortest_edge` = min pixels, `longest_edge` = max pixels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct SizeBudget {
    pub shortest_edge: u64,
    pub longest_edge: u64,
}

/// `preprocessor_config.json` of a GLM-4.5V checkpoint (transformers' defaults when absent).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct PreprocessorConfig {
    pub size: SizeBudget,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub merge_size: usize,
    pub image_mean: [f64; 3],
    pub image_std: [f64; 3],
    pub rescale_factor: f64,
    pub do_resize: bool,
    pub do_rescale: bool,
    pub do_normalize: bool,
    pub do_convert_rgb: bool,
    pub resample: u32,
}

impl Default for PreprocessorConfig {
    fn default() -> Self {
        Self {
            size: SizeBudget {
                shortest_edge: 112 * 112,
                longest_edge: 28 * 28 * 15000,
            },
            patch_size: 14,
            temporal_patch_size: 2,
            merge_size: 2,
            image_mean: CLIP_MEAN,
            image_std: CLIP_STD,
            rescale_factor: 1.0 / 255.0,
            do_resize: true,
            do_rescale: true,
            do_normalize: true,
            do_convert_rgb: true,
            resample: PIL_BICUBIC,
        }
    }
}

impl PreprocessorConfig {
    /// Reads `path`, or returns the defaults when it does not exist.
    pub fn load_or_default(path: &Path) -> Result<Self> {
        if !path.is_file() {
            tracing::debug!(path = %path.display(), "no preprocessor config, using transformers' defaults");
            return Ok(Self::default());
        }
        let cfg: Self = crate::checkpoint::config::read_json(path)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rejects settings the processor does not implement or that cannot work.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("preprocessor_config: {m}")));
        if self.patch_size == 0 || self.merge_size == 0 || self.temporal_patch_size == 0 {
            return bad("patch_size, merge_size and temporal_patch_size must be > 0".into());
        }
        if self.resample != PIL_BICUBIC {
            return bad(format!(
                "resample {} is not supported (only 3 = bicubic)",
                self.resample
            ));
        }
        if self.size.shortest_edge > self.size.longest_edge || self.size.longest_edge == 0 {
            return bad(format!("size budget {:?} is empty or inverted", self.size));
        }
        if self.image_std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return bad(format!(
                "image_std {:?} must be finite and non-zero",
                self.image_std
            ));
        }
        Ok(())
    }

    /// `patch_size · merge_size`: resized sides are multiples of this.
    pub fn factor(&self) -> usize {
        self.patch_size * self.merge_size
    }

    /// Values per `pixel_values` row: `3 · temporal_patch_size · patch_size²`.
    pub fn patch_dim(&self) -> usize {
        3 * self.temporal_patch_size * self.patch_size * self.patch_size
    }
}

/// transformers' `smart_resize`: the (height, width) an image or clip of `num_frames` frames is
/// resized to — multiples of `factor`, aspect kept, `t̄·h̄·w̄` within `[min_pixels, max_pixels]`.
/// Python's round-half-to-even and float semantics are reproduced.
pub fn smart_resize(
    num_frames: usize,
    height: usize,
    width: usize,
    temporal_factor: usize,
    factor: usize,
    min_pixels: u64,
    max_pixels: u64,
) -> Result<(usize, usize)> {
    if num_frames < temporal_factor {
        return Err(Error::InvalidInput(format!(
            "{num_frames} frames is fewer than the temporal factor {temporal_factor}"
        )));
    }
    if height == 0 || width == 0 || factor == 0 {
        return Err(Error::InvalidInput(format!(
            "cannot resize an empty image ({width}x{height})"
        )));
    }
    let (mut h, mut w) = (height as f64, width as f64);
    let f = factor as f64;
    if height < factor || width < factor {
        let scale = (f / h).max(f / w);
        h = (h * scale).trunc();
        w = (w * scale).trunc();
    }
    if h.max(w) / h.min(w) > 200.0 {
        return Err(Error::InvalidInput(format!(
            "aspect ratio {:.1} of a {width}x{height} image exceeds 200",
            h.max(w) / h.min(w)
        )));
    }
    let mut h_bar = (h / f).round_ties_even() * f;
    let mut w_bar = (w / f).round_ties_even() * f;
    let t_bar =
        (num_frames as f64 / temporal_factor as f64).round_ties_even() * temporal_factor as f64;
    let frames_area = num_frames as f64 * h * w;
    if t_bar * h_bar * w_bar > max_pixels as f64 {
        let beta = (frames_area / max_pixels as f64).sqrt();
        h_bar = f.max((h / beta / f).floor() * f);
        w_bar = f.max((w / beta / f).floor() * f);
    } else if t_bar * h_bar * w_bar < min_pixels as f64 {
        let beta = (min_pixels as f64 / frames_area).sqrt();
        h_bar = (h * beta / f).ceil() * f;
        w_bar = (w * beta / f).ceil() * f;
    }
    Ok((h_bar as usize, w_bar as usize))
}

/// Grid of one image or clip in patches: (temporal, height, width).
pub type GridThw = [usize; 3];

/// One processed image.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedImage {
    /// `[grid_t·grid_h·grid_w, patch_dim]` row-major, merge-block order.
    pub pixel_values: Vec<f32>,
    /// `image_grid_thw` row: (1, resized_height / patch, resized_width / patch).
    pub grid: GridThw,
    /// (width, height) of the image as given (boxes are scaled back to this).
    pub original_size: (u32, u32),
    /// (width, height) after `smart_resize`.
    pub resized_size: (u32, u32),
}

impl ProcessedImage {
    /// Number of `pixel_values` rows.
    pub fn num_patches(&self) -> usize {
        self.grid.iter().product()
    }

    /// Number of LLM tokens (`<|image|>` copies) after the `merge × merge` patch merger.
    pub fn num_tokens(&self, merge_size: usize) -> usize {
        self.num_patches() / (merge_size * merge_size).max(1)
    }
}

/// The image processor of one checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessor {
    pub config: PreprocessorConfig,
}

impl ImageProcessor {
    /// A processor with `config` (validated).
    pub fn new(config: PreprocessorConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The processor of a checkpoint directory (`preprocessor_config.json`, else defaults).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::new(PreprocessorConfig::load_or_default(
            &dir.join("preprocessor_config.json"),
        )?)
    }

    /// The (height, width) `smart_resize` gives an image of `width` × `height`.
    pub fn resized_size(&self, width: u32, height: u32) -> Result<(usize, usize)> {
        let c = &self.config;
        if !c.do_resize {
            return Ok((height as usize, width as usize));
        }
        smart_resize(
            c.temporal_patch_size,
            height as usize,
            width as usize,
            c.temporal_patch_size,
            c.factor(),
            c.size.shortest_edge,
            c.size.longest_edge,
        )
    }

    /// RGB conversion and resize: the 8-bit image the normalisation reads.
    pub fn resize(&self, img: &DynamicImage) -> Result<RgbImage> {
        let rgb = if self.config.do_convert_rgb {
            to_rgb_over_white(img)
        } else {
            img.to_rgb8()
        };
        let (h, w) = self.resized_size(rgb.width(), rgb.height())?;
        if h % self.config.factor() != 0 || w % self.config.factor() != 0 {
            return Err(Error::InvalidInput(format!(
                "image of {}x{} is not a multiple of {} and do_resize is off",
                rgb.width(),
                rgb.height(),
                self.config.factor()
            )));
        }
        let (h, w) = (to_u32(h)?, to_u32(w)?);
        Ok(resize_bicubic(&rgb, w, h))
    }

    /// Processes one image into its `pixel_values` rows and grid.
    pub fn process(&self, img: &DynamicImage) -> Result<ProcessedImage> {
        let resized = self.resize(img)?;
        let frames = vec![&resized; self.config.temporal_patch_size];
        let (pixel_values, grid) = patchify(&self.config, &frames)?;
        Ok(ProcessedImage {
            pixel_values,
            grid,
            original_size: (img.width(), img.height()),
            resized_size: resized.dimensions(),
        })
    }

    /// Processes several images (prompt order).
    pub fn process_all(&self, images: &[DynamicImage]) -> Result<Vec<ProcessedImage>> {
        images.iter().map(|img| self.process(img)).collect()
    }

    /// Per-channel lookup of the normalised value of each 8-bit level, computed exactly as
    /// transformers does (`u·rescale` in f64 → f32, then `(x − mean) / std` in f32).
    pub fn level_table(&self) -> [[f32; 256]; 3] {
        level_table(&self.config)
    }
}

fn to_u32(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::InvalidInput(format!("image side {v} is too large")))
}

pub(crate) fn level_table(c: &PreprocessorConfig) -> [[f32; 256]; 3] {
    let mut lut = [[0f32; 256]; 3];
    for (ch, table) in lut.iter_mut().enumerate() {
        let (mean, std) = (c.image_mean[ch] as f32, c.image_std[ch] as f32);
        for (level, v) in table.iter_mut().enumerate() {
            let x = if c.do_rescale {
                (level as f64 * c.rescale_factor) as f32
            } else {
                level as f32
            };
            *v = if c.do_normalize { (x - mean) / std } else { x };
        }
    }
    lut
}

/// Patchifies `T` frames of equal size (T = temporal_patch_size) into `pixel_values` rows.
pub(crate) fn patchify(
    c: &PreprocessorConfig,
    frames: &[&RgbImage],
) -> Result<(Vec<f32>, GridThw)> {
    let t = c.temporal_patch_size;
    let (p, m) = (c.patch_size, c.merge_size);
    let first = frames
        .first()
        .ok_or_else(|| Error::InvalidInput("no frames to patchify".into()))?;
    let (w, h) = (first.width() as usize, first.height() as usize);
    if frames.len() % t != 0 || frames.iter().any(|f| f.dimensions() != first.dimensions()) {
        return Err(Error::InvalidInput(format!(
            "{} frames of unequal size or not a multiple of {t}",
            frames.len()
        )));
    }
    if h % (p * m) != 0 || w % (p * m) != 0 {
        return Err(Error::InvalidInput(format!(
            "{w}x{h} is not a multiple of {}",
            p * m
        )));
    }
    let lut = level_table(c);
    let (gh, gw, gt) = (h / p, w / p, frames.len() / t);
    let dim = c.patch_dim();
    let mut out = vec![0f32; gt * gh * gw * dim];
    let mut rows = out.chunks_exact_mut(dim);
    for pair in frames.chunks_exact(t) {
        for br in 0..gh / m {
            for bc in 0..gw / m {
                for ir in 0..m {
                    for ic in 0..m {
                        let row = rows
                            .next()
                            .ok_or_else(|| Error::InvalidInput("patch count mismatch".into()))?;
                        let (y0, x0) = ((br * m + ir) * p, (bc * m + ic) * p);
                        write_patch(row, pair, &lut, p, w, x0, y0);
                    }
                }
            }
        }
    }
    Ok((out, [gt, gh, gw]))
}

fn write_patch(
    row: &mut [f32],
    frames: &[&RgbImage],
    lut: &[[f32; 256]; 3],
    p: usize,
    w: usize,
    x0: usize,
    y0: usize,
) {
    let t = frames.len();
    for (ti, frame) in frames.iter().enumerate() {
        let raw = frame.as_raw();
        for py in 0..p {
            let line = &raw[((y0 + py) * w + x0) * 3..((y0 + py) * w + x0 + p) * 3];
            for (c, table) in lut.iter().enumerate() {
                let base = ((c * t + ti) * p + py) * p;
                for (px, dst) in row[base..base + p].iter_mut().enumerate() {
                    *dst = table[line[px * 3 + c] as usize];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sr(h: usize, w: usize, min: u64, max: u64) -> (usize, usize) {
        smart_resize(2, h, w, 2, 28, min, max).expect("resizes")
    }

    #[test]
    fn smart_resize_rounds_half_to_even_like_python() {
        // 238 / 28 = 8.5 -> 8 (Python), not 9; 99 / 28 = 3.54 -> 4.
        assert_eq!(sr(99, 238, 12544, 11_760_000), (112, 224));
        // 266 / 28 = 9.5 -> 10 (even).
        assert_eq!(sr(266, 266, 12544, 11_760_000), (280, 280));
    }

    #[test]
    fn smart_resize_applies_both_budgets() {
        // The spec's example: 1920x1080 photo with ≤ 6144 tokens.
        assert_eq!(sr(1080, 1920, 12544, 9_633_792), (1092, 1932));
        // Too large: scaled down by sqrt(2hw / max) and floored to multiples of 28.
        assert_eq!(sr(3508, 2480, 12544, 9_633_792), (2604, 1820));
        // Tiny images are scaled up to 28 first, then to the minimum budget.
        assert_eq!(sr(10, 20, 12544, 11_760_000), (56, 112));
        assert!(smart_resize(2, 10, 2500, 2, 28, 1, 1 << 40).is_err());
        assert!(smart_resize(1, 100, 100, 2, 28, 1, 1 << 40).is_err());
    }

    #[test]
    fn patchify_uses_merge_block_order_and_duplicates_frames() {
        let cfg = PreprocessorConfig {
            do_normalize: false,
            do_rescale: false,
            ..PreprocessorConfig::default()
        };
        // 56x28 image: pixel value = column index (red), row index (green).
        let img = RgbImage::from_fn(56, 28, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let (pv, grid) = patchify(&cfg, &[&img, &img]).expect("patchify");
        assert_eq!(grid, [1, 2, 4]);
        let dim = cfg.patch_dim();
        // Row 1 is block (0,0), in-block (0,1): starts at column 14, row 0.
        assert_eq!(pv[dim], 14.0);
        // Row 2 is in-block (1,0): green at py=0 is row 14.
        assert_eq!(pv[2 * dim + 14 * 14 * 2], 14.0);
        // Row 4 is block (0,1): columns from 28.
        assert_eq!(pv[4 * dim], 28.0);
        // The second temporal slice repeats the first.
        assert_eq!(pv[dim + 14 * 14], pv[dim]);
    }
}
