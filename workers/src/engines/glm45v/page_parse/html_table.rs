//! A tolerant reader of the model's HTML tables (and Markdown pipe tables) → `Table`.
//!
//! Hand-written rather than html5ever/scraper: only `<table>`, `<thead>`/`<tbody>`/`<tfoot>`,
//! `<tr>`, `<th>`, `<td>` and `<br>` matter; scraper would add about twenty crates (html5ever,
//! selectors, cssparser, string_cache, phf, …) to a build on a shared two-core machine, and
//! html5ever's tree builder "foster-parents" stray text out of the table, losing cell text the
//! model wrote in a slightly wrong place. Here cells and rows close implicitly (the next `<td>`
//! or `<tr>`, as HTML does), an unclosed table ends with the text, other tags are dropped with
//! their text kept, and entities are decoded. Cells are placed on a grid that honours
//! `rowspan`/`colspan`, and the HTML is re-emitted clean.

use folio_schemas::{Table, TableCell};

/// Spans are clamped to this (a model writing `colspan="99999"` must not allocate a grid).
const MAX_SPAN: u32 = 200;

#[derive(Debug, Default)]
struct RawCell {
    text: String,
    row_span: u32,
    col_span: u32,
    header: bool,
}

/// The first HTML table of `text`, else a Markdown pipe table; an error when neither is there.
pub fn parse_any_table(text: &str, warnings: &mut Vec<String>) -> Result<Table, String> {
    if find_ci(text, "<table").is_some() || find_ci(text, "<tr").is_some() {
        return parse_html_table(text, warnings);
    }
    parse_pipe_table(text).ok_or_else(|| "no table in the answer".to_string())
}

/// The first `<table>` of `html` (from its first `<table` or `<tr`).
pub fn parse_html_table(html: &str, warnings: &mut Vec<String>) -> Result<Table, String> {
    let start = find_ci(html, "<table")
        .or_else(|| find_ci(html, "<tr"))
        .ok_or("no <table> in the answer")?;
    let mut rows: Vec<Vec<RawCell>> = Vec::new();
    let mut row: Option<Vec<RawCell>> = None;
    let mut cell: Option<RawCell> = None;
    let mut in_head = false;
    let mut closed = false;
    let mut stray = String::new();
    let mut depth = 0usize;
    let mut rest = &html[start..];
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            text_into(&mut cell, &mut stray, rest);
            break;
        };
        text_into(&mut cell, &mut stray, &rest[..lt]);
        let Some(gt) = rest[lt..].find('>') else {
            // A tag cut off at the end of the output.
            break;
        };
        let tag = Tag::parse(&rest[lt + 1..lt + gt]);
        rest = &rest[lt + gt + 1..];
        match (tag.name.as_str(), tag.closing) {
            ("table", false) => {
                depth += 1;
                if depth > 1 {
                    warnings.push("a nested table was flattened into its cell".into());
                }
            }
            ("table", true) => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    closed = true;
                    break;
                }
            }
            ("td" | "th" | "br", _) if depth > 1 => text_into(&mut cell, &mut stray, " "),
            _ if depth > 1 => {}
            ("thead", closing) => in_head = !closing,
            ("tr", false) => {
                close_cell(&mut cell, &mut row);
                if let Some(r) = row.take() {
                    rows.push(r);
                }
                row = Some(Vec::new());
            }
            ("tr", true) => {
                close_cell(&mut cell, &mut row);
                if let Some(r) = row.take() {
                    rows.push(r);
                }
            }
            ("td" | "th", false) => {
                close_cell(&mut cell, &mut row);
                cell = Some(RawCell {
                    text: String::new(),
                    row_span: tag.span("rowspan"),
                    col_span: tag.span("colspan"),
                    header: tag.name == "th" || in_head,
                });
            }
            ("td" | "th", true) => close_cell(&mut cell, &mut row),
            ("br", _) | ("p", true) | ("div", true) | ("li", true) => {
                text_into(&mut cell, &mut stray, "\n")
            }
            _ => {}
        }
    }
    close_cell(&mut cell, &mut row);
    if let Some(r) = row.take() {
        rows.push(r);
    }
    rows.retain(|r| !r.is_empty());
    if !closed {
        warnings.push("the HTML table was not closed".into());
    }
    if !stray.trim().is_empty() {
        warnings.push(format!(
            "text outside table cells was ignored: {:?}",
            stray.trim().chars().take(60).collect::<String>()
        ));
    }
    if rows.is_empty() {
        return Err("the HTML table has no cells".into());
    }
    Ok(layout(rows, warnings))
}

