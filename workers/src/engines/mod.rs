//! Adapters from model crates to the [`crate::Engine`] trait.

pub mod ocr;

pub use ocr::OcrAdapter;
