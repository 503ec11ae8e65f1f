//! The engine trait: pages in, blocks out. Synchronous and tensor-free; engines own their threads.

use folio_schemas::{Block, EngineInfo, EngineKind, JobOptions};
use std::collections::BTreeMap;

/// One page to process.
#[derive(Debug, Clone)]
pub struct PageInput {
    pub document_id: String,
    pub page: u32,
    pub image: image::RgbImage,
    pub dpi: Option<u32>,
    pub options: JobOptions,
}

/// What an engine found on one page.
#[derive(Debug, Clone)]
pub struct EngineOutput {
    /// Blocks in reading order, boxes in page pixels.
    pub blocks: Vec<Block>,
    pub warnings: Vec<String>,
    /// Milliseconds per stage; `total` is added by the worker when absent.
    pub timings: BTreeMap<String, f64>,
    /// Profile actually used (for engines with prompt profiles).
    pub profile: Option<String>,
}

/// Why an engine could not process a page.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The page itself is the problem (unreadable, unsupported); retrying will not help.
    #[error("{code}: {message}")]
    Permanent { code: &'static str, message: String },
    /// The engine is temporarily unable (out of memory, device busy); retry later.
    #[error("{0}")]
    Transient(String),
}

/// A document engine. `run` gets at most `max_batch()` pages and returns one result per page, in order.
pub trait Engine: Send + Sync {
    fn kind(&self) -> EngineKind;
    fn info(&self) -> EngineInfo;
    fn max_batch(&self) -> usize;
    fn run(&self, pages: &[PageInput]) -> Vec<Result<EngineOutput, EngineError>>;
}
