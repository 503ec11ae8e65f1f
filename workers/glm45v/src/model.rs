//! A loaded GLM-4.5V checkpoint directory: configs, tokenizer, chat template, special tokens and
//! the text decoder, with text-in/text-out chat generation and streaming.
//!
//! Expected files (as in zai-org/GLM-4.5V and GLM-4.5V-FP8): `config.json`,
//! `generation_config.json` (optional), `tokenizer.json`, `chat_template.jinja` or a
//! `chat_template` in `tokenizer_config.json` (optional), and `model.safetensors.index.json` with
//! its shards (or one `model.safetensors`); for images also `preprocessor_config.json` (optional)
//! and the exported vision tower `vision.onnx` (attached with [`Glm45v::attach_vision`]).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use crate::chat::tokenizer::{GlmTokenizer, SpecialTokens};
use crate::chat::{ChatMessage, ChatOptions, ChatTemplate};
use crate::checkpoint::config::{GenerationConfig, ModelConfig, WeightFormat};
use crate::checkpoint::fp8::Fp8Weights;
use crate::checkpoint::weights::Checkpoint;
use crate::decoder::plan::MemoryPlan;
use crate::decoder::text_model::TextModel;
use crate::error::{Error, Result};
use crate::generate::output::{parse_output, ParsedOutput};
use crate::generate::{generate, Flow, Generation, GenerationParams, Prompt};
use crate::processor::ImageProcessor;
use crate::vision::onnx::{VisionOptions, VisionTower};

/// How to load the weights.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Compute dtype: bf16 (the checkpoint's), f16 or f32 (parity).
    pub dtype: DType,
    pub device: Device,
    /// FP8 checkpoints: keep the FP8 weights resident (default) or dequantise them at load.
    /// No effect on dense checkpoints.
    pub fp8: Fp8Weights,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dtype: DType::BF16,
            device: Device::Cpu,
            fp8: Fp8Weights::Resident,
        }
    }
}

/// The decoder's precision as `folio work` / `folio parse` / `folio ask` name it (`--dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// bf16 compute; the weights as the checkpoint stores them (an FP8 checkpoint stays FP8).
    #[default]
    Auto,
    /// bf16 compute with the FP8 weights resident; refused for a checkpoint without them.
    Fp8,
    /// bf16 compute and weights (an FP8 checkpoint is dequantised at load: twice the memory).
    Bf16,
    /// f32 compute and weights (parity runs, tiny models on CPUs; FP8 dequantised at load).
    F32,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Precision::Auto),
            "fp8" => Ok(Precision::Fp8),
            "bf16" => Ok(Precision::Bf16),
            "f32" => Ok(Precision::F32),
            other => Err(format!(
                "unknown dtype `{other}` (expected auto, fp8, bf16 or f32)"
            )),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Auto => "auto",
            Precision::Fp8 => "fp8",
            Precision::Bf16 => "bf16",
            Precision::F32 => "f32",
        })
    }
}

impl Precision {
    /// The load options for the checkpoint in `dir` on `device`; `fp8` is refused, naming the
    /// directory, when its `config.json` announces no FP8 weights.
    pub fn load_options(self, dir: &Path, device: Device) -> Result<LoadOptions> {
        let (dtype, fp8) = match self {
            Precision::Auto | Precision::Fp8 => (DType::BF16, Fp8Weights::Resident),
            Precision::Bf16 => (DType::BF16, Fp8Weights::Dequantized),
            Precision::F32 => (DType::F32, Fp8Weights::Dequantized),
        };
        if self == Precision::Fp8 {
            let config = ModelConfig::load(&dir.join("config.json"))?;
            if config.weight_format()? != WeightFormat::Fp8PerChannel {
                return Err(Error::Config(format!(
                    "--dtype fp8: {} has no FP8 weights (no compressed-tensors quantization_config); use auto or bf16",
                    dir.display()
                )));
            }
        }
        Ok(LoadOptions { dtype, device, fp8 })
    }
}

