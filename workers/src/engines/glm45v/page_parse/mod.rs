//! GLM-4.5V's answer for a page or region → `folio_schemas` blocks in page pixels.
//!
//! The raw text (decoded without skipping special tokens, stop token excluded) is split into
//! `<think>` reasoning and the answer, checked for repetition loops and truncation (errors the
//! engine answers by retrying with the stricter profile), then read by the profile's format:
//!
//! | profile | answer | module |
//! | --- | --- | --- |
//! | `document` | Markdown blocks, HTML tables, `$$` formulas, a box per block | [`markdown`], [`html_table`] |
//! | `table` | one HTML `<table>` (or a Markdown pipe table) | [`html_table`] |
//! | `chart` | JSON, possibly in a ```` ```json ```` fence | [`json`], [`chart`] |
//! | `prescription` | JSON | [`json`], [`prescription`] |
//! | `question` | free text | — |
//!
//! Boxes (`<|begin_of_box|>[x1,y1,x2,y2]<|end_of_box|>`, 0..1000 of the image the model saw)
//! are mapped to page pixels by [`boxes`] (crop offset applied); a block without one gets the
//! whole region and a warning. Parsing is tolerant: unclosed tags, trailing text after JSON and
//! unknown Markdown are kept or skipped with warnings; only output that holds nothing usable is
//! an error.

pub mod boxes;
pub mod chart;
pub mod html_table;
pub mod json;
pub mod loops;
pub mod markdown;
pub mod prescription;

use folio_schemas::{BBox, Block, BlockKind};

use crate::engines::glm45v::profiles::{Profile, ProfileKind};
pub use loops::{detect_repetition, Repetition};

/// What [`parse_page`] reads.
#[derive(Debug, Clone, Copy)]
pub struct PageParseInput<'a> {
    pub profile: &'a Profile,
    /// Decoded text without skipping special tokens (think and box tokens present), stop
    /// token excluded.
    pub raw: &'a str,
    /// True when generation ended on the token budget rather than a stop token.
    pub truncated: bool,
    /// Width and height of the image the model saw, in pixels.
    pub image_size: (u32, u32),
    /// When that image was a crop of the page: the crop's box in page pixels
    /// `[x0, y0, x1, y1]`; boxes are mapped back into it.
    pub region: Option<[f32; 4]>,
    /// Prefix of block ids (`p3-` gives `p3-b1`, `p3-b2`, …).
    pub block_id_prefix: &'a str,
}

/// Blocks of a page (or region) in reading order.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedPage {
    pub blocks: Vec<Block>,
    /// What was repaired or guessed (missing boxes, unclosed tags, unknown values).
    pub warnings: Vec<String>,
    /// The `<think>` section, when the model thought.
    pub reasoning: Option<String>,
}

/// Why an answer could not be used; the engine retries with [`Profile::stricter`], then falls
/// back to another engine.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PageParseError {
    #[error("the model gave an empty answer")]
    Empty,
    #[error("the answer was cut off by the token budget")]
    Truncated,
    #[error("repetition loop: a {period}-character chunk repeated {repeats} times ({chunk:?})")]
    RepetitionLoop {
        period: usize,
        repeats: usize,
        chunk: String,
    },
    #[error("malformed answer: {0}")]
    Malformed(String),
}

const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";

/// Reads the model's answer for `input.profile`.
pub fn parse_page(input: &PageParseInput) -> Result<ParsedPage, PageParseError> {
    let (reasoning, answer, think_open) = split_thinking(input.raw);
    let answer = strip_trailing_specials(answer);
    if let Some(r) = detect_repetition(answer).or_else(|| {
        // A loop inside an unterminated think section eats the whole budget too.
        think_open
            .then(|| reasoning.as_deref().and_then(detect_repetition))
            .flatten()
    }) {
        return Err(PageParseError::RepetitionLoop {
            period: r.period,
            repeats: r.repeats,
            chunk: r.chunk,
        });
    }
    if think_open {
        return Err(if input.truncated {
            PageParseError::Truncated
        } else {
            PageParseError::Malformed("the <think> section was never closed".into())
        });
    }
    if answer.trim().is_empty() {
        return Err(if input.truncated {
            PageParseError::Truncated
        } else {
            PageParseError::Empty
        });
    }
    let mut ctx = Ctx {
        input,
        warnings: Vec::new(),
        blocks: Vec::new(),
    };
    match input.profile.kind {
        ProfileKind::Document => {
            if input.truncated {
                return Err(PageParseError::Truncated);
            }
            for raw in markdown::parse_markdown(answer, &mut ctx.warnings) {
                ctx.push(raw.kind, raw.boxes, |b| {
                    b.text = raw.text;
                    b.table = raw.table;
                    b.formula = raw.formula;
                });
            }
        }
        ProfileKind::Table => {
            if input.truncated {
                return Err(PageParseError::Truncated);
            }
            let (text, norm) = boxes::extract_boxes(answer);
            let table = html_table::parse_any_table(&text, &mut ctx.warnings)
                .map_err(PageParseError::Malformed)?;
            let plain = html_table::table_text(&table);
            ctx.push(BlockKind::Table, norm, |b| {
                b.text = Some(plain);
                b.table = Some(table);
            });
        }
        ProfileKind::Chart | ProfileKind::Prescription => {
            ctx.push_json(answer, input.profile.kind)?
        }
        ProfileKind::Question => {
            if input.truncated {
                ctx.warnings
                    .push("the answer was cut off by the token budget".into());
            }
            let (text, norm) = boxes::extract_boxes(answer);
            let text = text.trim().to_string();
            // A bare box answer ("where is the signature?") keeps the box with its text.
            ctx.push(BlockKind::Text, norm, |b| b.text = Some(text));
        }
    }
    if ctx.blocks.is_empty() {
        return Err(PageParseError::Malformed(
            "no block could be read from the answer".into(),
        ));
    }
    Ok(ParsedPage {
        blocks: ctx.blocks,
        warnings: ctx.warnings,
        reasoning,
    })
}

