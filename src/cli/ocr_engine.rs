//! Starting the CPU pipeline, shared by `parse` and `work`: check the runtime files, build the tokio
//! runtime, load the `ocr` engine once.

use super::{CliError, Exit};
use crate::runtime::RuntimeLayout;

/// Check that every file the `ocr` pipeline loads is there, then build the multi-threaded runtime.
pub fn ocr_tokio_runtime(runtime: &RuntimeLayout) -> Result<tokio::runtime::Runtime, CliError> {
    runtime
        .check(&runtime.ocr_pieces())
        .map_err(|m| CliError::new(Exit::RuntimeMissing, anyhow::anyhow!(m)))?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::internal)
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
