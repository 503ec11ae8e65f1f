//! The `glm45v` engine's flags (shared by `folio work` and `folio parse`) and loading it: flags →
//! [`Glm45vConfig`] → [`Glm45vEngine`], with the `ocr` engine beside it for fallback and
//! layout-first regions, loaded on first use.

use super::{CliError, Exit};
use crate::runtime::RuntimeLayout;
use anyhow::anyhow;
use clap::{Args, ValueEnum};
use folio_workers::engines::glm45v::{DeviceSpec, Glm45vConfig, Glm45vError, LazyOcr, Precision};
use folio_workers::engines::Glm45vEngine;
use folio_workers::Engine;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Toggle {
    On,
    Off,
}

/// Flags of the `glm45v` engine (ignored by the `ocr` engine).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "GLM-4.5V engine (--engine glm45v)")]
pub struct GlmArgs {
    /// Checkpoint directory: config.json, tokenizer.json, safetensors weights, vision.onnx.
    #[arg(long, env = "FOLIO_MODEL_DIR", value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Exported vision tower (default DIR/vision.onnx).
    #[arg(long, value_name = "FILE")]
    pub vision: Option<PathBuf>,
    /// Where the model runs: cpu, cuda or cuda:N (CUDA needs a GPU build).
    #[arg(long, env = "FOLIO_DEVICE", default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceSpec,
    /// Decoder precision: auto (bf16 compute, an FP8 checkpoint stays FP8), fp8, bf16 or f32.
    #[arg(long, env = "FOLIO_DTYPE", default_value = "auto", value_parser = parse_dtype)]
    pub dtype: Precision,
    /// Pages in flight, decoded together (continuous batching: a page joins the running batch
    /// as soon as a slot frees); on CUDA the memory plan lowers it to what the KV budget holds.
    #[arg(long, env = "FOLIO_MAX_BATCH", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub max_batch: u32,
    /// KV budget of the pages decoded together, in tokens (prompt and image tokens + max new
    /// tokens per page); pages wait for room. Default: no budget beyond --max-batch.
    #[arg(long, env = "FOLIO_MAX_TOKENS_IN_FLIGHT", value_name = "TOKENS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tokens_in_flight: Option<u64>,
    /// Most tokens generated per page (per region in layout-first mode).
    #[arg(long, env = "FOLIO_MAX_NEW_TOKENS", default_value_t = 2048,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_new_tokens: u32,
    /// Reasoning before answering: `--thinking` (on), `--thinking off`; default: per profile.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "on", value_name = "on|off")]
    pub thinking: Option<Toggle>,
    /// Find regions with the ocr engine's layout model, then read each region with its profile.
    #[arg(long)]
    pub layout_first: bool,
    /// Most pixels a page (or region) is resized to for the vision tower (default: checkpoint's).
    #[arg(long, value_name = "PIXELS")]
    pub max_image_pixels: Option<u64>,
}

fn parse_device(s: &str) -> Result<DeviceSpec, String> {
    s.parse()
}

fn parse_dtype(s: &str) -> Result<Precision, String> {
    s.parse()
}

/// Loads the `glm45v` engine on a blocking thread. `threads`: CPU threads of the vision tower and
/// the ocr engine (0 = all cores).
pub async fn load_glm_engine(
    args: &GlmArgs,
    runtime: &RuntimeLayout,
    threads: usize,
) -> Result<Arc<dyn Engine>, CliError> {
    let usage = |m: String| CliError::new(Exit::Usage, anyhow!(m));
    let model = args.model.clone().ok_or_else(|| {
        usage(
            "--engine glm45v needs --model DIR (or FOLIO_MODEL_DIR): a GLM-4.5V checkpoint".into(),
        )
    })?;
    let mut cfg = Glm45vConfig::new(model, runtime.onnxruntime());
    cfg.vision = args.vision.clone();
    cfg.device = args.device;
    cfg.dtype = args.dtype;
    cfg.max_batch = args.max_batch as usize;
    cfg.max_tokens_in_flight = args
        .max_tokens_in_flight
        .map(|t| usize::try_from(t).unwrap_or(usize::MAX));
    cfg.max_new_tokens = args.max_new_tokens as usize;
    cfg.thinking = args.thinking.map(|t| t == Toggle::On);
    cfg.layout_first = args.layout_first;
    cfg.max_image_pixels = args.max_image_pixels;
    cfg.vision_threads = threads;
    cfg.validate().map_err(usage)?;
    runtime.check(&[runtime.onnxruntime()])?;
    let mut ocr_cfg = folio_ocr::OcrConfig::from_runtime_dir(runtime.root());
    ocr_cfg.threads = threads;
    let ocr = LazyOcr::from_config(ocr_cfg);
    let engine = tokio::task::spawn_blocking(move || Glm45vEngine::load(&cfg, ocr))
        .await
        .map_err(CliError::internal)?
        .map_err(|e| match e {
            Glm45vError::RuntimeMissing(m) => CliError::new(Exit::RuntimeMissing, anyhow!(m)),
            e => CliError::new(Exit::Usage, anyhow!(e)),
        })?;
    Ok(Arc::new(engine))
}
