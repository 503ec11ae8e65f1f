//! Reads page images with the OCR engine and prints, per page, the stage timings and the text in
//! reading order (blocks separated by a blank line): a profiling and debugging aid.
//!
//! ```text
//! cargo run --release -p folio-ocr --example ocr_pages -- [--threads N] [--out DIR] PAGE.png...
//! ```
//!
//! The runtime folder is `$FOLIO_RUNTIME_DIR` (default `~/.cache/folio`). With `--out`, each
//! page's text goes to `DIR/<stem>.txt` instead of stdout, and its tables' HTML to `DIR/<stem>.html`.

use folio_ocr::{OcrConfig, OcrEngine};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut threads = 0usize;
    let mut out: Option<PathBuf> = None;
    let mut pages: Vec<PathBuf> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = args.next().ok_or("--threads needs a value")?.parse()?,
            "--out" => out = Some(args.next().ok_or("--out needs a folder")?.into()),
            _ => pages.push(a.into()),
        }
    }
    let dir = std::env::var_os("FOLIO_RUNTIME_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/folio")))
        .ok_or("set FOLIO_RUNTIME_DIR")?;
    let mut cfg = OcrConfig::from_runtime_dir(dir);
    cfg.threads = threads;
    let t = Instant::now();
    let engine = OcrEngine::load(&cfg)?;
    eprintln!("load {:.0} ms", t.elapsed().as_secs_f64() * 1000.0);
    if let Some(o) = &out {
        std::fs::create_dir_all(o)?;
    }
    for p in pages {
        let t = Instant::now();
        let img = image::open(&p)?.to_rgb8();
        let decode = t.elapsed().as_secs_f64() * 1000.0;
        let a = engine.analyze(&img, 1)?;
        let stages: Vec<String> = a
            .timings
            .iter()
            .map(|(k, v)| format!("{k} {v:.0}"))
            .collect();
        eprintln!(
            "{}: decode {decode:.0} ms, {} ms",
            p.display(),
            stages.join(", ")
        );
        let text: Vec<String> = a
            .blocks
            .iter()
            .map(|b| {
                format!(
                    "[{:?}{}] {}",
                    b.kind,
                    match (b.kind, b.confidence) {
                        (folio_schemas::BlockKind::Table, Some(c)) => format!(" {c:.2}"),
                        _ => String::new(),
                    },
                    b.text.as_deref().unwrap_or("").replace('\n', "\n  ")
                )
            })
            .collect();
        let text = text.join("\n\n");
        match &out {
            Some(o) => {
                let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned());
                let stem = stem.unwrap_or_default();
                std::fs::write(o.join(format!("{stem}.txt")), text)?;
                // The tables' HTML, for structure metrics (TEDS).
                let html: String = a
                    .blocks
                    .iter()
                    .filter_map(|b| b.table.as_ref().map(|t| t.html.as_str()))
                    .collect();
                if !html.is_empty() {
                    std::fs::write(o.join(format!("{stem}.html")), html)?;
                }
            }
            None => println!("{text}\n"),
        }
    }
    Ok(())
}
