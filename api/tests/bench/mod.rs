//! Rendering speed, run by hand in a release build (ignored by default):
//!
//! ```text
//! cargo test --release -p folio-api --test ingest -- --ignored --nocapture render_20_pages
//! ```
//!
//! Renders a 20-page PDF at 200 DPI through [`Ingestor::rasterize`] (to RGB pixels in memory,
//! no PNG encoding) and prints pages/s, median of 3 runs after one warm-up page. The input is
//! `$FOLIO_BENCH_PDF` when set (e.g. `bench-out/raster/raster-20p.pdf` from `scripts/bench
//! raster`), otherwise assembled here with PDFium from the corpus PDFs in a fixed order
//! (scanned multi-page documents, then born-digital pages), cycled to 20 pages.

use std::time::Instant;

use folio_api::ingest::Ingestor;
use pdfium_render::prelude::Pdfium;

use crate::support::{config, corpus_dir, read_corpus};

const PAGES: u32 = 20;
const RUNS: usize = 3;

const SOURCES: &[&str] = &[
    "multipage_pdf/tapus_journal_96AP_4p.pdf",
    "multipage_pdf/tdp_will_AN_0182_3p.pdf",
    "multipage_pdf/tapus_catalogue_1962_3p.pdf",
    "multipage_pdf/olmocr_mattsnotes_3p.pdf",
    "printed/olmocr_openstax_calculus_p273.pdf",
    "tables/olmocr_discoverworld_table4.pdf",
    "tables/olmocr_olmo2_p4.pdf",
];

/// 20 pages cycled from [`SOURCES`], saved as one PDF.
fn assemble(pdfium: &Pdfium) -> Vec<u8> {
    let mut out = pdfium.create_new_pdf().expect("new PDF");
    let sources: Vec<Vec<u8>> = SOURCES.iter().map(|rel| read_corpus(rel)).collect();
    'fill: loop {
        for (bytes, rel) in sources.iter().zip(SOURCES) {
            let src = pdfium.load_pdf_from_byte_slice(bytes, None).expect(rel);
            for i in 0..src.pages().len() {
                if out.pages().len() as u32 == PAGES {
                    break 'fill;
                }
                let at = out.pages().len();
                out.pages_mut()
                    .copy_page_range_from_document(&src, i..=i, at)
                    .expect("copy page");
            }
        }
    }
    out.save_to_bytes().expect("save")
}

#[test]
#[ignore = "benchmark: run by hand with --release"]
fn render_20_pages() {
    let ing = Ingestor::new(config());
    // Binds PDFium for the process; after that `Pdfium::default()` shares the binding.
    ing.inspect(&read_corpus(SOURCES[0]), None)
        .expect("bind PDFium");
    let (pdf, what) = match std::env::var_os("FOLIO_BENCH_PDF") {
        Some(p) => (
            std::fs::read(&p).expect("FOLIO_BENCH_PDF"),
            p.to_string_lossy().into_owned(),
        ),
        None => (
            assemble(&Pdfium::default()),
            format!("{PAGES} pages assembled from {}", corpus_dir().display()),
        ),
    };
    let summary = ing.inspect(&pdf, None).expect("inspect");
    assert_eq!(summary.page_count, PAGES, "{what}");

    let mut warm = 0;
    ing.rasterize(&pdf, None, &[1], &mut |_| {
        warm += 1;
        Ok(())
    })
    .expect("warm-up");

    let mut rates = Vec::new();
    for run in 0..RUNS {
        let mut pixels = 0u64;
        let started = Instant::now();
        ing.rasterize(&pdf, None, &[], &mut |p| {
            pixels += u64::from(p.image.width()) * u64::from(p.image.height());
            Ok(())
        })
        .expect("rasterize");
        let secs = started.elapsed().as_secs_f64();
        let rate = f64::from(PAGES) / secs;
        println!(
            "run {run}: {PAGES} pages in {secs:.2} s = {rate:.2} pages/s ({:.1} MP rendered)",
            pixels as f64 / 1e6
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "median: {:.2} pages/s at 200 DPI ({what}; {} bytes)",
        rates[RUNS / 2],
        pdf.len()
    );
}
