//! Prompt profiles: what GLM-4.5V is asked to produce for a page or a region, versioned.
//!
//! A profile is a prompt text, an output format the parser ([`super::page_parse`]) knows, and
//! for the JSON profiles (`chart`, `prescription`) a JSON Schema that constrained decoding
//! ([`folio_glm45v::generate::constraint`]) enforces. Each has a stricter variant the engine retries with when
//! the first answer could not be parsed (loop, truncation, malformed output). The id recorded
//! in results (`engine.profile`) is `name[-strict]@version`; bump [`PROFILE_VERSION`] whenever a
//! prompt text or a schema changes, so results stay traceable to the prompt that made them.

use serde_json::{json, Value};

use folio_glm45v::{Error, Result};

/// Version of every prompt text and schema in this file.
pub const PROFILE_VERSION: u32 = 1;

/// What the model is asked to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileKind {
    /// A whole page → Markdown with HTML tables, LaTeX formulas and a box per block.
    Document,
    /// A table region → one HTML `<table>` with `rowspan`/`colspan`.
    Table,
    /// A chart region → JSON: type, title, axes, series of points.
    Chart,
    /// A prescription → JSON: patient, age, date, prescriber, medications.
    Prescription,
    /// A free question about the image; the answer is kept as text.
    Question,
}

impl ProfileKind {
    /// Every kind, in a stable order.
    pub const ALL: [ProfileKind; 5] = [
        ProfileKind::Document,
        ProfileKind::Table,
        ProfileKind::Chart,
        ProfileKind::Prescription,
        ProfileKind::Question,
    ];

    /// The name used in job options and profile ids.
    pub fn name(self) -> &'static str {
        match self {
            ProfileKind::Document => "document",
            ProfileKind::Table => "table",
            ProfileKind::Chart => "chart",
            ProfileKind::Prescription => "prescription",
            ProfileKind::Question => "question",
        }
    }
}

/// A prompt profile; `strict` is the stricter retry variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Profile {
    pub kind: ProfileKind,
    pub strict: bool,
}

impl Profile {
    /// The normal variant of `kind`.
    pub fn new(kind: ProfileKind) -> Self {
        Self {
            kind,
            strict: false,
        }
    }

    /// Parses a job option: `document`, `table`, `chart`, `prescription`, `question`, each
    /// optionally with `-strict`; an `@version` suffix must name [`PROFILE_VERSION`].
    pub fn parse(name: &str) -> Result<Profile> {
        let trimmed = name.trim().to_ascii_lowercase();
        let (base, version) = match trimmed.split_once('@') {
            Some((b, v)) => (b, Some(v)),
            None => (trimmed.as_str(), None),
        };
        if let Some(v) = version {
            if v.parse::<u32>().ok() != Some(PROFILE_VERSION) {
                return Err(Error::InvalidInput(format!(
                    "profile `{name}`: version `{v}` is not the current one ({PROFILE_VERSION})"
                )));
            }
        }
        let (base, strict) = match base.strip_suffix("-strict") {
            Some(b) => (b, true),
            None => (base, false),
        };
        let kind = ProfileKind::ALL
            .into_iter()
            .find(|k| k.name() == base)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "unknown profile `{name}` (expected one of document, table, chart, prescription, question)"
                ))
            })?;
        Ok(Profile { kind, strict })
    }

    /// Versioned id recorded in results: `document@1`, `chart-strict@1`.
    pub fn id(&self) -> String {
        let strict = if self.strict { "-strict" } else { "" };
        format!("{}{strict}@{PROFILE_VERSION}", self.kind.name())
    }

    /// The user prompt text. The `question` profile uses `question` (an empty prompt when
    /// `None`; the engine should refuse such a job before it gets here); the others ignore it.
    pub fn prompt(&self, question: Option<&str>) -> String {
        let mut text = match self.kind {
            ProfileKind::Document => DOCUMENT_PROMPT.to_string(),
            ProfileKind::Table => TABLE_PROMPT.to_string(),
            ProfileKind::Chart => CHART_PROMPT.to_string(),
            ProfileKind::Prescription => PRESCRIPTION_PROMPT.to_string(),
            ProfileKind::Question => question.unwrap_or("").trim().to_string(),
        };
        if self.strict {
            let extra = match self.kind {
                ProfileKind::Document => DOCUMENT_STRICT,
                ProfileKind::Table => TABLE_STRICT,
                ProfileKind::Chart | ProfileKind::Prescription => JSON_STRICT,
                ProfileKind::Question => QUESTION_STRICT,
            };
            text.push_str("\n\n");
            text.push_str(extra);
        }
        text
    }

    /// The JSON Schema of the answer, for the JSON profiles (`chart`, `prescription`).
    pub fn json_schema(&self) -> Option<Value> {
        match self.kind {
            ProfileKind::Chart => Some(chart_schema()),
            ProfileKind::Prescription => Some(folio_schemas::prescription_schema()),
            _ => None,
        }
    }

    /// The stricter retry variant; `None` when already strict.
    pub fn stricter(&self) -> Option<Profile> {
        (!self.strict).then_some(Profile {
            kind: self.kind,
            strict: true,
        })
    }

    /// Whether `<think>` reasoning is on unless the job says otherwise: only for the free
    /// `question` profile. Transcription gains little from it and it costs tokens, and the
    /// JSON profiles are constrained from their first token (no room for a think section).
    pub fn thinking_default(&self) -> bool {
        self.kind == ProfileKind::Question && !self.strict
    }
}

/// The profile a layout region of `kind` is read with in layout-first mode.
pub fn profile_for_block(kind: folio_schemas::BlockKind) -> ProfileKind {
    use folio_schemas::BlockKind;
    match kind {
        BlockKind::Table => ProfileKind::Table,
        BlockKind::Chart => ProfileKind::Chart,
        _ => ProfileKind::Document,
    }
}

