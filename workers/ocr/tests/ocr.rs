//! Integration tests of the OCR engine with the real models on real corpus images.
//!
//! Needs the runtime folder filled by `scripts/setup` (`$FOLIO_RUNTIME_DIR`, default
//! `~/.cache/folio`) and the corpus (`$FOLIO_CORPUS_DIR`, default `<repo>/../shared/corpus`).
//! Missing pieces fail the tests with a message saying so; nothing is skipped.

use folio_ocr::{init_onnxruntime, OcrConfig, OcrEngine, OcrError, FIGURE_WARNING};
use folio_schemas::{Block, BlockKind};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

fn runtime_dir() -> PathBuf {
    let dir = std::env::var_os("FOLIO_RUNTIME_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/folio")))
        .expect("neither FOLIO_RUNTIME_DIR nor HOME is set");
    let cfg = OcrConfig::from_runtime_dir(&dir);
    let mut missing = vec![cfg.onnxruntime_lib.clone()];
    for m in [
        "PP-OCRv6_det_small.onnx",
        "PP-OCRv6_rec_small.onnx",
        "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
        "layout_cdla.onnx",
        "en_ppstructure_mobile_v2_SLANet.onnx",
    ] {
        missing.push(cfg.models_dir.join(m));
    }
    missing.retain(|p| !p.is_file());
    assert!(
        missing.is_empty(),
        "the OCR runtime is incomplete in {} (missing {missing:?}): run `scripts/setup`",
        dir.display()
    );
    dir
}

fn corpus(rel: &str) -> PathBuf {
    let root = std::env::var_os("FOLIO_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
        });
    let p = root.join(rel);
    assert!(
        p.is_file(),
        "corpus file {} missing (set FOLIO_CORPUS_DIR)",
        p.display()
    );
    p
}

/// One engine for the whole test binary (it is `Sync`; tests share it).
fn engine() -> &'static OcrEngine {
    static ENGINE: OnceLock<OcrEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        OcrEngine::load(&OcrConfig::from_runtime_dir(runtime_dir())).expect("engine loads")
    })
}

fn read(rel: &str) -> image::RgbImage {
    image::open(corpus(rel)).expect("image decodes").to_rgb8()
}

fn page_text(blocks: &[Block]) -> String {
    blocks
        .iter()
        .filter_map(|b| b.text.as_deref())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collapses whitespace and drops the corpus transcription marks (`_` underline, `^`
/// superscript, `~~~` handwritten word).
fn normalize(s: &str) -> Vec<char> {
    let s = s.replace("~~~", " ").replace(['_', '^'], "");
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .collect()
}

fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j + 1] + 1)
                .min(cur[j] + 1)
                .min(prev[j] + usize::from(ca != cb));
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Character error rate of `hyp` against the ground truth, reading order included.
fn cer(hyp: &str, gt: &str) -> f64 {
    let (h, g) = (normalize(hyp), normalize(gt));
    levenshtein(&h, &g) as f64 / g.len().max(1) as f64
}

