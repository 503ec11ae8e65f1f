//! The output parser on hand-written answers in GLM-4.5V's formats: Markdown pages with boxes,
//! HTML tables with spans, chart and prescription JSON, thinking, crops, and the failure paths
//! (loops, truncation, malformed and empty answers).

use folio_schemas::{BBox, BlockKind};
use folio_workers::engines::glm45v::page_parse::{
    parse_page, PageParseError, PageParseInput, ParsedPage,
};
use folio_workers::engines::glm45v::profiles::{Profile, ProfileKind};

const B0: &str = "<|begin_of_box|>";
const B1: &str = "<|end_of_box|>";

fn parse(kind: ProfileKind, raw: &str) -> Result<ParsedPage, PageParseError> {
    parse_with(kind, raw, false, None)
}

fn parse_with(
    kind: ProfileKind,
    raw: &str,
    truncated: bool,
    region: Option<[f32; 4]>,
) -> Result<ParsedPage, PageParseError> {
    let profile = Profile::new(kind);
    parse_page(&PageParseInput {
        profile: &profile,
        raw,
        truncated,
        image_size: (1000, 2000),
        region,
        block_id_prefix: "p1-",
    })
}

fn boxed(b: [u32; 4]) -> String {
    format!("{B0}[{},{},{},{}]{B1}", b[0], b[1], b[2], b[3])
}

#[test]
fn document_page_with_boxes_headings_lists_formulas_and_a_table() {
    let raw = format!(
        "{}\n# Annual Report 2023\n\n{}\nRevenue grew by 12% compared\nto the previous year.\n\n\
         {}\n- first point\n{}\n- second point\n  continued here\n\n{}\n$$\nE = mc^2\n$$\n\n{}\n\
         <table><thead><tr><th>Region</th><th colspan=\"2\">Sales</th></tr></thead>\
         <tr><td rowspan=\"2\">North</td><td>10</td><td>12</td></tr><tr><td>11</td><td>13</td></tr></table>\n\n\
         {}\n![figure](Bar chart of sales by quarter)",
        boxed([100, 50, 900, 100]),
        boxed([100, 120, 900, 200]),
        boxed([100, 210, 900, 230]),
        boxed([100, 240, 900, 270]),
        boxed([300, 300, 700, 340]),
        boxed([100, 400, 900, 600]),
        boxed([100, 650, 900, 900]),
    );
    let page = parse(ProfileKind::Document, &raw).expect("parses");
    let kinds: Vec<BlockKind> = page.blocks.iter().map(|b| b.kind).collect();
    assert_eq!(
        kinds,
        [
            BlockKind::Title,
            BlockKind::Text,
            BlockKind::ListItem,
            BlockKind::ListItem,
            BlockKind::Formula,
            BlockKind::Table,
            BlockKind::Figure
        ]
    );
    let b = &page.blocks;
    assert_eq!(b[0].id, "p1-b1");
    assert_eq!(b[0].text.as_deref(), Some("Annual Report 2023"));
    // 0..1000 of a 1000×2000 image: y doubles.
    assert_eq!(b[0].bbox, BBox([100.0, 100.0, 900.0, 200.0]));
    assert_eq!(
        b[1].text.as_deref(),
        Some("Revenue grew by 12% compared\nto the previous year.")
    );
    assert_eq!(b[3].text.as_deref(), Some("second point continued here"));
    assert_eq!(
        b[4].formula.as_ref().map(|f| f.latex.as_str()),
        Some("E = mc^2")
    );
    let table = b[5].table.as_ref().expect("table");
    assert_eq!((table.n_rows, table.n_cols), (3, 3));
    let north = table
        .cells
        .iter()
        .find(|c| c.text == "North")
        .expect("North");
    assert_eq!(
        (north.row, north.col, north.row_span, north.col_span),
        (1, 0, 2, 1)
    );
    let sales = table
        .cells
        .iter()
        .find(|c| c.text == "Sales")
        .expect("Sales");
    assert_eq!((sales.col, sales.col_span, sales.header), (1, 2, true));
    let eleven = table.cells.iter().find(|c| c.text == "11").expect("11");
    assert_eq!((eleven.row, eleven.col), (2, 1));
    assert!(table.html.contains("<td rowspan=\"2\">North</td>"));
    assert_eq!(b[6].text.as_deref(), Some("Bar chart of sales by quarter"));
    assert_eq!(b[6].bbox, BBox([100.0, 1300.0, 900.0, 1800.0]));
    assert!(page.warnings.is_empty(), "{:?}", page.warnings);
    assert_eq!(page.reasoning, None);
}

