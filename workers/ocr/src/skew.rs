//! Page skew from the detected line quadrilaterals, and boxes in the deskewed ("upright") frame.
//!
//! A scan rotated by 1–2° makes the axis-aligned box of a long line several pixels taller than
//! the line and moves a column's edge by tens of pixels from its top to its bottom, enough to close
//! a column gutter in a projection. Grouping and reading order therefore work on boxes rotated
//! back by the page's skew; the reported boxes stay in page pixels.

use crate::geometry::{Point, Quad};
use folio_schemas::BBox;

/// Lines this many times wider than tall are used to measure the skew.
const MIN_ASPECT: f32 = 4.0;
/// Skews beyond this (degrees) are not corrected (rotated pages are another problem).
const MAX_SKEW_DEG: f32 = 10.0;

/// The page's skew in radians (positive: text runs downhill to the right, in image coordinates),
/// the length-weighted median angle of the long lines' top and bottom edges; 0 without any.
pub fn estimate_skew(quads: &[Quad]) -> f32 {
    let mut angles: Vec<(f32, f32)> = Vec::new();
    for q in quads {
        let (w, h) = (q.width(), q.height());
        if h <= 0.0 || w < MIN_ASPECT * h {
            continue;
        }
        for (a, b) in [(q.0[0], q.0[1]), (q.0[3], q.0[2])] {
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            if dx <= 0.0 {
                continue;
            }
            let angle = dy.atan2(dx);
            if angle.abs() <= MAX_SKEW_DEG.to_radians() {
                angles.push((angle, dx));
            }
        }
    }
    weighted_median(&mut angles).unwrap_or(0.0)
}

fn weighted_median(v: &mut [(f32, f32)]) -> Option<f32> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f32 = v.iter().map(|x| x.1).sum();
    let mut acc = 0.0;
    for &(a, w) in v.iter() {
        acc += w;
        if acc >= total / 2.0 {
            return Some(a);
        }
    }
    v.last().map(|x| x.0)
}

/// Rotation that undoes a skew of `angle` radians about `centre`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deskew {
    cos: f32,
    sin: f32,
    centre: Point,
}

impl Deskew {
    pub fn new(angle: f32, centre: Point) -> Self {
        Deskew {
            cos: angle.cos(),
            sin: angle.sin(),
            centre,
        }
    }

    /// `p` rotated by `-angle` about the centre.
    pub fn point(&self, p: Point) -> Point {
        let (x, y) = (p[0] - self.centre[0], p[1] - self.centre[1]);
        [
            self.centre[0] + x * self.cos + y * self.sin,
            self.centre[1] - x * self.sin + y * self.cos,
        ]
    }

    /// The axis-aligned box of a quadrilateral after deskewing.
    pub fn quad(&self, q: &Quad) -> BBox {
        Quad(q.0.map(|p| self.point(p))).bbox()
    }

    /// An axis-aligned page box after deskewing: its centre moves, its size stays (a region box
    /// drawn around skewed content is already as large as the content).
    pub fn bbox(&self, b: &BBox) -> BBox {
        let c = self.point([(b.x0() + b.x1()) / 2.0, (b.y0() + b.y1()) / 2.0]);
        let (hw, hh) = (b.width() / 2.0, b.height() / 2.0);
        BBox::new(c[0] - hw, c[1] - hh, c[0] + hw, c[1] + hh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skewed_line(x: f32, y: f32, w: f32, h: f32, angle: f32) -> Quad {
        let (c, s) = (angle.cos(), angle.sin());
        let p = |dx: f32, dy: f32| [x + dx * c - dy * s, y + dx * s + dy * c];
        Quad([p(0.0, 0.0), p(w, 0.0), p(w, h), p(0.0, h)])
    }

    #[test]
    fn skew_of_rotated_lines_is_found_and_undone() {
        let angle = 1.5f32.to_radians();
        let quads: Vec<Quad> = (0..20)
            .map(|i| skewed_line(100.0, 100.0 + 40.0 * i as f32, 600.0, 25.0, angle))
            .chain([skewed_line(100.0, 1000.0, 30.0, 25.0, 0.3)]) // a short word: ignored
            .collect();
        let est = estimate_skew(&quads);
        assert!((est - angle).abs() < 1e-3, "{est}");
        let d = Deskew::new(est, [400.0, 500.0]);
        let b = d.quad(&quads[3]);
        assert!((b.height() - 25.0).abs() < 0.5, "{b:?}");
        assert!((b.width() - 600.0).abs() < 0.5, "{b:?}");
        // Without deskewing the box is much taller.
        assert!(quads[3].bbox().height() > 38.0);
        assert_eq!(estimate_skew(&[]), 0.0);
    }

    #[test]
    fn boxes_keep_their_size() {
        let d = Deskew::new(0.02, [0.0, 0.0]);
        let b = d.bbox(&BBox::new(100.0, 100.0, 300.0, 150.0));
        assert!((b.width() - 200.0).abs() < 1e-3 && (b.height() - 50.0).abs() < 1e-3);
        assert!(b.y0() < 100.0, "{b:?}");
    }
}
