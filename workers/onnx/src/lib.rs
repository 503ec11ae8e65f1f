//! folio-onnx: ONNX Runtime for Folio's engines, in one place.
//!
//! | module | role |
//! | --- | --- |
//! | [`environment`] | the runtime library, loaded once per process from an explicit path |
//! | [`session`] | session building (optimisation level, threads) and execution-provider choice with CPU fallback |
//!
//! Both engines use it: `folio-ocr` (PP-OCR, layout and table models on the CPU) and
//! `folio-glm45v` (the vision tower, CPU or CUDA). It knows no model: callers check their
//! graphs' inputs, outputs and metadata themselves.

pub mod environment;
pub mod error;
pub mod session;

pub use environment::{lock_ignoring_poison, onnxruntime_environment};
pub use error::OnnxError;
pub use ort::environment::Environment;
pub use ort::session::Session;
pub use session::{
    build_session, session_on_device, ExecutionDevice, SessionSettings, CUDA_PROVIDER_LIB,
};
