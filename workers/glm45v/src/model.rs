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
use crate::checkpoint::config::{GenerationConfig, ModelConfig};
use crate::checkpoint::weights::Checkpoint;
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
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dtype: DType::BF16,
            device: Device::Cpu,
        }
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
        let vb = ckpt.var_builder(opts.dtype, &opts.device)?;
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
