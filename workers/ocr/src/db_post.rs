//! DB (Differentiable Binarization) post-processing: from the detector's text-probability map to
//! text-line quadrilaterals in page pixels.
//!
//! Steps: threshold the map, dilate by a 2×2 kernel, trace outer contours (imageproc
//! `find_contours`), fit each a minimum-area rectangle, score it by the mean probability inside,
//! grow it by the unclip distance, fit again, scale to the page, clip, and order the corners.

use crate::geometry::{
    clamp_point, dist, min_area_rect, min_area_rect_i32, order_points_clockwise, rect_sides,
    unclip, Point, Quad,
};
use image::GrayImage;
use imageproc::contours::{find_contours, BorderType};
use imageproc::point::Point as IpPoint;

/// DB post-processing parameters (PaddleOCR/RapidOCR defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DbParams {
    /// Probability above which a pixel is text.
    pub thresh: f32,
    /// Minimum mean probability inside a box.
    pub box_thresh: f32,
    /// Unclip ratio: offset distance = area × ratio / perimeter.
    pub unclip_ratio: f32,
    /// At most this many contours are considered.
    pub max_candidates: usize,
    /// Minimum short side of a kernel box, in map pixels (the grown box needs `min_size + 2`).
    pub min_size: f32,
    /// Dilate the binary map with a 2×2 kernel before tracing contours.
    pub use_dilation: bool,
}

impl Default for DbParams {
    fn default() -> Self {
        DbParams {
            thresh: 0.3,
            box_thresh: 0.5,
            unclip_ratio: 1.6,
            max_candidates: 1000,
            min_size: 3.0,
            use_dilation: true,
        }
    }
}

/// A probability map of `width × height` values in row-major order.
#[derive(Debug, Clone, Copy)]
pub struct ProbMap<'a> {
    pub data: &'a [f32],
    pub width: usize,
    pub height: usize,
}

impl ProbMap<'_> {
    /// The value at `(x, y)`; 0 outside the data.
    fn at(&self, x: usize, y: usize) -> f32 {
        self.data.get(y * self.width + x).copied().unwrap_or(0.0)
    }
}

/// Text boxes with their scores, mapped from map pixels to a `dest_w × dest_h` page.
pub fn boxes_from_prob_map(
    map: ProbMap<'_>,
    dest_w: u32,
    dest_h: u32,
    p: &DbParams,
) -> Vec<(Quad, f32)> {
    let (w, h) = (map.width, map.height);
    if w == 0 || h == 0 || map.data.len() < w * h || dest_w == 0 || dest_h == 0 {
        return Vec::new();
    }
    let bitmap = binarize(map, p.thresh, p.use_dilation);
    let contours = find_contours::<i32>(&bitmap);
    // `binarize` adds a one-pixel background frame; contour points are shifted back by one below.
    let (sx, sy) = (dest_w as f32 / w as f32, dest_h as f32 / h as f32);
    let mut out = Vec::new();
    for contour in contours
        .iter()
        .filter(|c| c.border_type == BorderType::Outer)
        .take(p.max_candidates)
    {
        let points: Vec<IpPoint<i32>> = contour
            .points
            .iter()
            .map(|q| IpPoint::new(q.x - 1, q.y - 1))
            .collect();
        if let Some(found) = box_from_contour(map, &points, p) {
            let scaled = found.0.map(|q| {
                let s = [
                    (q[0] * sx).round().clamp(0.0, dest_w as f32),
                    (q[1] * sy).round().clamp(0.0, dest_h as f32),
                ];
                clamp_point(s, dest_w as f32, dest_h as f32)
            });
            let quad = order_points_clockwise(scaled);
            let q = quad.0;
            if dist(q[0], q[1]) as i32 <= 3 || dist(q[0], q[3]) as i32 <= 3 {
                continue;
            }
            out.push((quad, found.1));
        }
    }
    out
}

/// One contour → grown rectangle (in map pixels) and its score, or `None` when filtered out.
fn box_from_contour(
    map: ProbMap<'_>,
    contour: &[IpPoint<i32>],
    p: &DbParams,
) -> Option<([Point; 4], f32)> {
    let rect = min_area_rect_i32(contour)?;
    if rect_sides(&rect).0 < p.min_size {
        return None;
    }
    let score = box_score_fast(map, &rect);
    if score < p.box_thresh {
        return None;
    }
    let grown = unclip(&rect, p.unclip_ratio);
    let rect = min_area_rect(&grown)?;
    if rect_sides(&rect).0 < p.min_size + 2.0 {
        return None;
    }
    Some((rect, score))
}

