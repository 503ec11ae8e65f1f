//! Building sessions on the process environment: graph optimisation, thread pools, and the
//! execution provider (CPU, or CUDA with a CPU fallback announced once).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use ort::environment::Environment;
use ort::ep::CUDA;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use crate::error::OnnxError;

/// File name of the CUDA execution provider library (beside `libonnxruntime.so`).
pub const CUDA_PROVIDER_LIB: &str = "libonnxruntime_providers_cuda.so";

/// Where a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutionDevice {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// The CUDA execution provider on this GPU (CPU fallback with a warning).
    Cuda { device_id: i32 },
}

/// How one session is built. Every session gets full graph optimisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// Intra-op threads (used as given).
    pub intra_threads: usize,
    /// Inter-op threads; `None` keeps ONNX Runtime's default.
    pub inter_threads: Option<usize>,
    /// The CUDA execution provider on this device, failing when it does not register.
    pub cuda_device: Option<i32>,
}

/// Builds a session for the graph at `path`. The error carries ONNX Runtime's message only
/// (`CUDA execution provider: …` for the provider); the caller names the model.
pub fn build_session(
    env: &Environment,
    path: &Path,
    settings: &SessionSettings,
) -> Result<Session, OnnxError> {
    fn fail(e: impl std::fmt::Display) -> OnnxError {
        OnnxError::Session(e.to_string())
    }
    let mut builder = Session::builder(env)
        .map_err(fail)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(fail)?
        .with_intra_threads(settings.intra_threads)
        .map_err(fail)?;
    if let Some(n) = settings.inter_threads {
        builder = builder.with_inter_threads(n).map_err(fail)?;
    }
    if let Some(device_id) = settings.cuda_device {
        let ep = CUDA::default()
            .with_device_id(device_id)
            .build()
            .error_on_failure();
        builder = builder
            .with_execution_providers([ep])
            .map_err(|e| OnnxError::Session(format!("CUDA execution provider: {e}")))?;
    }
    builder.commit_from_file(path).map_err(fail)
}

static CUDA_FALLBACK_WARNED: AtomicBool = AtomicBool::new(false);

fn warn_cuda_fallback(reason: &str, what: &str) {
    if !CUDA_FALLBACK_WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!("CUDA execution provider unavailable ({reason}); {what} runs on the CPU");
    }
}

/// Builds a session on `device` with `build(cuda_device)`: on the CPU directly; on CUDA when the
/// provider library sits beside `onnxruntime_lib` and registers, else on the CPU after one
/// process-wide warning naming `what` (e.g. "the vision tower"). Returns the session and the
/// provider that runs it (`"cpu"` or `"cuda"`).
pub fn session_on_device<E: std::fmt::Display>(
    onnxruntime_lib: &Path,
    device: ExecutionDevice,
    what: &str,
    mut build: impl FnMut(Option<i32>) -> Result<Session, E>,
) -> Result<(Session, &'static str), E> {
    let ExecutionDevice::Cuda { device_id } = device else {
        return Ok((build(None)?, "cpu"));
    };
    let lib_dir = onnxruntime_lib.parent().unwrap_or(Path::new("."));
    if !lib_dir.join(CUDA_PROVIDER_LIB).is_file() {
        warn_cuda_fallback(
            &format!("{} not found in {}", CUDA_PROVIDER_LIB, lib_dir.display()),
            what,
        );
        return Ok((build(None)?, "cpu"));
    }
    match build(Some(device_id)) {
        Ok(s) => Ok((s, "cuda")),
        Err(e) => {
            warn_cuda_fallback(&e.to_string(), what);
            Ok((build(None)?, "cpu"))
        }
    }
}
