//! From structure tokens to a table: the cell grid (row/column spans), OCR lines placed in cells,
//! and the HTML and plain-text renderings.

use super::slanet::StructToken;
use folio_schemas::BBox;

/// A cell of the grid; `header` when it came from `<thead>`.
#[derive(Debug, Clone, PartialEq)]
pub struct GridCell {
    pub row: u32,
    pub col: u32,
    pub row_span: u32,
    pub col_span: u32,
    pub header: bool,
    pub bbox: Option<BBox>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableGrid {
    pub n_rows: u32,
    pub n_cols: u32,
    /// Cells in document order (row by row, left to right).
    pub cells: Vec<GridCell>,
}

const MAX_SPAN: u32 = 1000;

/// Lays the cells of a token stream out on a grid the way HTML does: each cell takes the first
/// column of its row not covered by a cell spanning down from above. Malformed streams (cells
/// outside `<tr>`, missing `>`) are read as leniently as possible.
pub fn build_grid(tokens: &[StructToken]) -> TableGrid {
    let mut cells: Vec<GridCell> = Vec::new();
    let mut occupied: Vec<Vec<bool>> = Vec::new();
    let mut row: Option<usize> = None;
    let mut in_thead = false;
    let mut pending: Option<(Option<BBox>, u32, u32)> = None;

    let mut place = |row: usize,
                     bbox: Option<BBox>,
                     rs: u32,
                     cs: u32,
                     header: bool,
                     occupied: &mut Vec<Vec<bool>>| {
        while occupied.len() < row + rs as usize {
            occupied.push(Vec::new());
        }
        let mut col = 0;
        while occupied[row].get(col).copied().unwrap_or(false) {
            col += 1;
        }
        for line in occupied.iter_mut().skip(row).take(rs as usize) {
            if line.len() < col + cs as usize {
                line.resize(col + cs as usize, false);
            }
            line[col..col + cs as usize].fill(true);
        }
        cells.push(GridCell {
            row: row as u32,
            col: col as u32,
            row_span: rs,
            col_span: cs,
            header,
            bbox,
        });
    };

    let mut next_row = 0usize;
    for t in tokens {
        let tok = t.token.as_str();
        let to_bbox = |b: Option<[f32; 4]>| b.map(|b| BBox::new(b[0], b[1], b[2], b[3]));
        match tok {
            "<thead>" => in_thead = true,
            "</thead>" => in_thead = false,
            "<tr>" => {
                row = Some(next_row);
                next_row += 1;
            }
            "</tr>" => row = None,
            "<td></td>" | "<td>" | "<td" => {
                let r = *row.get_or_insert_with(|| {
                    next_row += 1;
                    next_row - 1
                });
                if let Some((bbox, rs, cs)) = pending.take() {
                    place(r, bbox, rs, cs, in_thead, &mut occupied);
                }
                if tok == "<td" {
                    pending = Some((to_bbox(t.bbox), 1, 1));
                } else {
                    place(r, to_bbox(t.bbox), 1, 1, in_thead, &mut occupied);
                }
            }
            ">" | "</td>" => {
                if let (Some((bbox, rs, cs)), Some(r)) = (pending.take(), row) {
                    place(r, bbox, rs, cs, in_thead, &mut occupied);
                }
            }
            attr => {
                if let Some(p) = pending.as_mut() {
                    if let Some(n) = span_value(attr, "rowspan") {
                        p.1 = n;
                    } else if let Some(n) = span_value(attr, "colspan") {
                        p.2 = n;
                    }
                }
            }
        }
    }
    if let (Some((bbox, rs, cs)), Some(r)) = (pending.take(), row) {
        place(r, bbox, rs, cs, in_thead, &mut occupied);
    }
    let n_rows = cells.iter().map(|c| c.row + c.row_span).max().unwrap_or(0);
    let n_cols = cells.iter().map(|c| c.col + c.col_span).max().unwrap_or(0);
    TableGrid {
        n_rows,
        n_cols,
        cells,
    }
}

/// `N` from ` rowspan="N"` when `attr` is that attribute.
fn span_value(attr: &str, name: &str) -> Option<u32> {
    let rest = attr
        .trim()
        .strip_prefix(name)?
        .trim_start()
        .strip_prefix('=')?;
    let n: u32 = rest.trim().trim_matches('"').parse().ok()?;
    Some(n.clamp(1, MAX_SPAN))
}

/// A text line to place in the table: its box (page pixels) and text.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedLine<'a> {
    pub bbox: BBox,
    pub text: &'a str,
}