/// A chat answer: raw text, its parsed parts, and the generation record.
#[derive(Debug, Clone)]
pub struct ChatReply {
    pub text: String,
    pub parsed: ParsedOutput,
    pub generation: Generation,
}

/// Everything loaded from one checkpoint directory.
#[derive(Debug)]
pub struct Glm45v {
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub generation_config: GenerationConfig,
    pub tokenizer: GlmTokenizer,
    pub template: ChatTemplate,
    pub special: SpecialTokens,
    pub model: TextModel,
    /// The image processor (`preprocessor_config.json`, else transformers' defaults).
    pub processor: ImageProcessor,
    /// The vision tower, once attached.
    pub vision: Option<VisionTower>,
    /// The start-up memory plan (CUDA devices; `None` on the CPU).
    pub memory_plan: Option<MemoryPlan>,
}

impl Glm45v {
    /// Loads the directory (validating configs and tokenizer against each other).
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let config = ModelConfig::load(&dir.join("config.json"))?;
        let gen_path = dir.join("generation_config.json");
        let generation_config = if gen_path.is_file() {
            GenerationConfig::load(&gen_path)?
        } else {
            GenerationConfig::default()
        };
        let tokenizer = GlmTokenizer::from_file(&dir.join("tokenizer.json"))?;
        if tokenizer.vocab_size() > config.text_config.vocab_size {
            return Err(Error::Config(format!(
                "tokenizer has {} tokens but vocab_size is {}",
                tokenizer.vocab_size(),
                config.text_config.vocab_size
            )));
        }
        let special = SpecialTokens::resolve(&config, &generation_config, &tokenizer)?;
        let template = ChatTemplate::from_dir(dir)?;
        let ckpt = Checkpoint::open(dir)?;
        let memory_plan = plan_memory(dir, &ckpt, &config, opts)?;
        if let Some(plan) = &memory_plan {
            tracing::info!(%plan, "GLM-4.5V memory plan");
        }
        let vb = match opts.fp8 {
            Fp8Weights::Resident => ckpt.var_builder_fp8(
                opts.dtype,
                &opts.device,
                config.quantization_config.as_ref(),
            )?,
            Fp8Weights::Dequantized => ckpt.var_builder(opts.dtype, &opts.device)?,
        };
        let model = TextModel::new(&config.text_config, vb)?;
        let processor = ImageProcessor::from_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            generation_config,
            tokenizer,
            template,
            special,
            model,
            processor,
            vision: None,
            memory_plan,
        })
    }

    /// Loads the exported vision tower and checks it against this checkpoint's `vision_config`.
    pub fn attach_vision(&mut self, opts: &VisionOptions) -> Result<()> {
        let vcfg = self.config.vision_config.as_ref().ok_or_else(|| {
            Error::Config(
                "config.json has no vision_config: this checkpoint cannot take images".into(),
            )
        })?;
        if vcfg.spatial_merge_size != self.processor.config.merge_size
            || vcfg.patch_size != self.processor.config.patch_size
            || vcfg.temporal_patch_size != self.processor.config.temporal_patch_size
        {
            return Err(Error::Config(format!(
                "preprocessor_config (patch {}, merge {}, temporal {}) disagrees with vision_config (patch {}, merge {}, temporal {})",
                self.processor.config.patch_size,
                self.processor.config.merge_size,
                self.processor.config.temporal_patch_size,
                vcfg.patch_size,
                vcfg.spatial_merge_size,
                vcfg.temporal_patch_size
            )));
        }
        self.vision = Some(VisionTower::load(opts, vcfg)?);
        Ok(())
    }

    /// The prompt text of a conversation.
    pub fn render(&self, messages: &[ChatMessage], opts: ChatOptions) -> Result<String> {
        self.template.render(messages, opts)
    }

    /// The prompt ids of a conversation (text-only: image placeholders are not expanded here).
    pub fn encode_chat(&self, messages: &[ChatMessage], opts: ChatOptions) -> Result<Vec<u32>> {
        self.tokenizer.encode(&self.render(messages, opts)?)
    }

    /// Generation defaults of the checkpoint, stopping on its eos ids.
    pub fn default_params(&self, seed: u64) -> GenerationParams {
        GenerationParams::from_generation_config(
            &self.generation_config,
            self.special.eos.clone(),
            seed,
        )
    }

    /// Generates after `prompt`, streaming text deltas to `on_text`; parses the answer.
    /// `image_size` (width, height) scales boxes to pixels.
    pub fn generate_text(
        &self,
        prompt: &Prompt,
        params: &GenerationParams,
        image_size: Option<(u32, u32)>,
        on_text: &mut dyn FnMut(&str) -> Flow,
    ) -> Result<ChatReply> {
        let mut stream = TextStream::new(&self.tokenizer);
        let mut stream_err = None;
        let generation = generate(&self.model, prompt, params, None, &mut |token| match stream
            .push(token)
        {
            Ok(delta) if !delta.is_empty() => on_text(&delta),
            Ok(_) => Flow::Continue,
            Err(e) => {
                stream_err = Some(e);
                Flow::Stop
            }
        })?;
        if let Some(e) = stream_err {
            return Err(e);
        }
        let text = self.tokenizer.decode(&generation.tokens, false)?;
        let parsed = parse_output(&text, image_size);
        Ok(ChatReply {
            text,
            parsed,
            generation,
        })
    }
}

