//! Image → tensor helpers shared by the models: resizing and normalised planar BGR copies.
//!
//! Every model here was trained on OpenCV-decoded (BGR) images, so channel 0 of each tensor is
//! blue; normalisation constants are given in that same channel order.

use image::imageops::{self, FilterType};
use image::RgbImage;

/// `(value / 255 - mean[c]) / std[c]` per tensor channel `c` (BGR order).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalize {
    /// `x / 127.5 - 1`: the PP-OCR detector, recogniser and classifier.
    pub const HALF: Normalize = Normalize {
        mean: [0.5; 3],
        std: [0.5; 3],
    };
    /// ImageNet constants as PaddleOCR applies them to BGR images (layout, SLANet).
    pub const IMAGENET: Normalize = Normalize {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
}

/// Resizes with a triangle (bilinear, anti-aliased when shrinking) filter; a no-op copy when the
/// size already matches.
pub fn resize(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    if img.width() == w && img.height() == h {
        return img.clone();
    }
    imageops::resize(img, w.max(1), h.max(1), FilterType::Triangle)
}

/// Writes `img` normalised into the top-left corner of one CHW item of a tensor whose planes are
/// `plane_w × plane_h`; `dst` must hold `3 × plane_w × plane_h` values. Pixels beyond the
/// plane are ignored; the rest of the plane keeps its value (the caller's padding).
pub fn write_chw_bgr(
    img: &RgbImage,
    norm: Normalize,
    dst: &mut [f32],
    plane_w: usize,
    plane_h: usize,
) {
    let plane = plane_w * plane_h;
    if dst.len() < 3 * plane {
        return;
    }
    let w = (img.width() as usize).min(plane_w);
    let h = (img.height() as usize).min(plane_h);
    // Tensor channel c reads RGB channel 2 - c.
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * norm.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| norm.mean[c] / norm.std[c]);
    let raw = img.as_raw();
    let stride = img.width() as usize * 3;
    for y in 0..h {
        let row = &raw[y * stride..y * stride + w * 3];
        for c in 0..3 {
            let out = &mut dst[c * plane + y * plane_w..c * plane + y * plane_w + w];
            let src_c = 2 - c;
            for (x, o) in out.iter_mut().enumerate() {
                *o = f32::from(row[x * 3 + src_c]) * scale[c] - shift[c];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn chw_is_bgr_and_normalised() {
        let mut img = RgbImage::new(2, 1);
        img.put_pixel(0, 0, Rgb([255, 0, 0]));
        img.put_pixel(1, 0, Rgb([0, 0, 255]));
        let mut t = vec![9.0f32; 3 * 3 * 2];
        write_chw_bgr(&img, Normalize::HALF, &mut t, 3, 2);
        // Plane 0 is blue: pixel 0 has none (-1), pixel 1 is full (+1); padding keeps 9.
        assert_eq!(&t[0..3], &[-1.0, 1.0, 9.0]);
        // Plane 2 is red.
        assert_eq!(&t[12..15], &[1.0, -1.0, 9.0]);
        assert_eq!(&t[3..6], &[9.0, 9.0, 9.0]);
    }

    #[test]
    fn imagenet_constants_apply_per_bgr_channel() {
        let img = RgbImage::from_pixel(1, 1, Rgb([255, 255, 255]));
        let mut t = vec![0.0f32; 3];
        write_chw_bgr(&img, Normalize::IMAGENET, &mut t, 1, 1);
        assert!((t[0] - (1.0 - 0.485) / 0.229).abs() < 1e-5);
        assert!((t[2] - (1.0 - 0.406) / 0.225).abs() < 1e-5);
    }
}