/// Order-free word F1 (multiset of words).
fn word_f1(hyp: &str, gt: &str) -> f64 {
    let count = |s: &str| {
        let mut m: HashMap<String, usize> = HashMap::new();
        for w in s
            .replace("~~~", " ")
            .replace(['_', '^'], "")
            .split_whitespace()
        {
            *m.entry(w.to_string()).or_default() += 1;
        }
        m
    };
    let (h, g) = (count(hyp), count(gt));
    let tp: usize = h
        .iter()
        .map(|(w, n)| (*n).min(g.get(w).copied().unwrap_or(0)))
        .sum();
    let (nh, ng) = (
        h.values().sum::<usize>().max(1),
        g.values().sum::<usize>().max(1),
    );
    let (p, r) = (tp as f64 / nh as f64, tp as f64 / ng as f64);
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

fn gt_text(rel: &str) -> String {
    std::fs::read_to_string(corpus(rel)).expect("ground truth readable")
}

/// Reads `image` and checks its CER against `gt`; returns (CER, word F1) for the message.
fn check_cer(image: &str, gt: &str, max_cer: f64) -> (f64, f64) {
    let a = engine().analyze(&read(image), 1).expect("analyze");
    let hyp = page_text(&a.blocks);
    let truth = gt_text(gt);
    let (c, f) = (cer(&hyp, &truth), word_f1(&hyp, &truth));
    assert!(
        c <= max_cer,
        "{image}: CER {c:.4} > {max_cer} (word F1 {f:.3})\n--- read:\n{hyp}"
    );
    (c, f)
}

// Thresholds: measured values on this corpus (PP-OCRv6 small, layout and tables on) with a margin.

#[test]
fn bilevel_tiff_phototest_is_read_exactly() {
    // Measured CER 0.000.
    check_cer(
        "printed/tess_phototest.tif",
        "printed/tess_phototest.gt.txt",
        0.02,
    );
}

#[test]
fn multilingual_eurotext_reads_accents() {
    // Measured CER 0.005 (RapidOCR 3.10: 0.005).
    check_cer(
        "printed/tess_eurotext.tif",
        "printed/tess_eurotext.gt.txt",
        0.03,
    );
}

#[test]
fn typewritten_french_report_page() {
    // Measured CER 0.011 (RapidOCR 3.10: 0.059).
    check_cer(
        "printed/tapus_btv1b53097347b_8.jpg",
        "printed/tapus_btv1b53097347b_8.gt.txt",
        0.04,
    );
}

#[test]
fn three_column_magazine_page_reads_column_by_column() {
    // The ground truth lists the zones column by column, so a row-by-row reading would score a
    // CER near 0.7 (RapidOCR 3.10: 0.737); measured 0.032 (word F1 0.98).
    let (_, f1) = check_cer(
        "printed/unlv_8071_093_3B.tif",
        "printed/unlv_8071_093_3B.gt.txt",
        0.10,
    );
    assert!(f1 >= 0.95, "word F1 {f1:.3}");
}

#[test]
fn magazine_page_with_a_figure_across_the_gutter() {
    // Two columns with a picture set between them: the figure floats, the columns still read one
    // after the other. Measured CER 0.055 (0.55 when the figure blocked the column cut).
    check_cer(
        "printed/unlv_8087_054_3B.tif",
        "printed/unlv_8087_054_3B.gt.txt",
        0.12,
    );
}

#[test]
fn table_image_gives_a_table_block_with_its_grid() {
    let a = engine()
        .analyze(&read("tables/pubtabnet_PMC4840965_004_00.png"), 2)
        .expect("analyze");
    let tables: Vec<&Block> = a
        .blocks
        .iter()
        .filter(|b| b.kind == BlockKind::Table)
        .collect();
    assert_eq!(
        tables.len(),
        1,
        "blocks: {:?}",
        a.blocks.iter().map(|b| b.kind).collect::<Vec<_>>()
    );
    let t = tables[0].table.as_ref().expect("table structure");
    // Ground truth: 28 rows (1 header row) × 4 columns.
    assert_eq!(t.n_cols, 4, "{}", t.html);
    assert!(
        (26..=30).contains(&t.n_rows),
        "{} rows: {}",
        t.n_rows,
        t.html
    );
    assert!(t.html.starts_with("<table><thead><tr><th>") && t.html.ends_with("</tbody></table>"));
    let cell = |r: u32, c: u32| {
        t.cells
            .iter()
            .find(|x| x.row == r && x.col == c)
            .map(|x| x.text.as_str())
    };
    assert_eq!(cell(0, 0), Some("Variable"));
    assert_eq!(cell(0, 1), Some("Hazard ratio"));
    assert!(t.cells.iter().filter(|c| c.row == 0).all(|c| c.header));
    assert!(t.cells.iter().filter(|c| c.row > 0).all(|c| !c.header));
    for needle in ["0.716", "Gender", "0.310–2.268"] {
        assert!(
            t.cells.iter().any(|c| c.text == needle),
            "no cell `{needle}`: {}",
            t.html
        );
    }
    let text = tables[0].text.as_deref().expect("table text");
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.starts_with("Variable\tHazard ratio")),
        "{text}"
    );
}

