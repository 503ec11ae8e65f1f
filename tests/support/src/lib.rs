//! folio-test-support: where the tests find what they need, in one place (a dev-dependency of
//! every test crate).
//!
//! * [`runtime_dir`] / [`pdfium_runtime_dir`]: the native runtime `scripts/setup` installs
//!   (`$FOLIO_RUNTIME_DIR`, else `~/.cache/folio`).
//! * [`corpus_dir`] / [`corpus`] / [`read_corpus`]: the shared test documents
//!   (`$FOLIO_CORPUS_DIR`, else `<repo>/../shared/corpus`).
//! * [`fixture`]: the small committed ingest fixtures (`ingest/tests/fixtures`).
//! * [`assert_valid`]: a value checked against a committed JSON Schema (`schemas/json`).
//! * [`built`]: inputs built byte by byte (bad files, EXIF, zips).
//! * [`hostile_pdf`]: PDFs that are expensive to render (render-limit tests).
//! * [`services`]: the RabbitMQ and S3 servers of `scripts/services/start`.
//! * `browser` (feature `browser`): a headless Chromium to open pages in, as a person would.
//!
//! Everything panics with a message that says what to run when something is missing: a test
//! that cannot find its inputs fails, it never passes silently.

#[cfg(feature = "browser")]
pub mod browser;
pub mod built;
pub mod hostile_pdf;
pub mod services;

use std::path::{Path, PathBuf};

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// `scripts/setup`'s runtime folder: `$FOLIO_RUNTIME_DIR`, else `~/.cache/folio`.
pub fn runtime_dir() -> PathBuf {
    std::env::var_os("FOLIO_RUNTIME_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/folio")))
        .expect("neither FOLIO_RUNTIME_DIR nor HOME is set")
}

/// [`runtime_dir`], checked to hold PDFium (`lib/libpdfium.so`).
pub fn pdfium_runtime_dir() -> PathBuf {
    let dir = runtime_dir();
    let lib = dir.join("lib/libpdfium.so");
    assert!(
        lib.is_file(),
        "PDFium is missing at {}: run scripts/setup (or set FOLIO_RUNTIME_DIR)",
        lib.display()
    );
    dir
}

/// The shared corpus: `$FOLIO_CORPUS_DIR`, else `<repo>/../shared/corpus`; checked to be there
/// (its `MANIFEST.md`).
pub fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("FOLIO_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/corpus"));
    assert!(
        dir.join("MANIFEST.md").is_file(),
        "corpus not found at {} (set FOLIO_CORPUS_DIR)",
        dir.display()
    );
    dir
}

/// A corpus file (`rel` to [`corpus_dir`]), checked to exist.
pub fn corpus(rel: &str) -> PathBuf {
    let path = corpus_dir().join(rel);
    assert!(
        path.is_file(),
        "corpus file {} is missing (set FOLIO_CORPUS_DIR)",
        path.display()
    );
    path
}

/// The bytes of a corpus file.
pub fn read_corpus(rel: &str) -> Vec<u8> {
    read(&corpus(rel))
}

/// The committed ingest fixtures (made by their `make_fixtures.py`).
pub fn fixtures_dir() -> PathBuf {
    repo_root().join("ingest/tests/fixtures")
}

/// The bytes of an ingest fixture.
pub fn fixture(name: &str) -> Vec<u8> {
    read(&fixtures_dir().join(name))
}

/// Validate `value` against the committed JSON Schema `schemas/json/<name>`.
pub fn assert_valid(name: &str, value: &serde_json::Value) {
    let path = repo_root().join("schemas/json").join(name);
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

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
