//! One block's detail panel: kind, id, confidence, box, what its kind carries — the table rebuilt
//! from its cells (spans kept), chart axes and series, the formula, named fields (a
//! prescription's patient and medications) — and its text. Hidden until its box is selected.

use super::{kind_label, px};
use folio_schemas::{Block, Chart, Table};
use maud::{html, Markup};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The panel of block `n` (1-based reading order) of `page`.
pub(super) fn detail(page: u32, n: usize, b: &Block) -> Markup {
    html! {
        section.detail id={ "d-" (page) "-" (n) } data-block=(b.id) hidden {
            h3 { "Page " (page) ", block " (n) " · " (kind_label(b.kind)) }
            dl {
                dt { "Id" } dd { code { (b.id) } }
                dt { "Confidence" }
                dd.confidence {
                    @match b.confidence { Some(c) => (format!("{c:.3}")), None => "—" }
                }
                dt { "Box" }
                dd { (px(b.bbox.x0())) ", " (px(b.bbox.y0())) " – " (px(b.bbox.x1())) ", " (px(b.bbox.y1())) }
                @if !b.lines.is_empty() { dt { "Lines" } dd { (b.lines.len()) } }
            }
            @if let Some(table) = &b.table { (table_markup(table)) }
            @if let Some(chart) = &b.chart { (chart_markup(chart)) }
            @if let Some(formula) = &b.formula {
                h4 { "Formula (LaTeX)" }
                pre.text { (formula.latex) }
            }
            @if let Some(fields) = &b.fields {
                h4 { "Fields" }
                (fields_markup(fields))
            }
            @if let Some(text) = b.text.as_deref().filter(|t| !t.trim().is_empty()) {
                h4 { "Text" }
                pre.text { (text) }
            }
        }
    }
}

/// The table from its cells, row by row; a cell spanning rows or columns keeps its span, so the
/// positions it covers are simply not repeated.
fn table_markup(t: &Table) -> Markup {
    let mut rows: BTreeMap<u32, Vec<&folio_schemas::TableCell>> = BTreeMap::new();
    for cell in &t.cells {
        rows.entry(cell.row).or_default().push(cell);
    }
    for cells in rows.values_mut() {
        cells.sort_by_key(|c| c.col);
    }
    html! {
        h4 { "Table · " (t.n_rows) " × " (t.n_cols) " · " (t.cells.len()) " cell(s)" }
        table.cells {
            @for cells in rows.values() {
                tr {
                    @for c in cells {
                        @let (rs, cs) = (c.row_span.max(1), c.col_span.max(1));
                        @if c.header {
                            th rowspan=[(rs > 1).then_some(rs)] colspan=[(cs > 1).then_some(cs)] { (c.text) }
                        } @else {
                            td rowspan=[(rs > 1).then_some(rs)] colspan=[(cs > 1).then_some(cs)] { (c.text) }
                        }
                    }
                }
            }
        }
    }
}

fn chart_markup(chart: &Chart) -> Markup {
    html! {
        h4 {
            "Chart (" (chart.chart_type) ")"
            @if let Some(title) = &chart.title { ": " (title) }
        }
        @if !chart.axes.is_empty() {
            dl {
                @for (name, axis) in &chart.axes {
                    dt { (name) " axis" }
                    dd {
                        (axis.title.as_deref().unwrap_or("—"))
                        @if let Some(unit) = &axis.unit { " (" (unit) ")" }
                    }
                }
            }
        }
        @for series in &chart.series {
            table.data.series {
                caption { (series.name) }
                tr { th { "x" } th { "y" } }
                @for p in &series.points {
                    tr {
                        td { (scalar(&p.x)) }
                        td { @match p.y { Some(y) => (y), None => "—" } }
                    }
                }
            }
        }
    }
}

/// Named fields as a definition list; lists of records (medications) become tables.
fn fields_markup(fields: &Map<String, Value>) -> Markup {
    html! {
        dl.fields {
            @for (name, value) in fields {
                dt { (name.replace('_', " ")) }
                dd { (value_markup(value)) }
            }
        }
    }
}

fn value_markup(value: &Value) -> Markup {
    match value {
        Value::Object(map) => fields_markup(map),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            records_table(items)
        }
        Value::Array(items) if items.is_empty() => html! { "—" },
        Value::Array(items) => html! {
            @for (i, item) in items.iter().enumerate() {
                @if i > 0 { ", " }
                (value_markup(item))
            }
        },
        other => html! { (scalar(other)) },
    }
}

/// Records (JSON objects) as a table: one column per key seen, in first-seen order.
fn records_table(items: &[Value]) -> Markup {
    let mut seen = BTreeSet::new();
    let mut columns: Vec<&str> = Vec::new();
    for item in items.iter().filter_map(Value::as_object) {
        for key in item.keys() {
            if seen.insert(key.as_str()) {
                columns.push(key);
            }
        }
    }
    html! {
        table.data.records {
            tr { @for c in &columns { th { (c.replace('_', " ")) } } }
            @for item in items.iter().filter_map(Value::as_object) {
                tr {
                    @for c in &columns {
                        td { @match item.get(*c) { Some(v) => (value_markup(v)), None => "" } }
                    }
                }
            }
        }
    }
}

/// A JSON scalar as text (strings without quotes; `null` as a dash).
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}
