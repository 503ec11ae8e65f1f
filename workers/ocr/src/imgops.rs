//! Image → tensor helpers shared by the models: resizing and normalised planar BGR copies.
//!
//! Every model here was trained on OpenCV-decoded (BGR) images, so channel 0 of each tensor is
//! blue; normalisation constants are given in that same channel order.

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

/// Resizes with a triangle (bilinear, anti-aliased when shrinking) filter, like
/// `image::imageops::resize` with `FilterType::Triangle` but specialised to 8-bit RGB (about
/// three times faster, which matters for full pages); a copy when the size already matches.
pub fn resize(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let (w, h) = (w.max(1), h.max(1));
    if img.width() == w && img.height() == h {
        return img.clone();
    }
    if img.width() == 0 || img.height() == 0 {
        return RgbImage::new(w, h);
    }
    let (sw, sh) = (img.width() as usize, img.height() as usize);
    let (w, h) = (w as usize, h as usize);
    let xt = triangle_taps(sw, w);
    let yt = triangle_taps(sh, h);
    // Horizontal pass into f32 rows (sh × w × 3), then vertical pass into the output.
    let src = img.as_raw();
    let mut mid = vec![0f32; sh * w * 3];
    for y in 0..sh {
        let row = &src[y * sw * 3..(y + 1) * sw * 3];
        let out = &mut mid[y * w * 3..(y + 1) * w * 3];
        for (x, (start, weights)) in xt.iter().enumerate() {
            let mut acc = [0f32; 3];
            for (k, &wt) in weights.iter().enumerate() {
                let p = &row[(start + k) * 3..(start + k) * 3 + 3];
                acc[0] += wt * f32::from(p[0]);
                acc[1] += wt * f32::from(p[1]);
                acc[2] += wt * f32::from(p[2]);
            }
            out[x * 3..x * 3 + 3].copy_from_slice(&acc);
        }
    }
    let mut out = RgbImage::new(w as u32, h as u32);
    let dst: &mut [u8] = &mut out;
    let mut acc = vec![0f32; w * 3];
    for (y, (start, weights)) in yt.iter().enumerate() {
        acc.iter_mut().for_each(|a| *a = 0.0);
        for (k, &wt) in weights.iter().enumerate() {
            let row = &mid[(start + k) * w * 3..(start + k + 1) * w * 3];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += wt * v;
            }
        }
        for (o, &a) in dst[y * w * 3..(y + 1) * w * 3].iter_mut().zip(&acc) {
            *o = a.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// For each of `dst` output positions: the first source index and the normalised triangle weights
/// of the source pixels it covers (radius 1, widened by the shrink factor).
fn triangle_taps(src: usize, dst: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = src as f32 / dst as f32;
    let support = scale.max(1.0);
    (0..dst)
        .map(|d| {
            let center = (d as f32 + 0.5) * scale;
            let lo = ((center - support).floor().max(0.0) as usize).min(src - 1);
            let hi = ((center + support).ceil() as usize).clamp(lo + 1, src);
            let mut weights: Vec<f32> = (lo..hi)
                .map(|i| (1.0 - ((i as f32 + 0.5 - center) / support).abs()).max(0.0))
                .collect();
            let sum: f32 = weights.iter().sum();
            if sum > 0.0 {
                weights.iter_mut().for_each(|v| *v /= sum);
            } else {
                // Only when enlarging past an edge: take the nearest pixel.
                weights.iter_mut().for_each(|v| *v = 0.0);
                let nearest = (center.floor() as usize).clamp(lo, hi - 1) - lo;
                weights[nearest] = 1.0;
            }
            (lo, weights)
        })
        .collect()
}

/// Resizes like OpenCV's `INTER_LINEAR`: each output pixel interpolates the four source pixels
/// around `(x + 0.5) · scale − 0.5`, with no anti-aliasing when shrinking. The layout and table
/// models were trained on images shrunk this way; strokes thinned by this sampling look
/// different from anti-aliased grey ones (on a 4× shrink the difference flips page-level
/// decisions of the layout model).
pub fn resize_sampled(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let (sw, sh) = (img.width(), img.height());
    let (w, h) = (w.max(1), h.max(1));
    if sw == 0 || sh == 0 {
        return RgbImage::new(w, h);
    }
    let taps = |dst: u32, src: u32| -> Vec<(usize, usize, f32)> {
        let scale = src as f32 / dst as f32;
        (0..dst)
            .map(|d| {
                let s = ((d as f32 + 0.5) * scale - 0.5).clamp(0.0, (src - 1) as f32);
                let i0 = s.floor() as usize;
                let i1 = (i0 + 1).min(src as usize - 1);
                (i0, i1, s - i0 as f32)
            })
            .collect()
    };
    let (xt, yt) = (taps(w, sw), taps(h, sh));
    let src = img.as_raw();
    let stride = sw as usize * 3;
    let mut out = RgbImage::new(w, h);
    let dst: &mut [u8] = &mut out;
    for (y, &(y0, y1, fy)) in yt.iter().enumerate() {
        let (r0, r1) = (
            &src[y0 * stride..(y0 + 1) * stride],
            &src[y1 * stride..(y1 + 1) * stride],
        );
        let row = &mut dst[y * w as usize * 3..(y + 1) * w as usize * 3];
        for (x, &(x0, x1, fx)) in xt.iter().enumerate() {
            for c in 0..3 {
                let top = f32::from(r0[x0 * 3 + c]) * (1.0 - fx) + f32::from(r0[x1 * 3 + c]) * fx;
                let bottom =
                    f32::from(r1[x0 * 3 + c]) * (1.0 - fx) + f32::from(r1[x1 * 3 + c]) * fx;
                row[x * 3 + c] = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
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
    fn triangle_resize_matches_the_image_crate() {
        let img = RgbImage::from_fn(97, 61, |x, y| {
            Rgb([
                (x * 7 % 256) as u8,
                (y * 13 % 256) as u8,
                ((x * y) % 256) as u8,
            ])
        });
        for (w, h) in [(40, 25), (97, 61), (150, 90), (13, 61), (1, 1)] {
            let ours = resize(&img, w, h);
            let theirs = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
            assert_eq!(ours.dimensions(), (w, h));
            let worst = ours
                .as_raw()
                .iter()
                .zip(theirs.as_raw())
                .map(|(a, b)| a.abs_diff(*b))
                .max();
            assert!(worst.unwrap_or(0) <= 2, "{w}x{h}: differs by {worst:?}");
        }
        assert_eq!(resize(&RgbImage::new(0, 5), 3, 3).dimensions(), (3, 3));
    }

    #[test]
    fn sampled_resize_matches_opencv_linear() {
        // 4 → 2 columns: output x samples source x = 0.5 and 2.5 (means of neighbours).
        let img = RgbImage::from_fn(4, 1, |x, _| Rgb([(x * 10) as u8, 0, 0]));
        let r = resize_sampled(&img, 2, 1);
        assert_eq!((r.get_pixel(0, 0).0[0], r.get_pixel(1, 0).0[0]), (5, 25));
        // Shrinking 8× keeps single-pixel detail unblurred when a sample lands on it.
        let mut img = RgbImage::new(16, 1);
        img.put_pixel(3, 0, Rgb([255, 255, 255]));
        img.put_pixel(4, 0, Rgb([255, 255, 255]));
        assert_eq!(resize_sampled(&img, 2, 1).get_pixel(0, 0).0[0], 255);
        // Enlarging replicates edges; degenerate input gives a black image.
        assert_eq!(resize_sampled(&img, 32, 3).dimensions(), (32, 3));
        assert_eq!(
            resize_sampled(&RgbImage::new(0, 0), 3, 3).dimensions(),
            (3, 3)
        );
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