/// Tokens of one page the plan reserves KV for: a page prompt of up to ≈ 3,000 tokens and
/// 1,024 generated ones.
pub const PLAN_TOKENS_PER_PAGE: u64 = 4096;
/// The most pages the plan lets decode together.
pub const PLAN_MAX_PAGES: usize = 256;

/// The memory plan for loading `ckpt` with `opts` on a CUDA device (before any weight is
/// loaded): refuses with the numbers when the model cannot fit. `None` on the CPU.
fn plan_memory(
    dir: &Path,
    ckpt: &Checkpoint,
    config: &ModelConfig,
    opts: &LoadOptions,
) -> Result<Option<MemoryPlan>> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(dev) = &opts.device {
        let keep = opts.fp8 == Fp8Weights::Resident && ckpt.has_fp8();
        let tc = &config.text_config;
        let act = opts.dtype.size_in_bytes() as u64;
        let experts = (tc.n_routed_experts * 3 * tc.hidden_size * tc.moe_intermediate_size) as u64;
        let (free, total) = crate::kernels::cuda::device_memory(dev)?;
        let vision = std::fs::metadata(dir.join("vision.onnx")).map_or(0, |m| m.len());
        let kv_per_token =
            (2 * tc.num_hidden_layers * tc.num_key_value_heads * tc.head_dim()) as u64 * act;
        return crate::decoder::plan::plan(crate::decoder::plan::PlanInputs {
            device_free: free,
            device_total: total,
            weights: ckpt.resident_estimate(opts.dtype, keep),
            vision,
            workspace: crate::decoder::plan::workspace(if keep { experts * act } else { 0 }),
            kv_per_token,
            tokens_per_page: PLAN_TOKENS_PER_PAGE,
            max_pages: PLAN_MAX_PAGES,
        })
        .map(Some);
    }
    let _ = (dir, ckpt, config, opts);
    Ok(None)
}

/// Incremental detokeniser: emits only complete UTF-8 text.
#[derive(Debug)]
pub struct TextStream<'a> {
    tokenizer: &'a GlmTokenizer,
    ids: Vec<u32>,
    emitted: usize,
}

impl<'a> TextStream<'a> {
    /// A stream over `tokenizer`.
    pub fn new(tokenizer: &'a GlmTokenizer) -> Self {
        Self {
            tokenizer,
            ids: Vec::new(),
            emitted: 0,
        }
    }

    /// Adds a token; returns the newly completed text (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids, false)?;
        if text.ends_with('\u{FFFD}')
            || text.len() < self.emitted
            || !text.is_char_boundary(self.emitted)
        {
            return Ok(String::new());
        }
        let delta = text[self.emitted..].to_string();
        self.emitted = text.len();
        Ok(delta)
    }
}