/// `prob > thresh` as a 0/255 image with a one-pixel background frame (imageproc's
/// `find_contours` misses or mislabels regions touching the image edge), optionally dilated by a
/// 2×2 kernel anchored at its bottom-right cell (each set pixel also sets its right, lower and
/// lower-right neighbours), as OpenCV's `dilate` with a 2×2 kernel does.
pub fn binarize(map: ProbMap<'_>, thresh: f32, dilate: bool) -> GrayImage {
    let (w, h) = (map.width, map.height);
    let pw = w + 2;
    let mut img = GrayImage::new(pw as u32, (h + 2) as u32);
    let buf: &mut [u8] = &mut img;
    for y in 0..h {
        let src = map.data.get(y * w..(y + 1) * w).unwrap_or(&[]);
        let dst = &mut buf[(y + 1) * pw + 1..(y + 1) * pw + 1 + w];
        for (o, &v) in dst.iter_mut().zip(src) {
            *o = if v > thresh { 255 } else { 0 };
        }
    }
    if dilate {
        // Walk backwards so each pixel reads the undilated values above and to its left; the
        // frame (row 0 / column 0 are background, the last row and column stay background).
        for y in (2..=h).rev() {
            for x in (2..=w).rev() {
                let i = y * pw + x;
                if buf[i] == 0 && (buf[i - 1] != 0 || buf[i - pw] != 0 || buf[i - pw - 1] != 0) {
                    buf[i] = 255;
                }
            }
        }
    }
    img
}

/// Mean probability over the pixels inside the convex quadrilateral `quad` (map coordinates).
pub fn box_score_fast(map: ProbMap<'_>, quad: &[Point; 4]) -> f32 {
    let (w, h) = (map.width as i64, map.height as i64);
    let ys = quad.map(|q| q[1]);
    let ymin = (ys.iter().fold(f32::INFINITY, |a, &b| a.min(b)).floor() as i64).clamp(0, h - 1);
    let ymax = (ys.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)).ceil() as i64).clamp(0, h - 1);
    let (mut sum, mut n) = (0f64, 0u64);
    for y in ymin..=ymax {
        let Some((x0, x1)) = convex_row_span(quad, y as f32) else {
            continue;
        };
        let x0 = (x0.ceil() as i64).clamp(0, w - 1);
        let x1 = (x1.floor() as i64).clamp(0, w - 1);
        for x in x0..=x1 {
            sum += f64::from(map.at(x as usize, y as usize));
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        (sum / n as f64) as f32
    }
}

