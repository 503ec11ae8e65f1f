//! The CPU `ocr` engine: `folio_ocr::OcrEngine` behind [`Engine`], with its profiles
//! ([`super::prescription`]: `auto`, `document`, `prescription`).

use super::prescription::{self, OcrProfile};
use crate::engine::{Engine, EngineError, EngineOutput, PageInput};
use folio_ocr::OcrEngine;
use folio_schemas::{EngineInfo, EngineKind};

/// One page at a time: the OCR engine already uses every core inside a page (batched recognition).
pub struct OcrAdapter {
    engine: OcrEngine,
    model: String,
}

impl OcrAdapter {
    pub fn new(engine: OcrEngine) -> Self {
        let model = engine.model_name();
        OcrAdapter { engine, model }
    }
}

impl Engine for OcrAdapter {
    fn kind(&self) -> EngineKind {
        EngineKind::Ocr
    }

    fn info(&self) -> EngineInfo {
        EngineInfo {
            name: "ocr".into(),
            model: self.model.clone(),
            revision: Some(env!("CARGO_PKG_VERSION").into()),
            device: "cpu".into(),
            profile: None,
        }
    }

    fn max_batch(&self) -> usize {
        1
    }

    fn run(&self, pages: &[PageInput]) -> Vec<Result<EngineOutput, EngineError>> {
        pages
            .iter()
            .map(|p| {
                let _span = tracing::info_span!("ocr", document_id = %p.document_id, page = p.page)
                    .entered();
                let profile = OcrProfile::for_job(&p.options)?;
                let mut a =
                    self.engine
                        .analyze(&p.image, p.page)
                        .map_err(|e| EngineError::Permanent {
                            code: "engine_failed",
                            message: e.to_string(),
                        })?;
                prescription::attach(profile, p.page, &mut a.blocks, &mut a.warnings);
                Ok(EngineOutput {
                    blocks: a.blocks,
                    warnings: a.warnings,
                    timings: a.timings,
                    profile: Some(profile.name().into()),
                })
            })
            .collect()
    }
}
