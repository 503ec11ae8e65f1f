//! Reading order of blocks: page headers first, page footers last, everything else by the
//! column-aware order of [`column_order`], so multi-column pages read column by column and a
//! full-width title or paragraph closes the columns above it.
//!
//! Figures and captions float: they take no part in the cut (a picture set across the gutter of
//! a magazine page would otherwise hide the columns) and are placed after the last text block
//! above them that they overlap horizontally.

use folio_schemas::{BBox, BlockKind};

/// Indices of `boxes` in reading order.
pub fn reading_order(boxes: &[BBox], kinds: &[BlockKind]) -> Vec<usize> {
    let kind = |i: usize| kinds.get(i).copied().unwrap_or(BlockKind::Text);
    let by_position = |v: &mut Vec<usize>| {
        v.sort_by(|&a, &b| {
            boxes[a]
                .y0()
                .total_cmp(&boxes[b].y0())
                .then(boxes[a].x0().total_cmp(&boxes[b].x0()))
        })
    };
    let mut headers: Vec<usize> = (0..boxes.len())
        .filter(|&i| kind(i) == BlockKind::Header)
        .collect();
    let mut footers: Vec<usize> = (0..boxes.len())
        .filter(|&i| kind(i) == BlockKind::Footer)
        .collect();
    let floats = |k: BlockKind| matches!(k, BlockKind::Figure | BlockKind::Caption);
    let body: Vec<usize> = (0..boxes.len())
        .filter(|&i| !matches!(kind(i), BlockKind::Header | BlockKind::Footer) && !floats(kind(i)))
        .collect();
    let mut floating: Vec<usize> = (0..boxes.len()).filter(|&i| floats(kind(i))).collect();
    by_position(&mut headers);
    by_position(&mut footers);
    by_position(&mut floating);
    let body_boxes: Vec<BBox> = body.iter().map(|&i| boxes[i]).collect();
    let flow: Vec<usize> = column_order(&body_boxes)
        .into_iter()
        .map(|k| body[k])
        .collect();

    // Each float goes after the last flow block that starts above it and shares some columns.
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); flow.len() + 1];
    for f in floating {
        let fb = &boxes[f];
        let anchor = flow.iter().rposition(|&i| {
            let b = &boxes[i];
            b.y0() <= fb.y0() && b.x0().max(fb.x0()) < b.x1().min(fb.x1())
        });
        after[anchor.map_or(0, |k| k + 1)].push(f);
    }
    let mut out = headers;
    out.extend(after[0].iter().copied());
    for (k, &i) in flow.iter().enumerate() {
        out.push(i);
        out.extend(after[k + 1].iter().copied());
    }
    out.extend(footers);
    out
}

/// Boxes overlap horizontally when they share more than this share of the narrower one's width.
const X_OVERLAP_SHARE: f32 = 0.05;

/// Indices of `boxes` in reading order by the column-aware partial order of Breuel (2003, "High
/// performance document layout analysis"): `a` comes before `b` when they overlap horizontally
/// and `a` is higher, or when `a` lies wholly left of `b` and no box between them vertically
/// spans from `a` across to `b` (a full-width title or paragraph ends a set of columns). The
/// order is linearised by a depth-first search that visits boxes top to bottom, so anything the
/// rules leave open (and any cycle from overlapping boxes) falls back to position.
///
/// Works on lines as well as on blocks; boxes should be deskewed.
pub fn column_order(boxes: &[BBox]) -> Vec<usize> {
    let n = boxes.len();
    let overlaps = |a: &BBox, b: &BBox| {
        let o = a.x1().min(b.x1()) - a.x0().max(b.x0());
        o > X_OVERLAP_SHARE * a.width().min(b.width()).max(1.0)
    };
    let left_of = |a: &BBox, b: &BBox| !overlaps(a, b) && a.x0() + a.x1() < b.x0() + b.x1();
    // A box spanning across from `a` (left) to `b` (right) within their vertical range.
    let separated = |ia: usize, ib: usize| {
        let (a, b) = (&boxes[ia], &boxes[ib]);
        let (top, bottom) = (a.y0().min(b.y0()), a.y1().max(b.y1()));
        boxes.iter().enumerate().any(|(iw, w)| {
            iw != ia
                && iw != ib
                && w.y1() > top
                && w.y0() < bottom
                && w.x0() < a.x1()
                && w.x1() > b.x0()
                && overlaps(w, a)
                && overlaps(w, b)
        })
    };
    let mut before: Vec<Vec<usize>> = vec![Vec::new(); n];
    for a in 0..n {
        for b in 0..n {
            if a == b {
                continue;
            }
            let (ba, bb) = (&boxes[a], &boxes[b]);
            let precedes = if overlaps(ba, bb) {
                ba.y0() + ba.y1() < bb.y0() + bb.y1()
            } else {
                left_of(ba, bb) && !separated(a, b)
            };
            if precedes {
                before[b].push(a);
            }
        }
    }
    let mut by_position: Vec<usize> = (0..n).collect();
    by_position.sort_by(|&a, &b| position(&boxes[a], &boxes[b]));
    let rank: Vec<usize> = {
        let mut r = vec![0; n];
        for (k, &i) in by_position.iter().enumerate() {
            r[i] = k;
        }
        r
    };
    for preds in &mut before {
        preds.sort_by_key(|&p| rank[p]);
    }
    let mut out = Vec::with_capacity(n);
    let mut state = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
    for &start in &by_position {
        if state[start] != 0 {
            continue;
        }
        // Iterative post-order over predecessors.
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&p) = before[node].get(*next) {
                *next += 1;
                if state[p] == 0 {
                    state[p] = 1;
                    stack.push((p, 0));
                }
            } else {
                state[node] = 2;
                out.push(node);
                stack.pop();
            }
        }
    }
    out
}

