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
    // The default `auto` profile adds no prescription record to a page that is not one.
    assert!(
        page["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b.get("fields").is_none()),
        "{page}"
    );
}

/// Generated prescriptions (`scripts/make_prescriptions.py --first 101 --count 3`): handwriting
/// fonts, stamp, signature, skew and noise, with their ground-truth records.
fn rx_fixtures() -> Vec<std::path::PathBuf> {
    (101..=103)
        .map(|n| repo().join(format!("tests/fixtures/prescriptions/rx-{n}.jpg")))
        .collect()
}

/// The comparable form of a field value: lower case, no spaces or dots.
fn norm(v: &serde_json::Value) -> Option<String> {
    let s: String = v
        .as_str()?
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '.')
        .collect::<String>()
        .to_lowercase();
    (!s.is_empty()).then_some(s)
}

/// (true positives, false positives, false negatives) of the medications' name, strength,
/// frequency and duration; medications are paired by name (character error ≤ 0.5, as
/// `scripts/benchlib/rx_fields.py` pairs them), a name only counts when equal.
fn field_counts(got: &serde_json::Value, truth: &serde_json::Value) -> (usize, usize, usize) {
    const KEYS: [&str; 4] = ["name", "strength", "frequency", "duration"];
    let meds = |v: &serde_json::Value| v["medications"].as_array().cloned().unwrap_or_default();
    let (got, truth) = (meds(got), meds(truth));
    let (mut tp, mut fp) = (0, 0);
    let truth_values: usize = truth
        .iter()
        .map(|t| KEYS.iter().filter(|k| norm(&t[**k]).is_some()).count())
        .sum();
    let mut paired = vec![false; truth.len()];
    for g in &got {
        let close = |t: &serde_json::Value| match (norm(&g["name"]), norm(&t["name"])) {
            (Some(a), Some(b)) => cer(&a, &b) <= 0.5,
            _ => false,
        };
        let partner = truth
            .iter()
            .enumerate()
            .position(|(i, t)| !paired[i] && close(t));
        if let Some(i) = partner {
            paired[i] = true;
        }
        for key in KEYS {
            let Some(value) = norm(&g[key]) else { continue };
            match partner {
                Some(i) if norm(&truth[i][key]).as_deref() == Some(value.as_str()) => tp += 1,
                _ => fp += 1,
            }
        }
    }
    (tp, fp, truth_values - tp)
}

#[test]
fn prescriptions_get_a_schema_valid_record_with_their_fields() {
    let out = tempfile::tempdir().unwrap();
    let files = rx_fixtures();
    let mut args = vec!["parse"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    args.extend(["-o", out.path().to_str().unwrap(), "-q", "--format", "json"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    for file in &files {
        let stem = file.file_stem().unwrap().to_str().unwrap();
        let page = read_json(&out.path().join(stem).join("pages/00001.json"));
        assert_valid("page_result.schema.json", &page);
        assert_eq!(page["engine"]["profile"], "auto");
        let records: Vec<&serde_json::Value> = page["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b.get("fields"))
            .collect();
        assert_eq!(records.len(), 1, "{stem}: one record under `auto`: {page}");
        assert_valid("prescription.schema.json", records[0]);
        let truth = read_json(&file.with_extension("gt.json"));
        let (t, f, n) = field_counts(records[0], &truth);
        eprintln!("{stem}: tp {t} fp {f} fn {n}: {}", records[0]);
        (tp, fp, fn_) = (tp + t, fp + f, fn_ + n);
    }
    let f1 = 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64;
    assert!(
        f1 >= 0.8,
        "field F1 {f1:.3} (tp {tp}, fp {fp}, fn {fn_}) below 0.8"
    );
}

#[test]
fn the_document_profile_adds_no_record_and_unknown_ocr_profiles_are_usage_errors() {
    let out = tempfile::tempdir().unwrap();
    let file = &rx_fixtures()[0];
    let o = run(&[
        "parse",
        file.to_str().unwrap(),
        "-o",
        out.path().to_str().unwrap(),
        "-q",
        "--profile",
        "document",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = read_json(&out.path().join("rx-101/pages/00001.json"));
    assert_eq!(page["engine"]["profile"], "document");
    assert!(page["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b.get("fields").is_none()));
    for bad in [vec!["--profile", "chart"], vec!["--prompt", "what?"]] {
        let mut args = vec!["parse", file.to_str().unwrap(), "-o", "unused"];
        args.extend(bad.iter());
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(bad[0]) || stderr(&o).contains("profile"));
    }
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
