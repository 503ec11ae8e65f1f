//! folio-glm45v: GLM-4.5V (zai-org/GLM-4.5V and GLM-4.5V-FP8) in Rust — pure compute, no I/O
//! beyond reading the checkpoint directory, no async.
//!
//! Images go in through the processor (`processor*.rs`) and the vision tower exported to ONNX
//! (`vision*.rs`, run by ONNX Runtime) and plug into the decoder through [`generation::Prompt`]
//! (input embeddings with vision rows spliced in, explicit 3-row M-RoPE positions).
//!
//! | module | role |
//! | --- | --- |
//! | [`config`] | serde mirror of `config.json` / `generation_config.json`, validation |
//! | [`weights`], [`fp8`] | sharded, memory-mapped safetensors; FP8 per-channel dequantisation |
//! | [`tokenizer`], [`chat`] | `tokenizer.json`, special ids, chat template (minijinja or built-in) |
//! | [`text_model`] | the decoder: [`mrope`], [`attention`], [`moe`], [`layers`], [`kv_cache`] |
//! | [`generation`], [`output`] | greedy/sampled generation, reasoning/answer/box parsing |
//! | [`batch`] | batched generation across pages: admission under a token budget, ragged decode |
//! | [`profiles`], [`page_parse`], [`constraint`] | prompt profiles, answer → page blocks, JSON-schema constrained decoding |
//! | [`processor`], [`processor_resize`], [`processor_prompt`], [`processor_video`] | pixels → `pixel_values`, grids, placeholder expansion |
//! | [`vision_inputs`], [`vision_onnx`] | rotary / bicubic / segment inputs; the ort session of the tower |
//! | [`vision_merge`], [`vision_prompt`] | `get_rope_index`, ort → candle hand-off, splice; image prompts end to end |
//! | [`model`] | a loaded checkpoint directory with chat generation |
//!
//! ```no_run
//! use folio_glm45v::{chat::{ChatMessage, ChatOptions}, generation::{Flow, Prompt}};
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

pub mod attention;
pub mod batch;
pub mod chat;
pub mod config;
pub mod constraint;
pub mod error;
pub mod fp8;
pub mod generation;
pub mod kernels;
pub mod kv_cache;
pub mod layers;
pub mod model;
pub mod moe;
pub mod mrope;
pub mod output;
pub mod page_parse;
pub mod processor;
pub mod processor_prompt;
pub mod processor_resize;
pub mod processor_video;
pub mod profiles;
pub mod synthetic;
pub mod text_model;
pub mod tokenizer;
pub mod vision_inputs;
pub mod vision_merge;
pub mod vision_onnx;
pub mod vision_prompt;
pub mod weights;

pub use error::{Error, Result};
pub use kv_cache::KvCache;
