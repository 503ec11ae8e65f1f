//! folio-api: the ingest pipeline (sniff, validate, rasterize uploaded documents) and, later,
//! the HTTP API in front of it.

pub mod events;
pub mod http;
pub mod ingest;
pub mod page_png;
pub mod reprocess;
pub mod submit;
