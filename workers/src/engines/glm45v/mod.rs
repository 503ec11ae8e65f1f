//! The `glm45v` engine: GLM-4.5V reads each page with a prompt profile (job option `profile`,
//! default `document`; `question` takes the job's free `prompt`), the answer is parsed into
//! schema blocks, an unusable answer is retried once with the stricter profile, and a page that
//! still fails is read by the `ocr` engine with a warning — never a lost page. In layout-first
//! mode the `ocr` engine's layout model finds the regions and GLM-4.5V reads each one
//! ([`layout_first`]).
//!
//! | module | role |
//! | --- | --- |
//! | [`profiles`] | prompt profiles: prompt text, answer format, JSON schema, stricter variant |
//! | [`page_parse`] | an answer → schema blocks in page pixels (Markdown, HTML tables, JSON) |
//! | [`config`] | typed settings, model directory checks |
//! | [`run`] | the generator seam, generation → parse → stricter retry |
//! | [`generator`] | the real checkpoint behind [`run::TextGenerator`] |
//! | `decode_loop` | the decoder thread: continuous batching of every caller's requests |
//! | [`layout_first`] | regions → crops → profiles → merge in reading order |
//! | [`fallback`] | the lazily loaded `ocr` engine |
//!
//! Everything that turns a page into a `PageResult` lives here; the model crate `folio-glm45v`
//! is pure compute (checkpoint, vision, decoder, generation, the token-constraint mechanism) and
//! knows nothing of profiles or schema blocks: a profile hands its JSON schema to
//! `folio_glm45v::generate::constraint`.

pub mod config;
mod decode_loop;
pub mod fallback;
pub mod generator;
pub mod layout_first;
pub mod page_parse;
pub mod profiles;
pub mod run;

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::Device;
use folio_glm45v::model::Glm45v;
use folio_glm45v::vision::onnx::{ExecutionDevice, VisionOptions};
use folio_schemas::{EngineInfo, EngineKind};
use profiles::{Profile, ProfileKind};

use crate::engine::{Engine, EngineError, EngineOutput, PageInput};
pub use config::{DeviceSpec, Glm45vConfig, Precision};
pub use fallback::LazyOcr;
pub use generator::GlmGenerator;
use run::{read_all, ReadOutcome, ReadResult, ReadSettings, ReadTask, TextGenerator, Timings};

/// Why the engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Glm45vError {
    /// Bad settings or an incomplete model directory.
    #[error("{0}")]
    Config(String),
    /// The ONNX Runtime library is missing.
    #[error("{0}")]
    RuntimeMissing(String),
    /// The checkpoint or the vision tower did not load.
    #[error("cannot load {dir}: {message}")]
    Load { dir: String, message: String },
}

/// How pages are read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineSettings {
    pub max_batch: usize,
    pub max_new_tokens: usize,
    pub thinking: Option<bool>,
    pub layout_first: bool,
    pub default_profile: ProfileKind,
}

impl From<&Glm45vConfig> for EngineSettings {
    fn from(c: &Glm45vConfig) -> Self {
        EngineSettings {
            max_batch: c.max_batch,
            max_new_tokens: c.max_new_tokens,
            thinking: c.thinking,
            layout_first: c.layout_first,
            default_profile: c.default_profile,
        }
    }
}

/// GLM-4.5V behind [`Engine`].
#[derive(Debug)]
pub struct Glm45vEngine {
    generator: Arc<dyn TextGenerator>,
    ocr: LazyOcr,
    settings: EngineSettings,
    info: EngineInfo,
}

