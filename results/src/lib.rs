//! Folio results: the document assembled from its page records.
//!
//! Used by the workers (when the last page result lands) and by the API (when it writes error
//! records for pages that never reached a worker, e.g. a rasterization failure).
//!
//! - [`assemble`]: `document.json` / `document.md` once every selected page is recorded.
//! - [`progress`]: the progress log (`events/`), the durable source of live progress.
//! - [`ending`]: how a document ends: the end logged, the completion webhook's notice queued.
//! - [`markdown`]: blocks to Markdown.
//! - [`html`]: the document viewer page (boxes over page images, block details, Markdown).
//! - [`json`]: the one serialisation of every JSON object Folio stores.
//! - [`clock`]: record timestamps in one fixed, sortable RFC 3339 form.

pub mod assemble;
pub mod clock;
pub mod ending;
pub mod html;
pub mod json;
pub mod markdown;
pub mod progress;

pub use assemble::{build_document, try_assemble, AssembleError, Completion};
pub use ending::{end_document, Ended, Ending};
pub use html::{document_html, ImageSources};
pub use json::to_bytes;
pub use markdown::{document_markdown, page_markdown};
