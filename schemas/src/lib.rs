//! Folio's contracts: the messages that travel on the queue and the documents that land in the store.
//!
//! Everything here is plain data with serde and [`schemars`] derives; there is no I/O. The JSON Schema
//! files under `schemas/json/` are generated from these types ([`all_schemas`]) and committed; a test
//! fails when they drift.
//!
//! - [`job`]: [`PageJob`], the unit of work (one page of one document) and [`Manifest`], the record of an
//!   uploaded document.
//! - [`page`]: [`PageResult`], the structured output for one page (blocks with boxes, tables, charts).
//! - [`document`]: [`DocumentResult`], all pages assembled, and [`PageError`], the record of a page
//!   that could not be processed.
//! - [`lifecycle`]: the progress log, how a document ends, cancel, completion webhooks.
//! - [`prescription`]: [`Prescription`], the record both engines put in a prescription block's
//!   `fields`.

pub mod document;
pub mod job;
pub mod keys;
pub mod lifecycle;
pub mod page;
pub mod prescription;

pub use document::{DocumentResult, DocumentStatus, PageError, SourceInfo};
pub use job::{EngineKind, JobOptions, Manifest, PageJob, OCR_PROFILES};
pub use keys::{DocKeys, ResultKey};
pub use lifecycle::{
    CallbackNotice, CallbackPayload, CallbackRegistration, CancelRecord, DeliveryAttempt,
    DeliveryOutcome, EndStatus, ProgressEvent, ProgressKind, Round,
};
pub use page::{
    BBox, Block, BlockKind, Chart, ChartAxis, ChartPoint, ChartSeries, EngineInfo, Formula, Line,
    PageImage, PageResult, Table, TableCell,
};
pub use prescription::{prescription_schema, Medication, Prescription};

/// Version of the output and message formats; bumped on any breaking change.
pub const SCHEMA_VERSION: &str = "1.0";

/// `(file name, schema)` for every committed JSON Schema file under `schemas/json/`.
pub fn all_schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn gen<T: schemars::JsonSchema>() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(T)).expect("a schema is always valid JSON")
    }
    vec![
        ("page_job.schema.json", gen::<PageJob>()),
        ("manifest.schema.json", gen::<Manifest>()),
        ("page_result.schema.json", gen::<PageResult>()),
        ("page_error.schema.json", gen::<PageError>()),
        ("document_result.schema.json", gen::<DocumentResult>()),
        ("prescription.schema.json", prescription_schema()),
    ]
}
