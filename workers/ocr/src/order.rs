//! Reading order of blocks: page headers first, page footers last, everything else by recursive
//! XY-cut that prefers column cuts, so multi-column pages read column by column.
//!
//! At each level the blocks are split at vertical whitespace channels that run through the whole
//! group (columns, read left to right); failing that, at horizontal channels (bands, top to
//! bottom). Consecutive bands that share a column gutter are merged back first, so two columns
//! whose paragraph gaps happen to line up are still read one column at a time.
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
    let mut flow = Vec::with_capacity(body.len());
    xy_cut(body, boxes, &mut flow, 0);

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

#[derive(Clone, Copy)]
enum Axis {
    X,
    Y,
}

fn span(b: &BBox, axis: Axis) -> (f32, f32) {
    match axis {
        Axis::X => (b.x0(), b.x1()),
        Axis::Y => (b.y0(), b.y1()),
    }
}

/// Splits `set` at gaps of the projection on `axis`; `None` when there is no gap.
fn split(set: &[usize], boxes: &[BBox], axis: Axis) -> Option<Vec<Vec<usize>>> {
    let mut idx = set.to_vec();
    idx.sort_by(|&a, &b| span(&boxes[a], axis).0.total_cmp(&span(&boxes[b], axis).0));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut end = f32::NEG_INFINITY;
    for i in idx {
        let (s, e) = span(&boxes[i], axis);
        match groups.last_mut() {
            Some(g) if s < end => g.push(i),
            _ => groups.push(vec![i]),
        }
        end = end.max(e);
    }
    (groups.len() > 1).then_some(groups)
}

fn xy_cut(set: Vec<usize>, boxes: &[BBox], out: &mut Vec<usize>, depth: usize) {
    if set.len() <= 1 || depth > 64 {
        let mut set = set;
        set.sort_by(|&a, &b| {
            boxes[a]
                .y0()
                .total_cmp(&boxes[b].y0())
                .then(boxes[a].x0().total_cmp(&boxes[b].x0()))
        });
        out.extend(set);
        return;
    }
    if let Some(cols) = split(&set, boxes, Axis::X) {
        for c in cols {
            xy_cut(c, boxes, out, depth + 1);
        }
        return;
    }
    if let Some(bands) = split(&set, boxes, Axis::Y) {
        let merged = merge_bands_sharing_a_gutter(bands, boxes);
        if merged.len() > 1 {
            for b in merged {
                xy_cut(b, boxes, out, depth + 1);
            }
            return;
        }
    }
    let mut set = set;
    set.sort_by(|&a, &b| {
        boxes[a]
            .y0()
            .total_cmp(&boxes[b].y0())
            .then(boxes[a].x0().total_cmp(&boxes[b].x0()))
    });
    out.extend(set);
}

/// Joins consecutive bands while the joined group still splits into columns.
fn merge_bands_sharing_a_gutter(bands: Vec<Vec<usize>>, boxes: &[BBox]) -> Vec<Vec<usize>> {
    let mut merged: Vec<Vec<usize>> = Vec::new();
    for band in bands {
        if let Some(last) = merged.last_mut() {
            let both_columned =
                split(last, boxes, Axis::X).is_some() && split(&band, boxes, Axis::X).is_some();
            let mut joined = last.clone();
            joined.extend(&band);
            if both_columned && split(&joined, boxes, Axis::X).is_some() {
                *last = joined;
                continue;
            }
        }
        merged.push(band);
    }
    merged
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