impl Glm45vEngine {
    /// Loads the checkpoint and its vision tower as `cfg` says; `ocr` is loaded on first need.
    pub fn load(cfg: &Glm45vConfig, ocr: LazyOcr) -> Result<Self, Glm45vError> {
        cfg.validate().map_err(Glm45vError::Config)?;
        if !cfg.onnxruntime_lib.is_file() {
            return Err(Glm45vError::RuntimeMissing(format!(
                "ONNX Runtime not found at {} (run scripts/setup)",
                cfg.onnxruntime_lib.display()
            )));
        }
        let dir = cfg.model_dir.display().to_string();
        let load_err = |e: &dyn std::fmt::Display| Glm45vError::Load {
            dir: dir.clone(),
            message: e.to_string(),
        };
        let device = match cfg.device {
            DeviceSpec::Cpu => Device::Cpu,
            DeviceSpec::Cuda(n) => Device::new_cuda(n)
                .map_err(|e| Glm45vError::Config(format!("device {}: {e}", cfg.device)))?,
        };
        let opts = cfg
            .dtype
            .load_options(&cfg.model_dir, device)
            .map_err(|e| load_err(&e))?;
        let mut glm = Glm45v::load(&cfg.model_dir, &opts).map_err(|e| load_err(&e))?;
        if let Some(max) = cfg.max_image_pixels {
            let size = &mut glm.processor.config.size;
            size.longest_edge = max.max(size.shortest_edge);
        }
        let mut vopts = VisionOptions::new(cfg.vision_path(), &cfg.onnxruntime_lib);
        vopts.intra_threads = cfg.vision_threads;
        if let DeviceSpec::Cuda(n) = cfg.device {
            vopts.device = ExecutionDevice::Cuda {
                device_id: i32::try_from(n).unwrap_or(0),
            };
        }
        glm.attach_vision(&vopts).map_err(|e| load_err(&e))?;
        let model = cfg
            .model_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "GLM-4.5V".into());
        let info = EngineInfo {
            name: "glm45v".into(),
            model: format!("{model} ({})", cfg.dtype),
            revision: Some(env!("CARGO_PKG_VERSION").into()),
            device: cfg.device.to_string(),
            profile: None,
        };
        // The memory plan (CUDA) bounds the pages decoded together and the KV budget; the
        // configuration can only lower them.
        let mut settings = EngineSettings::from(cfg);
        let mut max_tokens_in_flight = cfg.max_tokens_in_flight;
        if let Some(plan) = &glm.memory_plan {
            settings.max_batch = settings.max_batch.min(plan.pages_together).max(1);
            let planned = plan.max_tokens_in_flight();
            max_tokens_in_flight = Some(max_tokens_in_flight.map_or(planned, |t| t.min(planned)));
        }
        tracing::info!(model = %info.model, device = %info.device,
            pages_together = settings.max_batch, ?max_tokens_in_flight, "glm45v engine loaded");
        Ok(Self::new(
            Arc::new(
                GlmGenerator::new(glm, cfg.seed)
                    .with_max_batch(settings.max_batch)
                    .with_max_tokens_in_flight(max_tokens_in_flight),
            ),
            ocr,
            settings,
            info,
        ))
    }

    /// An engine over any generator (the real one, or a scripted one in tests).
    pub fn new(
        generator: Arc<dyn TextGenerator>,
        ocr: LazyOcr,
        settings: EngineSettings,
        info: EngineInfo,
    ) -> Self {
        Glm45vEngine {
            generator,
            ocr,
            settings,
            info,
        }
    }

    fn read_settings(&self) -> ReadSettings {
        ReadSettings {
            max_batch: self.settings.max_batch,
            max_new_tokens: self.settings.max_new_tokens,
            thinking: self.settings.thinking,
        }
    }

    /// The profile of a page's job, or why the job cannot be served.
    fn page_profile(&self, page: &PageInput) -> Result<Profile, EngineError> {
        let profile = match page.options.profile.as_deref() {
            None | Some("") => Profile::new(self.settings.default_profile),
            Some(name) => Profile::parse(name).map_err(|e| EngineError::Permanent {
                code: "invalid_options",
                message: e.to_string(),
            })?,
        };
        if profile.kind == ProfileKind::Question
            && page
                .options
                .prompt
                .as_deref()
                .is_none_or(|p| p.trim().is_empty())
        {
            return Err(EngineError::Permanent {
                code: "invalid_options",
                message: "the question profile needs a prompt (job option `prompt`)".into(),
            });
        }
        Ok(profile)
    }
}

/// How one page is being read.
enum Plan {
    Invalid(EngineError),
    /// The whole page: index of its task.
    Whole {
        profile: Profile,
        task: usize,
    },
    /// Layout-first: the ocr engine's regions, a task index per readable region.
    Regions {
        regions: Vec<folio_schemas::Block>,
        tasks: Vec<Option<usize>>,
        layout_warnings: Vec<String>,
        timings: Timings,
    },
}