fn position(a: &BBox, b: &BBox) -> std::cmp::Ordering {
    a.y0().total_cmp(&b.y0()).then(a.x0().total_cmp(&b.x0()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x0: f32, y0: f32, x1: f32, y1: f32) -> BBox {
        BBox::new(x0, y0, x1, y1)
    }

    #[test]
    fn two_columns_under_a_title_read_column_by_column() {
        let boxes = [
            b(800.0, 300.0, 1400.0, 500.0),  // 0 right col, para 1
            b(100.0, 100.0, 1400.0, 200.0),  // 1 title (full width)
            b(100.0, 300.0, 700.0, 500.0),   // 2 left col, para 1
            b(100.0, 550.0, 700.0, 800.0),   // 3 left col, para 2 (gap aligned with right col)
            b(800.0, 550.0, 1400.0, 800.0),  // 4 right col, para 2
            b(100.0, 900.0, 1400.0, 1000.0), // 5 full-width closing paragraph
        ];
        let kinds = [BlockKind::Text; 6];
        assert_eq!(reading_order(&boxes, &kinds), vec![1, 2, 3, 0, 4, 5]);
    }

    #[test]
    fn a_figure_across_the_gutter_does_not_hide_the_columns() {
        let boxes = [
            b(100.0, 100.0, 700.0, 300.0),   // 0 left top
            b(800.0, 100.0, 1400.0, 300.0),  // 1 right top
            b(500.0, 350.0, 1000.0, 800.0),  // 2 figure across the gutter
            b(100.0, 350.0, 450.0, 800.0),   // 3 left beside the figure
            b(1050.0, 350.0, 1400.0, 800.0), // 4 right beside the figure
            b(550.0, 810.0, 950.0, 850.0),   // 5 its caption
        ];
        let kinds = [
            BlockKind::Text,
            BlockKind::Text,
            BlockKind::Figure,
            BlockKind::Text,
            BlockKind::Text,
            BlockKind::Caption,
        ];
        // Left column, right column; the figure and caption after the right column's top block,
        // the last block above them they share columns with.
        assert_eq!(reading_order(&boxes, &kinds), vec![0, 3, 1, 2, 5, 4]);
        // A figure above all text comes first.
        let boxes = [b(100.0, 500.0, 900.0, 900.0), b(100.0, 50.0, 900.0, 400.0)];
        assert_eq!(
            reading_order(&boxes, &[BlockKind::Text, BlockKind::Figure]),
            vec![1, 0]
        );
    }

    #[test]
    fn headers_first_footers_last() {
        let boxes = [
            b(100.0, 2200.0, 300.0, 2250.0),
            b(100.0, 300.0, 1400.0, 400.0),
            b(1200.0, 50.0, 1400.0, 80.0),
        ];
        let kinds = [BlockKind::Footer, BlockKind::Text, BlockKind::Header];
        assert_eq!(reading_order(&boxes, &kinds), vec![2, 1, 0]);
    }

    #[test]
    fn side_by_side_blocks_in_one_band_read_left_to_right() {
        // Letter head: address left, date right, then the body across the page.
        let boxes = [
            b(1000.0, 100.0, 1400.0, 140.0),
            b(100.0, 100.0, 500.0, 250.0),
            b(100.0, 300.0, 1400.0, 900.0),
        ];
        let kinds = [BlockKind::Text; 3];
        assert_eq!(reading_order(&boxes, &kinds), vec![1, 0, 2]);
    }

    #[test]
    fn overlapping_blocks_fall_back_to_position() {
        let boxes = [
            b(0.0, 50.0, 100.0, 150.0),
            b(50.0, 0.0, 150.0, 100.0),
            b(80.0, 120.0, 200.0, 200.0),
        ];
        let kinds = [BlockKind::Text; 3];
        assert_eq!(reading_order(&boxes, &kinds), vec![1, 0, 2]);
        assert!(reading_order(&[], &[]).is_empty());
    }
}
