//! Recognised lines → visual rows, top to bottom, each read left to right.
//!
//! The text detector may cut one written line into several boxes (wide gaps between handwritten
//! words) and puts a label and its value (`Name:` … `Date:` …) in separate boxes. The rules read a
//! row as one string, so boxes that share a baseline are joined here, whatever order the engine's
//! blocks are in. Boxes are chained left to right: each joins the row whose rightmost box overlaps
//! it vertically the most, which follows a skewed line across the page.

use folio_schemas::{BBox, Block};

/// One visual row: its text (boxes joined by two spaces) and the box around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub text: String,
    pub bbox: BBox,
}

/// A piece of recognised text with its box.
#[derive(Debug, Clone)]
struct Piece {
    text: String,
    bbox: BBox,
}

/// Minimum vertical overlap, as a share of the lower box's height, for two boxes to share a row.
const MIN_OVERLAP: f32 = 0.4;

/// The rows of a page's blocks, top to bottom.
pub fn rows(blocks: &[Block]) -> Vec<Row> {
    let mut pieces: Vec<Piece> = blocks.iter().flat_map(pieces_of).collect();
    pieces.retain(|p| !p.text.trim().is_empty() && p.bbox.height() > 0.0);
    pieces.sort_by(|a, b| a.bbox.x0().total_cmp(&b.bbox.x0()));
    let mut chains: Vec<Vec<Piece>> = Vec::new();
    for piece in pieces {
        let best = chains
            .iter()
            .enumerate()
            .filter_map(|(i, chain)| {
                let last = chain.last()?;
                let left_of = last.bbox.x1() <= piece.bbox.x0() + 0.5 * piece.bbox.height();
                let overlap = vertical_overlap(&last.bbox, &piece.bbox);
                (left_of && overlap >= MIN_OVERLAP).then_some((i, overlap))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i);
        match best {
            Some(i) => chains[i].push(piece),
            None => chains.push(vec![piece]),
        }
    }
    let mut rows: Vec<Row> = chains
        .into_iter()
        .filter_map(|chain| {
            let bbox = chain.iter().map(|p| p.bbox).reduce(|a, b| a.union(&b))?;
            let text = chain
                .iter()
                .map(|p| p.text.trim())
                .collect::<Vec<_>>()
                .join("  ");
            Some(Row { text, bbox })
        })
        .collect();
    // Top to bottom by the first box's centre (the left end of a skewed row is where it starts).
    rows.sort_by(|a, b| center_y(&a.bbox).total_cmp(&center_y(&b.bbox)));
    rows
}

fn center_y(b: &BBox) -> f32 {
    (b.y0() + b.y1()) / 2.0
}

/// Overlap of the two boxes' vertical extents over the smaller height.
fn vertical_overlap(a: &BBox, b: &BBox) -> f32 {
    let inter = a.y1().min(b.y1()) - a.y0().max(b.y0());
    let smaller = a.height().min(b.height());
    if smaller <= 0.0 {
        0.0
    } else {
        inter.max(0.0) / smaller
    }
}

/// A block's lines; a table's cells; else its text, one piece per text line stacked in its box.
fn pieces_of(block: &Block) -> Vec<Piece> {
    if !block.lines.is_empty() {
        return block
            .lines
            .iter()
            .map(|l| Piece {
                text: l.text.clone(),
                bbox: l.bbox,
            })
            .collect();
    }
    if let Some(table) = &block.table {
        let cells: Vec<Piece> = table
            .cells
            .iter()
            .filter_map(|c| {
                Some(Piece {
                    text: c.text.clone(),
                    bbox: c.bbox?,
                })
            })
            .collect();
        if !cells.is_empty() {
            return cells;
        }
    }
    let Some(text) = block.text.as_deref() else {
        return Vec::new();
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let step = block.bbox.height() / lines.len().max(1) as f32;
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| Piece {
            text: (*l).to_string(),
            bbox: BBox::new(
                block.bbox.x0(),
                block.bbox.y0() + i as f32 * step,
                block.bbox.x1(),
                block.bbox.y0() + (i + 1) as f32 * step,
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use folio_schemas::{BlockKind, Line};

    fn line(text: &str, x0: f32, y0: f32, x1: f32, y1: f32) -> Line {
        Line {
            bbox: BBox::new(x0, y0, x1, y1),
            polygon: None,
            text: text.into(),
            confidence: None,
        }
    }

    /// A text block of `lines` inside `bbox`.
    fn text_block(id: &str, [x0, y0, x1, y1]: [f32; 4], lines: Vec<Line>) -> Block {
        Block {
            lines,
            ..Block::new(id, BlockKind::Text, BBox::new(x0, y0, x1, y1))
        }
    }

    #[test]
    fn boxes_on_one_baseline_join_across_blocks_and_skew() {
        let a = text_block(
            "p1-b1",
            [80.0, 300.0, 1000.0, 350.0],
            vec![
                line("Date: 16/11/2022", 700.0, 310.0, 1000.0, 350.0),
                line("Name: Rahul", 80.0, 300.0, 400.0, 340.0),
            ],
        );
        // A skewed handwritten line cut in two boxes, in another block, listed first.
        let b = text_block(
            "p1-b2",
            [90.0, 400.0, 800.0, 460.0],
            vec![
                line("x 5 days", 620.0, 418.0, 800.0, 460.0),
                line("Tab. Metformin 850 mg OD", 90.0, 400.0, 600.0, 442.0),
            ],
        );
        let rows = rows(&[b, a]);
        let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Name: Rahul  Date: 16/11/2022",
                "Tab. Metformin 850 mg OD  x 5 days"
            ]
        );
        assert_eq!(rows[1].bbox, BBox::new(90.0, 400.0, 800.0, 460.0));
    }

    #[test]
    fn blocks_without_lines_use_their_text() {
        let b = Block {
            text: Some("Rx\nTab Ibuprofen 400 mg".into()),
            ..Block::new("p1-b1", BlockKind::Text, BBox::new(0.0, 0.0, 500.0, 100.0))
        };
        let rows = rows(&[b]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].text, "Rx");
        assert_eq!(rows[1].bbox, BBox::new(0.0, 50.0, 500.0, 100.0));
    }
}