/// Places cells on the grid (skipping slots taken by spans from above).
fn layout(rows: Vec<Vec<RawCell>>, warnings: &mut Vec<String>) -> Table {
    let n_rows = rows.len() as u32;
    let mut taken: Vec<Vec<bool>> = vec![Vec::new(); rows.len()];
    let mut cells = Vec::new();
    let mut clipped = false;
    for (r, raw_row) in rows.into_iter().enumerate() {
        let mut c = 0usize;
        for raw in raw_row {
            while taken[r].get(c).copied().unwrap_or(false) {
                c += 1;
            }
            let row_span = raw.row_span.min(n_rows - r as u32);
            clipped |= row_span < raw.row_span;
            for line in taken.iter_mut().skip(r).take(row_span as usize) {
                if line.len() < c + raw.col_span as usize {
                    line.resize(c + raw.col_span as usize, false);
                }
                line[c..c + raw.col_span as usize]
                    .iter_mut()
                    .for_each(|t| *t = true);
            }
            cells.push(TableCell {
                row: r as u32,
                col: c as u32,
                row_span,
                col_span: raw.col_span,
                text: clean_text(&raw.text),
                header: raw.header,
                bbox: None,
            });
            c += raw.col_span as usize;
        }
    }
    if clipped {
        warnings.push("a rowspan ran past the last row and was clipped".into());
    }
    let n_cols = taken.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let html = to_html(&cells, n_rows);
    Table {
        n_rows,
        n_cols,
        cells,
        html,
    }
}

/// Clean HTML of the cells, row by row.
pub fn to_html(cells: &[TableCell], n_rows: u32) -> String {
    let mut html = String::from("<table>");
    for r in 0..n_rows {
        html.push_str("<tr>");
        for c in cells.iter().filter(|c| c.row == r) {
            let tag = if c.header { "th" } else { "td" };
            html.push('<');
            html.push_str(tag);
            if c.row_span > 1 {
                html.push_str(&format!(" rowspan=\"{}\"", c.row_span));
            }
            if c.col_span > 1 {
                html.push_str(&format!(" colspan=\"{}\"", c.col_span));
            }
            html.push('>');
            html.push_str(&escape(&c.text).replace('\n', "<br>"));
            html.push_str("</");
            html.push_str(tag);
            html.push('>');
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

/// The table as text: one line per row, cells separated by ` | `.
pub fn table_text(t: &Table) -> String {
    (0..t.n_rows)
        .map(|r| {
            t.cells
                .iter()
                .filter(|c| c.row == r)
                .map(|c| c.text.replace('\n', " "))
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A Markdown pipe table (`| a | b |` rows, `|---|` separator rows skipped).
pub fn parse_pipe_table(text: &str) -> Option<Table> {
    let mut rows: Vec<Vec<RawCell>> = Vec::new();
    let mut header_rows = 0;
    for line in text.lines().map(str::trim) {
        if !line.starts_with('|') {
            if rows.is_empty() {
                continue;
            }
            break;
        }
        let inner = line.trim_start_matches('|');
        let inner = inner.strip_suffix('|').unwrap_or(inner);
        let parts: Vec<&str> = inner.split('|').map(str::trim).collect();
        if parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| matches!(c, '-' | ':' | ' ')))
        {
            header_rows = rows.len();
            continue;
        }
        rows.push(
            parts
                .into_iter()
                .map(|p| RawCell {
                    text: decode_entities(p),
                    row_span: 1,
                    col_span: 1,
                    header: false,
                })
                .collect(),
        );
    }
    if rows.is_empty() {
        return None;
    }
    for row in rows.iter_mut().take(header_rows) {
        row.iter_mut().for_each(|c| c.header = true);
    }
    Some(layout(rows, &mut Vec::new()))
}

struct Tag {
    name: String,
    closing: bool,
    attrs: String,
}

impl Tag {
    fn parse(inner: &str) -> Tag {
        let inner = inner.trim().trim_end_matches('/');
        let (closing, inner) = match inner.strip_prefix('/') {
            Some(i) => (true, i.trim_start()),
            None => (false, inner),
        };
        let end = inner
            .find(|c: char| c.is_whitespace())
            .unwrap_or(inner.len());
        Tag {
            name: inner[..end].to_ascii_lowercase(),
            closing,
            attrs: inner[end..].to_ascii_lowercase(),
        }
    }

    /// `rowspan`/`colspan` (quoted or not); 1 when absent or not a number, clamped.
    fn span(&self, name: &str) -> u32 {
        let Some(pos) = self.attrs.find(name) else {
            return 1;
        };
        let after = self.attrs[pos + name.len()..].trim_start();
        let Some(value) = after.strip_prefix('=') else {
            return 1;
        };
        let digits: String = value
            .trim_start()
            .trim_start_matches(['"', '\''])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<u32>().unwrap_or(1).clamp(1, MAX_SPAN)
    }
}

fn text_into(cell: &mut Option<RawCell>, stray: &mut String, text: &str) {
    match cell {
        Some(c) => c.text.push_str(text),
        None => stray.push_str(text),
    }
}

fn close_cell(cell: &mut Option<RawCell>, row: &mut Option<Vec<RawCell>>) {
    if let Some(c) = cell.take() {
        row.get_or_insert_with(Vec::new).push(c);
    }
}

/// Entities decoded, runs of spaces collapsed, `<br>` newlines kept, trimmed.
fn clean_text(raw: &str) -> String {
    decode_entities(raw)
        .split('\n')
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after.find(';').filter(|&n| n <= 10);
        let decoded = semi.and_then(|n| entity(&after[..n]).map(|c| (c, n)));
        match decoded {
            Some((c, n)) => {
                out.push(c);
                rest = &after[n + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => {
            let code = name.strip_prefix('#')?;
            let n = match code.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => code.parse().ok()?,
            };
            char::from_u32(n)
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Case-insensitive find of an ASCII needle.
fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    hay.as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}
