//! The process-wide ONNX Runtime environment, loaded once from an explicit library path.
//!
//! ort 2.0.0-rc.15 allows one [`Environment`] per process and sessions take it explicitly, so the
//! environment lives in a process-wide `OnceLock` that every engine reaches through
//! [`onnxruntime_environment`].

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use ort::environment::Environment;

use crate::error::OnnxError;

static ORT_ENV: OnceLock<(PathBuf, Environment)> = OnceLock::new();
static ORT_INIT: Mutex<()> = Mutex::new(());

/// The process-wide ONNX Runtime environment, created from `lib` on first use. Idempotent: later
/// calls return at once (a different path than the first one is logged and ignored, since a
/// process can hold only one runtime).
pub fn onnxruntime_environment(lib: &Path) -> Result<Environment, OnnxError> {
    if let Some(env) = existing_environment(lib) {
        return Ok(env);
    }
    let _guard = lock_ignoring_poison(&ORT_INIT);
    if let Some(env) = existing_environment(lib) {
        return Ok(env);
    }
    if !lib.is_file() {
        return Err(OnnxError::RuntimeMissing {
            path: lib.to_path_buf(),
        });
    }
    let load_error = |message: String| OnnxError::RuntimeLoad {
        path: lib.to_path_buf(),
        message,
    };
    let env = ort::init_from(lib)
        .map_err(|e| load_error(e.to_string()))?
        .with_name("folio")
        .with_telemetry(false)
        .build()
        .map_err(|e| load_error(e.to_string()))?;
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

/// Locks `m` even when a holder panicked: sessions are shared behind mutexes because
/// `Session::run` needs `&mut`, and a panic while one ran leaves nothing half-written.
pub fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_a_clear_error() {
        // No test of this crate loads a runtime, so the environment is still empty here.
        let path = Path::new("/nonexistent/libonnxruntime.so");
        let e = onnxruntime_environment(path).expect_err("missing library");
        assert!(matches!(e, OnnxError::RuntimeMissing { .. }), "{e}");
        assert!(e.to_string().contains("scripts/setup"), "{e}");
    }
}
