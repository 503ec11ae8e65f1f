//! A whole document: its pages assembled, and the record of pages that failed.

use crate::page::PageResult;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Written as `results/{page:05}.error.json` when a page cannot be processed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PageError {
    pub schema_version: String,
    pub document_id: String,
    pub page: u32,
    /// Stable machine-readable code, e.g. `image_undecodable`, `engine_failed`, `delivery_limit`.
    pub code: String,
    pub message: String,
    /// How many times the page was attempted.
    pub attempts: u32,
    /// RFC 3339 time the record was written (absent in records of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SourceInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    pub media_type: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub page_count: u32,
}

/// `complete`: every page has a result; `partial`: every page is done, some with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    Complete,
    Partial,
}

/// `document.json`: assembled once every selected page has a result or an error record.
/// Assembling twice from the same page records gives the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DocumentResult {
    pub schema_version: String,
    pub document_id: String,
    pub source: SourceInfo,
    pub status: DocumentStatus,
    /// Results in page order.
    pub pages: Vec<PageResult>,
    /// Pages that failed, in page order.
    #[serde(default)]
    pub errors: Vec<PageError>,
    /// The whole document as Markdown.
    pub markdown: String,
    /// RFC 3339 time the source was received (from the manifest; never "now", for idempotency).
    pub created_at: String,
    /// RFC 3339 time the last page record was written: the latest `finished_at` of the pages'
    /// results and errors (never the time of assembly, for idempotency). Absent when no page
    /// record carries a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
}
