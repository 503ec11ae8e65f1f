//! The session wrapper every model of this crate runs through. ONNX Runtime itself (the
//! process-wide environment, session building) is `folio-onnx`'s.
//!
//! `Session::run` needs `&mut`, so each [`OrtModel`] keeps its session behind a `Mutex`; the
//! engine is then `Send + Sync` and concurrent pages queue on the lock.

use crate::error::OcrError;
use folio_onnx::{build_session, Environment, Session, SessionSettings};
use ort::value::Tensor;
use std::path::Path;
use std::sync::Mutex;

pub(crate) use folio_onnx::lock_ignoring_poison;

/// Loads ONNX Runtime from `lib` and creates the process environment. Idempotent: later calls
/// return at once (a different path than the first one is logged and ignored, since a process
/// can hold only one runtime).
pub fn init_onnxruntime(lib: &Path) -> Result<(), OcrError> {
    onnxruntime_environment(lib).map(|_| ())
}

/// The process-wide ONNX Runtime environment ([`folio_onnx::onnxruntime_environment`]) with
/// this crate's error.
pub fn onnxruntime_environment(lib: &Path) -> Result<Environment, OcrError> {
    folio_onnx::onnxruntime_environment(lib).map_err(OcrError::from)
}

/// One output tensor of a run, borrowed from ONNX Runtime.
pub(crate) struct OutputView<'a> {
    pub shape: Vec<usize>,
    pub data: &'a [f32],
}

/// A loaded model: one session, its input name and output names, shared behind a mutex.
pub(crate) struct OrtModel {
    name: String,
    session: Mutex<Session>,
    output_names: Vec<String>,
}

impl OrtModel {
    /// Loads `path` with `threads` intra-op threads; `name` labels errors and logs.
    pub fn load(
        env: &Environment,
        path: &Path,
        name: &str,
        threads: usize,
    ) -> Result<Self, OcrError> {
        if !path.is_file() {
            return Err(OcrError::ModelMissing {
                path: path.to_path_buf(),
            });
        }
        let settings = SessionSettings {
            intra_threads: threads.max(1),
            inter_threads: Some(1),
            cuda_device: None,
        };
        let session = build_session(env, path, &settings)
            .map_err(|e| OcrError::model(name, format!("cannot load {}: {e}", path.display())))?;
        if session.inputs().len() != 1 {
            return Err(OcrError::model(
                name,
                format!("expected 1 input, found {}", session.inputs().len()),
            ));
        }
        let output_names = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        tracing::debug!(model = name, path = %path.display(), threads, "model loaded");
        Ok(OrtModel {
            name: name.to_string(),
            session: Mutex::new(session),
            output_names,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Custom metadata value for `key`, if the model has one.
    pub fn metadata(&self, key: &str) -> Result<Option<String>, OcrError> {
        let session = lock_ignoring_poison(&self.session);
        let meta = session
            .metadata()
            .map_err(|e| OcrError::model(&self.name, e.to_string()))?;
        Ok(meta.custom(key))
    }

    /// Number of outputs the model declares.
    pub fn output_count(&self) -> usize {
        self.output_names.len()
    }

    /// Runs the model on one `f32` NCHW tensor and hands every output (in declaration order) to `f`
    /// while ONNX Runtime still owns them, so large outputs are read in place, never copied.
    pub fn run<R>(
        &self,
        shape: [usize; 4],
        data: Vec<f32>,
        f: impl FnOnce(&[OutputView<'_>]) -> Result<R, OcrError>,
    ) -> Result<R, OcrError> {
        let expected: usize = shape.iter().product();
        if data.len() != expected || expected == 0 {
            return Err(OcrError::inference(
                &self.name,
                format!(
                    "input of {} values does not fit shape {shape:?}",
                    data.len()
                ),
            ));
        }
        let tensor =
            Tensor::from_array((shape, data)).map_err(|e| OcrError::inference(&self.name, e))?;
        let mut session = lock_ignoring_poison(&self.session);
        let outputs = session
            .run(ort::inputs![tensor])
            .map_err(|e| OcrError::inference(&self.name, e))?;
        let mut views = Vec::with_capacity(self.output_names.len());
        for name in &self.output_names {
            let value = outputs.get(name.as_str()).ok_or_else(|| {
                OcrError::inference(&self.name, format!("output `{name}` missing"))
            })?;
            let (dims, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| OcrError::inference(&self.name, format!("output `{name}`: {e}")))?;
            let shape = dims
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(0))
                .collect();
            views.push(OutputView { shape, data });
        }
        f(&views)
    }
}
