//! ONNX Runtime: loaded once per process from an explicit library path, and the session wrapper
//! every model of this crate runs through.
//!
//! ort 2.0.0-rc.15 allows one [`Environment`] per process and sessions take it explicitly, so the
//! environment lives in a process-wide `OnceLock` that other crates reach through
//! [`onnxruntime_environment`]. `Session::run` needs `&mut`, so each [`OrtModel`] keeps its session
//! behind a `Mutex`; the engine is then `Send + Sync` and concurrent pages queue on the lock.

use crate::error::OcrError;
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

static ORT_ENV: OnceLock<(PathBuf, Environment)> = OnceLock::new();
static ORT_INIT: Mutex<()> = Mutex::new(());

/// Loads ONNX Runtime from `lib` and creates the process environment. Idempotent: later calls
/// return at once (a different path than the first one is logged and ignored, since a process
/// can hold only one runtime).
pub fn init_onnxruntime(lib: &Path) -> Result<(), OcrError> {
    onnxruntime_environment(lib).map(|_| ())
}

/// The process-wide ONNX Runtime environment, created from `lib` on first use. Crates that run
/// their own ort sessions build them on this environment (a second one cannot be created).
pub fn onnxruntime_environment(lib: &Path) -> Result<Environment, OcrError> {
    if let Some(env) = existing_environment(lib) {
        return Ok(env);
    }
    let _guard = lock_ignoring_poison(&ORT_INIT);
    if let Some(env) = existing_environment(lib) {
        return Ok(env);
    }
    if !lib.is_file() {
        return Err(OcrError::RuntimeMissing {
            path: lib.to_path_buf(),
        });
    }
    let builder = ort::init_from(lib).map_err(|e| OcrError::RuntimeLoad {
        path: lib.to_path_buf(),
        message: e.to_string(),
    })?;
    let env = builder
        .with_name("folio")
        .with_telemetry(false)
        .build()
        .map_err(|e| OcrError::RuntimeLoad {
            path: lib.to_path_buf(),
            message: e.to_string(),
        })?;
    tracing::info!(lib = %lib.display(), "ONNX Runtime loaded");
    // We hold ORT_INIT and checked that the cell is empty, so this set cannot lose a race.
    let _ = ORT_ENV.set((lib.to_path_buf(), env.clone()));
    Ok(env)
}

fn existing_environment(lib: &Path) -> Option<Environment> {
    let (loaded, env) = ORT_ENV.get()?;
    if !same_file(loaded, lib) {
        tracing::warn!(
            requested = %lib.display(),
            loaded = %loaded.display(),
            "ONNX Runtime is already loaded from another path; keeping the loaded one"
        );
    }
    Some(env.clone())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

pub(crate) fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while a session ran leaves nothing half-written that we rely on.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let fail =
            |e: String| OcrError::model(name, format!("cannot load {}: {e}", path.display()));
        let session = Session::builder(env)
            .map_err(|e| fail(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| fail(e.to_string()))?
            .with_intra_threads(threads.max(1))
            .map_err(|e| fail(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| fail(e.to_string()))?
            .commit_from_file(path)
            .map_err(|e| fail(e.to_string()))?;
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