#[test]
fn boxes_after_blocks_and_missing_boxes() {
    let raw = format!(
        "Invoice 42{}\n\nTotal: 12.00 EUR{}\n\nThank you",
        boxed([0, 0, 500, 50]),
        boxed([0, 900, 500, 950])
    );
    let page = parse(ProfileKind::Document, &raw).expect("parses");
    assert_eq!(page.blocks.len(), 3);
    assert_eq!(page.blocks[0].text.as_deref(), Some("Invoice 42"));
    assert_eq!(page.blocks[0].bbox, BBox([0.0, 0.0, 500.0, 100.0]));
    assert_eq!(page.blocks[1].bbox, BBox([0.0, 1800.0, 500.0, 1900.0]));
    // No box for the last block: the whole page and a warning.
    assert_eq!(page.blocks[2].bbox, BBox([0.0, 0.0, 1000.0, 2000.0]));
    assert!(page.warnings.iter().any(|w| w.contains("p1-b3 has no box")));
}

#[test]
fn crop_regions_map_boxes_back_to_the_page() {
    let raw = format!(
        "{}\nTotal\n\n{}\n42",
        boxed([0, 0, 500, 500]),
        boxed([500, 500, 1000, 1000])
    );
    let page = parse_with(
        ProfileKind::Document,
        &raw,
        false,
        Some([200.0, 400.0, 400.0, 500.0]),
    )
    .expect("parses");
    assert_eq!(page.blocks[0].bbox, BBox([200.0, 400.0, 300.0, 450.0]));
    assert_eq!(page.blocks[1].bbox, BBox([300.0, 450.0, 400.0, 500.0]));
}

#[test]
fn thinking_is_split_off() {
    let raw = "<think>The page has one heading.\nThen a line.</think>\n# Title\n\nBody";
    let page = parse(ProfileKind::Document, raw).expect("parses");
    assert_eq!(
        page.reasoning.as_deref(),
        Some("The page has one heading.\nThen a line.")
    );
    assert_eq!(page.blocks.len(), 2);
    // The prompt may already hold `<think>`: only the close tag is generated.
    let page = parse(
        ProfileKind::Question,
        "It is a receipt.</think>A receipt from ACME.",
    )
    .expect("parses");
    assert_eq!(page.reasoning.as_deref(), Some("It is a receipt."));
    assert_eq!(page.blocks[0].text.as_deref(), Some("A receipt from ACME."));
}

#[test]
fn table_profile_reads_spans_unclosed_tags_and_entities() {
    let raw =
        "<table>\n<tr><th>Name<th>Q1 &amp; Q2<th>Note\n<tr><td rowspan=3>Alpha<td>1<td>a<br>b\n\
               <tr><td colspan='2'>merged\n<tr><td>3<td>&lt;ok&gt;";
    let page = parse(ProfileKind::Table, raw).expect("parses");
    let block = &page.blocks[0];
    assert_eq!(block.kind, BlockKind::Table);
    let t = block.table.as_ref().expect("table");
    assert_eq!((t.n_rows, t.n_cols), (4, 3));
    let text = |r, c| {
        t.cells
            .iter()
            .find(|x| x.row == r && x.col == c)
            .map(|x| x.text.as_str())
    };
    assert_eq!(text(0, 1), Some("Q1 & Q2"));
    assert_eq!(text(1, 2), Some("a\nb"));
    assert_eq!(text(2, 1), Some("merged"));
    assert_eq!(text(3, 2), Some("<ok>"));
    let merged = t.cells.iter().find(|c| c.text == "merged").expect("merged");
    assert_eq!(merged.col_span, 2);
    assert!(page.warnings.iter().any(|w| w.contains("not closed")));
    assert!(t.html.contains("&lt;ok&gt;"));
    assert!(t.html.ends_with("</table>"));
    // The table box is the whole region when the model gave none.
    assert_eq!(block.bbox, BBox([0.0, 0.0, 1000.0, 2000.0]));
}

