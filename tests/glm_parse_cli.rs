//! `folio parse --engine glm45v` end to end on the tiny GLM-4.5V fixture (random weights: the text
//! is noise; what is checked is the plumbing): every profile yields schema-valid results with
//! `engine.profile` recorded, an unusable answer shows the ocr fallback's warning, the JSON
//! profiles parse thanks to constrained decoding, layout-first and PDFs run through, and a
//! missing or incomplete model directory fails clearly.

mod common;

use common::*;
use folio_test_support::{assert_valid, corpus};
use serde_json::Value;
use std::path::Path;

/// Runs `folio parse --engine glm45v` on `input` with `extra` flags; returns page 1's result.
fn parse_glm(input: &Path, extra: &[&str]) -> (Value, Value) {
    let out = tempfile::tempdir().expect("tempdir");
    let model = tiny();
    let mut args = vec![
        "parse",
        input.to_str().expect("utf-8"),
        "-o",
        out.path().to_str().expect("utf-8"),
        "-q",
        "--engine",
        "glm45v",
        "--model",
        model.to_str().expect("utf-8"),
        "--dtype",
        "f32",
        "--max-image-pixels",
        "40000",
        "--threads",
        "2",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(
        o.status.success(),
        "folio parse {extra:?} failed: {}",
        stderr(&o)
    );
    let stem = input.file_stem().expect("stem").to_str().expect("utf-8");
    let dir = out.path().join(stem);
    let doc = read_json(&dir.join("document.json"));
    assert_valid("document_result.schema.json", &doc);
    assert_eq!(doc["status"], "complete", "{doc:#}");
    let page = read_json(&dir.join("pages/00001.json"));
    assert_valid("page_result.schema.json", &page);
    assert_eq!(page["engine"]["name"], "glm45v");
    (doc, page)
}

fn warnings(page: &Value) -> Vec<String> {
    page["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn fell_back(page: &Value) -> bool {
    warnings(page)
        .iter()
        .any(|w| w.contains("read by the ocr engine instead"))
}

#[test]
fn every_profile_gives_schema_valid_results_with_its_profile_recorded() {
    let image = corpus("charts/vegalite_bar.png");
    let cases: [(&str, &[&str]); 5] = [
        ("document", &["--max-new-tokens", "24"]),
        ("table", &["--max-new-tokens", "24"]),
        (
            "question",
            &[
                "--max-new-tokens",
                "16",
                "--prompt",
                "What is the tallest bar?",
            ],
        ),
        ("chart", &["--max-new-tokens", "400"]),
        ("prescription", &["--max-new-tokens", "400"]),
    ];
    for (profile, flags) in cases {
        let mut extra = vec!["--profile", profile];
        extra.extend_from_slice(flags);
        let (_, page) = parse_glm(&image, &extra);
        let recorded = page["engine"]["profile"]
            .as_str()
            .expect("engine.profile")
            .to_string();
        assert!(
            recorded == format!("{profile}@1") || recorded == format!("{profile}-strict@1"),
            "{profile}: recorded {recorded}"
        );
        let t = &page["timings"];
        for stage in ["processor", "vision", "prefill", "decode", "parse"] {
            assert!(
                t[stage].as_f64().is_some(),
                "{profile}: no {stage} timing in {t}"
            );
        }
        if fell_back(&page) {
            // The random answer did not parse twice: the ocr engine read the page, and the
            // warning names both attempts.
            let w = warnings(&page).join("\n");
            assert!(
                w.contains(&format!("{profile}@1")) && w.contains(&format!("{profile}-strict@1")),
                "{w}"
            );
            assert_eq!(recorded, format!("{profile}-strict@1"));
            assert!(t["ocr_fallback"].as_f64().is_some(), "{t}");
        } else {
            assert!(
                !page["blocks"].as_array().expect("blocks").is_empty(),
                "{page:#}"
            );
        }
        match profile {
            // Constrained decoding: the answer is valid JSON of the profile's schema, so it parses.
            "chart" => {
                assert!(!fell_back(&page), "chart fell back: {:?}", warnings(&page));
                assert_eq!(page["blocks"][0]["kind"], "chart", "{page:#}");
                assert!(page["blocks"][0]["chart"].is_object(), "{page:#}");
            }
            "prescription" => {
                assert!(
                    !fell_back(&page),
                    "prescription fell back: {:?}",
                    warnings(&page)
                );
                assert!(
                    page["blocks"][0]["fields"]["medications"].is_array(),
                    "{page:#}"
                );
            }
            _ => {}
        }
    }
}

#[test]
fn layout_first_and_pdfs_run_through() {
    let pdf = corpus("multipage_pdf/tapus_catalogue_1962_3p.pdf");
    let (doc, page) = parse_glm(
        &pdf,
        &[
            "--pages",
            "1",
            "--dpi",
            "50",
            "--layout-first",
            "--max-new-tokens",
            "8",
            "--max-batch",
            "4",
            "--max-tokens-in-flight",
            "4096",
        ],
    );
    assert_eq!(doc["pages"].as_array().expect("pages").len(), 1);
    let profile = page["engine"]["profile"].as_str().expect("profile");
    assert!(profile.starts_with("layout-first"), "{profile}");
    assert!(
        page["timings"]["layout"].as_f64().is_some(),
        "{}",
        page["timings"]
    );
    // Block ids are renumbered in reading order after the merge.
    for (i, b) in page["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .enumerate()
    {
        assert_eq!(b["id"], format!("p1-b{}", i + 1));
    }
}

#[test]
fn bad_models_and_options_fail_with_usage_errors() {
    let image = corpus("charts/vegalite_bar.png");
    let img = image.to_str().expect("utf-8");
    let o = run(&["parse", img, "--engine", "glm45v"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--model"), "{}", stderr(&o));

    check_bad_model_dirs(|model| run(&["parse", img, "--engine", "glm45v", "--model", model]));

    let tiny = tiny();
    let model = tiny.to_str().expect("utf-8");
    for bad in [
        vec!["--profile", "poem"],
        vec!["--profile", "question"],
        vec!["--profile", "table", "--prompt", "why?"],
        vec!["--device", "tpu"],
        vec!["--max-tokens-in-flight", "0"],
        vec!["--max-tokens-in-flight", "100", "--max-new-tokens", "100"],
    ] {
        let mut args = vec!["parse", img, "--engine", "glm45v", "--model", model];
        args.extend_from_slice(&bad);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
    }
    let o = run(&["parse", img, "--profile", "table"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "--profile without glm45v: {}",
        stderr(&o)
    );
}
