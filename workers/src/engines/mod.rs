//! Adapters from model crates to the [`crate::Engine`] trait.

pub mod glm45v;
pub mod ocr;
pub mod prescription;

pub use glm45v::Glm45vEngine;
pub use ocr::OcrAdapter;
