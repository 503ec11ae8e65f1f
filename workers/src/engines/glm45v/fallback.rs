//! The `ocr` engine beside GLM-4.5V, loaded on first use: it reads a page GLM-4.5V could not
//! (so no page is lost) and, in layout-first mode, finds the regions.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use folio_ocr::{OcrConfig, OcrEngine};

use crate::engine::{Engine, EngineError, EngineOutput, PageInput};
use crate::engines::OcrAdapter;

use super::run::{add_time, merge_times, Timings};

/// Builds the `ocr` engine (called at most once).
pub type OcrLoader = Box<dyn Fn() -> Result<Arc<dyn Engine>, String> + Send + Sync>;

/// The `ocr` engine, loaded lazily and shared.
pub struct LazyOcr {
    loader: OcrLoader,
    engine: OnceLock<Result<Arc<dyn Engine>, String>>,
}

impl std::fmt::Debug for LazyOcr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyOcr")
            .field("loaded", &self.engine.get().map(|r| r.is_ok()))
            .finish_non_exhaustive()
    }
}

impl LazyOcr {
    /// An engine made by `loader` the first time it is needed.
    pub fn new(loader: OcrLoader) -> Self {
        LazyOcr {
            loader,
            engine: OnceLock::new(),
        }
    }

    /// The CPU `ocr` engine of `cfg` (its layout model is what layout-first mode uses).
    pub fn from_config(cfg: OcrConfig) -> Self {
        LazyOcr::new(Box::new(move || {
            OcrEngine::load(&cfg)
                .map(|e| Arc::new(OcrAdapter::new(e)) as Arc<dyn Engine>)
                .map_err(|e| format!("cannot load the ocr engine: {e}"))
        }))
    }

    /// An engine that is already loaded.
    pub fn loaded(engine: Arc<dyn Engine>) -> Self {
        let lazy = LazyOcr::new(Box::new(|| Err("unreachable: already loaded".into())));
        let _ = lazy.engine.set(Ok(engine));
        lazy
    }

    /// Whether the engine has been loaded (successfully or not).
    pub fn is_loaded(&self) -> bool {
        self.engine.get().is_some()
    }

    fn get(&self) -> Result<&Arc<dyn Engine>, String> {
        self.engine
            .get_or_init(|| {
                tracing::info!("loading the ocr engine (fallback / layout regions)");
                (self.loader)()
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Reads one page with the `ocr` engine; the time is added to `timings` under `stage`.
    pub fn read(
        &self,
        page: &PageInput,
        timings: &mut Timings,
        stage: &str,
    ) -> Result<EngineOutput, String> {
        let engine = self.get()?;
        let start = Instant::now();
        let out = engine
            .run(std::slice::from_ref(page))
            .pop()
            .unwrap_or_else(|| {
                Err(EngineError::Transient(
                    "the ocr engine gave no result".into(),
                ))
            })
            .map_err(|e| format!("the ocr engine failed: {e}"));
        add_time(timings, stage, start.elapsed().as_secs_f64() * 1e3);
        out
    }
}

/// The page read by the `ocr` engine after GLM-4.5V failed on it with `profile_id`, the
/// failures named in a warning. GLM-4.5V's time stays in the timings.
pub fn fall_back(
    ocr: &LazyOcr,
    page: &PageInput,
    profile_id: String,
    failures: &[String],
    glm_timings: &Timings,
) -> Result<EngineOutput, EngineError> {
    let mut timings = glm_timings.clone();
    let reasons = failures.join("; ");
    match ocr.read(page, &mut timings, "ocr_fallback") {
        Ok(out) => {
            merge_times(&mut timings, &prefixed(&out.timings));
            let mut warnings = vec![format!(
                "glm45v: no usable answer ({reasons}); the page was read by the ocr engine instead"
            )];
            warnings.extend(out.warnings);
            Ok(EngineOutput {
                blocks: out.blocks,
                warnings,
                timings,
                profile: Some(profile_id),
            })
        }
        Err(e) => Err(EngineError::Permanent {
            code: "engine_failed",
            message: format!("glm45v: no usable answer ({reasons}); fallback failed: {e}"),
        }),
    }
}

/// The ocr engine's stages as `ocr_<stage>` (its `total` is dropped: `ocr_fallback` has it).
fn prefixed(t: &Timings) -> Timings {
    t.iter()
        .filter(|(k, _)| k.as_str() != "total")
        .map(|(k, v)| (format!("ocr_{k}"), *v))
        .collect()
}
