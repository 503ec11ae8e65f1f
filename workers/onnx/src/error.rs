//! The crate's error type: the runtime library that could not be found or loaded, or the
//! session that could not be built (the caller adds which model).

use std::path::PathBuf;

/// Everything loading the runtime or building a session can fail with.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The ONNX Runtime shared library is not where the configuration says.
    #[error("ONNX Runtime library not found at {}: run `scripts/setup` to fetch it", path.display())]
    RuntimeMissing { path: PathBuf },

    /// The library exists but could not be loaded (wrong file, wrong version, missing symbols).
    #[error("cannot load ONNX Runtime from {}: {message}", path.display())]
    RuntimeLoad { path: PathBuf, message: String },

    /// ONNX Runtime refused a session setting or the model file.
    #[error("{0}")]
    Session(String),
}
