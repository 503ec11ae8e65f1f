//! The crate's one integration-test binary: parity with transformers on the committed tiny
//! fixtures (no Python needed), chat format, generation and checkpoint loading.

mod chat;
mod common;
mod generation;
mod loading;
mod parity;
