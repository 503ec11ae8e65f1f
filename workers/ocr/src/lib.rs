//! folio-ocr: Folio's default CPU engine. PP-OCRv6 small text detection (DB) and recognition
//! (SVTR/CTC), an optional 0°/180° line classifier, CDLA layout regions and SLANet table structure,
//! all over ONNX Runtime loaded dynamically from an explicit path.
//!
//! Pure compute: no async runtime, no queue, no storage. The worker crate adapts [`OcrEngine`] to
//! its `Engine` trait.
//!
//! ```no_run
//! use folio_ocr::{OcrConfig, OcrEngine};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = OcrConfig::from_runtime_dir("/root/.cache/folio");
//! let engine = OcrEngine::load(&cfg)?;
//! let page = image::open("page.png")?.to_rgb8();
//! let analysis = engine.analyze(&page, 1)?;
//! for block in &analysis.blocks {
//!     println!("{} {:?}: {}", block.id, block.kind, block.text.as_deref().unwrap_or(""));
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Modules, in pipeline order: [`detect`] (+ [`db_post`], [`geometry`]), [`crop`], `classify`,
//! [`recognize`] (+ [`ctc`]), [`layout`], [`skew`], [`blocks`], [`table`], [`order`]; [`engine`] runs them.

pub mod blocks;
mod classify;
pub mod config;
pub mod crop;
pub mod ctc;
pub mod db_post;
pub mod detect;
pub mod engine;
pub mod error;
pub mod geometry;
pub mod imgops;
pub mod layout;
pub mod order;
pub mod recognize;
mod runtime;
pub mod skew;
pub mod table;

pub use config::OcrConfig;
pub use engine::{OcrEngine, PageAnalysis, FIGURE_WARNING};
pub use error::OcrError;
pub use runtime::{init_onnxruntime, onnxruntime_environment};

#[cfg(test)]
mod send_sync {
    #[test]
    fn engine_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::OcrEngine>();
    }
}
