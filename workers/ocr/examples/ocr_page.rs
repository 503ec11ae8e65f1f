//! Reads page images with the OCR engine and prints blocks, timings and the page text.
//!
//! ```text
//! cargo run --release -p folio-ocr --example ocr_page -- [--json] [--repeat N] [--threads N]
//!     [--text] [--no-layout] [--no-tables] [--cls] IMAGE...
//! ```
//! The runtime folder is `$FOLIO_RUNTIME_DIR` or `~/.cache/folio` (filled by `scripts/setup`).
//! With `--repeat N` each image is read N times after loading and the fastest run is reported,
//! with the process CPU time of that run (Linux). `--text` prints only the block texts.

use folio_ocr::{OcrConfig, OcrEngine};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = std::env::var_os("FOLIO_RUNTIME_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/folio")))
        .ok_or("set FOLIO_RUNTIME_DIR")?;
    let mut cfg = OcrConfig::from_runtime_dir(&runtime);
    let (mut json, mut text_only, mut repeat, mut files) = (false, false, 1usize, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" => json = true,
            "--text" => text_only = true,
            "--cls" => cfg.angle_classifier = true,
            "--no-layout" => cfg.layout = false,
            "--no-tables" => cfg.tables = false,
            "--repeat" => repeat = args.next().ok_or("--repeat N")?.parse()?,
            "--threads" => cfg.threads = args.next().ok_or("--threads N")?.parse()?,
            _ => files.push(PathBuf::from(a)),
        }
    }
    let t = Instant::now();
    let engine = OcrEngine::load(&cfg)?;
    eprintln!(
        "loaded {} in {:.0} ms",
        engine.model_name(),
        t.elapsed().as_secs_f64() * 1e3
    );
    for f in files {
        let img = image::open(&f)?.to_rgb8();
        let mut best = None;
        for _ in 0..repeat.max(1) {
            let cpu0 = cpu_seconds();
            let a = engine.analyze(&img, 1)?;
            let cpu = cpu_seconds() - cpu0;
            let total = a.timings.get("total").copied().unwrap_or(0.0);
            if best.as_ref().is_none_or(|(t, _, _)| total < *t) {
                best = Some((total, cpu, a));
            }
        }
        let Some((_, cpu, a)) = best else { continue };
        eprintln!(
            "{} ({}x{}): cpu {cpu:.2} s, {:?}",
            f.display(),
            img.width(),
            img.height(),
            a.timings
        );
        for w in &a.warnings {
            eprintln!("warning: {w}");
        }
        if text_only {
            let texts: Vec<&str> = a.blocks.iter().filter_map(|b| b.text.as_deref()).collect();
            println!("{}", texts.join("\n"));
        } else if json {
            println!("{}", serde_json::to_string_pretty(&a.blocks)?);
        } else {
            for b in &a.blocks {
                println!("--- {} {:?} {:?}", b.id, b.kind, b.bbox.0);
                if let Some(t) = &b.table {
                    println!("[{}x{} table] {}", t.n_rows, t.n_cols, t.html);
                } else if let Some(text) = &b.text {
                    println!("{text}");
                }
            }
        }
    }
    Ok(())
}

/// User + system CPU seconds of this process from `/proc/self/stat` (0 where unavailable).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // After the parenthesised command name come fields 3, 4, …; utime and stime are fields 14, 15.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Clock ticks are 100 per second on Linux.
    (field(11) + field(12)) / 100.0
}
