use super::*;
use folio_schemas::{
    BBox, Block, EngineInfo, PageImage, SourceInfo, Table, TableCell, SCHEMA_VERSION,
};

fn page(n: u32, blocks: Vec<Block>) -> PageResult {
    PageResult {
        schema_version: SCHEMA_VERSION.into(),
        document_id: "doc-1".into(),
        page: n,
        image: PageImage {
            width: 800,
            height: 1000,
            dpi: Some(100),
        },
        engine: EngineInfo {
            name: "ocr".into(),
            model: "pp-ocr".into(),
            revision: None,
            device: "cpu".into(),
            profile: None,
        },
        blocks,
        markdown: String::new(),
        timings: Default::default(),
        warnings: vec![],
        finished_at: None,
    }
}

fn doc(pages: Vec<PageResult>, errors: Vec<PageError>) -> DocumentResult {
    DocumentResult {
        schema_version: SCHEMA_VERSION.into(),
        document_id: "doc-1".into(),
        source: SourceInfo {
            file_name: Some("<b>scan</b>.pdf".into()),
            media_type: "application/pdf".into(),
            sha256: "00".into(),
            size_bytes: 1,
            page_count: 2,
        },
        status: DocumentStatus::Partial,
        pages,
        errors,
        markdown: "# x <script>alert(1)</script>".into(),
        created_at: "2026-01-01T00:00:00Z".into(),
        completed_at: None,
    }
}

fn table_block() -> Block {
    let cell = |row, col, col_span, text: &str| TableCell {
        row,
        col,
        row_span: 1,
        col_span,
        text: text.into(),
        header: row == 0,
        bbox: None,
    };
    Block {
        table: Some(Table {
            n_rows: 2,
            n_cols: 2,
            cells: vec![
                cell(0, 0, 2, "Head & <i>x</i>"),
                cell(1, 0, 1, "1"),
                cell(1, 1, 1, "2"),
            ],
            html: String::new(),
        }),
        confidence: Some(0.5),
        ..Block::new(
            "p1-b2",
            BlockKind::Table,
            BBox::new(10.0, 20.0, 300.0, 400.0),
        )
    }
}

fn sample() -> DocumentResult {
    let hostile = Block {
        text: Some("</pre><script>alert('x')</script><img src=x onerror=alert(1)>".into()),
        ..Block::new(
            "p1-b1\"><svg onload=alert(1)>",
            BlockKind::Title,
            BBox::new(0.0, 0.0, 5.0, 5.0),
        )
    };
    let mut fields = serde_json::Map::new();
    fields.insert("patient".into(), "Ann <O'Hara>".into());
    fields.insert(
        "medications".into(),
        serde_json::json!([{"name": "Amoxicillin", "strength": "500 mg"}, {"name": "Ibuprofen"}]),
    );
    let prescription = Block {
        fields: Some(fields),
        ..Block::new(
            "p1-b3",
            BlockKind::Handwriting,
            BBox::new(0.0, 500.0, 50.0, 600.0),
        )
    };
    let error = PageError {
        schema_version: SCHEMA_VERSION.into(),
        document_id: "doc-1".into(),
        page: 2,
        code: "engine_failed".into(),
        message: "<boom>".into(),
        attempts: 3,
        finished_at: None,
    };
    doc(
        vec![page(1, vec![hostile, table_block(), prescription])],
        vec![error],
    )
}

#[test]
fn every_text_is_escaped() {
    let html = document_html(&sample(), &|_| None, ImageSources::Embedded);
    // The only script element is the viewer's own.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    for raw in [
        "<b>scan",
        "<i>x</i>",
        "<img src=x",
        "<svg onload",
        "<boom>",
        "<O'Hara>",
    ] {
        assert!(!html.contains(raw), "{raw:?} is not escaped");
    }
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("Head &amp; &lt;i&gt;x&lt;/i&gt;"));
}

#[test]
fn one_box_per_block_numbered_in_reading_order() {
    let html = document_html(&sample(), &|_| None, ImageSources::Embedded);
    assert_eq!(html.matches("<rect class=\"box\"").count(), 3);
    assert_eq!(html.matches("class=\"detail\"").count(), 3);
    for n in 1..=3 {
        assert!(html.contains(&format!("id=\"b-1-{n}\" data-detail=\"d-1-{n}\"")));
    }
    assert!(html.contains("class=\"blk k-table\""));
    // The failed page is shown in its place with its code.
    assert!(html.contains("id=\"page-2\""));
    assert!(html.contains("engine_failed"));
}

#[test]
fn tables_come_from_cells_with_spans_and_fields_as_records() {
    let html = document_html(&sample(), &|_| None, ImageSources::Embedded);
    assert!(html.contains("<th colspan=\"2\">Head &amp; &lt;i&gt;x&lt;/i&gt;</th>"));
    assert!(html.contains("<td>1</td><td>2</td>"));
    assert!(html.contains("<th>strength</th>"));
    assert!(html.contains("<td>Amoxicillin</td><td>500 mg</td>"));
}

#[test]
fn images_are_linked_or_embedded_and_allowed_by_the_policy() {
    let d = sample();
    let linked = document_html(
        &d,
        &|p| Some(format!("pages/{p}/image?sig=a&b")),
        ImageSources::SameOrigin,
    );
    assert!(linked.contains("src=\"pages/1/image?sig=a&amp;b\""));
    assert!(linked.contains("img-src 'self'"));
    let embedded = document_html(
        &d,
        &|_| Some(png_data_uri(b"\x89PNG")),
        ImageSources::Embedded,
    );
    assert!(embedded.contains("src=\"data:image/png;base64,iVBORw==\""));
    assert!(embedded.contains("img-src data:;"));
    // The policy's hashes are those of the inline style sheet and script.
    let policy = content_security_policy(ImageSources::Embedded);
    assert!(policy.contains(&hash(CSS)) && policy.contains(&hash(JS)));
    assert!(embedded.contains(&format!("<style>{CSS}</style>")));
    assert!(embedded.contains(&format!("<script>{JS}</script>")));
    assert!(!embedded.contains("http://") && !embedded.contains("https://"));
}
