//! Engine configuration: where the runtime and the models are, and which stages run.
//!
//! The library never reads environment variables; the binary resolves `FOLIO_RUNTIME_DIR` and hands
//! the folder to [`OcrConfig::from_runtime_dir`].

use std::path::{Path, PathBuf};

/// File name of the ONNX Runtime library that `scripts/setup` extracts into `<runtime>/lib/`.
pub const ONNXRUNTIME_LIB_FILE: &str = "libonnxruntime.so.1.31.1";
/// PP-OCRv6 small DB text detector.
pub const DET_MODEL_FILE: &str = "PP-OCRv6_det_small.onnx";
/// PP-OCRv6 small SVTR/CTC recogniser (character list in its metadata).
pub const REC_MODEL_FILE: &str = "PP-OCRv6_rec_small.onnx";
/// 0°/180° text-line orientation classifier.
pub const CLS_MODEL_FILE: &str = "ch_ppocr_mobile_v2.0_cls_mobile.onnx";
/// PicoDet layout detector trained on CDLA (10 region classes).
pub const LAYOUT_MODEL_FILE: &str = "layout_cdla.onnx";
/// SLANet table-structure recogniser (structure tokens in its metadata).
pub const TABLE_MODEL_FILE: &str = "en_ppstructure_mobile_v2_SLANet.onnx";

/// What [`crate::OcrEngine::load`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcrConfig {
    /// Path of the ONNX Runtime shared library (loaded once per process).
    pub onnxruntime_lib: PathBuf,
    /// Folder holding the `.onnx` files named by the `*_MODEL_FILE` constants.
    pub models_dir: PathBuf,
    /// Run the 0°/180° line classifier before recognition (off by default: upside-down text is rare
    /// on scans and the classifier costs time on every line).
    pub angle_classifier: bool,
    /// Detect layout regions (titles, headers, tables, figures, …) to build typed blocks.
    pub layout: bool,
    /// Recognise table structure in table regions (needs `layout`).
    pub tables: bool,
    /// CPU threads to use; `0` means all available cores. Detection, layout and tables run one
    /// session each with this many intra-op threads; recognition spreads its batches over up to
    /// four sessions that share them.
    pub threads: usize,
}

impl OcrConfig {
    /// The layout `scripts/setup` produces: `<dir>/lib/libonnxruntime.so.1.31.1` and `<dir>/models/`;
    /// layout and tables on, angle classifier off, all cores.
    pub fn from_runtime_dir(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        OcrConfig {
            onnxruntime_lib: dir.join("lib").join(ONNXRUNTIME_LIB_FILE),
            models_dir: dir.join("models"),
            angle_classifier: false,
            layout: true,
            tables: true,
            threads: 0,
        }
    }

    /// The thread count actually used: `threads`, or the number of available cores when it is `0`.
    pub fn effective_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }

    pub(crate) fn model_path(&self, file: &str) -> PathBuf {
        self.models_dir.join(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_dir_layout() {
        let cfg = OcrConfig::from_runtime_dir("/opt/folio");
        assert_eq!(
            cfg.onnxruntime_lib,
            Path::new("/opt/folio/lib/libonnxruntime.so.1.31.1")
        );
        assert_eq!(
            cfg.model_path(DET_MODEL_FILE),
            Path::new("/opt/folio/models/PP-OCRv6_det_small.onnx")
        );
        assert!(!cfg.angle_classifier && cfg.layout && cfg.tables);
        assert!(cfg.effective_threads() >= 1);
    }
}
