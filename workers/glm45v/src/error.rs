//! The crate's error type: every failure names what failed (file, tensor, field, token).

use std::path::PathBuf;

/// Errors from loading, tokenising, rendering and running GLM-4.5V.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the checkpoint could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file of the checkpoint is malformed or has the wrong types.
    #[error("invalid JSON in {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The configuration parsed but is inconsistent or unsupported.
    #[error("invalid config: {0}")]
    Config(String),
    /// The checkpoint directory or its weights are incomplete or malformed.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The checkpoint uses a quantization scheme this crate cannot load.
    #[error("unsupported quantization: {0}")]
    UnsupportedQuantization(String),
    /// The tokenizer could not be loaded or failed on an input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template could not be compiled or rendered.
    #[error("chat template: {0}")]
    Template(String),
    /// The caller passed inputs that do not fit the model (ids out of range, shapes, options).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The model does not fit the device's memory (the planner's numbers in the message).
    #[error("out of device memory: {0}")]
    DoesNotFit(String),
    /// The decoder cannot be split over the asked number of ranks, or a collective failed
    /// (a rank aborted, timed out, or sent a tensor of another shape).
    #[error("parallel decoder: {0}")]
    Parallel(String),
    /// The vision tower (ONNX model or ONNX Runtime) could not be loaded or failed to run.
    #[error("vision tower: {0}")]
    Vision(String),
    /// An image could not be read or decoded.
    #[error("image {path}: {message}")]
    Image { path: PathBuf, message: String },
    /// A tensor operation failed (also: missing or misshaped tensors at load, with their name).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
