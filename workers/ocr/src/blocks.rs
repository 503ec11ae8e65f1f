//! Recognised lines → blocks: each line joins the layout region that holds most of it; lines in
//! no region are grouped by proximity into text blocks.

use crate::layout::{LayoutLabel, LayoutRegion};
use folio_schemas::{BBox, BlockKind};

/// Share of a line's area that must lie inside a region for the line to belong to it.
const MIN_INSIDE: f32 = 0.5;

/// Titles longer than this many lines are reported as text.
const MAX_TITLE_LINES: usize = 3;

/// A block before ids, text and tables are filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockDraft {
    pub kind: BlockKind,
    pub bbox: BBox,
    /// Indices into the page's lines, in reading order within the block.
    pub lines: Vec<usize>,
    /// The layout region the block comes from, if any.
    pub region: Option<usize>,
}

/// Groups `lines` (boxes in page pixels) into blocks using `regions`.
///
/// A line belongs to the region holding at least half of it; when several do, a table wins, then
/// the smallest non-figure region, then a figure. Regions without lines are dropped, except
/// tables, figures and equations. Remaining lines form text blocks by proximity.
pub fn group_blocks(lines: &[BBox], regions: &[LayoutRegion]) -> Vec<BlockDraft> {
    let mut owner: Vec<Option<usize>> = vec![None; lines.len()];
    for (li, l) in lines.iter().enumerate() {
        let area = l.area().max(1e-6);
        let mut best: Option<(usize, (u8, f32))> = None;
        for (ri, r) in regions.iter().enumerate() {
            if l.intersection_area(&r.bbox) / area < MIN_INSIDE {
                continue;
            }
            let rank = match r.label {
                LayoutLabel::Table => 0u8,
                LayoutLabel::Figure => 2,
                _ => 1,
            };
            let key = (rank, r.bbox.area());
            if best.is_none_or(|(_, b)| key.0 < b.0 || (key.0 == b.0 && key.1 < b.1)) {
                best = Some((ri, key));
            }
        }
        owner[li] = best.map(|b| b.0);
    }
    let mut drafts = Vec::new();
    for (ri, r) in regions.iter().enumerate() {
        let mine: Vec<usize> = (0..lines.len()).filter(|&l| owner[l] == Some(ri)).collect();
        let keep_empty = matches!(
            r.label,
            LayoutLabel::Table | LayoutLabel::Figure | LayoutLabel::Equation
        );
        if mine.is_empty() && !keep_empty {
            continue;
        }
        let mut kind = r.label.block_kind();
        // A "title" of many lines is body text the model mistook (large type on small pages).
        if kind == BlockKind::Title && mine.len() > MAX_TITLE_LINES {
            kind = BlockKind::Text;
        }
        let bbox = match kind {
            // Tables and figures are the region; text blocks are where their lines are.
            BlockKind::Table | BlockKind::Figure => r.bbox,
            _ => union(mine.iter().map(|&l| lines[l])).unwrap_or(r.bbox),
        };
        let ordered = order_lines(&mine.iter().map(|&l| lines[l]).collect::<Vec<_>>());
        drafts.push(BlockDraft {
            kind,
            bbox,
            lines: ordered.into_iter().map(|k| mine[k]).collect(),
            region: Some(ri),
        });
    }
    let free: Vec<usize> = (0..lines.len()).filter(|&l| owner[l].is_none()).collect();
    for group in proximity_groups(&free.iter().map(|&l| lines[l]).collect::<Vec<_>>()) {
        let members: Vec<usize> = group.iter().map(|&k| free[k]).collect();
        let boxes: Vec<BBox> = members.iter().map(|&l| lines[l]).collect();
        let Some(bbox) = union(boxes.iter().copied()) else {
            continue;
        };
        let ordered = order_lines(&boxes);
        drafts.push(BlockDraft {
            kind: BlockKind::Text,
            bbox,
            lines: ordered.into_iter().map(|k| members[k]).collect(),
            region: None,
        });
    }
    drafts
}

fn union(mut boxes: impl Iterator<Item = BBox>) -> Option<BBox> {
    let first = boxes.next()?;
    Some(boxes.fold(first, |a, b| a.union(&b)))
}