impl Engine for Glm45vEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Glm45v
    }

    fn info(&self) -> EngineInfo {
        self.info.clone()
    }

    fn max_batch(&self) -> usize {
        self.settings.max_batch.max(1)
    }

    fn run(&self, pages: &[PageInput]) -> Vec<Result<EngineOutput, EngineError>> {
        let mut tasks: Vec<ReadTask> = Vec::new();
        let plans: Vec<Plan> = pages
            .iter()
            .map(|page| {
                let _span = tracing::info_span!("glm45v", document_id = %page.document_id, page = page.page)
                    .entered();
                let profile = match self.page_profile(page) {
                    Ok(p) => p,
                    Err(e) => return Plan::Invalid(e),
                };
                if self.settings.layout_first && profile.kind == ProfileKind::Document {
                    if let Some(plan) = self.plan_regions(page, &mut tasks) {
                        return plan;
                    }
                }
                tasks.push(ReadTask {
                    image: Cow::Borrowed(&page.image),
                    region: None,
                    profile,
                    question: page.options.prompt.clone(),
                    block_id_prefix: format!("p{}-", page.page),
                });
                Plan::Whole {
                    profile,
                    task: tasks.len() - 1,
                }
            })
            .collect();
        let mut results: Vec<Option<ReadResult>> =
            read_all(self.generator.as_ref(), &tasks, &self.read_settings())
                .into_iter()
                .map(Some)
                .collect();
        pages
            .iter()
            .zip(plans)
            .map(|(page, plan)| match plan {
                Plan::Invalid(e) => Err(e),
                Plan::Whole { profile, task } => match results[task].take() {
                    Some(r) => self.whole_page_output(page, r),
                    None => Err(EngineError::Transient(format!(
                        "glm45v: no reading for page {} ({})",
                        page.page,
                        profile.id()
                    ))),
                },
                Plan::Regions {
                    regions,
                    tasks,
                    layout_warnings,
                    mut timings,
                } => {
                    let readings: Vec<Option<ReadResult>> = tasks
                        .iter()
                        .map(|t| t.and_then(|i| results[i].take()))
                        .collect();
                    for r in readings.iter().flatten() {
                        run::merge_times(&mut timings, &r.timings);
                    }
                    let merged = layout_first::merge(page.page, &regions, readings);
                    let mut warnings = layout_warnings;
                    warnings.extend(merged.warnings);
                    let ids: Vec<String> = merged.profiles.into_iter().collect();
                    Ok(EngineOutput {
                        blocks: merged.blocks,
                        warnings,
                        timings,
                        profile: Some(if ids.is_empty() {
                            "layout-first".to_string()
                        } else {
                            format!("layout-first:{}", ids.join(","))
                        }),
                    })
                }
            })
            .collect()
    }
}

impl Glm45vEngine {
    /// Finds the page's regions with the ocr engine and queues a task per readable region;
    /// `None` (read the whole page instead) when the ocr engine is unavailable or finds nothing.
    fn plan_regions<'a>(&self, page: &'a PageInput, tasks: &mut Vec<ReadTask<'a>>) -> Option<Plan> {
        let mut timings = Timings::new();
        let layout = match self.ocr.read(page, &mut timings, "layout") {
            Ok(out) => out,
            Err(e) => {
                tracing::warn!(error = %e, "layout-first: no regions; reading the whole page");
                return None;
            }
        };
        if layout.blocks.is_empty() {
            return None;
        }
        let region_tasks = layout_first::region_tasks(page.page, &page.image, &layout.blocks);
        let indices = region_tasks
            .into_iter()
            .map(|t| {
                t.map(|t| {
                    tasks.push(t);
                    tasks.len() - 1
                })
            })
            .collect();
        // The ocr engine's own warnings (figures without data) no longer hold once GLM-4.5V
        // reads the regions; keep only those about the page itself.
        let layout_warnings = layout
            .warnings
            .into_iter()
            .filter(|w| w.as_str() != folio_ocr::FIGURE_WARNING)
            .collect();
        Some(Plan::Regions {
            regions: layout.blocks,
            tasks: indices,
            layout_warnings,
            timings,
        })
    }

    /// A whole-page reading as the page's output, or the ocr engine's reading when it failed.
    fn whole_page_output(
        &self,
        page: &PageInput,
        r: ReadResult,
    ) -> Result<EngineOutput, EngineError> {
        let profile_id = r.profile_id();
        match r.outcome {
            ReadOutcome::Parsed {
                page: parsed,
                profile,
            } => {
                let mut warnings = Vec::new();
                if !r.failures.is_empty() {
                    warnings.push(format!(
                        "glm45v: first answer unusable ({}); read again with {}",
                        r.failures.join("; "),
                        profile.id()
                    ));
                }
                warnings.extend(parsed.warnings.into_iter().map(|w| format!("glm45v: {w}")));
                Ok(EngineOutput {
                    blocks: parsed.blocks,
                    warnings,
                    timings: r.timings,
                    profile: Some(profile_id),
                })
            }
            ReadOutcome::Failed { .. } => {
                fallback::fall_back(&self.ocr, page, profile_id, &r.failures, &r.timings)
            }
        }
    }
}

#[cfg(test)]
mod tests;
