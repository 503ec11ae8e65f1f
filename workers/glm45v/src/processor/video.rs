//! Video frames for GLM-4.5V (spec §3.5): frame sampling at 2 fps (at most 300 s), one
//! `smart_resize` for the whole clip, temporal pairs of frames per patch row, and the timestamp of
//! each pair for the prompt. Decoding the video is the caller's business: frames come in as images
//! with the clip's frame rate.
//!
//! transformers' video processor resizes with torchvision, not Pillow; frames here go through the
//! same Pillow-exact resize as images, so video pixel values can differ from a torchvision-based
//! reference by resampling rounding (the layout, grids, sampling and timestamps do not). The tests
//! check sampling, pixel layout, embeddings, prompt, positions and logits against transformers on
//! frames that need no resize.

use image::{DynamicImage, RgbImage};

use crate::error::{Error, Result};
use crate::processor::prompt::VideoPrompt;
use crate::processor::resize::{resize_bicubic, to_rgb_over_white};
use crate::processor::{patchify, smart_resize, GridThw, PreprocessorConfig};

/// transformers' video defaults: 2 frames per second, at most 300 s, budget 28·28·2·30000.
pub const VIDEO_FPS: f64 = 2.0;
pub const VIDEO_MAX_DURATION: f64 = 300.0;
pub const VIDEO_MAX_PIXELS: u64 = 28 * 28 * 2 * 30000;

/// What is known about a clip before sampling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoMetadata {
    pub total_frames: usize,
    /// Frames per second of the source.
    pub fps: f64,
    /// Duration in seconds if the container says so.
    pub duration: Option<f64>,
}

/// transformers' `Glm4vVideoProcessor.sample_frames`: indices of the frames to keep (deduplicated,
/// even count by repeating the last).
pub fn sample_frame_indices(
    meta: &VideoMetadata,
    fps: f64,
    max_duration: f64,
) -> Result<Vec<usize>> {
    if meta.total_frames == 0 || !(meta.fps.is_finite() && meta.fps > 0.0) || fps <= 0.0 {
        return Err(Error::InvalidInput(format!(
            "cannot sample frames from {meta:?} at {fps} fps"
        )));
    }
    let max_idx = meta.total_frames - 1;
    let duration = match meta.duration {
        Some(d) if d > 0.0 => d,
        _ => (max_idx as f64 / meta.fps).round_ties_even() + 1.0,
    };
    let indices: Vec<usize> = if duration <= max_duration {
        let n = ((duration * fps).floor() as usize).max(1);
        (0..n)
            .map(|i| ((i as f64 * meta.fps / fps).ceil() as usize).min(max_idx))
            .collect()
    } else {
        let samples = (max_duration * fps) as usize;
        if samples >= meta.total_frames {
            (0..meta.total_frames).collect()
        } else {
            let step = if samples > 1 {
                duration / (samples - 1) as f64
            } else {
                0.0
            };
            (0..samples)
                .map(|i| {
                    let t = if i + 1 == samples {
                        duration
                    } else {
                        i as f64 * step
                    };
                    ((t * meta.fps).ceil() as usize).min(max_idx)
                })
                .collect()
        }
    };
    let mut uniq: Vec<usize> = Vec::with_capacity(indices.len() + 1);
    for i in indices {
        if !uniq.contains(&i) {
            uniq.push(i);
        }
    }
    if uniq.len() % 2 == 1 {
        if let Some(&last) = uniq.last() {
            uniq.push(last);
        }
    }
    Ok(uniq)
}

/// One processed clip.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedVideo {
    /// `[grid_t·grid_h·grid_w, patch_dim]`, t-major then merge-block order.
    pub pixel_values: Vec<f32>,
    /// `video_grid_thw`: (frames / temporal_patch_size, h / patch, w / patch).
    pub grid: GridThw,
    /// Seconds of the first frame of each temporal patch.
    pub timestamps: Vec<f64>,
}

impl ProcessedVideo {
    /// The prompt expansion of this clip.
    pub fn prompt(&self, merge_size: usize) -> VideoPrompt {
        VideoPrompt {
            tokens_per_frame: self.grid[1] * self.grid[2] / (merge_size * merge_size).max(1),
            timestamps: self.timestamps.clone(),
        }
    }
}

