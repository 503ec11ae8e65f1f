//! Every kind of bad input gets one clear message and exit code 3, never a panic, and the next file
//! is still processed.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// A PNG header declaring `w`×`h` pixels with a tiny (invalid) IDAT: rejected before decoding.
fn huge_png(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = 0xffff_ffffu32;
        for &b in kind.iter().chain(data) {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        out.extend_from_slice(&(!crc).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x03, 0x00]);
    chunk(&mut png, b"IEND", &[]);
    png
}

/// A minimal OOXML package (what a .docx is at the byte level).
fn docx() -> Vec<u8> {
    let mut zip = b"PK\x03\x04\x14\x00\x00\x00\x00\x00".to_vec();
    zip.extend_from_slice(&[0; 16]);
    zip.extend_from_slice(&19u16.to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes());
    zip.extend_from_slice(b"[Content_Types].xml");
    zip
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn expect_rejected(file: &Path, needle: &str) {
    let out = tempfile::tempdir().unwrap();
    let o = run(&[
        "parse",
        file.to_str().unwrap(),
        "-o",
        out.path().to_str().unwrap(),
        "-q",
    ]);
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
    let real_pdf =
        std::fs::read(corpus().join("multipage_pdf/tapus_catalogue_1962_3p.pdf")).unwrap();
    let fixtures = repo().join("api/tests/fixtures");
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
    expect_rejected(&write(d, "huge.png", &huge_png(30_000, 30_000)), "30000");
    expect_rejected(&write(d, "report.docx", &docx()), "docx");
    expect_rejected(d, "directory");
    expect_rejected(&d.join("does-not-exist.pdf"), "no such file");
}

#[test]
fn processing_continues_after_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.png", b"");
    let good = corpus().join("printed/tess_phototest.tif");
    let out = dir.path().join("out");
    let o = run(&[
        "parse",
        empty.to_str().unwrap(),
        good.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
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
    let fixtures = repo().join("api/tests/fixtures");
    let script = std::fs::read_to_string(fixtures.join("make_fixtures.py")).unwrap();
    // The fixture script names the password it used; keep the test in step with it.
    assert!(
        script.contains("folio-secret"),
        "fixture password changed; update this test"
    );
    let out = tempfile::tempdir().unwrap();
    let f = fixtures.join("encrypted_aes256.pdf");
    let o = run(&[
        "parse",
        f.to_str().unwrap(),
        "--password",
        "folio-secret",
        "-o",
        out.path().to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[
        "parse",
        f.to_str().unwrap(),
        "--password",
        "wrong",
        "-o",
        out.path().to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("password"), "{}", stderr(&o));
}
