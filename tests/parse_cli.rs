//! `folio parse` end to end: the real binary, real models (`scripts/setup`), real corpus documents.

mod common;

use common::*;
use folio_test_support::{assert_valid, corpus};

#[test]
fn parses_a_printed_page_into_schema_valid_json_and_markdown() {
    let out = tempfile::tempdir().unwrap();
    let input = corpus("printed/tess_phototest.tif");
    let o = parse_quietly(&[&input], out.path(), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = out.path().join("tess_phototest");
    let doc = read_json(&dir.join("document.json"));
    assert_valid("document_result.schema.json", &doc);
    assert_eq!(doc["status"], "complete");
    let page = read_json(&dir.join("pages/00001.json"));
    assert_valid("page_result.schema.json", &page);
    assert_eq!(page, doc["pages"][0]);
    let reference = std::fs::read_to_string(corpus("printed/tess_phototest.gt.txt")).unwrap();
    let rate = cer(&page_text(&page), &reference);
    assert!(
        rate < 0.05,
        "CER {rate:.3} on phototest:\n{}",
        page_text(&page)
    );
    let md = std::fs::read_to_string(dir.join("document.md")).unwrap();
    assert!(md.contains("quick brown dog"), "{md}");
}

#[test]
fn multipage_pdf_gives_one_result_per_page_in_order() {
    let out = tempfile::tempdir().unwrap();
    let input = corpus("multipage_pdf/tapus_catalogue_1962_3p.pdf");
    let o = parse_quietly(&[&input], out.path(), &["--dpi", "100"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = out.path().join("tapus_catalogue_1962_3p");
    let doc = read_json(&dir.join("document.json"));
    assert_valid("document_result.schema.json", &doc);
    let pages: Vec<u64> = doc["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["page"].as_u64().unwrap())
        .collect();
    assert_eq!(pages, vec![1, 2, 3]);
    for n in 1..=3 {
        assert!(dir.join(format!("pages/{n:05}.json")).is_file());
        assert_eq!(doc["pages"][n - 1]["image"]["dpi"], 100);
    }
    let md = std::fs::read_to_string(dir.join("document.md")).unwrap();
    assert!(md.contains("<!-- page 3 -->"));
}

#[test]
fn page_selection_and_markdown_only() {
    let out = tempfile::tempdir().unwrap();
    let input = corpus("multipage_pdf/tapus_catalogue_1962_3p.pdf");
    let args = [
        "parse",
        input.to_str().unwrap(),
        "-o",
        out.path().to_str().unwrap(),
        "--pages",
        "2-3",
        "--format",
        "md",
        "--dpi",
        "72",
        "-q",
    ];
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = out.path().join("tapus_catalogue_1962_3p");
    assert!(!dir.join("document.json").exists());
    let md = std::fs::read_to_string(dir.join("document.md")).unwrap();
    assert!(
        md.contains("<!-- page 2 -->")
            && md.contains("<!-- page 3 -->")
            && !md.contains("<!-- page 1 -->"),
        "{md}"
    );
}

#[test]
fn missing_runtime_names_the_setup_command_with_exit_4() {
    let out = tempfile::tempdir().unwrap();
    let input = corpus("printed/tess_phototest.tif");
    let o = folio()
        .args([
            "parse",
            input.to_str().unwrap(),
            "-o",
            out.path().to_str().unwrap(),
        ])
        .env("FOLIO_RUNTIME_DIR", out.path().join("nowhere"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("scripts/setup"), "{}", stderr(&o));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["parse"],
        vec!["parse", "x.pdf", "--dpi", "0"],
        vec!["parse", "x.pdf", "--pages", "b-a"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}
