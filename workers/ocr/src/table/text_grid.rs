//! Tables the layout model misses: text lines that form a grid.
//!
//! The layout model was trained on whole pages; an image that *is* a table (a crop with no page
//! around it) or a table set without rules often gets no table region. Lines that line up in rows
//! of several short cells, with vertical whitespace channels running through the rows, are such a
//! table. Prose in columns also has rows of several pieces, but its pieces are long lines of many
//! words; table cells are short.

use folio_schemas::BBox;

/// Rows with at least this many cells (pieces side by side) count as table rows.
const MIN_CELLS: usize = 2;
/// A grid needs this many table rows.
const MIN_ROWS: usize = 3;
/// Median words per cell above this is prose.
const MAX_MEDIAN_WORDS: usize = 4;
/// Cells of at most this many characters, or mostly digits and signs, are short (numbers,
/// codes, single words)…
const SHORT_CELL: usize = 10;
/// …and at least this share of a table's cells are short. Prose in narrow columns has lines of
/// 20–35 characters; only the last line of a paragraph is short.
const MIN_SHORT_SHARE: f32 = 0.4;
/// A whitespace channel between columns is at least this many line heights wide.
const MIN_CHANNEL: f32 = 0.5;

/// The box of a table formed by `lines` (deskewed boxes, with their `texts`), if they form one.
///
/// Lines are grouped into rows (vertical overlap of half a line); the table is the longest run of
/// consecutive rows in which most rows have several cells, and whose cells leave at least one
/// vertical whitespace channel through every many-celled row of the run. Single-cell rows inside
/// the run (a wrapped cell, a spanning group header) and directly above it (the table's header)
/// belong to it.
pub fn find_text_grid(lines: &[BBox], texts: &[&str]) -> Option<BBox> {
    if lines.len() < MIN_ROWS * MIN_CELLS {
        return None;
    }
    let mut heights: Vec<f32> = lines.iter().map(BBox::height).collect();
    heights.sort_by(f32::total_cmp);
    let line_h = heights[heights.len() / 2].max(1.0);
    let rows = rows_of(lines);
    let many: Vec<bool> = rows.iter().map(|r| r.len() >= MIN_CELLS).collect();
    // Longest run of rows, starting and ending with a many-celled row, with no two single-cell
    // rows in a row.
    let mut best: Option<(usize, usize)> = None;
    let mut start: Option<usize> = None;
    let mut last_many = 0;
    for (i, &m) in many.iter().enumerate() {
        if m {
            if start.is_none() {
                start = Some(i);
            }
            last_many = i;
        } else if start.is_some() && i > last_many + 1 {
            consider(&mut best, start, last_many, &many);
            start = None;
        }
    }
    consider(&mut best, start, last_many, &many);
    let (s, e) = best?;
    let cells: Vec<usize> = (s..=e)
        .filter(|&r| many[r])
        .flat_map(|r| rows[r].iter().copied())
        .collect();
    if !short_cells(cells.iter().map(|&l| texts[l])) {
        return None;
    }
    if !has_channel(lines, &cells, MIN_CHANNEL * line_h) {
        return None;
    }
    // A header row of one cell right above the run (a spanning group header or a caption-like
    // column title) belongs to the table.
    let s = if s > 0 && rows[s - 1].len() == 1 {
        s - 1
    } else {
        s
    };
    (s..=e)
        .flat_map(|r| rows[r].iter().map(|&l| lines[l]))
        .reduce(|a, b| a.union(&b))
}

/// Whether pieces of text read like table cells: a median of at most four words, and at least
/// two in five short (numbers, codes, single words).
pub fn short_cells<'a>(texts: impl Iterator<Item = &'a str>) -> bool {
    let mut words = Vec::new();
    let mut short = 0usize;
    for t in texts {
        words.push(t.split_whitespace().count());
        let chars = t.chars().filter(|c| !c.is_whitespace()).count();
        let letters = t.chars().filter(|c| c.is_alphabetic()).count();
        // Short, or a number with its unit, interval or error ("0.12 ± 0.016", "4.92 to 8.41").
        if chars <= SHORT_CELL || letters * 3 <= chars {
            short += 1;
        }
    }
    if words.is_empty() {
        return false;
    }
    words.sort_unstable();
    words[words.len() / 2] <= MAX_MEDIAN_WORDS
        && short as f32 >= MIN_SHORT_SHARE * words.len() as f32
}

