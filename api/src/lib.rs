//! folio-api: Folio's front door. [`submit`] takes a document from validation (by `folio-ingest`)
//! to queued page jobs; [`http`] is the upload API over it, [`events`] the bucket-notification
//! triggers, and [`reprocess`] the re-submission of stored documents. [`callbacks`] delivers
//! completion webhooks; [`retention`] deletes documents past their retention (`folio gc`).

pub mod callbacks;
pub mod events;
pub mod http;
mod redact;
pub mod reprocess;
pub mod retention;
pub mod submit;
