//! Messages: the page job on the queue and the manifest of an uploaded document.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Engines a job can ask for; each has its own queue `folio.pages.{engine}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    Ocr,
    Glm45v,
}

impl EngineKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            EngineKind::Ocr => "ocr",
            EngineKind::Glm45v => "glm45v",
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ocr" => Ok(EngineKind::Ocr),
            "glm45v" => Ok(EngineKind::Glm45v),
            other => Err(format!(
                "unknown engine `{other}` (expected `ocr` or `glm45v`)"
            )),
        }
    }
}

/// Profiles of the `ocr` engine: `auto` (the default: text, plus a prescription record on pages
/// that are prescriptions), `document` (text only), `prescription` (the record on every page).
pub const OCR_PROFILES: &[&str] = &["auto", "document", "prescription"];

/// Per-document processing options, copied into every page job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobOptions {
    pub engine: EngineKind,
    /// Profile: for `glm45v` a prompt profile (`document`, `table`, `chart`, `prescription`,
    /// `question`), for `ocr` one of [`OCR_PROFILES`] (default `auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Free prompt for the `question` profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    pub dpi: u32,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            engine: EngineKind::Ocr,
            profile: None,
            prompt: None,
            dpi: 200,
        }
    }
}

/// One page of one document to process. Keys are relative to the bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PageJob {
    pub schema_version: String,
    pub tenant: String,
    pub document_id: String,
    /// 1-based page number.
    pub page: u32,
    /// How many pages the document has (to know when it is complete).
    pub page_count: u32,
    /// Object key of the page image (PNG).
    pub image_key: String,
    pub options: JobOptions,
    /// DPI the page was rendered at (PDF) or the image's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpi: Option<u32>,
    /// W3C trace context (`traceparent`) of the upload, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// RFC 3339 time of submission.
    pub submitted_at: String,
}

/// The record of an uploaded document, written next to its source before any page is enqueued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Manifest {
    pub schema_version: String,
    pub tenant: String,
    pub document_id: String,
    /// Original file name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    pub media_type: String,
    pub sha256: String,
    pub size_bytes: u64,
    /// Page numbers (1-based) selected for processing.
    pub pages: Vec<u32>,
    /// Pages in the source file.
    pub source_page_count: u32,
    pub options: JobOptions,
    pub created_at: String,
    /// Free metadata (e.g. the bucket event that triggered it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}