/// For each line, the cell it belongs to: the cell box covering most of the line, or when none
/// overlaps, the nearest cell box. `None` when the grid has no cell boxes.
pub fn assign_lines(grid: &TableGrid, lines: &[PlacedLine<'_>]) -> Vec<Option<usize>> {
    lines
        .iter()
        .map(|l| {
            let mut best: Option<(usize, f32, f32)> = None;
            for (i, c) in grid.cells.iter().enumerate() {
                let Some(b) = c.bbox else { continue };
                let overlap = l.bbox.intersection_area(&b) / l.bbox.area().max(1e-6);
                let d = center_distance(&l.bbox, &b);
                let better = match best {
                    None => true,
                    Some((_, bo, bd)) => {
                        overlap > bo + 1e-6 || ((overlap - bo).abs() <= 1e-6 && d < bd)
                    }
                };
                if better {
                    best = Some((i, overlap, d));
                }
            }
            best.map(|b| b.0)
        })
        .collect()
}

fn center_distance(a: &BBox, b: &BBox) -> f32 {
    let (ax, ay) = ((a.x0() + a.x1()) / 2.0, (a.y0() + a.y1()) / 2.0);
    let (bx, by) = ((b.x0() + b.x1()) / 2.0, (b.y0() + b.y1()) / 2.0);
    ((ax - bx).powi(2) + (ay - by).powi(2)).sqrt()
}

/// Cell texts: the lines assigned to each cell, top to bottom then left to right, joined by spaces.
pub fn cell_texts(
    grid: &TableGrid,
    lines: &[PlacedLine<'_>],
    assignment: &[Option<usize>],
) -> Vec<String> {
    let mut per_cell: Vec<Vec<&PlacedLine<'_>>> = vec![Vec::new(); grid.cells.len()];
    for (l, a) in lines.iter().zip(assignment) {
        if let Some(c) = a.and_then(|c| per_cell.get_mut(c)) {
            c.push(l);
        }
    }
    per_cell
        .into_iter()
        .map(|mut ls| {
            ls.sort_by(|a, b| {
                let same_row = a.bbox.y0().max(b.bbox.y0())
                    < a.bbox.y1().min(b.bbox.y1()) - 0.5 * a.bbox.height().min(b.bbox.height());
                if same_row {
                    a.bbox.x0().total_cmp(&b.bbox.x0())
                } else {
                    a.bbox.y0().total_cmp(&b.bbox.y0())
                }
            });
            ls.iter()
                .map(|l| l.text.trim())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// `<table>` with `<thead>` (cells as `<th>`) for the leading header rows, `<tbody>` for the rest,
/// `rowspan`/`colspan` where spans exceed 1; text is HTML-escaped.
pub fn to_html(grid: &TableGrid, texts: &[String]) -> String {
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); grid.n_rows as usize];
    for (i, c) in grid.cells.iter().enumerate() {
        if let Some(r) = rows.get_mut(c.row as usize) {
            r.push(i);
        }
    }
    let header_rows = rows
        .iter()
        .take_while(|r| !r.is_empty() && r.iter().all(|&i| grid.cells[i].header))
        .count();
    let mut html = String::from("<table>");
    for (ri, r) in rows.iter().enumerate() {
        if ri == 0 && header_rows > 0 {
            html.push_str("<thead>");
        }
        if ri == header_rows {
            html.push_str("<tbody>");
        }
        html.push_str("<tr>");
        let tag = if ri < header_rows { "th" } else { "td" };
        for &i in r {
            let c = &grid.cells[i];
            html.push('<');
            html.push_str(tag);
            if c.row_span > 1 {
                html.push_str(&format!(" rowspan=\"{}\"", c.row_span));
            }
            if c.col_span > 1 {
                html.push_str(&format!(" colspan=\"{}\"", c.col_span));
            }
            html.push('>');
            html.push_str(&escape_html(texts.get(i).map(String::as_str).unwrap_or("")));
            html.push_str("</");
            html.push_str(tag);
            html.push('>');
        }
        html.push_str("</tr>");
        if ri + 1 == header_rows {
            html.push_str("</thead>");
        }
    }
    if rows.len() > header_rows {
        html.push_str("</tbody>");
    }
    html.push_str("</table>");
    html
}

/// Plain text: one line per row, cells at their column positions separated by tabs (columns
/// covered by a span are empty), trailing empty cells dropped.
pub fn to_text(grid: &TableGrid, texts: &[String]) -> String {
    let mut rows: Vec<Vec<&str>> = vec![vec![""; grid.n_cols as usize]; grid.n_rows as usize];
    for (c, t) in grid.cells.iter().zip(texts) {
        if let Some(slot) = rows
            .get_mut(c.row as usize)
            .and_then(|r| r.get_mut(c.col as usize))
        {
            *slot = t.as_str();
        }
    }
    rows.iter()
        .map(|r| {
            let used = r.iter().rposition(|t| !t.is_empty()).map_or(0, |p| p + 1);
            r[..used].join("\t")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(t: &str) -> StructToken {
        StructToken {
            token: t.to_string(),
            bbox: None,
        }
    }

    fn cell(t: &str, b: [f32; 4]) -> StructToken {
        StructToken {
            token: t.to_string(),
            bbox: Some(b),
        }
    }

    /// | H1 (colspan 2)     | H3 |
    /// | a (rowspan 2) | b  | c  |
    /// |               | d  | e  |
    fn spanning_tokens() -> Vec<StructToken> {
        let mut v = vec![tok("<thead>"), tok("<tr>")];
        v.extend([
            cell("<td", [0.0, 0.0, 200.0, 20.0]),
            tok(" colspan=\"2\""),
            tok(">"),
            tok("</td>"),
        ]);
        v.extend([
            cell("<td></td>", [200.0, 0.0, 300.0, 20.0]),
            tok("</tr>"),
            tok("</thead>"),
            tok("<tbody>"),
            tok("<tr>"),
        ]);
        v.extend([
            cell("<td", [0.0, 20.0, 100.0, 60.0]),
            tok(" rowspan=\"2\""),
            tok(">"),
            tok("</td>"),
        ]);
        v.extend([
            cell("<td></td>", [100.0, 20.0, 200.0, 40.0]),
            cell("<td></td>", [200.0, 20.0, 300.0, 40.0]),
        ]);
        v.extend([
            tok("</tr>"),
            tok("<tr>"),
            cell("<td></td>", [100.0, 40.0, 200.0, 60.0]),
        ]);
        v.extend([
            cell("<td></td>", [200.0, 40.0, 300.0, 60.0]),
            tok("</tr>"),
            tok("</tbody>"),
        ]);
        v
    }

    #[test]
    fn grid_follows_html_span_rules() {
        let g = build_grid(&spanning_tokens());
        assert_eq!((g.n_rows, g.n_cols), (3, 3));
        let pos: Vec<(u32, u32, u32, u32, bool)> = g
            .cells
            .iter()
            .map(|c| (c.row, c.col, c.row_span, c.col_span, c.header))
            .collect();
        assert_eq!(
            pos,
            vec![
                (0, 0, 1, 2, true),
                (0, 2, 1, 1, true),
                (1, 0, 2, 1, false),
                (1, 1, 1, 1, false),
                (1, 2, 1, 1, false),
                (2, 1, 1, 1, false),
                (2, 2, 1, 1, false),
            ]
        );
    }

    #[test]
    fn lines_go_to_the_cell_that_covers_them() {
        let g = build_grid(&spanning_tokens());
        let lines = [
            PlacedLine {
                bbox: BBox::new(10.0, 2.0, 150.0, 18.0),
                text: "Header",
            },
            PlacedLine {
                bbox: BBox::new(110.0, 45.0, 190.0, 55.0),
                text: "d",
            },
            PlacedLine {
                bbox: BBox::new(5.0, 30.0, 60.0, 40.0),
                text: "a1",
            },
            PlacedLine {
                bbox: BBox::new(5.0, 42.0, 60.0, 52.0),
                text: "a2",
            },
            // Outside every cell: nearest is the bottom-right cell.
            PlacedLine {
                bbox: BBox::new(290.0, 70.0, 320.0, 80.0),
                text: "far",
            },
        ];
        let a = assign_lines(&g, &lines);
        assert_eq!(a, vec![Some(0), Some(5), Some(2), Some(2), Some(6)]);
        let texts = cell_texts(&g, &lines, &a);
        assert_eq!(texts, vec!["Header", "", "a1 a2", "", "", "d", "far"]);
        let html = to_html(&g, &texts);
        assert_eq!(
            html,
            "<table><thead><tr><th colspan=\"2\">Header</th><th></th></tr></thead><tbody>\
             <tr><td rowspan=\"2\">a1 a2</td><td></td><td></td></tr><tr><td>d</td><td>far</td></tr>\
             </tbody></table>"
        );
        assert_eq!(to_text(&g, &texts), "Header\na1 a2\n\td\tfar");
    }

    #[test]
    fn malformed_streams_do_not_panic() {
        // Cells before any <tr>, an unterminated "<td", stray attributes.
        let toks = vec![
            tok("<td></td>"),
            tok(" colspan=\"x\""),
            tok("<td"),
            tok(" rowspan=\"3\""),
            tok("</tr>"),
            tok(">"),
        ];
        let g = build_grid(&toks);
        assert!(!g.cells.is_empty());
        let html = to_html(&g, &[]);
        assert!(html.starts_with("<table>") && html.ends_with("</table>"));
        assert_eq!(build_grid(&[]), TableGrid::default());
        assert_eq!(to_html(&TableGrid::default(), &[]), "<table></table>");
    }

    #[test]
    fn html_is_escaped_and_spans_parse() {
        assert_eq!(
            escape_html("a<b & \"c\">"),
            "a&lt;b &amp; &quot;c&quot;&gt;"
        );
        assert_eq!(span_value(" colspan=\"4\"", "colspan"), Some(4));
        assert_eq!(span_value(" rowspan=\"0\"", "rowspan"), Some(1));
        assert_eq!(span_value(" rowspan=\"2\"", "colspan"), None);
    }
}