#[test]
fn table_with_spanning_headers() {
    let a = engine()
        .analyze(&read("tables/pubtabnet_PMC2838834_005_00.png"), 1)
        .expect("analyze");
    let t = a
        .blocks
        .iter()
        .find_map(|b| b.table.as_ref())
        .expect("a table block");
    // Ground truth: 36 rows, 7 columns, header cells spanning 2 and 3 columns.
    assert_eq!(t.n_cols, 7, "{}", t.html);
    assert!((33..=39).contains(&t.n_rows), "{} rows", t.n_rows);
    assert!(
        t.cells.iter().any(|c| c.col_span == 3 && c.header),
        "{}",
        t.html
    );
    assert!(t.html.contains("colspan=\"2\""));
    // Cells tile the grid: no two cells cover the same position.
    let mut seen = std::collections::HashSet::new();
    for c in &t.cells {
        for r in c.row..c.row + c.row_span {
            for k in c.col..c.col + c.col_span {
                assert!(seen.insert((r, k)), "({r},{k}) covered twice");
            }
        }
    }
}

#[test]
fn chart_is_a_figure_with_a_warning() {
    let a = engine()
        .analyze(&read("charts/vegalite_bar.png"), 1)
        .expect("analyze");
    assert!(
        a.blocks.iter().any(|b| b.kind == BlockKind::Figure),
        "{:?}",
        a.blocks
    );
    assert!(
        a.warnings.iter().any(|w| w == FIGURE_WARNING),
        "{:?}",
        a.warnings
    );
    // The axis labels inside the figure are still read.
    assert!(page_text(&a.blocks).contains("100"));
}

#[test]
fn blocks_carry_ids_lines_and_timings() {
    let img = read("printed/tess_phototest.tif");
    let a = engine().analyze(&img, 3).expect("analyze");
    assert!(!a.blocks.is_empty());
    for (n, b) in a.blocks.iter().enumerate() {
        assert_eq!(b.id, format!("p3-b{}", n + 1));
        let lines: Vec<&str> = b.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(b.text.as_deref(), Some(lines.join("\n").as_str()));
        assert!(b.bbox.x0() >= 0.0 && b.bbox.y0() >= 0.0);
        assert!(b.bbox.x1() <= img.width() as f32 && b.bbox.y1() <= img.height() as f32);
        for l in &b.lines {
            let poly = l.polygon.as_ref().expect("polygon");
            assert_eq!(poly.len(), 4);
            assert!(l.confidence.is_some_and(|c| (0.5..=1.0).contains(&c)));
            assert!(b.bbox.intersection_area(&l.bbox) > 0.0);
        }
    }
    for k in ["detect", "recognize", "layout", "table", "total"] {
        assert!(
            a.timings.get(k).is_some_and(|t| *t >= 0.0),
            "timing {k}: {:?}",
            a.timings
        );
    }
    assert_eq!(engine().model_name(), "PP-OCRv6_small+layout_cdla+SLANet");
}

#[test]
fn analysis_is_deterministic() {
    let img = read("printed/tess_eurotext.tif");
    let a = engine().analyze(&img, 1).expect("analyze");
    let b = engine().analyze(&img, 1).expect("analyze");
    assert_eq!(a.blocks, b.blocks);
}

#[test]
fn empty_image_is_an_empty_page() {
    let a = engine()
        .analyze(&image::RgbImage::new(0, 0), 1)
        .expect("no error");
    assert!(a.blocks.is_empty());
    assert!(!a.warnings.is_empty());
    let white = image::RgbImage::from_pixel(300, 200, image::Rgb([255, 255, 255]));
    let a = engine().analyze(&white, 1).expect("no error");
    assert!(a.blocks.is_empty(), "{:?}", a.blocks);
}

