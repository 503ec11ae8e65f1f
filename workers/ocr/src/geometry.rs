//! Plane geometry for text boxes: quadrilaterals, the DB "unclip" offset, minimum-area rectangles,
//! point ordering and the top-to-bottom/left-to-right sort of detected lines.
//!
//! Coordinates are `f32` pixels, origin top-left, y down.

use folio_schemas::BBox;
use imageproc::point::Point as IpPoint;

/// `[x, y]`.
pub type Point = [f32; 2];

/// A quadrilateral, clockwise from the top-left corner: `[tl, tr, br, bl]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quad(pub [Point; 4]);

impl Quad {
    /// Axis-aligned box around the four corners.
    pub fn bbox(&self) -> BBox {
        let xs = self.0.map(|p| p[0]);
        let ys = self.0.map(|p| p[1]);
        let min = |v: [f32; 4]| v.into_iter().fold(f32::INFINITY, f32::min);
        let max = |v: [f32; 4]| v.into_iter().fold(f32::NEG_INFINITY, f32::max);
        BBox::new(min(xs), min(ys), max(xs), max(ys))
    }

    /// Length of the longer of the top and bottom edges.
    pub fn width(&self) -> f32 {
        dist(self.0[0], self.0[1]).max(dist(self.0[3], self.0[2]))
    }

    /// Length of the longer of the left and right edges.
    pub fn height(&self) -> f32 {
        dist(self.0[0], self.0[3]).max(dist(self.0[1], self.0[2]))
    }

    /// The corners as a polygon for [`folio_schemas::Line::polygon`].
    pub fn to_polygon(&self) -> Vec<[f32; 2]> {
        self.0.to_vec()
    }
}

pub fn dist(a: Point, b: Point) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Signed shoelace area (positive when the vertices turn counter-clockwise in x-right/y-up terms).
fn signed_area(pts: &[Point]) -> f32 {
    let n = pts.len();
    let mut s = 0.0;
    for i in 0..n {
        let a = pts[i];
        let b = pts[(i + 1) % n];
        s += a[0] * b[1] - b[0] * a[1];
    }
    s / 2.0
}

/// Area of a simple polygon.
pub fn polygon_area(pts: &[Point]) -> f32 {
    signed_area(pts).abs()
}

/// Perimeter of a closed polygon.
pub fn polygon_perimeter(pts: &[Point]) -> f32 {
    let n = pts.len();
    (0..n).map(|i| dist(pts[i], pts[(i + 1) % n])).sum()
}

/// The DB "unclip": grows a convex polygon outwards by `area * ratio / perimeter` with round
/// corners (the Minkowski sum with a disc, corners sampled every ≤ 15°). The detector predicts
/// shrunk text kernels; this restores the full text extent.
pub fn unclip(poly: &[Point], ratio: f32) -> Vec<Point> {
    let mut pts: Vec<Point> = Vec::with_capacity(poly.len());
    for &p in poly {
        if pts.last().is_none_or(|&q| dist(p, q) > 1e-6) {
            pts.push(p);
        }
    }
    while pts.len() > 1 && dist(pts[0], pts[pts.len() - 1]) <= 1e-6 {
        pts.pop();
    }
    let perimeter = polygon_perimeter(&pts);
    if pts.len() < 3 || perimeter <= 0.0 {
        return pts;
    }
    let d = polygon_area(&pts) * ratio / perimeter;
    if d <= 0.0 || !d.is_finite() {
        return pts;
    }
    // Outward normal of edge a→b: rotate the edge by -90° for counter-clockwise polygons, +90° otherwise.
    let ccw = signed_area(&pts) > 0.0;
    let normal = |a: Point, b: Point| -> Point {
        let (ex, ey) = (b[0] - a[0], b[1] - a[1]);
        let len = (ex * ex + ey * ey).sqrt().max(1e-12);
        if ccw {
            [ey / len, -ex / len]
        } else {
            [-ey / len, ex / len]
        }
    };
    let n = pts.len();
    let mut out = Vec::with_capacity(n * 8);
    for i in 0..n {
        let prev = pts[(i + n - 1) % n];
        let cur = pts[i];
        let next = pts[(i + 1) % n];
        let a0 = {
            let m = normal(prev, cur);
            m[1].atan2(m[0])
        };
        let a1 = {
            let m = normal(cur, next);
            m[1].atan2(m[0])
        };
        // Sweep from the incoming to the outgoing normal in the polygon's turning direction.
        let mut sweep = a1 - a0;
        if ccw {
            while sweep < 0.0 {
                sweep += std::f32::consts::TAU;
            }
        } else {
            while sweep > 0.0 {
                sweep -= std::f32::consts::TAU;
            }
        }
        let steps = ((sweep.abs() / 15f32.to_radians()).ceil() as usize).max(1);
        for s in 0..=steps {
            let a = a0 + sweep * s as f32 / steps as f32;
            out.push([cur[0] + d * a.cos(), cur[1] + d * a.sin()]);
        }
    }
    out
}