/// `[xmin, xmax]` where the horizontal line at `y` crosses a convex polygon, if it does.
fn convex_row_span(poly: &[Point; 4], y: f32) -> Option<(f32, f32)> {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for i in 0..4 {
        let a = poly[i];
        let b = poly[(i + 1) % 4];
        let (ya, yb) = (a[1], b[1]);
        if (ya - yb).abs() < 1e-6 {
            if (ya - y).abs() < 0.5 {
                lo = lo.min(a[0].min(b[0]));
                hi = hi.max(a[0].max(b[0]));
            }
            continue;
        }
        if y < ya.min(yb) || y > ya.max(yb) {
            continue;
        }
        let x = a[0] + (y - ya) / (yb - ya) * (b[0] - a[0]);
        lo = lo.min(x);
        hi = hi.max(x);
    }
    (lo <= hi).then_some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_with_rects(w: usize, h: usize, rects: &[(usize, usize, usize, usize, f32)]) -> Vec<f32> {
        let mut m = vec![0.0f32; w * h];
        for &(x0, y0, x1, y1, v) in rects {
            for y in y0..y1 {
                for x in x0..x1 {
                    m[y * w + x] = v;
                }
            }
        }
        m
    }

    #[test]
    fn two_kernels_give_two_grown_boxes() {
        // Two text kernels of 60×6 on a 200×100 map; page is twice as large.
        let data = map_with_rects(200, 100, &[(20, 20, 80, 26, 0.9), (20, 60, 150, 66, 0.8)]);
        let map = ProbMap {
            data: &data,
            width: 200,
            height: 100,
        };
        let boxes = boxes_from_prob_map(map, 400, 200, &DbParams::default());
        assert_eq!(boxes.len(), 2);
        let mut tops: Vec<f32> = boxes.iter().map(|(q, _)| q.bbox().y0()).collect();
        tops.sort_by(f32::total_cmp);
        assert!(tops[0] < 40.0 && tops[1] > 100.0);
        for (q, score) in &boxes {
            // Dilation adds a background row and column to each kernel: 0.9·(60·6)/(61·7) ≈ 0.76,
            // 0.8·(130·6)/(131·7) ≈ 0.68.
            assert!(*score > 0.65 && *score < 0.8, "score {score}");
            let b = q.bbox();
            // The kernel (after dilation 61×7 px) grows by ≈ 1.6·area/perimeter ≈ 4.8–5.2 map px per
            // side, i.e. the page box is ≈ 2·(7 + 2·5) = 34 px high.
            assert!((28.0..=40.0).contains(&b.height()), "height {}", b.height());
            assert!(b.x0() < 40.0 && b.x0() > 15.0, "x0 {}", b.x0());
        }
    }

    #[test]
    fn weak_and_tiny_regions_are_dropped() {
        // A 0.4-probability region passes thresh (0.3) but not box_thresh (0.5); a 2-px speck fails min_size.
        let data = map_with_rects(100, 50, &[(10, 10, 60, 20, 0.4), (80, 30, 82, 32, 0.99)]);
        let map = ProbMap {
            data: &data,
            width: 100,
            height: 50,
        };
        assert!(boxes_from_prob_map(map, 100, 50, &DbParams::default()).is_empty());
    }

    #[test]
    fn boxes_are_clipped_to_the_page() {
        let data = map_with_rects(100, 40, &[(0, 0, 100, 8, 0.95)]);
        let map = ProbMap {
            data: &data,
            width: 100,
            height: 40,
        };
        let boxes = boxes_from_prob_map(map, 100, 40, &DbParams::default());
        assert_eq!(boxes.len(), 1);
        for p in boxes[0].0 .0 {
            assert!(
                (0.0..=99.0).contains(&p[0]) && (0.0..=39.0).contains(&p[1]),
                "{p:?}"
            );
        }
    }

    #[test]
    fn empty_or_inconsistent_maps_give_nothing() {
        let map = ProbMap {
            data: &[],
            width: 0,
            height: 0,
        };
        assert!(boxes_from_prob_map(map, 10, 10, &DbParams::default()).is_empty());
        let data = [0.9f32; 10];
        let map = ProbMap {
            data: &data,
            width: 5,
            height: 5,
        };
        assert!(boxes_from_prob_map(map, 10, 10, &DbParams::default()).is_empty());
    }

    #[test]
    fn dilation_extends_right_and_down() {
        let mut data = vec![0.0f32; 16];
        data[5] = 1.0; // (1, 1)
        let img = binarize(
            ProbMap {
                data: &data,
                width: 4,
                height: 4,
            },
            0.3,
            true,
        );
        assert_eq!(img.dimensions(), (6, 6));
        // Frame coordinates are shifted by one.
        let set: Vec<(u32, u32)> = img
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0[0] != 0)
            .map(|(x, y, _)| (x - 1, y - 1))
            .collect();
        assert_eq!(set, vec![(1, 1), (2, 1), (1, 2), (2, 2)]);
        // Dilation never writes into the frame.
        let full = vec![1.0f32; 9];
        let img = binarize(
            ProbMap {
                data: &full,
                width: 3,
                height: 3,
            },
            0.3,
            true,
        );
        assert!(img
            .enumerate_pixels()
            .filter(|(x, y, _)| *x == 4 || *y == 4)
            .all(|(_, _, p)| p.0[0] == 0));
    }

    #[test]
    fn box_score_is_the_mean_inside_the_quad() {
        let data = map_with_rects(20, 20, &[(0, 0, 10, 20, 1.0)]);
        let map = ProbMap {
            data: &data,
            width: 20,
            height: 20,
        };
        // Square covering columns 5..=14: half of it is 1.0.
        let s = box_score_fast(map, &[[5.0, 5.0], [14.0, 5.0], [14.0, 14.0], [5.0, 14.0]]);
        assert!((s - 0.5).abs() < 1e-6, "{s}");
    }
}