#[test]
fn without_layout_lines_are_grouped_by_proximity() {
    let cfg = OcrConfig {
        layout: false,
        angle_classifier: true,
        threads: 1,
        ..OcrConfig::from_runtime_dir(runtime_dir())
    };
    let e = OcrEngine::load(&cfg).expect("engine loads");
    assert_eq!(e.model_name(), "PP-OCRv6_small+cls_mobile_v2");
    let a = e
        .analyze(&read("printed/tess_phototest.tif"), 1)
        .expect("analyze");
    assert!(a.blocks.iter().all(|b| b.kind == BlockKind::Text));
    // The page's eight evenly spaced lines form one paragraph.
    assert_eq!(
        a.blocks.len(),
        1,
        "{:?}",
        a.blocks.iter().map(|b| &b.text).collect::<Vec<_>>()
    );
    assert_eq!(a.blocks[0].lines.len(), 8);
    let c = cer(
        &page_text(&a.blocks),
        &gt_text("printed/tess_phototest.gt.txt"),
    );
    assert!(c <= 0.02, "CER {c}");
    assert!(a.timings.contains_key("classify"));
}

#[test]
fn missing_files_are_named() {
    let good = OcrConfig::from_runtime_dir(runtime_dir());
    let no_models = OcrConfig {
        models_dir: PathBuf::from("/nonexistent/models"),
        ..good.clone()
    };
    let err = OcrEngine::load(&no_models).expect_err("models are missing");
    assert!(matches!(err, OcrError::ModelMissing { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("PP-OCRv6_det_small.onnx") && msg.contains("scripts/setup"),
        "{msg}"
    );

    let no_lib = OcrConfig {
        onnxruntime_lib: PathBuf::from("/nonexistent/libonnxruntime.so"),
        ..good
    };
    let msg = OcrEngine::load(&no_lib)
        .expect_err("runtime is missing")
        .to_string();
    assert!(
        msg.contains("/nonexistent/libonnxruntime.so") && msg.contains("scripts/setup"),
        "{msg}"
    );
}

#[test]
fn runtime_init_is_idempotent() {
    let lib = OcrConfig::from_runtime_dir(runtime_dir()).onnxruntime_lib;
    init_onnxruntime(&lib).expect("first");
    init_onnxruntime(&lib).expect("second");
}

/// A page made by `scripts/make_multicolumn.py` and its ground truth (`.gt.json`).
fn generated(name: &str) -> (image::RgbImage, serde_json::Value) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/multicolumn");
    let img = ["jpg", "png"]
        .iter()
        .map(|ext| dir.join(format!("{name}.{ext}")))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name}: no page in {} (scripts/make_multicolumn.py)",
                dir.display()
            )
        });
    let gt = std::fs::read_to_string(dir.join(format!("{name}.gt.json"))).expect("gt.json");
    (
        image::open(img).expect("page decodes").to_rgb8(),
        serde_json::from_str(&gt).expect("gt.json parses"),
    )
}

