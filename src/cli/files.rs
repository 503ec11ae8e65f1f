//! Local files of `folio parse` and `folio submit`: reading an input, and the one output layout
//! both write — `DIR/<stem>/document.json`, `pages/00001.json` (or `00001.error.json`),
//! `document.md` and `document.html` (the viewer with its page images embedded).

use super::{CliError, Exit};
use async_trait::async_trait;
use clap::ValueEnum;
use folio_results::html::{document_html, png_data_uri, ImageSources};
use folio_schemas::DocumentResult;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// What to write for each document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// `document.json` and `pages/*.json`.
    Json,
    /// `document.md`.
    Md,
    /// `document.html`: the viewer, self-contained (page images embedded).
    Html,
    /// All of them.
    Both,
}

impl OutputFormat {
    fn json(self) -> bool {
        matches!(self, OutputFormat::Json | OutputFormat::Both)
    }
    fn md(self) -> bool {
        matches!(self, OutputFormat::Md | OutputFormat::Both)
    }
    fn html(self) -> bool {
        matches!(self, OutputFormat::Html | OutputFormat::Both)
    }
}

/// Where a finished document's stored records come from: the local bucket of `folio parse`, or
/// the API for `folio submit`. Each maps its own failures to exit codes.
#[async_trait]
pub trait RecordSource: Send + Sync {
    /// `pages/{page:05}.json`, or the page's error record when `failed`.
    async fn page_record(&self, page: u32, failed: bool) -> Result<Vec<u8>, CliError>;
    /// The stored page image (PNG); `None` when there is none.
    async fn page_image(&self, page: u32) -> Result<Option<Vec<u8>>, CliError>;
}

/// Write `doc` (whose stored bytes are `json`) into `out_dir` in `format`.
pub async fn write_outputs(
    source: &dyn RecordSource,
    json: &[u8],
    doc: &DocumentResult,
    format: OutputFormat,
    out_dir: &Path,
) -> Result<(), CliError> {
    create_dir(out_dir)?;
    if format.json() {
        write(&out_dir.join("document.json"), json)?;
        let pages_dir = out_dir.join("pages");
        create_dir(&pages_dir)?;
        let results = doc.pages.iter().map(|r| (r.page, false));
        let errors = doc.errors.iter().map(|e| (e.page, true));
        for (page, failed) in results.chain(errors) {
            let bytes = source.page_record(page, failed).await?;
            let kind = if failed { ".error" } else { "" };
            write(&pages_dir.join(format!("{page:05}{kind}.json")), &bytes)?;
        }
    }
    if format.md() {
        write(&out_dir.join("document.md"), doc.markdown.as_bytes())?;
    }
    if format.html() {
        let mut images = BTreeMap::new();
        for page in doc.pages.iter().map(|p| p.page) {
            if let Some(png) = source.page_image(page).await? {
                images.insert(page, png_data_uri(&png));
            }
        }
        let html = document_html(doc, &|p| images.get(&p).cloned(), ImageSources::Embedded);
        write(&out_dir.join("document.html"), html.as_bytes())?;
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(e, dir))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes).map_err(|e| io_error(e, path))
}

fn io_error(e: std::io::Error, path: &Path) -> CliError {
    CliError::internal(anyhow::Error::new(e).context(format!("writing {}", path.display())))
}

/// The bytes of an input file; a missing or unreadable file, or a folder, is the input's fault (3).
pub fn read_input(file: &Path) -> Result<Vec<u8>, CliError> {
    let rejected = |msg: String| CliError::new(Exit::InputRejected, anyhow::anyhow!(msg));
    let meta = std::fs::metadata(file).map_err(|e| rejected(format!("cannot read: {e}")))?;
    if meta.is_dir() {
        return Err(rejected("is a directory, not a document".into()));
    }
    std::fs::read(file).map_err(|e| rejected(format!("cannot read: {e}")))
}

/// `DIR/<stem>`, or `DIR/<stem>-2`, `-3`… when several inputs share a stem.
pub fn output_dir(root: &Path, file: &Path, used: &mut HashSet<String>) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "document".into());
    let mut candidate = stem.clone();
    let mut n = 2;
    while !used.insert(candidate.clone()) {
        candidate = format!("{stem}-{n}");
        n += 1;
    }
    root.join(candidate)
}

/// Reports a document that ended with failed pages (each page's error, then the count) on
/// stderr; the caller's exit code becomes [`Exit::InputRejected`].
pub fn report_partial(file: &Path, doc: &DocumentResult, out_dir: &Path) -> Exit {
    for e in &doc.errors {
        eprintln!(
            "folio: {}: page {}: {} ({})",
            file.display(),
            e.page,
            e.message,
            e.code
        );
    }
    eprintln!(
        "{}: {} of {} page(s) -> {} (partial)",
        file.display(),
        doc.pages.len(),
        doc.pages.len() + doc.errors.len(),
        out_dir.display()
    );
    Exit::InputRejected
}

/// The more serious of two exit codes (the higher number).
pub fn worst(a: Exit, b: Exit) -> Exit {
    if (b as u8) > (a as u8) {
        b
    } else {
        a
    }
}
