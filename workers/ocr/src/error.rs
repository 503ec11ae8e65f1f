//! The one error type of the crate: what went wrong, with the file or model it concerns.

use std::path::PathBuf;

/// Everything [`crate::OcrEngine`] and [`crate::init_onnxruntime`] can fail with.
#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    /// The ONNX Runtime shared library is not where the configuration says.
    #[error("ONNX Runtime library not found at {}: run `scripts/setup` to fetch it", path.display())]
    RuntimeMissing { path: PathBuf },

    /// The library exists but could not be loaded (wrong file, wrong version, missing symbols).
    #[error("cannot load ONNX Runtime from {}: {message}", path.display())]
    RuntimeLoad { path: PathBuf, message: String },

    /// A model file named by the configuration does not exist.
    #[error("model file {} not found: run `scripts/setup` to fetch the models", path.display())]
    ModelMissing { path: PathBuf },

    /// A model loaded but is not what this crate expects (inputs, outputs, metadata), or failed to load.
    #[error("model {model}: {message}")]
    Model { model: String, message: String },

    /// ONNX Runtime failed while running a model.
    #[error("model {model}: inference failed: {message}")]
    Inference { model: String, message: String },

    /// The configuration cannot work (e.g. a zero-sized thread pool request that cannot be resolved).
    #[error("invalid OCR configuration: {0}")]
    Config(String),
}

impl From<folio_onnx::OnnxError> for OcrError {
    fn from(e: folio_onnx::OnnxError) -> Self {
        match e {
            folio_onnx::OnnxError::RuntimeMissing { path } => OcrError::RuntimeMissing { path },
            folio_onnx::OnnxError::RuntimeLoad { path, message } => {
                OcrError::RuntimeLoad { path, message }
            }
            folio_onnx::OnnxError::Session(message) => OcrError::model("onnxruntime", message),
        }
    }
}

impl OcrError {
    pub(crate) fn model(model: &str, message: impl Into<String>) -> Self {
        OcrError::Model {
            model: model.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn inference(model: &str, message: impl std::fmt::Display) -> Self {
        OcrError::Inference {
            model: model.to_string(),
            message: message.to_string(),
        }
    }
}
