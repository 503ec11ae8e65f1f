//! Helpers shared by the binary's end-to-end tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn folio() -> Command {
    Command::new(env!("CARGO_BIN_EXE_folio"))
}

pub fn run(args: &[&str]) -> Output {
    folio().args(args).output().expect("the folio binary runs")
}

/// `folio parse INPUTS... -o OUT -q EXTRA...`.
pub fn parse_quietly(inputs: &[&Path], out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["parse"];
    args.extend(inputs.iter().map(|p| p.to_str().expect("utf-8 path")));
    args.extend(["-o", out.to_str().expect("utf-8 path"), "-q"]);
    args.extend(extra);
    run(&args)
}

/// The tiny GLM-4.5V fixture (random weights).
pub fn tiny() -> PathBuf {
    repo().join("workers/glm45v/tests/fixtures/tiny")
}

/// `folio ask --model <tiny> ARGS...`.
pub fn ask_tiny(args: &[&str]) -> Output {
    let model = tiny();
    let mut all = vec!["ask", "--model", model.to_str().expect("utf-8 path")];
    all.extend(args);
    run(&all)
}

/// `command` (`["ask", ...]` or `["parse", ...]`) with `--model` pointing at a missing folder,
/// then at a folder holding only `config.json`: both are usage errors (exit 2) that say what is
/// wrong.
pub fn check_bad_model_dirs(command: impl Fn(&str) -> Output) {
    let o = command("/nonexistent/glm");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(tiny().join("config.json"), dir.path().join("config.json")).expect("copy");
    let o = command(dir.path().to_str().expect("utf-8"));
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("tokenizer.json") && err.contains("vision.onnx"),
        "{err}"
    );
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
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
