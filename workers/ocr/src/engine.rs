//! [`OcrEngine`]: loads the models once and turns a page image into blocks in reading order.
//!
//! Per page: detect lines → crop → (classify) → recognise in batches → layout regions → blocks →
//! table structure for table regions → reading order → ids `p{page}-b{n}`.

use crate::blocks::{group_blocks, mark_page_furniture, split_list_items, BlockDraft};
use crate::classify::AngleClassifier;
use crate::config::{
    OcrConfig, CLS_MODEL_FILE, DET_MODEL_FILE, LAYOUT_MODEL_FILE, REC_MODEL_FILE, TABLE_MODEL_FILE,
};
use crate::crop::crop_quad;
use crate::detect::Detector;
use crate::error::OcrError;
use crate::geometry::Quad;
use crate::layout::{LayoutDetector, LayoutLabel, LayoutRegion};
use crate::order::reading_order;
use crate::recognize::Recognizer;
use crate::runtime::{onnxruntime_environment, OrtModel};
use crate::skew::{estimate_skew, Deskew};
use crate::table::grid::{assign_lines, build_grid, cell_texts, to_html, to_text, PlacedLine};
use crate::table::slanet::TableStructurer;
use crate::table::text_grid::{find_text_grid, short_cells};
use folio_schemas::{BBox, Block, BlockKind, Line, Table, TableCell};
use image::RgbImage;
use ort::environment::Environment;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

/// Lines recognised with a lower mean confidence are dropped (RapidOCR's `text_score`).
const MIN_LINE_CONFIDENCE: f32 = 0.5;
/// Margin around a table region when cropping it for SLANet, in pixels.
const TABLE_MARGIN: f32 = 4.0;
/// Confidence reported for a table found from the lines alone (no layout region).
const TEXT_GRID_SCORE: f32 = 0.5;
/// A figure whose lines form a grid is a table unless more of it than this is dark pixels
/// outside the lines (a chart's bars and plot lines; a table has thin rules at most).
const MAX_TABLE_GRAPHIC_INK: f32 = 0.04;
/// Table regions scored below this are checked: over prose they become text.
const WEAK_TABLE_SCORE: f32 = 0.7;

/// Warning added to pages with figure regions.
pub const FIGURE_WARNING: &str =
    "ocr engine: figure/chart regions are reported without data extraction";

/// The result of [`OcrEngine::analyze`] for one page.
#[derive(Debug, Clone, PartialEq)]
pub struct PageAnalysis {
    /// Blocks in reading order, ids `p{page}-b{n}` from 1.
    pub blocks: Vec<folio_schemas::Block>,
    pub warnings: Vec<String>,
    /// Milliseconds per stage: `detect`, `classify` (when on), `recognize`, `layout`, `table`, `total`.
    pub timings: BTreeMap<String, f64>,
}

/// A recognised text line.
#[derive(Debug, Clone, PartialEq)]
struct OcrLine {
    quad: Quad,
    bbox: BBox,
    text: String,
    confidence: f32,
}

/// The CPU OCR engine. Sessions are created once in [`OcrEngine::load`] and reused for every page;
/// the engine is `Send + Sync` (concurrent callers take turns on each model).
pub struct OcrEngine {
    detector: Detector,
    classifier: Option<AngleClassifier>,
    recognizer: Recognizer,
    layout: Option<LayoutDetector>,
    tables: Option<LazyTables>,
    model_name: String,
}

impl std::fmt::Debug for OcrEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcrEngine")
            .field("model", &self.model_name)
            .finish_non_exhaustive()
    }
}

