//! Perspective crop of a detected quadrilateral into an upright text-line image.
//!
//! The output is `width × height` where width is the longer of the top/bottom edges and height the
//! longer of the left/right edges; pixels are sampled bilinearly with edge replication. Crops at
//! least 1.5× taller than wide are turned 90° counter-clockwise (vertical text read sideways), as
//! PaddleOCR does.

use crate::geometry::{dist, Quad};
use image::{Rgb, RgbImage};
use imageproc::geometric_transformations::Projection;

/// The upright crop of `quad` from `img`, or `None` when the quad is degenerate.
pub fn crop_quad(img: &RgbImage, quad: &Quad) -> Option<RgbImage> {
    let [tl, tr, br, bl] = quad.0;
    let w = dist(tl, tr).max(dist(bl, br)) as u32;
    let h = dist(tl, bl).max(dist(tr, br)) as u32;
    if w == 0 || h == 0 || img.width() == 0 || img.height() == 0 {
        return None;
    }
    let (wf, hf) = (w as f32, h as f32);
    let dst = [(0.0, 0.0), (wf, 0.0), (wf, hf), (0.0, hf)];
    let src = [
        (tl[0], tl[1]),
        (tr[0], tr[1]),
        (br[0], br[1]),
        (bl[0], bl[1]),
    ];
    let proj = Projection::from_control_points(dst, src)?;
    let mut out = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = proj * (x as f32, y as f32);
            out.put_pixel(x, y, sample_bilinear(img, sx, sy));
        }
    }
    if h as f32 / w as f32 >= 1.5 {
        out = image::imageops::rotate270(&out);
    }
    Some(out)
}

/// Bilinear sample at `(x, y)` with coordinates clamped into the image (edge replication).
fn sample_bilinear(img: &RgbImage, x: f32, y: f32) -> Rgb<u8> {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let x = if x.is_finite() {
        x.clamp(0.0, w - 1.0)
    } else {
        0.0
    };
    let y = if y.is_finite() {
        y.clamp(0.0, h - 1.0)
    } else {
        0.0
    };
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let x1 = (x0 + 1).min(img.width() - 1);
    let y1 = (y0 + 1).min(img.height() - 1);
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let p00 = img.get_pixel(x0, y0).0;
    let p10 = img.get_pixel(x1, y0).0;
    let p01 = img.get_pixel(x0, y1).0;
    let p11 = img.get_pixel(x1, y1).0;
    Rgb(std::array::from_fn(|c| {
        let top = f32::from(p00[c]) * (1.0 - fx) + f32::from(p10[c]) * fx;
        let bottom = f32::from(p01[c]) * (1.0 - fx) + f32::from(p11[c]) * fx;
        (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 0]))
    }

    #[test]
    fn axis_aligned_crop_copies_pixels() {
        let img = gradient(100, 50);
        let q = Quad([[10.0, 5.0], [40.0, 5.0], [40.0, 25.0], [10.0, 25.0]]);
        let c = crop_quad(&img, &q).expect("crop");
        assert_eq!(c.dimensions(), (30, 20));
        assert_eq!(c.get_pixel(0, 0).0, [10, 5, 0]);
        assert_eq!(c.get_pixel(29, 19).0, [39, 24, 0]);
    }

    #[test]
    fn tall_crops_are_turned_counter_clockwise() {
        let img = gradient(100, 100);
        let q = Quad([[10.0, 10.0], [20.0, 10.0], [20.0, 50.0], [10.0, 50.0]]);
        let c = crop_quad(&img, &q).expect("crop");
        assert_eq!(c.dimensions(), (40, 10));
        // After a 90° counter-clockwise turn the old right column is the new top row.
        assert_eq!(c.get_pixel(0, 0).0, [19, 10, 0]);
        assert_eq!(c.get_pixel(39, 0).0, [19, 49, 0]);
        assert_eq!(c.get_pixel(0, 9).0, [10, 10, 0]);
    }

    #[test]
    fn degenerate_and_outside_quads_do_not_panic() {
        let img = gradient(20, 20);
        assert!(crop_quad(&img, &Quad([[5.0, 5.0]; 4])).is_none());
        let outside = Quad([[30.0, 30.0], [60.0, 30.0], [60.0, 40.0], [30.0, 40.0]]);
        let c = crop_quad(&img, &outside).expect("replicated border");
        assert_eq!(c.get_pixel(0, 0).0, [19, 19, 0]);
    }
}
