//! Helpers shared by the binary's end-to-end tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `$FOLIO_CORPUS_DIR` or `<repo>/../shared/corpus`. Panics with a clear message when absent.
pub fn corpus() -> PathBuf {
    let dir = std::env::var_os("FOLIO_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/corpus"));
    assert!(
        dir.join("MANIFEST.md").is_file(),
        "corpus not found at {} (set FOLIO_CORPUS_DIR)",
        dir.display()
    );
    dir
}

pub fn folio() -> Command {
    Command::new(env!("CARGO_BIN_EXE_folio"))
}

pub fn run(args: &[&str]) -> Output {
    folio().args(args).output().expect("the folio binary runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Validate `value` against the committed JSON Schema `schemas/json/<name>`.
pub fn assert_valid(name: &str, value: &serde_json::Value) {
    let path = repo().join("schemas/json").join(name);
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("schema file"))
            .expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name} violations: {errors:#?}");
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("valid JSON")
}

/// Character error rate after collapsing whitespace: edit distance / reference length.
pub fn cer(hypothesis: &str, reference: &str) -> f64 {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let h: Vec<char> = norm(hypothesis).chars().collect();
    let r: Vec<char> = norm(reference).chars().collect();
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rc) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hc) in h.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(rc != hc))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

/// The text of a page result: its blocks' text in order.
pub fn page_text(page: &serde_json::Value) -> String {
    page["blocks"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| {
                    b["text"].as_str().map(str::to_string).or_else(|| {
                        b["table"]["cells"].as_array().map(|cells| {
                            cells
                                .iter()
                                .filter_map(|c| c["text"].as_str())
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                    })
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}