/// Lower-case words of letters and digits only.
fn words(s: &str) -> Vec<String> {
    s.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Checks that the ground-truth blocks appear in `hyp` in order: each block's first three words
/// are searched after the previous block's; returns how many were found in order. A block found
/// only *before* the previous one is an order error and fails the test.
fn blocks_in_order(name: &str, hyp: &str, gt_blocks: &[Vec<String>]) -> usize {
    let h = words(hyp);
    let mut at = 0usize;
    let mut found = 0;
    for block in gt_blocks {
        let anchor: Vec<String> = words(&block.join(" ")).into_iter().take(3).collect();
        let find = |from: usize, to: usize| {
            (from..to.min(h.len()).saturating_sub(anchor.len() - 1))
                .find(|&i| h[i..i + anchor.len()] == anchor[..])
        };
        if let Some(i) = find(at, h.len()) {
            at = i + anchor.len();
            found += 1;
        } else if let Some(i) = find(0, at) {
            panic!("{name}: block `{}` read at word {i}, before the previous block (word {at}):\n{hyp}", anchor.join(" "));
        }
    }
    found
}

#[test]
fn generated_multicolumn_pages_read_column_by_column() {
    // scripts/make_multicolumn.py: 2 and 3 columns, full-width title and lead paragraph, ragged
    // right margins, 0.5–1.5° skew either way, greyscale JPEG and 1-bit PNG, a table or a figure
    // between paragraphs, a numbered list, a running header and a page number.
    for name in [
        "two_col_grey_skew1",
        "two_col_bilevel_skew-1.5",
        "three_col_grey_skew0.5",
        "two_col_bilevel_skew1.5_lead",
    ] {
        let (img, gt) = generated(name);
        let a = engine().analyze(&img, 1).expect("analyze");
        let body: Vec<Block> = a
            .blocks
            .iter()
            .filter(|b| !matches!(b.kind, BlockKind::Header | BlockKind::Footer))
            .cloned()
            .collect();
        let hyp = page_text(&body);
        let gt_blocks: Vec<Vec<String>> = gt["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .map(|b| {
                b["lines"]
                    .as_array()
                    .expect("lines")
                    .iter()
                    .map(|l| l.as_str().expect("line").replace('\t', " "))
                    .collect::<Vec<_>>()
            })
            .filter(|l| !l.is_empty())
            .collect();
        let found = blocks_in_order(name, &hyp, &gt_blocks);
        assert!(
            found * 10 >= gt_blocks.len() * 9,
            "{name}: only {found} of {} blocks found in order:\n{hyp}",
            gt_blocks.len()
        );
        let truth = gt_blocks
            .iter()
            .map(|b| b.join("\n"))
            .collect::<Vec<_>>()
            .join("\n");
        let c = cer(&hyp, &truth);
        assert!(c <= 0.03, "{name}: body CER {c:.4}\n{hyp}");
        // The running header and the page number are marked, not body text.
        let kind_text = |k: BlockKind| {
            a.blocks
                .iter()
                .filter(|b| b.kind == k)
                .filter_map(|b| b.text.clone())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let header = gt["header"].as_str().expect("header");
        assert!(
            words(&kind_text(BlockKind::Header)) == words(header),
            "{name}: header {:?}, expected {header:?}",
            kind_text(BlockKind::Header)
        );
        assert_eq!(
            kind_text(BlockKind::Footer).trim(),
            gt["footer"].as_str().expect("footer"),
            "{name}"
        );
        // As many list items and tables as drawn.
        for (gt_kind, kind) in [
            ("list_item", BlockKind::ListItem),
            ("table", BlockKind::Table),
        ] {
            let drawn = gt["blocks"]
                .as_array()
                .expect("blocks")
                .iter()
                .filter(|b| b["kind"] == gt_kind)
                .count();
            let read = a.blocks.iter().filter(|b| b.kind == kind).count();
            assert_eq!(read, drawn, "{name}: {gt_kind} blocks");
        }
    }
}

#[test]
fn every_cropped_table_image_gives_a_table_block() {
    // PubTabNet crops have no page around them; the layout model finds no region in some and
    // calls others figures. Lines forming a grid of short cells make them tables.
    for stem in [
        "pubtabnet_PMC2759935_007_01",
        "pubtabnet_PMC5198506_004_00",
        "pubtabnet_PMC5332562_005_00",
        "pubtabnet_PMC5402779_004_00",
        "pubtabnet_PMC5577841_001_00",
    ] {
        let a = engine()
            .analyze(&read(&format!("tables/{stem}.png")), 1)
            .expect("analyze");
        let t = a
            .blocks
            .iter()
            .find_map(|b| b.table.as_ref())
            .unwrap_or_else(|| panic!("{stem}: no table: {:?}", a.blocks));
        assert!(t.n_rows >= 3 && t.n_cols >= 2, "{stem}: {}", t.html);
    }
}