/// Minimum-area enclosing rectangle (rotating calipers over the convex hull), corners in cyclic
/// order, or `None` for an empty or non-finite point set. Exact in floating point: unlike
/// imageproc's `min_area_rect`, which rounds corners outwards to whole pixels (inflating small DB
/// kernels by a pixel per side and lowering their scores) and whose hull sort can panic on
/// repeated points, which thin-stroke contours contain.
pub fn min_area_rect(points: &[Point]) -> Option<[Point; 4]> {
    if points
        .iter()
        .any(|p| !p[0].is_finite() || !p[1].is_finite())
    {
        return None;
    }
    let hull = convex_hull(points);
    match hull.len() {
        0 => None,
        1 => Some([hull[0]; 4]),
        2 => Some([hull[0], hull[1], hull[1], hull[0]]),
        n => {
            let mut best: Option<(f64, [Point; 4])> = None;
            for i in 0..n {
                let (a, b) = (hull[i], hull[(i + 1) % n]);
                let (ex, ey) = (f64::from(b[0] - a[0]), f64::from(b[1] - a[1]));
                let len = (ex * ex + ey * ey).sqrt();
                if len == 0.0 {
                    continue;
                }
                let (ux, uy) = (ex / len, ey / len);
                let (mut u0, mut u1, mut v0, mut v1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
                for p in &hull {
                    let (px, py) = (f64::from(p[0] - a[0]), f64::from(p[1] - a[1]));
                    let u = px * ux + py * uy;
                    let v = -px * uy + py * ux;
                    u0 = u0.min(u);
                    u1 = u1.max(u);
                    v0 = v0.min(v);
                    v1 = v1.max(v);
                }
                let area = (u1 - u0) * (v1 - v0);
                if best.as_ref().is_none_or(|(b, _)| area < *b) {
                    let corner = |u: f64, v: f64| -> Point {
                        [
                            (f64::from(a[0]) + u * ux - v * uy) as f32,
                            (f64::from(a[1]) + u * uy + v * ux) as f32,
                        ]
                    };
                    best = Some((
                        area,
                        [
                            corner(u0, v0),
                            corner(u1, v0),
                            corner(u1, v1),
                            corner(u0, v1),
                        ],
                    ));
                }
            }
            best.map(|b| b.1)
        }
    }
}

/// Minimum-area rectangle of integer contour points (from imageproc's `find_contours`).
pub fn min_area_rect_i32(points: &[IpPoint<i32>]) -> Option<[Point; 4]> {
    let pts: Vec<Point> = points.iter().map(|p| [p.x as f32, p.y as f32]).collect();
    min_area_rect(&pts)
}

/// Strict convex hull (no repeated or collinear vertices), counter-clockwise in x-right/y-up
/// terms, by Andrew's monotone chain.
pub fn convex_hull(points: &[Point]) -> Vec<Point> {
    let mut pts: Vec<Point> = points.to_vec();
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let cross = |o: Point, a: Point, b: Point| {
        f64::from(a[0] - o[0]) * f64::from(b[1] - o[1])
            - f64::from(a[1] - o[1]) * f64::from(b[0] - o[0])
    };
    let mut hull: Vec<Point> = Vec::with_capacity(pts.len() + 1);
    for pass in 0..2 {
        let start = hull.len();
        let ordered: Box<dyn Iterator<Item = &Point>> = if pass == 0 {
            Box::new(pts.iter())
        } else {
            Box::new(pts.iter().rev())
        };
        for &p in ordered {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

/// Lengths of two adjacent sides of a rectangle given as four corners in order: `(short, long)`.
pub fn rect_sides(rect: &[Point; 4]) -> (f32, f32) {
    let a = dist(rect[0], rect[1]);
    let b = dist(rect[1], rect[2]);
    (a.min(b), a.max(b))
}

/// Orders four corners as `[tl, tr, br, bl]`: the two left-most points (by x) are the left edge,
/// the upper of them top-left; likewise on the right.
pub fn order_points_clockwise(pts: [Point; 4]) -> Quad {
    let mut by_x = pts;
    by_x.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    let (mut l0, mut l1) = (by_x[0], by_x[1]);
    let (mut r0, mut r1) = (by_x[2], by_x[3]);
    if l1[1] < l0[1] {
        std::mem::swap(&mut l0, &mut l1);
    }
    if r1[1] < r0[1] {
        std::mem::swap(&mut r0, &mut r1);
    }
    Quad([l0, r0, r1, l1])
}

/// Indices of `quads` in reading order for detected lines: by top-left y, where boxes whose tops
/// differ by less than `y_tol` from the previous box form one row, read left to right.
pub fn sort_quads(quads: &[Quad], y_tol: f32) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..quads.len()).collect();
    idx.sort_by(|&a, &b| quads[a].0[0][1].total_cmp(&quads[b].0[0][1]));
    let mut row = vec![0usize; quads.len()];
    for w in 1..idx.len() {
        let dy = quads[idx[w]].0[0][1] - quads[idx[w - 1]].0[0][1];
        row[idx[w]] = row[idx[w - 1]] + usize::from(dy >= y_tol);
    }
    idx.sort_by(|&a, &b| {
        row[a]
            .cmp(&row[b])
            .then(quads[a].0[0][0].total_cmp(&quads[b].0[0][0]))
    });
    idx
}

/// Clamps a point into `[0, w-1] × [0, h-1]`.
pub fn clamp_point(p: Point, w: f32, h: f32) -> Point {
    // `+ 0.0` turns a clamped -0.0 into 0.0.
    [
        p[0].clamp(0.0, (w - 1.0).max(0.0)) + 0.0,
        p[1].clamp(0.0, (h - 1.0).max(0.0)) + 0.0,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approx(a: f32, b: f32, tol: f32) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn area_and_perimeter_of_a_rectangle() {
        let r = [[0.0, 0.0], [10.0, 0.0], [10.0, 4.0], [0.0, 4.0]];
        assert_eq!(polygon_area(&r), 40.0);
        assert_eq!(polygon_perimeter(&r), 28.0);
    }

    #[test]
    fn unclip_grows_a_rectangle_by_the_db_distance() {
        // 100×10, ratio 1.6: d = 1000 * 1.6 / 220 ≈ 7.27 on every side.
        let r = [[0.0, 0.0], [100.0, 0.0], [100.0, 10.0], [0.0, 10.0]];
        let d = 1000.0 * 1.6 / 220.0;
        for orientation in [r, [r[3], r[2], r[1], r[0]]] {
            let grown = unclip(&orientation, 1.6);
            let rect = min_area_rect(&grown).expect("rect");
            let (short, long) = rect_sides(&rect);
            assert!(approx(short, 10.0 + 2.0 * d, 0.01), "short {short}");
            assert!(approx(long, 100.0 + 2.0 * d, 0.01), "long {long}");
            // Every grown point is at distance ≈ d outside the rectangle, none inside.
            for p in &grown {
                let dx = (p[0] - 50.0).abs() - 50.0;
                let dy = (p[1] - 5.0).abs() - 5.0;
                let outside = (dx.max(0.0).powi(2) + dy.max(0.0).powi(2)).sqrt();
                assert!(approx(outside, d, 1e-3), "point {p:?} at {outside}");
            }
        }
    }

    #[test]
    fn unclip_of_a_degenerate_polygon_is_harmless() {
        assert_eq!(unclip(&[], 1.6), Vec::<Point>::new());
        assert_eq!(unclip(&[[1.0, 1.0], [1.0, 1.0]], 1.6).len(), 1);
        // Collinear points: zero area, zero distance.
        let line = [[0.0, 0.0], [5.0, 0.0], [10.0, 0.0]];
        assert_eq!(unclip(&line, 1.6).len(), 3);
    }

    #[test]
    fn min_area_rect_of_a_rotated_rectangle() {
        // A 40×10 rectangle rotated by 30° around (50, 50).
        let (c, s) = (30f32.to_radians().cos(), 30f32.to_radians().sin());
        let pts: Vec<Point> = [[-20.0, -5.0], [20.0, -5.0], [20.0, 5.0], [-20.0, 5.0]]
            .iter()
            .map(|p: &[f32; 2]| [50.0 + p[0] * c - p[1] * s, 50.0 + p[0] * s + p[1] * c])
            .collect();
        let rect = min_area_rect(&pts).expect("rect");
        let (short, long) = rect_sides(&rect);
        assert!(
            approx(short, 10.0, 0.01) && approx(long, 40.0, 0.01),
            "{short} {long}"
        );
        assert!(min_area_rect(&[]).is_none());
        assert!(min_area_rect(&[[f32::NAN, 0.0]]).is_none());
    }

    #[test]
    fn hull_drops_repeats_and_collinear_points() {
        let p = |x: i32, y: i32| IpPoint::new(x, y);
        // A one-pixel-wide stroke traced forth and back, as contours of thin lines are.
        let stroke: Vec<IpPoint<i32>> = (0..10).chain((0..10).rev()).map(|x| p(x, 3)).collect();
        let rect = min_area_rect_i32(&stroke).expect("rect");
        assert_eq!(rect_sides(&rect), (0.0, 9.0));
        let square: Vec<Point> = [
            [0.0, 0.0],
            [5.0, 0.0],
            [10.0, 0.0],
            [10.0, 10.0],
            [0.0, 10.0],
            [0.0, 10.0],
            [5.0, 5.0],
        ]
        .to_vec();
        assert_eq!(convex_hull(&square).len(), 4);
        let rect = min_area_rect(&square).expect("rect");
        assert_eq!(rect_sides(&rect), (10.0, 10.0));
        // Many float points on a grid never trip the sort.
        let cloud: Vec<Point> = (0..400)
            .map(|i| [(i % 20) as f32 * 0.37, (i / 20) as f32 * 0.41])
            .collect();
        assert!(min_area_rect(&cloud).is_some());
    }

    #[test]
    fn order_points_gives_tl_tr_br_bl() {
        let q = order_points_clockwise([[10.0, 5.0], [0.0, 5.0], [10.0, 0.0], [0.0, 0.0]]);
        assert_eq!(q.0, [[0.0, 0.0], [10.0, 0.0], [10.0, 5.0], [0.0, 5.0]]);
        // Slightly rotated: the left-most pair still forms the left edge.
        let q = order_points_clockwise([[100.0, 12.0], [0.0, 0.0], [98.0, 22.0], [-2.0, 10.0]]);
        assert_eq!(q.0, [[0.0, 0.0], [100.0, 12.0], [98.0, 22.0], [-2.0, 10.0]]);
    }

    #[test]
    fn quads_sort_by_rows_then_columns() {
        let q = |x: f32, y: f32| Quad([[x, y], [x + 50.0, y], [x + 50.0, y + 10.0], [x, y + 10.0]]);
        // Two words on one row whose tops differ by 3 px, then a lower row.
        let quads = [
            q(200.0, 103.0),
            q(10.0, 200.0),
            q(10.0, 100.0),
            q(400.0, 99.0),
        ];
        assert_eq!(sort_quads(&quads, 10.0), vec![2, 0, 3, 1]);
        assert!(sort_quads(&[], 10.0).is_empty());
    }

    #[test]
    fn quad_measures() {
        let q = Quad([[0.0, 0.0], [30.0, 0.0], [30.0, 10.0], [0.0, 10.0]]);
        assert_eq!(q.width(), 30.0);
        assert_eq!(q.height(), 10.0);
        assert_eq!(q.bbox(), BBox::new(0.0, 0.0, 30.0, 10.0));
        assert_eq!(clamp_point([-3.0, 50.0], 20.0, 20.0), [0.0, 19.0]);
        assert!(clamp_point([-0.0, 1.0], 20.0, 20.0)[0].is_sign_positive());
    }
}