fn consider(best: &mut Option<(usize, usize)>, start: Option<usize>, end: usize, many: &[bool]) {
    let Some(s) = start else { return };
    let count = (s..=end).filter(|&r| many[r]).count();
    if count >= MIN_ROWS
        && best.is_none_or(|(bs, be)| count > (bs..=be).filter(|&r| many[r]).count())
    {
        *best = Some((s, end));
    }
}

/// Rows of lines, top to bottom: a line joins the current row when it overlaps the row's first
/// line by half its height. Each row's lines are left to right.
fn rows_of(lines: &[BBox]) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..lines.len()).collect();
    idx.sort_by(|&a, &b| {
        let ca = lines[a].y0() + lines[a].y1();
        let cb = lines[b].y0() + lines[b].y1();
        ca.total_cmp(&cb)
    });
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for i in idx {
        let b = &lines[i];
        let joins = rows.last().is_some_and(|r| {
            let f = &lines[r[0]];
            let overlap = b.y1().min(f.y1()) - b.y0().max(f.y0());
            overlap > 0.5 * b.height().min(f.height())
        });
        if joins {
            if let Some(r) = rows.last_mut() {
                r.push(i);
            }
        } else {
            rows.push(vec![i]);
        }
    }
    for r in &mut rows {
        r.sort_by(|&a, &b| lines[a].x0().total_cmp(&lines[b].x0()));
    }
    rows
}

/// Whether the X projection of `cells` has an empty stretch at least `min_gap` wide between its
/// ends (a column channel running through every row).
fn has_channel(lines: &[BBox], cells: &[usize], min_gap: f32) -> bool {
    let mut spans: Vec<(f32, f32)> = cells
        .iter()
        .map(|&l| (lines[l].x0(), lines[l].x1()))
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut end = f32::NEG_INFINITY;
    for (k, (s, e)) in spans.into_iter().enumerate() {
        if k > 0 && s - end >= min_gap {
            return true;
        }
        end = end.max(e);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_of_short_cells_is_a_table() {
        let mut lines = vec![BBox::new(10.0, 0.0, 200.0, 20.0)]; // spanning header
        let mut texts = vec!["Group results"];
        for r in 0..4 {
            let y = 30.0 + 30.0 * r as f32;
            lines.push(BBox::new(10.0, y, 80.0, y + 20.0));
            lines.push(BBox::new(120.0, y, 160.0, y + 20.0));
            lines.push(BBox::new(200.0, y, 240.0, y + 20.0));
            texts.extend(["Item name", "12", "3.4"]);
        }
        let got = find_text_grid(&lines, &texts).expect("a table");
        assert_eq!(got, BBox::new(10.0, 0.0, 240.0, 140.0));
    }

    #[test]
    fn two_columns_of_prose_are_not_a_table() {
        let mut lines = Vec::new();
        let mut texts = Vec::new();
        for r in 0..10 {
            let y = 30.0 * r as f32;
            lines.push(BBox::new(0.0, y, 400.0, y + 20.0));
            lines.push(BBox::new(450.0, y, 850.0, y + 20.0));
            texts.extend(["quick brown fox", "words follow here"]);
        }
        assert_eq!(find_text_grid(&lines, &texts), None);
        // Short cells without a channel through them (ragged pieces of one line) are no table.
        // (end of the left piece, start of the right piece) per row: the gaps do not line up.
        let lines: Vec<BBox> = [(100.0, 90.0), (150.0, 140.0), (50.0, 45.0)]
            .iter()
            .enumerate()
            .flat_map(|(r, &(end, start))| {
                let y = 30.0 * r as f32;
                [
                    BBox::new(0.0, y, end, y + 20.0),
                    BBox::new(start, y, 200.0, y + 20.0),
                ]
            })
            .collect();
        assert_eq!(find_text_grid(&lines, &["a b"; 6]), None);
    }
}