const DOCUMENT_PROMPT: &str = "Convert this document page to Markdown, block by block in reading order.
- Start every block on a new line with its bounding box <|begin_of_box|>[x1,y1,x2,y2]<|end_of_box|>, \
coordinates from 0 to 1000 relative to the image width and height, then the block's content.
- Titles and section headings as Markdown headings (#, ##, ###); paragraphs as plain text; \
list items with - or 1.
- Tables as HTML <table> with <tr>, <th>, <td> and rowspan/colspan for merged cells.
- Formulas in LaTeX between $$ and $$; inline math between $ and $.
- Charts and figures: one line ![figure](caption or short description).
- Separate blocks with a blank line. Transcribe the text exactly; do not translate, summarise or \
add comments.";

const DOCUMENT_STRICT: &str =
    "Output only the Markdown. Each block exactly once, never repeat a line; \
stop after the last block of the page. If a part is unreadable, write [illegible] and go on.";

const TABLE_PROMPT: &str =
    "Convert the table in this image to one HTML table: <table>, <tr> per row, \
<th> for header cells and <td> for the others, rowspan and colspan for merged cells. \
Transcribe every cell exactly, keep empty cells as <td></td>. Output only the HTML.";

const TABLE_STRICT: &str = "Write each row once, close every tag, and end with </table>. \
No Markdown, no comments.";

const CHART_PROMPT: &str = "Extract the data of the chart in this image as JSON with the fields \
chart_type (bar, line, pie, scatter, area, histogram or other), title (null if none), \
axes ({\"x\": {\"title\", \"unit\"}, \"y\": {\"title\", \"unit\"}}, null where absent) and \
series (a list of {\"name\", \"points\": [{\"x\": category or number, \"y\": number or null}]}). \
Read the values off the axes as precisely as possible. Output only the JSON.";

const PRESCRIPTION_PROMPT: &str = "Read this medical prescription and output JSON with the fields \
patient, age, date, prescriber (null when not written) and medications: a list of \
{\"name\", \"strength\", \"form\", \"frequency\", \"duration\", \"instructions\"} (null when not written). \
Transcribe what is written, including abbreviations such as bid or 1-0-1; do not guess \
illegible words, write [illegible] instead. Output only the JSON.";

const JSON_STRICT: &str = "Output exactly one JSON object and nothing else: no Markdown fence, \
no comments, no text before or after it.";

const QUESTION_STRICT: &str = "Answer briefly and do not repeat yourself.";

/// `{"anyOf": [t, null]}` spelled as a type list.
fn nullable(ty: &str, max_length: u32) -> Value {
    json!({"type": [ty, "null"], "maxLength": max_length})
}

/// Schema of the `chart` answer; the parser maps it to `folio_schemas::Chart`.
fn chart_schema() -> Value {
    let axis = json!({
        "type": "object",
        "properties": {"title": nullable("string", 200), "unit": nullable("string", 50)},
        "required": ["title", "unit"],
        "additionalProperties": false
    });
    json!({
        "type": "object",
        "properties": {
            "chart_type": {"type": "string",
                           "enum": ["bar", "line", "pie", "scatter", "area", "histogram", "other"]},
            "title": nullable("string", 300),
            "axes": {"type": "object", "properties": {"x": axis, "y": axis},
                     "required": ["x", "y"], "additionalProperties": false},
            "series": {"type": "array", "maxItems": 20, "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 200},
                    "points": {"type": "array", "maxItems": 500, "items": {
                        "type": "object",
                        "properties": {
                            "x": {"anyOf": [{"type": "string", "maxLength": 100}, {"type": "number"}]},
                            "y": {"type": ["number", "null"]}
                        },
                        "required": ["x", "y"],
                        "additionalProperties": false
                    }}
                },
                "required": ["name", "points"],
                "additionalProperties": false
            }}
        },
        "required": ["chart_type", "title", "axes", "series"],
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ids_and_strict_variants_round_trip() {
        for kind in ProfileKind::ALL {
            let p = Profile::new(kind);
            assert_eq!(Profile::parse(kind.name()).expect("parse"), p);
            let strict = p.stricter().expect("stricter");
            assert!(strict.stricter().is_none());
            assert_eq!(Profile::parse(&strict.id()).expect("parse id"), strict);
            assert_ne!(p.prompt(Some("q")), strict.prompt(Some("q")));
        }
        assert_eq!(Profile::new(ProfileKind::Chart).id(), "chart@1");
        assert_eq!(
            Profile::parse("Chart-Strict").expect("parse").id(),
            "chart-strict@1"
        );
        assert!(Profile::parse("poem").is_err());
        assert!(Profile::parse("document@99").is_err());
    }

    #[test]
    fn only_json_profiles_have_schemas() {
        for kind in ProfileKind::ALL {
            let has = Profile::new(kind).json_schema().is_some();
            assert_eq!(
                has,
                matches!(kind, ProfileKind::Chart | ProfileKind::Prescription)
            );
        }
        let q = Profile::new(ProfileKind::Question);
        assert_eq!(
            q.prompt(Some("  What is the total? ")),
            "What is the total?"
        );
    }

    #[test]
    fn layout_regions_pick_profiles() {
        use folio_schemas::BlockKind;
        assert_eq!(profile_for_block(BlockKind::Table), ProfileKind::Table);
        assert_eq!(profile_for_block(BlockKind::Chart), ProfileKind::Chart);
        assert_eq!(profile_for_block(BlockKind::Text), ProfileKind::Document);
    }
}
