//! Folio workers: take page jobs from a queue, run an engine, write results, then ack.
//!
//! - [`Engine`]: the narrow, synchronous, tensor-free trait every engine sits behind.
//! - [`engines`]: adapters from the model crates (`folio-ocr`, later `folio-glm45v`) to [`Engine`].
//! - [`Worker`]: the consumer loop (batching, result writing, settlement, completion).
//! - [`disposition`]: the pure failure policy (retry, record, dead-letter).
//! - [`job_check`]: the checks a page job passes before the worker uses any key it names.
//!
//! Assembly (`document.json` / `document.md`) and Markdown rendering live in `folio-results`,
//! shared with the API.

pub mod disposition;
pub mod engine;
pub mod engines;
pub mod job_check;
pub mod metrics;
pub mod worker;

pub use disposition::{disposition, Disposition, Failure};
pub use engine::{Engine, EngineError, EngineOutput, PageInput};
pub use worker::{Worker, WorkerConfig, WorkerError, WorkerEvent};
