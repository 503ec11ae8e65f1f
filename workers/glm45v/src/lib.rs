//! folio-glm45v: GLM-4.5V (zai-org/GLM-4.5V, GLM-4.5V-FP8) in Rust — pure compute, no I/O
//! beyond reading the checkpoint directory.
pub mod attention;
pub mod config;
pub mod error;
pub mod fp8;
pub mod kv_cache;
pub mod layers;
pub mod moe;
pub mod mrope;
pub mod text_model;
pub mod weights;
pub use error::{Error, Result};