/// Connected groups of lines that read as one paragraph: vertically adjacent lines (gap under
/// 0.8 line heights) that overlap horizontally and have similar heights, or pieces of one row
/// separated by less than 0.6 line heights. Groups come out in order of their first line.
pub fn proximity_groups(lines: &[BBox]) -> Vec<Vec<usize>> {
    let n = lines.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    for i in 0..n {
        for j in i + 1..n {
            if adjacent(&lines[i], &lines[j]) {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut slot: Vec<Option<usize>> = vec![None; n];
    for i in 0..n {
        let r = find(&mut parent, i);
        match slot[r] {
            Some(g) => groups[g].push(i),
            None => {
                slot[r] = Some(groups.len());
                groups.push(vec![i]);
            }
        }
    }
    groups
}

fn adjacent(a: &BBox, b: &BBox) -> bool {
    let h = a.height().min(b.height()).max(1.0);
    let hmax = a.height().max(b.height()).max(1.0);
    let v_overlap = a.y1().min(b.y1()) - a.y0().max(b.y0());
    let h_overlap = a.x1().min(b.x1()) - a.x0().max(b.x0());
    if v_overlap > 0.5 * h {
        // Same row: a small horizontal gap joins pieces of one line.
        return -h_overlap < 0.6 * h;
    }
    let v_gap = -v_overlap;
    let narrower = a.width().min(b.width()).max(1.0);
    v_gap < 0.8 * h && h_overlap > 0.3 * narrower && hmax / h < 1.6
}

/// Reading order of lines inside one block: rows (lines whose vertical centres fall within the
/// first line of the row) top to bottom, each row left to right.
pub fn order_lines(lines: &[BBox]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..lines.len()).collect();
    idx.sort_by(|&a, &b| {
        lines[a]
            .y0()
            .total_cmp(&lines[b].y0())
            .then(lines[a].x0().total_cmp(&lines[b].x0()))
    });
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for i in idx {
        let cy = (lines[i].y0() + lines[i].y1()) / 2.0;
        match rows.last_mut() {
            Some(row)
                if {
                    let first = &lines[row[0]];
                    cy > first.y0() && cy < first.y1()
                } =>
            {
                row.push(i)
            }
            _ => rows.push(vec![i]),
        }
    }
    rows.into_iter()
        .flat_map(|mut r| {
            r.sort_by(|&a, &b| lines[a].x0().total_cmp(&lines[b].x0()));
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x0: f32, y0: f32, x1: f32, y1: f32) -> BBox {
        BBox::new(x0, y0, x1, y1)
    }

    fn region(label: LayoutLabel, bbox: BBox) -> LayoutRegion {
        LayoutRegion {
            label,
            score: 0.9,
            bbox,
        }
    }

    #[test]
    fn paragraphs_and_columns_group_apart() {
        // Left column: two paragraphs (big gap between them); right column: one paragraph.
        let lines = [
            b(100.0, 100.0, 700.0, 130.0),
            b(100.0, 140.0, 690.0, 170.0),
            b(100.0, 260.0, 700.0, 290.0),
            b(800.0, 100.0, 1400.0, 130.0),
            b(800.0, 140.0, 1380.0, 170.0),
        ];
        let g = proximity_groups(&lines);
        assert_eq!(g, vec![vec![0, 1], vec![2], vec![3, 4]]);
    }

    #[test]
    fn a_big_title_does_not_merge_into_body_text() {
        let lines = [b(100.0, 100.0, 600.0, 170.0), b(100.0, 180.0, 900.0, 210.0)];
        assert_eq!(proximity_groups(&lines).len(), 2);
        // Two pieces of one row with a word-sized gap do merge.
        let lines = [b(100.0, 100.0, 300.0, 130.0), b(310.0, 101.0, 500.0, 131.0)];
        assert_eq!(proximity_groups(&lines), vec![vec![0, 1]]);
    }

    #[test]
    fn lines_follow_their_regions() {
        let regions = [
            region(LayoutLabel::Title, b(90.0, 40.0, 900.0, 90.0)),
            region(LayoutLabel::Table, b(90.0, 300.0, 900.0, 600.0)),
            // A text region inside the table: the table wins.
            region(LayoutLabel::Text, b(95.0, 310.0, 400.0, 350.0)),
            region(LayoutLabel::Figure, b(90.0, 700.0, 900.0, 900.0)),
            region(LayoutLabel::Text, b(90.0, 1000.0, 900.0, 1100.0)),
        ];
        let lines = [
            b(100.0, 50.0, 500.0, 80.0),   // title
            b(100.0, 320.0, 300.0, 340.0), // table (also in the inner text region)
            b(500.0, 400.0, 700.0, 420.0), // table
            b(100.0, 950.0, 800.0, 980.0), // outside everything
        ];
        let d = group_blocks(&lines, &regions);
        let summary: Vec<(BlockKind, Vec<usize>, Option<usize>)> = d
            .iter()
            .map(|d| (d.kind, d.lines.clone(), d.region))
            .collect();
        assert_eq!(
            summary,
            vec![
                (BlockKind::Title, vec![0], Some(0)),
                (BlockKind::Table, vec![1, 2], Some(1)),
                (BlockKind::Figure, vec![], Some(3)),
                (BlockKind::Text, vec![3], None),
            ]
        );
        // A many-line "title" is text.
        let long_title: Vec<BBox> = (0..5)
            .map(|i| b(100.0, 50.0 + 30.0 * i as f32, 800.0, 75.0 + 30.0 * i as f32))
            .collect();
        let t = group_blocks(
            &long_title,
            &[region(LayoutLabel::Title, b(90.0, 40.0, 900.0, 300.0))],
        );
        assert_eq!(t[0].kind, BlockKind::Text);
        // The title block is tight around its line; the table keeps the region box.
        assert_eq!(d[0].bbox, lines[0]);
        assert_eq!(d[1].bbox, regions[1].bbox);
    }

    #[test]
    fn line_order_reads_rows_left_to_right() {
        let lines = [
            b(300.0, 102.0, 400.0, 130.0),
            b(100.0, 100.0, 250.0, 128.0),
            b(100.0, 140.0, 400.0, 170.0),
        ];
        assert_eq!(order_lines(&lines), vec![1, 0, 2]);
        assert!(order_lines(&[]).is_empty());
    }
}
