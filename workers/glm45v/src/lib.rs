//! folio-glm45v: GLM-4.5V (zai-org/GLM-4.5V and GLM-4.5V-FP8) in Rust — pure compute, no I/O
//! beyond reading the checkpoint directory, no async.
//!
//! Images go in through the [`processor`] and the vision tower exported to ONNX ([`vision`], run
//! by ONNX Runtime) and plug into the [`decoder`] through [`generate::Prompt`] (input embeddings
//! with vision rows spliced in, explicit 3-row M-RoPE positions).
//!
//! The folders follow the stages of a request:
//!
//! | module | role |
//! | --- | --- |
//! | [`checkpoint`] | `config.json` mirror, sharded safetensors, FP8 dequantisation, synthetic weights |
//! | [`chat`] | `tokenizer.json`, special ids, the chat template (minijinja or built-in) |
//! | [`processor`] | pixels → `pixel_values`, grids, resize, placeholder expansion, video frames |
//! | [`vision`] | the tower's host inputs, its ONNX Runtime session, the hand-off and splice into the prompt |
//! | [`decoder`] | the text decoder: M-RoPE, attention, MoE, layers, KV cache |
//! | [`kernels`] | CUDA kernels (NVRTC) for decode and prefill |
//! | [`generate`] | prompts, sampling, stopping; output parsing; batched generation; token constraints |
//! | [`model`] | a loaded checkpoint directory with chat generation |
//!
//! The crate is the model only: it depends on neither `folio-ocr` nor `folio-schemas`. Prompt
//! profiles, answer parsing into schema blocks, retries, fallback and layout-first live in the
//! worker's engine (`folio_workers::engines::glm45v`); ONNX Runtime setup is `folio-onnx`.
//!
//! ```no_run
//! use folio_glm45v::{chat::{ChatMessage, ChatOptions}, generate::{Flow, Prompt}};
//! use folio_glm45v::model::{Glm45v, LoadOptions};
//! # fn main() -> folio_glm45v::Result<()> {
//! let glm = Glm45v::load(std::path::Path::new("GLM-4.5V-FP8"), &LoadOptions::default())?;
//! let ids = glm.encode_chat(&[ChatMessage::text("user", "Hello")], ChatOptions::default())?;
//! let params = glm.default_params(0);
//! let reply = glm.generate_text(&Prompt::text(ids), &params, None, &mut |delta| {
//!     print!("{delta}");
//!     Flow::Continue
//! })?;
//! println!("\nanswer: {}", reply.parsed.answer);
//! # Ok(()) }
//! ```

pub mod chat;
pub mod checkpoint;
pub mod decoder;
pub mod error;
pub mod generate;
pub mod kernels;
pub mod model;
pub mod processor;
pub mod vision;

pub use decoder::kv_cache::KvCache;
pub use error::{Error, Result};
