//! Typed configuration of the `glm45v` engine: where the checkpoint is, where it runs, how much
//! it may generate, and how pages are read (whole page or layout-first).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::profiles::ProfileKind;

/// Where the decoder (and the vision tower) run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal (`cuda` is `cuda:0`). Needs a binary built with CUDA support.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| format!("unknown device `{s}` (expected cpu, cuda or cuda:N)")),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Decoder precision (`auto`, `fp8`, `bf16`, `f32`): one definition in `folio_glm45v::model`.
pub use folio_glm45v::model::Precision;

/// Everything [`super::Glm45vEngine::load`] needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Glm45vConfig {
    /// Checkpoint directory (zai-org/GLM-4.5V layout): config.json, tokenizer.json, weights.
    pub model_dir: PathBuf,
    /// Exported vision tower; `None` means `model_dir/vision.onnx`.
    pub vision: Option<PathBuf>,
    /// `libonnxruntime.so` (runs the vision tower).
    pub onnxruntime_lib: PathBuf,
    pub device: DeviceSpec,
    pub dtype: Precision,
    /// Pages (or layout regions) generated per engine call, decoded together.
    pub max_batch: usize,
    /// KV budget of the pages decoded together, in tokens: each page reserves its prompt
    /// (image tokens included) plus `max_new_tokens`; pages wait for room, and one that alone
    /// needs more fails. `None`: no budget beyond `max_batch`.
    pub max_tokens_in_flight: Option<usize>,
    /// Token budget of one answer (a page, or a region in layout-first mode).
    pub max_new_tokens: usize,
    /// `<think>` reasoning on or off for every profile; `None` keeps each profile's default.
    pub thinking: Option<bool>,
    /// Find regions with the ocr engine's layout model first, then read each region.
    pub layout_first: bool,
    /// Profile of jobs that name none.
    pub default_profile: ProfileKind,
    /// Most pixels an image is resized to before the vision tower (`None`: the checkpoint's
    /// `preprocessor_config.json`). Bounds the image tokens per page.
    pub max_image_pixels: Option<u64>,
    /// Intra-op threads of the vision tower on the CPU (0 = all cores).
    pub vision_threads: usize,
    /// Seed, for checkpoints whose generation config samples.
    pub seed: u64,
}

impl Glm45vConfig {
    /// Defaults for `model_dir`: bf16 on the CPU, one page per call, 2048 new tokens.
    pub fn new(model_dir: impl Into<PathBuf>, onnxruntime_lib: impl Into<PathBuf>) -> Self {
        Glm45vConfig {
            model_dir: model_dir.into(),
            vision: None,
            onnxruntime_lib: onnxruntime_lib.into(),
            device: DeviceSpec::Cpu,
            dtype: Precision::Auto,
            max_batch: 1,
            max_tokens_in_flight: None,
            max_new_tokens: 2048,
            thinking: None,
            layout_first: false,
            default_profile: ProfileKind::Document,
            max_image_pixels: None,
            vision_threads: 0,
            seed: 0,
        }
    }

    /// The vision tower file actually used.
    pub fn vision_path(&self) -> PathBuf {
        self.vision
            .clone()
            .unwrap_or_else(|| self.model_dir.join("vision.onnx"))
    }

    /// Checks the settings and that the model directory holds every file the engine loads;
    /// every missing file is named in one message.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_batch == 0 {
            return Err("max batch must be at least 1".into());
        }
        if self.max_new_tokens == 0 {
            return Err("max new tokens must be at least 1".into());
        }
        match self.max_tokens_in_flight {
            Some(0) => return Err("max tokens in flight must be at least 1".into()),
            Some(n) if n <= self.max_new_tokens => {
                return Err(format!(
                    "max tokens in flight ({n}) must exceed max new tokens ({}): a page also \
                     holds its prompt and image tokens",
                    self.max_new_tokens
                ))
            }
            _ => {}
        }
        check_model_dir(&self.model_dir, &self.vision_path())
    }
}

/// Files a checkpoint directory must hold for the engine.
pub fn check_model_dir(dir: &Path, vision: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("model directory {} does not exist", dir.display()));
    }
    let mut missing: Vec<String> = ["config.json", "tokenizer.json"]
        .iter()
        .filter(|f| !dir.join(f).is_file())
        .map(|f| f.to_string())
        .collect();
    if !dir.join("model.safetensors.index.json").is_file()
        && !dir.join("model.safetensors").is_file()
    {
        missing.push("model.safetensors.index.json (or model.safetensors)".into());
    }
    if !vision.is_file() {
        missing.push(format!(
            "{} (export it: python workers/glm45v/scripts/export_vision_onnx.py {})",
            vision.display(),
            dir.display()
        ));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "model directory {} is incomplete; missing: {}",
            dir.display(),
            missing.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_dtypes_parse() {
        assert_eq!("cpu".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("CUDA".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceSpec::Cuda(3)));
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert_eq!(DeviceSpec::Cuda(1).to_string(), "cuda:1");
        assert_eq!("f32".parse(), Ok(Precision::F32));
        assert_eq!("fp8".parse(), Ok(Precision::Fp8));
        assert_eq!("AUTO".parse(), Ok(Precision::Auto));
        assert!("fp16".parse::<Precision>().is_err());
    }

    #[test]
    fn an_incomplete_model_directory_names_what_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.json"), "{}").expect("write");
        let cfg = Glm45vConfig::new(dir.path(), "/x/libonnxruntime.so");
        let e = cfg.validate().expect_err("incomplete");
        assert!(
            e.contains("tokenizer.json")
                && e.contains("model.safetensors")
                && e.contains("vision.onnx"),
            "{e}"
        );
        let e = Glm45vConfig::new("/nonexistent/glm", "/x")
            .validate()
            .expect_err("missing");
        assert!(e.contains("does not exist"), "{e}");
        let mut cfg = Glm45vConfig::new(dir.path(), "/x");
        cfg.max_batch = 0;
        assert!(cfg
            .validate()
            .expect_err("zero batch")
            .contains("max batch"));
        cfg.max_batch = 4;
        cfg.max_tokens_in_flight = Some(0);
        assert!(cfg
            .validate()
            .expect_err("zero budget")
            .contains("max tokens in flight must be at least 1"));
        cfg.max_tokens_in_flight = Some(cfg.max_new_tokens);
        let e = cfg.validate().expect_err("budget below one page");
        assert!(e.contains("must exceed max new tokens"), "{e}");
        cfg.max_tokens_in_flight = Some(cfg.max_new_tokens + 1024);
        let e = cfg
            .validate()
            .expect_err("still incomplete, budget accepted");
        assert!(e.contains("incomplete"), "{e}");
    }
}
