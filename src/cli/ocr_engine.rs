//! Starting the pipeline, shared by `parse` and `work`: check the runtime files, build the tokio
//! runtime, load the chosen engine once (`ocr`, or `glm45v` through [`super::glm_engine`]).

use super::{CliError, Exit};
use crate::runtime::RuntimeLayout;

/// Check that every file the `ocr` pipeline loads is there, then build the multi-threaded runtime.
pub fn ocr_tokio_runtime(runtime: &RuntimeLayout) -> Result<tokio::runtime::Runtime, CliError> {
    runtime.check(&runtime.ocr_pieces())?;
    tokio_runtime()
}

/// The multi-threaded runtime, without checks (the `glm45v` engine checks its own files).
pub fn tokio_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::internal)
}

/// Loads the engine of `kind`: the `ocr` engine, or `glm45v` as `glm` says.
pub async fn load_engine(
    kind: folio_schemas::EngineKind,
    glm: &super::glm_engine::GlmArgs,
    runtime: &RuntimeLayout,
    threads: usize,
    angle_classifier: bool,
) -> Result<std::sync::Arc<dyn folio_workers::Engine>, CliError> {
    match kind {
        folio_schemas::EngineKind::Ocr => {
            let engine = load_ocr_engine(runtime, threads, angle_classifier).await?;
            Ok(std::sync::Arc::new(
                folio_workers::engines::OcrAdapter::new(engine),
            ))
        }
        folio_schemas::EngineKind::Glm45v => {
            super::glm_engine::load_glm_engine(glm, runtime, threads).await
        }
    }
}

/// Load the models on a blocking thread.
pub async fn load_ocr_engine(
    runtime: &RuntimeLayout,
    threads: usize,
    angle_classifier: bool,
) -> Result<folio_ocr::OcrEngine, CliError> {
    let mut cfg = folio_ocr::OcrConfig::from_runtime_dir(runtime.root());
    cfg.angle_classifier = angle_classifier;
    cfg.threads = threads;
    tokio::task::spawn_blocking(move || folio_ocr::OcrEngine::load(&cfg))
        .await
        .map_err(CliError::internal)?
        .map_err(|e| {
            CliError::new(
                Exit::RuntimeMissing,
                anyhow::anyhow!("cannot load the ocr engine: {e}"),
            )
        })
}