/// Processes already-sampled frames (`indices` are their frame numbers in a clip of `fps`).
/// `max_pixels` bounds `frames · h · w` of the whole clip.
pub fn process_video(
    cfg: &PreprocessorConfig,
    frames: &[DynamicImage],
    indices: &[usize],
    fps: f64,
    max_pixels: u64,
) -> Result<ProcessedVideo> {
    let first = frames
        .first()
        .ok_or_else(|| Error::InvalidInput("a video needs at least one frame".into()))?;
    if indices.len() != frames.len() || !fps.is_finite() || fps <= 0.0 {
        return Err(Error::InvalidInput(format!(
            "{} frames with {} indices at {fps} fps",
            frames.len(),
            indices.len()
        )));
    }
    let (w, h) = (first.width(), first.height());
    if frames.iter().any(|f| f.width() != w || f.height() != h) {
        return Err(Error::InvalidInput("video frames differ in size".into()));
    }
    let tp = cfg.temporal_patch_size;
    let (rh, rw) = smart_resize(
        frames.len().max(tp),
        h as usize,
        w as usize,
        tp,
        cfg.factor(),
        cfg.size.shortest_edge,
        max_pixels,
    )?;
    let (rh, rw) = (
        u32::try_from(rh).map_err(|_| Error::InvalidInput("frame too large".into()))?,
        u32::try_from(rw).map_err(|_| Error::InvalidInput("frame too large".into()))?,
    );
    let mut resized: Vec<RgbImage> = frames
        .iter()
        .map(|f| resize_bicubic(&to_rgb_over_white(f), rw, rh))
        .collect();
    let mut times: Vec<f64> = indices.iter().map(|&i| i as f64 / fps).collect();
    while resized.len() % tp != 0 {
        if let (Some(last), Some(&t)) = (resized.last().cloned(), times.last()) {
            resized.push(last);
            times.push(t);
        }
    }
    let refs: Vec<&RgbImage> = resized.iter().collect();
    let (pixel_values, grid) = patchify(cfg, &refs)?;
    Ok(ProcessedVideo {
        pixel_values,
        grid,
        timestamps: times.iter().step_by(tp).copied().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(total: usize, fps: f64) -> VideoMetadata {
        VideoMetadata {
            total_frames: total,
            fps,
            duration: None,
        }
    }

    #[test]
    fn samples_two_per_second_and_pairs() {
        // 10 s at 30 fps: duration = round(299/30)+1 = 11 s -> 22 samples every 15 frames.
        let idx = sample_frame_indices(&meta(300, 30.0), 2.0, 300.0).expect("samples");
        assert_eq!(idx.len(), 22);
        assert_eq!(&idx[..4], &[0, 15, 30, 45]);
        assert_eq!(*idx.last().expect("last"), 299);
        // 3 frames at 1 fps: duration 3 s -> 6 requests, dedup to 3, padded to 4.
        let idx = sample_frame_indices(&meta(3, 1.0), 2.0, 300.0).expect("samples");
        assert_eq!(idx, vec![0, 1, 2, 2]);
        assert!(sample_frame_indices(&meta(0, 30.0), 2.0, 300.0).is_err());
    }

    #[test]
    fn frames_pair_into_temporal_patches_with_timestamps() {
        let cfg = PreprocessorConfig::default();
        let frames: Vec<DynamicImage> = (0..3)
            .map(|i| {
                DynamicImage::ImageRgb8(RgbImage::from_pixel(56, 56, image::Rgb([i * 50, 0, 0])))
            })
            .collect();
        let v = process_video(&cfg, &frames, &[0, 15, 30], 30.0, VIDEO_MAX_PIXELS).expect("video");
        assert_eq!(v.grid[0], 2);
        assert_eq!(v.timestamps, vec![0.0, 1.0]);
        let dim = cfg.patch_dim();
        let per_t = v.grid[1] * v.grid[2];
        assert_eq!(v.pixel_values.len(), 2 * per_t * dim);
        // In the first row, slice t=1 (frame 15) differs from t=0 (frame 0).
        assert_ne!(v.pixel_values[0], v.pixel_values[14 * 14]);
    }
}
