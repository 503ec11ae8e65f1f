//! The crate's one integration-test binary: parity with transformers on the committed tiny
//! fixtures (no Python needed), chat format, generation and checkpoint loading; the image
//! processor on corpus images, the ONNX vision tower and whole image+prompt parity; batched
//! generation across prompts; the tensor/expert-parallel decoder against the unsharded one.

mod batch;
mod chat;
mod common;
mod generation;
mod loading;
mod parallel;
mod parity;
mod processor;
mod vision;
