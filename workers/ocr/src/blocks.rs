//! Recognised lines → blocks: tables, figures and equations from their layout regions; all other
//! lines in one column-aware reading order cut into paragraphs; then list items, and running
//! headers, footers and page numbers.

use crate::layout::{LayoutLabel, LayoutRegion};
use crate::order::column_order;
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

/// Groups `lines` (deskewed boxes, with their `texts`) into blocks using `regions`.
///
/// A line belongs to the region holding at least half of it; when several do, a table wins, then
/// the smallest non-figure region, then a figure. Tables, figures and equations are blocks of
/// their own (kept even without lines). Every other line takes part in one column-aware reading
/// order ([`column_order`]) over the whole page, which is then cut into paragraphs where the next
/// line does not continue the current one (see [`continues`]); a paragraph takes the kind of its
/// first line's region (title, caption, header, …; text when in none) and is cut where that kind
/// changes. Layout regions thus name blocks but do not cut them otherwise, so a region drawn
/// across two columns or over half a paragraph does not change the order.
pub fn group_blocks(lines: &[BBox], texts: &[&str], regions: &[LayoutRegion]) -> Vec<BlockDraft> {
    let owner: Vec<Option<usize>> = lines.iter().map(|l| owning_region(l, regions)).collect();
    let atomic = |label: LayoutLabel| {
        matches!(
            label,
            LayoutLabel::Table | LayoutLabel::Figure | LayoutLabel::Equation
        )
    };
    let mut drafts = Vec::new();
    for (ri, r) in regions.iter().enumerate() {
        if !atomic(r.label) {
            continue;
        }
        let mine: Vec<usize> = (0..lines.len()).filter(|&l| owner[l] == Some(ri)).collect();
        let kind = r.label.block_kind();
        let bbox = match kind {
            // Tables and figures are the region; equations are where their lines are.
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
    let flow: Vec<usize> = (0..lines.len())
        .filter(|&l| owner[l].is_none_or(|r| !atomic(regions[r].label)))
        .collect();
    let sequence: Vec<usize> = column_order(&flow.iter().map(|&l| lines[l]).collect::<Vec<_>>())
        .into_iter()
        .map(|k| flow[k])
        .collect();
    let kind_of = |l: usize| {
        owner[l]
            .map(|r| regions[r].label.block_kind())
            .unwrap_or(BlockKind::Text)
    };
    let mut para: Vec<usize> = Vec::new();
    let flush = |para: &mut Vec<usize>, drafts: &mut Vec<BlockDraft>| {
        let Some(&first) = para.first() else { return };
        let mut kind = kind_of(first);
        // A "title" of many lines is body text the model mistook (large type on small pages).
        if kind == BlockKind::Title && para.len() > MAX_TITLE_LINES {
            kind = BlockKind::Text;
        }
        if let Some(bbox) = union(para.iter().map(|&l| lines[l])) {
            drafts.push(BlockDraft {
                kind,
                bbox,
                lines: std::mem::take(para),
                region: owner[first],
            });
        }
    };
    for (k, &l) in sequence.iter().enumerate() {
        let ahead = sequence.get(k + 1).map(|&n| &lines[n]);
        let joins = para.first().is_some_and(|&f| kind_of(f) == kind_of(l))
            && continues(&para, l, ahead, lines, texts);
        if !joins {
            flush(&mut para, &mut drafts);
        }
        para.push(l);
    }
    flush(&mut para, &mut drafts);
    drafts
}

/// The region a line belongs to: one holding at least half of it; of several, a table, else the
/// smallest non-figure region, else a figure.
fn owning_region(l: &BBox, regions: &[LayoutRegion]) -> Option<usize> {
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
    best.map(|b| b.0)
}

fn union(mut boxes: impl Iterator<Item = BBox>) -> Option<BBox> {
    let first = boxes.next()?;
    Some(boxes.fold(first, |a, b| a.union(&b)))
}

/// Whether line `next` (followed by `ahead` in reading order) continues paragraph `para`:
/// - another piece of the last line's row, less than two line heights to its right; or
/// - below the last line by less than 0.8 line heights, overlapping it horizontally, of similar
///   height, not indented by more than 0.8 line heights (an indent starts a paragraph, except under
///   a list item's first line: a hanging indent), not reaching more than a line height past the
///   paragraph's right edge, and not the first of two lines that form a clearly narrower column
///   (under 60% of its width) under a wide paragraph (a full-width lead paragraph above two columns).
pub fn continues(
    para: &[usize],
    next: usize,
    ahead: Option<&BBox>,
    lines: &[BBox],
    texts: &[&str],
) -> bool {
    let Some(&last) = para.last() else {
        return false;
    };
    let (a, b) = (&lines[last], &lines[next]);
    let h = a.height().min(b.height()).max(1.0);
    if a.height().max(b.height()) / h >= 1.6 {
        return false;
    }
    let v_overlap = a.y1().min(b.y1()) - a.y0().max(b.y0());
    if v_overlap > 0.5 * h {
        return b.x0() > a.x0() && b.x0() - a.x1() < 2.0 * h;
    }
    let gap = b.y0() - a.y1();
    let h_overlap = a.x1().min(b.x1()) - a.x0().max(b.x0());
    if gap < -0.5 * h || gap > 0.8 * h || h_overlap < 0.3 * a.width().min(b.width()) {
        return false;
    }
    let left = para
        .iter()
        .map(|&l| lines[l].x0())
        .fold(f32::INFINITY, f32::min);
    let right = para
        .iter()
        .map(|&l| lines[l].x1())
        .fold(f32::NEG_INFINITY, f32::max);
    let hanging = list_marker(texts[para[0]]).is_some();
    if b.x0() > a.x0() + 0.8 * h && !(hanging && b.x0() > left) {
        return false;
    }
    if para.len() >= 2 && b.x1() > right + h {
        return false;
    }
    let width = right - left;
    if let Some(c) = ahead {
        let narrower = |x: &BBox| x.x1() < left + 0.6 * width;
        let stacked = c.y0() > b.y0() && c.y0() - b.y1() < 0.8 * h;
        if narrower(b) && narrower(c) && stacked && (c.x0() - b.x0()).abs() < h {
            return false;
        }
    }
    true
}

/// Reading order of lines inside one block: [`column_order`] (rows left to right, stacked lines
/// top to bottom, columns one after the other).
pub fn order_lines(lines: &[BBox]) -> Vec<usize> {
    column_order(lines)
}

/// Length in bytes of the list marker that starts `text` (`1.`, `2)`, `(a)`, `a.`, `•`, `-`, …,
/// followed by a space), or `None`.
pub fn list_marker(text: &str) -> Option<usize> {
    let t = text.trim_start();
    let lead = text.len() - t.len();
    let mut chars = t.char_indices();
    let (_, first) = chars.next()?;
    let end = if matches!(
        first,
        '•' | '·'
            | '▪'
            | '◦'
            | '‣'
            | '●'
            | '○'
            | '■'
            | '□'
            | '-'
            | '–'
            | '—'
            | '*'
            | '»'
            | '➢'
            | '✓'
    ) {
        first.len_utf8()
    } else {
        // `(x)` or `x.` / `x)` where x is 1–2 digits or one lowercase letter.
        let body = t.strip_prefix('(').unwrap_or(t);
        let open = t.len() - body.len();
        let digits = body.chars().take_while(char::is_ascii_digit).count();
        let label = if (1..=2).contains(&digits) {
            digits
        } else if digits == 0 && body.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
            1
        } else {
            return None;
        };
        let close = body[label..].chars().next()?;
        let ok = if open == 1 {
            close == ')'
        } else {
            close == '.' || close == ')'
        };
        if !ok {
            return None;
        }
        open + label + 1
    };
    // The marker must stand alone before the item's text.
    let rest = &t[end..];
    if !rest.starts_with(' ') || rest.trim().is_empty() {
        return None;
    }
    Some(lead + end)
}

/// Splits text drafts into list items: a line that starts with a list marker at the block's left
/// edge starts an item, the lines after it (until the next marker) continue it. Lines before the
/// first marker stay a text block. A block becomes a list when its first line has a marker or when
/// at least two of its lines do.
pub fn split_list_items(
    drafts: Vec<BlockDraft>,
    lines: &[BBox],
    texts: &[&str],
) -> Vec<BlockDraft> {
    let mut out = Vec::with_capacity(drafts.len());
    for d in drafts {
        // The layout model calls some lists references.
        if !matches!(d.kind, BlockKind::Text | BlockKind::Reference) || d.lines.is_empty() {
            out.push(d);
            continue;
        }
        let left = d
            .lines
            .iter()
            .map(|&l| lines[l].x0())
            .fold(f32::INFINITY, f32::min);
        let starts: Vec<bool> = d
            .lines
            .iter()
            .map(|&l| {
                list_marker(texts[l]).is_some() && lines[l].x0() - left < lines[l].height().max(1.0)
            })
            .collect();
        let markers = starts.iter().filter(|&&s| s).count();
        if !(starts[0] || markers >= 2) {
            out.push(d);
            continue;
        }
        let mut parts: Vec<(BlockKind, Vec<usize>)> = Vec::new();
        for (k, &l) in d.lines.iter().enumerate() {
            match parts.last_mut() {
                Some(p) if !starts[k] => p.1.push(l),
                _ => parts.push((
                    if starts[k] {
                        BlockKind::ListItem
                    } else {
                        d.kind
                    },
                    vec![l],
                )),
            }
        }
        for (kind, part) in parts {
            let Some(bbox) = union(part.iter().map(|&l| lines[l])) else {
                continue;
            };
            out.push(BlockDraft {
                kind,
                bbox,
                lines: part,
                region: d.region,
            });
        }
    }
    out
}

/// A page's top and bottom margins: the running header, the footer and the page number live
/// there (share of the page height).
const MARGIN_BAND: f32 = 0.1;
/// A running header or footer stands this many body line heights away from the body.
const FURNITURE_GAP: f32 = 1.5;

/// True for a page number: `12`, `- 12 -`, `Page 3`, `3 of 10`, `3/10`, `iv`.
pub fn is_page_number(text: &str) -> bool {
    let t = text
        .trim()
        .trim_matches(|c: char| c == '-' || c == '–' || c.is_whitespace());
    let lower = t.to_lowercase();
    let t = lower
        .strip_prefix("page")
        .or_else(|| lower.strip_prefix("p."))
        .unwrap_or(&lower)
        .trim();
    let number = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.len() <= 4 && s.chars().all(|c| c.is_ascii_digit()))
            || (!s.is_empty() && s.len() <= 5 && s.chars().all(|c| "ivxlc".contains(c)))
    };
    if number(t) {
        return true;
    }
    for sep in [" of ", "/"] {
        if let Some((a, b)) = t.split_once(sep) {
            return number(a) && number(b);
        }
    }
    false
}