#[test]
fn table_profile_accepts_a_pipe_table_and_rejects_prose() {
    let page = parse(
        ProfileKind::Table,
        "| Item | Price |\n|---|---|\n| Tea | 2.50 |\n| Cake | 3.00 |",
    )
    .expect("parses");
    let t = page.blocks[0].table.as_ref().expect("table");
    assert_eq!((t.n_rows, t.n_cols), (3, 2));
    assert!(t.cells[0].header && !t.cells[2].header);
    assert!(matches!(
        parse(ProfileKind::Table, "I cannot see a table here."),
        Err(PageParseError::Malformed(_))
    ));
}

#[test]
fn chart_json_maps_to_a_chart_block() {
    let raw = "```json\n{\"chart_type\": \"bar\", \"title\": \"Sales\", \
               \"axes\": {\"x\": {\"title\": \"Quarter\", \"unit\": null}, \"y\": {\"title\": \"Revenue\", \"unit\": \"kEUR\"}}, \
               \"series\": [{\"name\": \"2023\", \"points\": [{\"x\": \"Q1\", \"y\": 10.5}, {\"x\": \"Q2\", \"y\": null}]}, \
               {\"name\": \"2024\", \"points\": [[\"Q1\", \"12%\"], {\"x\": 2, \"y\": 3}]}]}\n```";
    let page = parse(ProfileKind::Chart, raw).expect("parses");
    let block = &page.blocks[0];
    assert_eq!(block.kind, BlockKind::Chart);
    let chart = block.chart.as_ref().expect("chart");
    assert_eq!(chart.chart_type, "bar");
    assert_eq!(chart.title.as_deref(), Some("Sales"));
    assert_eq!(chart.axes["y"].unit.as_deref(), Some("kEUR"));
    assert_eq!(chart.axes["x"].title.as_deref(), Some("Quarter"));
    assert_eq!(chart.series.len(), 2);
    assert_eq!(chart.series[0].points[0].y, Some(10.5));
    assert_eq!(chart.series[0].points[1].y, None);
    assert_eq!(chart.series[1].points[0].y, Some(12.0));
    assert_eq!(chart.series[1].points[1].x, serde_json::json!(2));
    assert!(block
        .text
        .as_deref()
        .is_some_and(|t| t.contains("Q1: 10.5")));
    // The chart block validates against the published page schema.
    serde_json::to_value(block).expect("serialises");
}

#[test]
fn prescription_json_becomes_fields() {
    let raw = "{\"patient\": \"Jane Roe\", \"age\": 54, \"date\": \"2024-03-01\", \"prescriber\": \"Dr. K. Ode\", \
               \"medications\": [{\"name\": \"Amoxicillin\", \"strength\": \"500 mg\", \"form\": \"capsule\", \
               \"frequency\": \"1-0-1\", \"duration\": \"7 days\", \"instructions\": \"after meals\"}, \
               {\"name\": \"Ibuprofen\", \"strength\": \"400 mg\"}], \"pharmacy\": \"Central\"}";
    let page = parse(ProfileKind::Prescription, raw).expect("parses");
    let block = &page.blocks[0];
    assert_eq!(block.kind, BlockKind::Handwriting);
    let f = block.fields.as_ref().expect("fields");
    assert_eq!(f["patient"], "Jane Roe");
    assert_eq!(f["age"], "54");
    let meds = f["medications"].as_array().expect("list");
    assert_eq!(meds.len(), 2);
    assert_eq!(meds[0]["frequency"], "1-0-1");
    assert!(meds[1]["form"].is_null());
    // The record is the one closed schema of folio-schemas: an extra key becomes a warning.
    assert!(f.get("extra").is_none() && f.get("pharmacy").is_none());
    let record: folio_schemas::Prescription =
        serde_json::from_value(serde_json::Value::Object(f.clone())).expect("a valid record");
    assert_eq!(record.medications[1].name, "Ibuprofen");
    assert!(page
        .warnings
        .iter()
        .any(|w| w.contains("pharmacy") && w.contains("Central")));
    let text = block.text.as_deref().expect("text");
    assert!(text.starts_with("Patient: Jane Roe, Age: 54"), "{text}");
    assert!(text.contains("- Amoxicillin, 500 mg, capsule, 1-0-1, 7 days, after meals"));
}

