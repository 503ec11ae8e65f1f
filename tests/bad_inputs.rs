//! Every kind of bad input gets one clear message and exit code 3, never a panic, and the next file
//! is still processed.

mod common;

use common::*;
use folio_test_support::built::{docx, png_header_only};
use folio_test_support::{corpus, fixtures_dir};
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn expect_rejected(file: &Path, needle: &str) {
    let out = tempfile::tempdir().unwrap();
    let o = parse_quietly(&[file], out.path(), &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{}: {err}", file.display());
    assert!(
        err.to_lowercase().contains(needle),
        "{}: expected `{needle}` in: {err}",
        file.display()
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn each_bad_input_has_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let real_pdf = std::fs::read(corpus("multipage_pdf/tapus_catalogue_1962_3p.pdf")).unwrap();
    let fixtures = fixtures_dir();
    expect_rejected(&write(d, "empty.pdf", b""), "empty");
    expect_rejected(
        &write(d, "truncated.pdf", &real_pdf[..real_pdf.len() / 2]),
        "damaged",
    );
    expect_rejected(
        &write(d, "notes.pdf", b"just some plain text, not a PDF\n"),
        "plain text",
    );
    expect_rejected(&fixtures.join("encrypted_aes256.pdf"), "encrypted");
    expect_rejected(&fixtures.join("zero_pages.pdf"), "no pages");
    expect_rejected(
        &write(d, "huge.png", &png_header_only(30_000, 30_000)),
        "30000",
    );
    expect_rejected(&write(d, "report.docx", &docx()), "docx");
    expect_rejected(d, "directory");
    expect_rejected(&d.join("does-not-exist.pdf"), "no such file");
}

#[test]
fn processing_continues_after_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.png", b"");
    let good = corpus("printed/tess_phototest.tif");
    let out = dir.path().join("out");
    let o = parse_quietly(&[&empty, &good], &out, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        out.join("tess_phototest/document.json").is_file(),
        "{}",
        stderr(&o)
    );
    assert!(!out.join("empty").exists());
}

#[test]
fn encrypted_pdf_opens_with_its_password() {
    let fixtures = fixtures_dir();
    let script = std::fs::read_to_string(fixtures.join("make_fixtures.py")).unwrap();
    // The fixture script names the password it used; keep the test in step with it.
    assert!(
        script.contains("folio-secret"),
        "fixture password changed; update this test"
    );
    let out = tempfile::tempdir().unwrap();
    let f = fixtures.join("encrypted_aes256.pdf");
    let o = parse_quietly(&[&f], out.path(), &["--password", "folio-secret"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = parse_quietly(&[&f], out.path(), &["--password", "wrong"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("password"), "{}", stderr(&o));
}
