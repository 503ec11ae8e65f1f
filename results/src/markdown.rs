//! Blocks to Markdown, in reading order.
//!
//! Titles become headings, list items bullets, captions italics, formulas `$$…$$`, tables a pipe table
//! when they have no spanning cells and HTML otherwise, charts a heading plus a data table. Page
//! headers and footers are kept as HTML comments: visible in the source, out of the reading flow.

use folio_schemas::{Block, BlockKind, Chart, Table};
use std::fmt::Write;

/// The Markdown of one page.
pub fn page_markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    let mut previous: Option<BlockKind> = None;
    for block in blocks {
        let Some(md) = block_markdown(block) else {
            continue;
        };
        if previous.is_some() {
            // Items of one list stay together; every other block is a paragraph of its own.
            let same_list =
                previous == Some(BlockKind::ListItem) && block.kind == BlockKind::ListItem;
            out.push_str(if same_list { "\n" } else { "\n\n" });
        }
        out.push_str(&md);
        previous = Some(block.kind);
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// The Markdown of a whole document from its pages' Markdown (`None` = the page failed).
pub fn document_markdown<'a>(
    pages: impl IntoIterator<Item = (u32, Result<&'a str, &'a str>)>,
) -> String {
    let mut out = String::new();
    for (page, md) in pages {
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "<!-- page {page} -->\n");
        match md {
            Ok(md) => out.push_str(md),
            Err(code) => {
                let _ = writeln!(out, "<!-- page {page} could not be processed: {code} -->");
            }
        }
    }
    out
}

fn block_markdown(block: &Block) -> Option<String> {
    let text = block.text.as_deref().map(flow_text).unwrap_or_default();
    let md = match block.kind {
        BlockKind::Table => match &block.table {
            Some(t) => table_markdown(t),
            None if !text.is_empty() => text,
            None => return None,
        },
        BlockKind::Chart => chart_markdown(block.chart.as_ref(), &text, &block.id),
        BlockKind::Figure => {
            let mut s = format!("![Figure {}](#{})", block.id, block.id);
            if !text.is_empty() {
                let _ = write!(s, "\n\n{text}");
            }
            s
        }
        BlockKind::Formula => match &block.formula {
            Some(f) => format!("$$\n{}\n$$", f.latex.trim()),
            None if !text.is_empty() => format!("$$\n{text}\n$$"),
            None => return None,
        },
        _ if text.is_empty() => return None,
        BlockKind::Title => format!("## {}", text.replace('\n', " ")),
        BlockKind::ListItem => list_item(&text),
        BlockKind::Caption => format!("*{text}*"),
        BlockKind::Header | BlockKind::Footer => {
            let which = if block.kind == BlockKind::Header {
                "header"
            } else {
                "footer"
            };
            format!("<!-- page {which}: {} -->", text.replace("--", "- -"))
        }
        BlockKind::Signature => format!("*[signature]* {text}"),
        BlockKind::Stamp => format!("*[stamp]* {text}"),
        BlockKind::Text | BlockKind::Handwriting | BlockKind::Reference => text,
    };
    Some(md)
}

/// A list item: `3. text` / `3) text` stays numbered (`3. text`), a bullet (`•`, `-`, `*`, …)
/// becomes `- text`, anything else gets a `- ` in front.
fn list_item(text: &str) -> String {
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    if (1..=9).contains(&digits) {
        let rest = &text[digits..];
        if let Some(item) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return format!("{}. {}", &text[..digits], item.trim_start());
        }
    }
    let mut chars = text.chars();
    match chars.next() {
        Some('•' | '·' | '▪' | '◦' | '‣' | '●' | '○' | '■' | '□' | '-' | '–' | '—' | '*' | '»')
            if chars.as_str().starts_with(' ') =>
        {
            format!("- {}", chars.as_str().trim_start())
        }
        _ => format!("- {text}"),
    }
}

/// Join a block's lines into flowing text: a line ending in a hyphen after a letter is joined to the
/// next without the hyphen; other lines are joined with a space.
pub fn flow_text(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if out.ends_with('-')
            && out.chars().rev().nth(1).is_some_and(char::is_alphabetic)
            && line.chars().next().is_some_and(char::is_lowercase)
        {
            out.pop();
        } else if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}