#[test]
fn json_profiles_tolerate_trailing_garbage_but_not_broken_json() {
    let page = parse(
        ProfileKind::Prescription,
        "Sure! {\"patient\": \"A\", \"medications\": []} Let me know if you need more.",
    )
    .expect("parses");
    assert!(page.warnings.iter().any(|w| w.contains("ignored")));
    assert!(matches!(
        parse(
            ProfileKind::Chart,
            "{\"chart_type\": \"bar\", \"series\": [}"
        ),
        Err(PageParseError::Malformed(_))
    ));
    assert!(matches!(
        parse(ProfileKind::Chart, "{\"chart_type\": \"bar\"}"),
        Err(PageParseError::Malformed(_))
    ));
    assert!(matches!(
        parse(ProfileKind::Prescription, "{\"foo\": 1}"),
        Err(PageParseError::Malformed(_))
    ));
}

#[test]
fn truncation_is_reported() {
    for (kind, raw) in [
        (
            ProfileKind::Chart,
            "{\"chart_type\": \"line\", \"series\": [{\"na",
        ),
        (ProfileKind::Document, "# Title\n\nSome text that goes on"),
        (ProfileKind::Document, "<think>Let me look at the"),
    ] {
        assert_eq!(
            parse_with(kind, raw, true, None),
            Err(PageParseError::Truncated),
            "{raw}"
        );
    }
    // A complete JSON value that hit the budget (e.g. the stop token did not fit) is kept.
    let page = parse_with(
        ProfileKind::Prescription,
        "{\"patient\": \"B\", \"medications\": []}",
        true,
        None,
    )
    .expect("complete JSON");
    assert!(page.warnings.iter().any(|w| w.contains("token budget")));
}

#[test]
fn repetition_loops_are_reported() {
    let mut raw = String::from("# Prices\n\n<table><tr><td>Tea</td><td>1</td></tr>");
    for _ in 0..30 {
        raw.push_str("<tr><td>Cake</td><td>2</td></tr>");
    }
    match parse_with(ProfileKind::Document, &raw, true, None) {
        Err(PageParseError::RepetitionLoop {
            period, repeats, ..
        }) => {
            assert_eq!(period, "<tr><td>Cake</td><td>2</td></tr>".len());
            assert!(repeats >= 29);
        }
        other => panic!("expected a loop, got {other:?}"),
    }
    let thinking_loop = format!("<think>{}", "I should check again. ".repeat(30));
    assert!(matches!(
        parse_with(ProfileKind::Question, &thinking_loop, true, None),
        Err(PageParseError::RepetitionLoop { .. })
    ));
}

#[test]
fn empty_and_malformed_answers_are_errors() {
    assert_eq!(
        parse(ProfileKind::Document, "  \n "),
        Err(PageParseError::Empty)
    );
    assert_eq!(
        parse(ProfileKind::Document, "<think>hmm</think>"),
        Err(PageParseError::Empty)
    );
    assert!(matches!(
        parse(ProfileKind::Document, "<think>never closed"),
        Err(PageParseError::Malformed(_))
    ));
    // Only box spans with no content: nothing to keep.
    let raw = boxed([1, 2, 3, 4]);
    assert!(parse(ProfileKind::Document, &raw).is_err());
}

#[test]
fn malformed_markdown_is_kept_with_warnings() {
    let raw = "Intro line\n<table><tr><td>a</td><td>b\n\n$$ x^2";
    let page = parse(ProfileKind::Document, raw).expect("parses");
    let kinds: Vec<BlockKind> = page.blocks.iter().map(|b| b.kind).collect();
    assert_eq!(
        kinds,
        [BlockKind::Text, BlockKind::Table, BlockKind::Formula]
    );
    let t = page.blocks[1].table.as_ref().expect("table");
    assert_eq!(t.cells.len(), 2);
    assert_eq!(
        page.blocks[2].formula.as_ref().map(|f| f.latex.as_str()),
        Some("x^2")
    );
    assert!(page.warnings.iter().any(|w| w.contains("not closed")));
}

#[test]
fn question_answers_keep_their_boxes() {
    let raw = format!("The signature is here: {}", boxed([600, 900, 900, 950]));
    let page = parse(ProfileKind::Question, &raw).expect("parses");
    assert_eq!(
        page.blocks[0].text.as_deref(),
        Some("The signature is here:")
    );
    assert_eq!(page.blocks[0].bbox, BBox([600.0, 1800.0, 900.0, 1900.0]));
}