/// Marks running headers, footers and page numbers on a full page (`page_w × page_h`, portrait):
/// a text block of at most two lines in the top or bottom tenth of the page that is a page number
/// or stands well apart (1.5 line heights) from everything between it and the page's middle.
/// Cropped images (landscape, square) have no page furniture.
pub fn mark_page_furniture(
    drafts: &mut [BlockDraft],
    lines: &[BBox],
    texts: &[&str],
    page_w: f32,
    page_h: f32,
) {
    if page_h < 1.2 * page_w || drafts.len() < 2 {
        return;
    }
    let mut heights: Vec<f32> = lines.iter().map(BBox::height).collect();
    if heights.is_empty() {
        return;
    }
    heights.sort_by(f32::total_cmp);
    let line_h = heights[heights.len() / 2].max(1.0);
    let boxes: Vec<BBox> = drafts.iter().map(|d| d.bbox).collect();
    for (i, d) in drafts.iter_mut().enumerate() {
        if d.kind != BlockKind::Text || d.lines.is_empty() || d.lines.len() > 2 {
            continue;
        }
        let b = d.bbox;
        let top = b.y1() <= MARGIN_BAND * page_h;
        let bottom = b.y0() >= (1.0 - MARGIN_BAND) * page_h;
        if !top && !bottom {
            continue;
        }
        let gap = boxes
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, o)| {
                if top {
                    o.y0() - b.y1()
                } else {
                    b.y0() - o.y1()
                }
            })
            .filter(|g| *g > -0.5 * line_h)
            .fold(f32::INFINITY, f32::min);
        let text: String = d
            .lines
            .iter()
            .map(|&l| texts[l])
            .collect::<Vec<_>>()
            .join(" ");
        if is_page_number(&text) || gap >= FURNITURE_GAP * line_h {
            d.kind = if top {
                BlockKind::Header
            } else {
                BlockKind::Footer
            };
        }
    }
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

    /// Line indices of each block, without layout regions.
    fn paragraphs(lines: &[BBox]) -> Vec<Vec<usize>> {
        let texts = vec!["words"; lines.len()];
        group_blocks(lines, &texts, &[])
            .into_iter()
            .map(|d| d.lines)
            .collect()
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
        assert_eq!(paragraphs(&lines), vec![vec![0, 1], vec![2], vec![3, 4]]);
    }

    #[test]
    fn a_lead_paragraph_does_not_swallow_the_columns_below() {
        // Full-width lead (two lines), then two columns of three lines, no larger gaps.
        let mut lines = vec![
            b(100.0, 100.0, 1400.0, 130.0),
            b(100.0, 140.0, 1390.0, 170.0),
        ];
        for (x0, x1) in [(100.0, 700.0), (800.0, 1400.0)] {
            for r in 0..3 {
                let y = 180.0 + 40.0 * r as f32;
                lines.push(b(x0, y, x1, y + 30.0));
            }
        }
        assert_eq!(
            paragraphs(&lines),
            vec![vec![0, 1], vec![2, 3, 4], vec![5, 6, 7]]
        );
        // An indented line starts a paragraph, except under a list item (hanging indent).
        let lines = [
            b(100.0, 100.0, 700.0, 130.0),
            b(140.0, 140.0, 700.0, 170.0),
            b(100.0, 180.0, 700.0, 210.0),
        ];
        let texts = ["1. an item", "continued", "2. next"];
        let d = group_blocks(&lines, &texts, &[]);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(paragraphs(&lines), vec![vec![0], vec![1, 2]]);
    }

    #[test]
    fn a_big_title_does_not_merge_into_body_text() {
        let lines = [b(100.0, 100.0, 600.0, 170.0), b(100.0, 180.0, 900.0, 210.0)];
        assert_eq!(paragraphs(&lines).len(), 2);
        // Two pieces of one row with a word-sized gap do merge.
        let lines = [b(100.0, 100.0, 300.0, 130.0), b(310.0, 101.0, 500.0, 131.0)];
        assert_eq!(paragraphs(&lines), vec![vec![0, 1]]);
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
        let d = group_blocks(&lines, &["x"; 4], &regions);
        let summary: Vec<(BlockKind, Vec<usize>, Option<usize>)> = d
            .iter()
            .map(|d| (d.kind, d.lines.clone(), d.region))
            .collect();
        assert_eq!(
            summary,
            vec![
                (BlockKind::Table, vec![1, 2], Some(1)),
                (BlockKind::Figure, vec![], Some(3)),
                (BlockKind::Title, vec![0], Some(0)),
                (BlockKind::Text, vec![3], None),
            ]
        );
        // A many-line "title" is text.
        let long_title: Vec<BBox> = (0..5)
            .map(|i| b(100.0, 50.0 + 30.0 * i as f32, 800.0, 75.0 + 30.0 * i as f32))
            .collect();
        let t = group_blocks(
            &long_title,
            &["x"; 5],
            &[region(LayoutLabel::Title, b(90.0, 40.0, 900.0, 300.0))],
        );
        assert_eq!(t[0].kind, BlockKind::Text);
        // The title block is tight around its line; the table keeps the region box.
        assert_eq!(d[2].bbox, lines[0]);
        assert_eq!(d[0].bbox, regions[1].bbox);
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