fn table_markdown(t: &Table) -> String {
    let spans = t.cells.iter().any(|c| c.row_span > 1 || c.col_span > 1);
    if spans || t.n_rows == 0 || t.n_cols == 0 {
        return t.html.clone();
    }
    let mut grid = vec![vec![String::new(); t.n_cols as usize]; t.n_rows as usize];
    for c in &t.cells {
        if let Some(cell) = grid
            .get_mut(c.row as usize)
            .and_then(|r| r.get_mut(c.col as usize))
        {
            *cell = c.text.replace('\n', " ").replace('|', "\\|");
        }
    }
    let mut out = String::new();
    for (i, row) in grid.iter().enumerate() {
        let _ = writeln!(out, "| {} |", row.join(" | "));
        if i == 0 {
            let _ = writeln!(out, "|{}", " --- |".repeat(row.len()));
        }
    }
    out.trim_end().to_string()
}

fn chart_markdown(chart: Option<&Chart>, text: &str, id: &str) -> String {
    let Some(chart) = chart else {
        return if text.is_empty() {
            format!("![Chart {id}](#{id})")
        } else {
            format!("![Chart {id}](#{id})\n\n{text}")
        };
    };
    let mut out = format!("**Chart ({})**", chart.chart_type);
    if let Some(title) = &chart.title {
        let _ = write!(out, ": {title}");
    }
    out.push_str("\n\n| series | x | y |\n| --- | --- | --- |\n");
    for s in &chart.series {
        for p in &s.points {
            let x = match &p.x {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let y = p.y.map(|v| v.to_string()).unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                s.name.replace('|', "\\|"),
                x.replace('|', "\\|"),
                y
            );
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use folio_schemas::{BBox, TableCell};

    fn text_block(kind: BlockKind, text: &str) -> Block {
        Block {
            text: Some(text.into()),
            ..Block::new("p1-b1", kind, BBox::new(0.0, 0.0, 1.0, 1.0))
        }
    }

    #[test]
    fn kinds_render_in_order() {
        use BlockKind::{Footer, Header, ListItem, Text, Title};
        let cases: [(&[(BlockKind, &str)], &str); 2] = [
            (
                &[
                    (Header, "Journal 1962"),
                    (Title, "Results"),
                    (Text, "The exam-\nple shows\nthat"),
                    (ListItem, "first"),
                ],
                "<!-- page header: Journal 1962 -->\n\n## Results\n\nThe example shows that\n\n- first\n",
            ),
            // Numbered items keep their numbers; items of one list stay together.
            (
                &[
                    (Text, "Steps:"),
                    (ListItem, "1. Mix the\nflour"),
                    (ListItem, "6) Repeat"),
                    (ListItem, "• a bullet"),
                    (ListItem, "plain"),
                    (Footer, "12"),
                ],
                "Steps:\n\n1. Mix the flour\n6. Repeat\n- a bullet\n- plain\n\n<!-- page footer: 12 -->\n",
            ),
        ];
        for (blocks, want) in cases {
            let blocks: Vec<Block> = blocks.iter().map(|&(k, t)| text_block(k, t)).collect();
            assert_eq!(page_markdown(&blocks), want);
        }
    }

    #[test]
    fn simple_tables_become_pipe_tables_and_spanning_ones_html() {
        let cell = |row, col, text: &str| TableCell {
            row,
            col,
            row_span: 1,
            col_span: 1,
            text: text.into(),
            header: row == 0,
            bbox: None,
        };
        let mut t = Table {
            n_rows: 2,
            n_cols: 2,
            cells: vec![
                cell(0, 0, "a"),
                cell(0, 1, "b|c"),
                cell(1, 0, "1"),
                cell(1, 1, "2"),
            ],
            html: "<table>…</table>".into(),
        };
        let block = Block {
            table: Some(t.clone()),
            ..Block::new("t", BlockKind::Table, BBox::new(0.0, 0.0, 1.0, 1.0))
        };
        assert_eq!(
            page_markdown(&[block]),
            "| a | b\\|c |\n| --- | --- |\n| 1 | 2 |\n"
        );
        t.cells[0].col_span = 2;
        assert_eq!(table_markdown(&t), "<table>…</table>");
    }

    #[test]
    fn document_marks_pages_and_failures() {
        let md = document_markdown([(1, Ok("hello\n")), (2, Err("image_undecodable"))]);
        assert_eq!(
            md,
            "<!-- page 1 -->\n\nhello\n\n<!-- page 2 -->\n\n<!-- page 2 could not be processed: image_undecodable -->\n"
        );
    }
}
