//! Optional 0°/180° text-line classifier (`ch_ppocr_mobile_v2.0_cls_mobile`): crops it judges
//! upside down with high confidence are turned before recognition.

use crate::error::OcrError;
use crate::imgops::{resize, write_chw_bgr, Normalize};
use crate::runtime::OrtModel;
use image::RgbImage;

const CLS_H: usize = 48;
const CLS_W: usize = 192;
const CLS_BATCH: usize = 16;
/// Probability of "180°" above which a crop is turned.
const CLS_THRESH: f32 = 0.9;

pub(crate) struct AngleClassifier {
    model: OrtModel,
}

impl AngleClassifier {
    pub fn new(model: OrtModel) -> Self {
        AngleClassifier { model }
    }

    /// Turns upside-down crops in place; returns how many were turned.
    pub fn fix_orientation(&self, crops: &mut [RgbImage]) -> Result<usize, OcrError> {
        let mut turned = 0;
        for start in (0..crops.len()).step_by(CLS_BATCH) {
            let end = (start + CLS_BATCH).min(crops.len());
            let n = end - start;
            let plane = CLS_W * CLS_H;
            let mut input = vec![0f32; n * 3 * plane];
            for (k, img) in crops[start..end].iter().enumerate() {
                let ratio = img.width() as f32 / img.height().max(1) as f32;
                let rw = ((CLS_H as f32 * ratio).ceil() as usize).clamp(1, CLS_W);
                let resized = resize(img, rw as u32, CLS_H as u32);
                write_chw_bgr(
                    &resized,
                    Normalize::HALF,
                    &mut input[k * 3 * plane..(k + 1) * 3 * plane],
                    CLS_W,
                    CLS_H,
                );
            }
            let name = self.model.name().to_string();
            let flips: Vec<bool> = self.model.run([n, 3, CLS_H, CLS_W], input, |outs| {
                let out = outs
                    .first()
                    .ok_or_else(|| OcrError::inference(&name, "no output"))?;
                if out.shape.len() != 2 || out.shape[1] != 2 || out.data.len() < n * 2 {
                    return Err(OcrError::inference(
                        &name,
                        format!("unexpected output shape {:?}", out.shape),
                    ));
                }
                Ok((0..n)
                    .map(|k| is_upside_down(out.data[2 * k], out.data[2 * k + 1]))
                    .collect())
            })?;
            for (img, flip) in crops[start..end].iter_mut().zip(flips) {
                if flip {
                    image::imageops::rotate180_in_place(img);
                    turned += 1;
                }
            }
        }
        Ok(turned)
    }
}

/// Class 1 ("180") wins and is confident enough.
pub fn is_upside_down(p0: f32, p180: f32) -> bool {
    p180 > p0 && p180 > CLS_THRESH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_confident_180_turns() {
        assert!(is_upside_down(0.05, 0.95));
        assert!(!is_upside_down(0.15, 0.85));
        assert!(!is_upside_down(0.95, 0.05));
    }
}