impl OcrEngine {
    /// Loads ONNX Runtime (once per process) and every model the configuration asks for. A missing
    /// file fails with [`OcrError::ModelMissing`] or [`OcrError::RuntimeMissing`] naming it.
    pub fn load(cfg: &OcrConfig) -> Result<Self, OcrError> {
        // Check every file first so the error names the first missing one before any slow load.
        let mut needed = vec![DET_MODEL_FILE, REC_MODEL_FILE];
        if cfg.angle_classifier {
            needed.push(CLS_MODEL_FILE);
        }
        if cfg.layout {
            needed.push(LAYOUT_MODEL_FILE);
            if cfg.tables {
                needed.push(TABLE_MODEL_FILE);
            }
        }
        if !cfg.onnxruntime_lib.is_file() {
            return Err(OcrError::RuntimeMissing {
                path: cfg.onnxruntime_lib.clone(),
            });
        }
        for file in &needed {
            let path = cfg.model_path(file);
            if !path.is_file() {
                return Err(OcrError::ModelMissing { path });
            }
        }
        if cfg.tables && !cfg.layout {
            tracing::warn!("table recognition needs layout detection; tables are off");
        }
        let env = onnxruntime_environment(&cfg.onnxruntime_lib)?;
        let threads = cfg.effective_threads();
        let load =
            |file: &str, name: &str| OrtModel::load(&env, &cfg.model_path(file), name, threads);

        let detector = Detector::new(load(DET_MODEL_FILE, "PP-OCRv6_det_small")?)?;
        // Recognition runs many small independent batches: a few single-purpose sessions on
        // separate threads use the cores better than one session splitting every convolution
        // (and do not stall when other processes compete for the CPU).
        let (rec_workers, rec_threads) = rec_pool(threads);
        let rec_sessions = (0..rec_workers)
            .map(|_| {
                OrtModel::load(
                    &env,
                    &cfg.model_path(REC_MODEL_FILE),
                    "PP-OCRv6_rec_small",
                    rec_threads,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let recognizer = Recognizer::new(rec_sessions)?;
        let classifier = if cfg.angle_classifier {
            Some(AngleClassifier::new(load(
                CLS_MODEL_FILE,
                "ch_ppocr_mobile_v2.0_cls",
            )?))
        } else {
            None
        };
        let layout = if cfg.layout {
            Some(LayoutDetector::new(load(
                LAYOUT_MODEL_FILE,
                "layout_cdla",
            )?)?)
        } else {
            None
        };
        // SLANet is loaded on the first table: most pages have none, and a one-page run
        // should not pay for it.
        let tables = (cfg.layout && cfg.tables).then(|| LazyTables {
            env: env.clone(),
            path: cfg.model_path(TABLE_MODEL_FILE),
            threads,
            model: OnceLock::new(),
        });
        let mut model_name = String::from("PP-OCRv6_small");
        if classifier.is_some() {
            model_name.push_str("+cls_mobile_v2");
        }
        if layout.is_some() {
            model_name.push_str("+layout_cdla");
        }
        if tables.is_some() {
            model_name.push_str("+SLANet");
        }
        tracing::info!(model = %model_name, threads, "OCR engine loaded");
        Ok(OcrEngine {
            detector,
            classifier,
            recognizer,
            layout,
            tables,
            model_name,
        })
    }

    /// The models in use, e.g. `PP-OCRv6_small+layout_cdla+SLANet`.
    pub fn model_name(&self) -> String {
        self.model_name.clone()
    }

    /// Reads one page image; `page` (1-based) only names the blocks.
    pub fn analyze(&self, image: &RgbImage, page: u32) -> Result<PageAnalysis, OcrError> {
        let total = Instant::now();
        let mut timings = BTreeMap::new();
        let mut warnings = Vec::new();
        if image.width() == 0 || image.height() == 0 {
            warnings.push("ocr engine: the page image is empty".to_string());
            timings.insert("total".to_string(), ms(total));
            return Ok(PageAnalysis {
                blocks: Vec::new(),
                warnings,
                timings,
            });
        }

        let t = Instant::now();
        let detections = self.detector.detect(image)?;
        timings.insert("detect".to_string(), ms(t));

        let mut quads = Vec::with_capacity(detections.len());
        let mut crops = Vec::with_capacity(detections.len());
        for (quad, _) in &detections {
            if let Some(c) = crop_quad(image, quad) {
                quads.push(*quad);
                crops.push(c);
            }
        }
        if let Some(cls) = &self.classifier {
            let t = Instant::now();
            let turned = cls.fix_orientation(&mut crops)?;
            tracing::debug!(turned, "lines turned upside up");
            timings.insert("classify".to_string(), ms(t));
        }
        let t = Instant::now();
        let texts = self.recognizer.recognize(&crops)?;
        drop(crops);
        timings.insert("recognize".to_string(), ms(t));
        let lines: Vec<OcrLine> = quads
            .into_iter()
            .zip(texts)
            .filter(|(_, (text, conf))| !text.trim().is_empty() && *conf >= MIN_LINE_CONFIDENCE)
            .map(|(quad, (text, confidence))| OcrLine {
                bbox: quad.bbox(),
                quad,
                text,
                confidence,
            })
            .collect();

        let t = Instant::now();
        let regions = match &self.layout {
            Some(l) => l.detect(image)?,
            None => Vec::new(),
        };
        timings.insert("layout".to_string(), ms(t));
        tracing::debug!(page, regions = ?regions, "layout regions");

        // Grouping and order work on deskewed boxes; the blocks report page pixels.
        let skew = estimate_skew(&lines.iter().map(|l| l.quad).collect::<Vec<_>>());
        let deskew = Deskew::new(
            skew,
            [image.width() as f32 / 2.0, image.height() as f32 / 2.0],
        );
        tracing::debug!(page, skew_deg = skew.to_degrees(), "page skew");
        let upright_lines: Vec<BBox> = lines.iter().map(|l| deskew.quad(&l.quad)).collect();
        let upright_regions: Vec<LayoutRegion> = regions
            .iter()
            .map(|r| LayoutRegion {
                bbox: deskew.bbox(&r.bbox),
                ..*r
            })
            .collect();
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        let (mut regions, mut upright_regions) = (regions, upright_regions);
        for (r, u) in regions.iter_mut().zip(upright_regions.iter_mut()) {
            // A "figure" whose lines form a grid of short cells is a table (the layout model
            // calls many cropped tables figures).
            if u.label == LayoutLabel::Figure {
                let inside: Vec<usize> = lines_inside(&upright_lines, &u.bbox).collect();
                let boxes: Vec<BBox> = inside.iter().map(|&l| upright_lines[l]).collect();
                let words: Vec<&str> = inside.iter().map(|&l| texts[l]).collect();
                if let Some(grid) = find_text_grid(&boxes, &words) {
                    let page_lines: Vec<BBox> = inside.iter().map(|&l| lines[l].bbox).collect();
                    if grid.area() >= 0.5 * u.bbox.area()
                        && graphic_ink(image, &r.bbox, &page_lines) < MAX_TABLE_GRAPHIC_INK
                    {
                        tracing::debug!(page, bbox = ?r.bbox, "figure region holding a table");
                        r.label = LayoutLabel::Table;
                        u.label = LayoutLabel::Table;
                    }
                }
            }
            // A weak table region over prose (narrow columns of text look like one) is text.
            if u.label == LayoutLabel::Table
                && u.score < WEAK_TABLE_SCORE
                && !short_cells(lines_inside(&upright_lines, &u.bbox).map(|l| texts[l]))
            {
                tracing::debug!(page, bbox = ?r.bbox, "weak table region over prose: text");
                r.label = LayoutLabel::Text;
                u.label = LayoutLabel::Text;
            }
        }
        if self.tables.is_some() {
            if let Some(b) = text_grid_outside(&upright_lines, &texts, &upright_regions) {
                tracing::debug!(page, bbox = ?b, "lines form a table the layout model missed");
                let region = LayoutRegion {
                    label: LayoutLabel::Table,
                    score: TEXT_GRID_SCORE,
                    bbox: b,
                };
                upright_regions.push(region);
                let back = Deskew::new(
                    -skew,
                    [image.width() as f32 / 2.0, image.height() as f32 / 2.0],
                );
                regions.push(LayoutRegion {
                    bbox: back.bbox(&b),
                    ..region
                });
            }
        }
        let drafts = group_blocks(&upright_lines, &texts, &upright_regions);
        let mut drafts = split_list_items(drafts, &upright_lines, &texts);
        mark_page_furniture(
            &mut drafts,
            &upright_lines,
            &texts,
            image.width() as f32,
            image.height() as f32,
        );
        let upright_boxes: Vec<BBox> = drafts.iter().map(|d| d.bbox).collect();
        for d in &mut drafts {
            d.bbox = page_bbox(d, &lines, &regions);
        }

        let t = Instant::now();
        let mut tables: Vec<Option<(Table, String)>> = vec![None; drafts.len()];
        for (d, slot) in drafts.iter().zip(tables.iter_mut()) {
            if d.kind != BlockKind::Table {
                continue;
            }
            if let Some(s) = &self.tables {
                *slot = self.table_of(s.get()?, image, d, &lines)?;
            }
        }
        timings.insert("table".to_string(), ms(t));

        let kinds: Vec<BlockKind> = drafts.iter().map(|d| d.kind).collect();
        let order = reading_order(&upright_boxes, &kinds);
        let mut blocks = Vec::with_capacity(drafts.len());
        for (n, &i) in order.iter().enumerate() {
            let id = format!("p{page}-b{}", n + 1);
            let block = build_block(id, &drafts[i], &lines, &regions, tables[i].take());
            if block.kind == BlockKind::Table && block.table.is_none() {
                warnings.push(if self.tables.is_some() {
                    format!(
                        "ocr engine: table structure not recognised for {}; its lines are reported",
                        block.id
                    )
                } else {
                    format!(
                        "ocr engine: table structure recognition is off; {} reports lines only",
                        block.id
                    )
                });
            }
            blocks.push(block);
        }
        if blocks.iter().any(|b| b.kind == BlockKind::Figure) {
            warnings.push(FIGURE_WARNING.to_string());
        }
        timings.insert("total".to_string(), ms(total));
        Ok(PageAnalysis {
            blocks,
            warnings,
            timings,
        })
    }

    /// Runs SLANet on a table region and fills its cells with the region's lines.
    fn table_of(
        &self,
        s: &TableStructurer,
        image: &RgbImage,
        d: &BlockDraft,
        lines: &[OcrLine],
    ) -> Result<Option<(Table, String)>, OcrError> {
        let (iw, ih) = (image.width() as f32, image.height() as f32);
        let x0 = (d.bbox.x0() - TABLE_MARGIN).clamp(0.0, iw - 1.0).floor();
        let y0 = (d.bbox.y0() - TABLE_MARGIN).clamp(0.0, ih - 1.0).floor();
        let x1 = (d.bbox.x1() + TABLE_MARGIN).clamp(x0 + 1.0, iw).ceil();
        let y1 = (d.bbox.y1() + TABLE_MARGIN).clamp(y0 + 1.0, ih).ceil();
        let crop = image::imageops::crop_imm(
            image,
            x0 as u32,
            y0 as u32,
            (x1 - x0) as u32,
            (y1 - y0) as u32,
        )
        .to_image();
        let mut tokens = s.structure(&crop)?;
        for t in &mut tokens {
            if let Some(b) = t.bbox.as_mut() {
                *b = [b[0] + x0, b[1] + y0, b[2] + x0, b[3] + y0];
            }
        }
        let grid = build_grid(&tokens);
        if grid.cells.is_empty() {
            return Ok(None);
        }
        let placed: Vec<PlacedLine<'_>> = d
            .lines
            .iter()
            .map(|&l| PlacedLine {
                bbox: lines[l].bbox,
                text: &lines[l].text,
            })
            .collect();
        let assignment = assign_lines(&grid, &placed);
        let texts = cell_texts(&grid, &placed, &assignment);
        let html = to_html(&grid, &texts);
        let cells = grid
            .cells
            .iter()
            .zip(&texts)
            .map(|(c, t)| TableCell {
                row: c.row,
                col: c.col,
                row_span: c.row_span,
                col_span: c.col_span,
                text: t.clone(),
                header: c.header,
                bbox: c.bbox,
            })
            .collect();
        let plain = to_text(&grid, &texts);
        Ok(Some((
            Table {
                n_rows: grid.n_rows,
                n_cols: grid.n_cols,
                cells,
                html,
            },
            plain,
        )))
    }
}

/// The table-structure model, loaded when first needed.
struct LazyTables {
    env: Environment,
    path: PathBuf,
    threads: usize,
    model: OnceLock<TableStructurer>,
}

impl LazyTables {
    fn get(&self) -> Result<&TableStructurer, OcrError> {
        if let Some(m) = self.model.get() {
            return Ok(m);
        }
        let loaded = TableStructurer::new(OrtModel::load(
            &self.env,
            &self.path,
            "SLANet",
            self.threads,
        )?)?;
        // Two pages racing here both load it; one copy is kept.
        let _ = self.model.set(loaded);
        self.model
            .get()
            .ok_or_else(|| OcrError::model("SLANet", "table model not kept"))
    }
}

/// Recognition sessions and intra-op threads per session for `threads` cores: one session per
/// core up to four, the remaining cores shared among them.
fn rec_pool(threads: usize) -> (usize, usize) {
    let workers = threads.clamp(1, 4);
    (workers, (threads / workers).max(1))
}

/// Share of `region`'s pixels (sampled every other row and column) that are dark and outside
/// every line box: bars, plot lines and areas of a chart; only thin rules in a table.
fn graphic_ink(image: &RgbImage, region: &BBox, lines: &[BBox]) -> f32 {
    let x0 = region.x0().max(0.0) as u32;
    let y0 = region.y0().max(0.0) as u32;
    let x1 = (region.x1().max(0.0) as u32).min(image.width());
    let y1 = (region.y1().max(0.0) as u32).min(image.height());
    let (mut dark, mut total) = (0usize, 0usize);
    for y in (y0..y1).step_by(2) {
        for x in (x0..x1).step_by(2) {
            total += 1;
            let (fx, fy) = (x as f32, y as f32);
            if lines
                .iter()
                .any(|l| fx >= l.x0() && fx <= l.x1() && fy >= l.y0() && fy <= l.y1())
            {
                continue;
            }
            let [r, g, b] = image.get_pixel(x, y).0;
            if (r as u32 + g as u32 + b as u32) < 3 * 160 {
                dark += 1;
            }
        }
    }
    dark as f32 / total.max(1) as f32
}

/// Indices of the lines with at least half their area inside `region`.
fn lines_inside<'a>(lines: &'a [BBox], region: &'a BBox) -> impl Iterator<Item = usize> + 'a {
    (0..lines.len())
        .filter(move |&i| lines[i].intersection_area(region) >= 0.5 * lines[i].area().max(1e-6))
}

/// A table found in the lines that no table or figure region holds (see [`find_text_grid`]).
fn text_grid_outside(lines: &[BBox], texts: &[&str], regions: &[LayoutRegion]) -> Option<BBox> {
    let free: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            let area = lines[i].area().max(1e-6);
            !regions.iter().any(|r| {
                matches!(r.label, LayoutLabel::Table | LayoutLabel::Figure)
                    && lines[i].intersection_area(&r.bbox) / area >= 0.5
            })
        })
        .collect();
    let boxes: Vec<BBox> = free.iter().map(|&i| lines[i]).collect();
    let words: Vec<&str> = free.iter().map(|&i| texts[i]).collect();
    find_text_grid(&boxes, &words)
}

/// A draft's box in page pixels: the region for tables and figures, else around its lines.
fn page_bbox(d: &BlockDraft, lines: &[OcrLine], regions: &[LayoutRegion]) -> BBox {
    let region = d.region.and_then(|r| regions.get(r)).map(|r| r.bbox);
    let around_lines = d
        .lines
        .iter()
        .map(|&l| lines[l].bbox)
        .reduce(|a, b| a.union(&b));
    match (d.kind, region, around_lines) {
        (BlockKind::Table | BlockKind::Figure, Some(r), _) => r,
        (_, _, Some(b)) => b,
        (_, Some(r), None) => r,
        (_, None, None) => d.bbox,
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn build_block(
    id: String,
    d: &BlockDraft,
    lines: &[OcrLine],
    regions: &[LayoutRegion],
    table: Option<(Table, String)>,
) -> Block {
    let own: Vec<&OcrLine> = d.lines.iter().map(|&l| &lines[l]).collect();
    let schema_lines: Vec<Line> = own
        .iter()
        .map(|l| Line {
            bbox: l.bbox,
            polygon: Some(l.quad.to_polygon()),
            text: l.text.clone(),
            confidence: Some(l.confidence),
        })
        .collect();
    let region_score = d.region.and_then(|r| regions.get(r)).map(|r| r.score);
    let confidence = match d.kind {
        BlockKind::Table | BlockKind::Figure => region_score,
        _ if own.is_empty() => region_score,
        _ => Some(own.iter().map(|l| l.confidence).sum::<f32>() / own.len() as f32),
    };
    let (table, text) = match table {
        // A table's text is its rows, cells separated by tabs.
        Some((t, plain)) => (Some(t), Some(plain)),
        None if own.is_empty() => (None, None),
        None => (
            None,
            Some(
                own.iter()
                    .map(|l| l.text.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        ),
    };
    Block {
        confidence,
        text,
        lines: schema_lines,
        table,
        ..Block::new(id, d.kind, d.bbox)
    }
}

#[cfg(test)]
mod tests {
    use super::rec_pool;

    #[test]
    fn recognition_pool_sizes() {
        assert_eq!(rec_pool(0), (1, 1));
        assert_eq!(rec_pool(2), (2, 1));
        assert_eq!(rec_pool(8), (4, 2));
        assert_eq!(rec_pool(18), (4, 4));
    }
}