/// Collects blocks with ids and page-pixel boxes.
struct Ctx<'a> {
    input: &'a PageParseInput<'a>,
    warnings: Vec<String>,
    blocks: Vec<Block>,
}

impl Ctx<'_> {
    fn push(&mut self, kind: BlockKind, norm: Vec<[f32; 4]>, fill: impl FnOnce(&mut Block)) {
        let id = format!("{}b{}", self.input.block_id_prefix, self.blocks.len() + 1);
        let bbox = match boxes::union_to_page(&norm, self.input) {
            Some(b) => b,
            None => {
                self.warnings.push(format!(
                    "block {id} has no box: given the whole {}",
                    if self.input.region.is_some() {
                        "region"
                    } else {
                        "page"
                    }
                ));
                whole(self.input)
            }
        };
        let mut block = Block::new(id, kind, bbox);
        fill(&mut block);
        self.blocks.push(block);
    }

    /// A JSON profile's answer (`chart`, `prescription`) as one block: boxes taken out, the JSON
    /// value read (tolerating fences and trailing text), then the chart or the fields with a
    /// plain-text summary.
    fn push_json(&mut self, answer: &str, profile: ProfileKind) -> Result<(), PageParseError> {
        let (answer, norm) = boxes::extract_boxes(answer);
        let value = json::extract_json(&answer, self.input.truncated, &mut self.warnings)?;
        let w = &mut self.warnings;
        let (kind, summary, content) = if profile == ProfileKind::Chart {
            let chart = chart::chart_from_json(&value, w).map_err(PageParseError::Malformed)?;
            (
                BlockKind::Chart,
                chart::chart_text(&chart),
                JsonContent::Chart(chart),
            )
        } else {
            let fields =
                prescription::fields_from_json(&value, w).map_err(PageParseError::Malformed)?;
            (
                BlockKind::Handwriting,
                prescription::fields_text(&fields),
                JsonContent::Fields(fields),
            )
        };
        self.push(kind, norm, |b| {
            b.text = Some(summary);
            match content {
                JsonContent::Chart(chart) => b.chart = Some(chart),
                JsonContent::Fields(fields) => b.fields = Some(fields),
            }
        });
        Ok(())
    }
}

/// What a JSON profile's answer becomes.
enum JsonContent {
    Chart(folio_schemas::Chart),
    Fields(serde_json::Map<String, serde_json::Value>),
}

/// The whole region (or image) in page pixels.
fn whole(input: &PageParseInput) -> BBox {
    boxes::whole_region(input)
}

/// (reasoning, answer, think opened but never closed).
fn split_thinking(raw: &str) -> (Option<String>, &str, bool) {
    if let Some(close) = raw.find(THINK_CLOSE) {
        let before = &raw[..close];
        let reasoning = before.rsplit(THINK_OPEN).next().unwrap_or(before).trim();
        let answer = &raw[close + THINK_CLOSE.len()..];
        // A second think section (rare) is dropped from the answer.
        let answer = match (answer.find(THINK_OPEN), answer.find(THINK_CLOSE)) {
            (Some(o), Some(c)) if o < c => &answer[c + THINK_CLOSE.len()..],
            _ => answer,
        };
        (
            (!reasoning.is_empty()).then(|| reasoning.to_string()),
            answer,
            false,
        )
    } else if let Some(open) = raw.find(THINK_OPEN) {
        let reasoning = raw[open + THINK_OPEN.len()..].trim().to_string();
        (Some(reasoning), &raw[..open], true)
    } else {
        (None, raw, false)
    }
}

/// Drops end-of-turn specials a caller may have left in (`<|user|>`, `<|endoftext|>`).
fn strip_trailing_specials(answer: &str) -> &str {
    let mut a = answer.trim_end();
    for special in [
        "<|user|>",
        "<|endoftext|>",
        "<|observation|>",
        "<|assistant|>",
    ] {
        if let Some(s) = a.strip_suffix(special) {
            a = s.trim_end();
        }
    }
    a
}
