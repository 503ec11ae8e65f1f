//! GLM tokenizer (`tokenizer.json`, byte-level BPE) and the special tokens of a checkpoint.
//!
//! GLM has no BOS: the chat format writes `[gMASK]<sop>` itself, so prompts are encoded without
//! added special tokens. Special ids come from `config.json` / `generation_config.json` and are
//! cross-checked against the tokenizer's own added tokens, so a mismatched pair fails at load.

use std::path::Path;

use crate::checkpoint::config::{GenerationConfig, ModelConfig};
use crate::error::{Error, Result};

/// A loaded `tokenizer.json`.
#[derive(Debug, Clone)]
pub struct GlmTokenizer {
    inner: tokenizers::Tokenizer,
}

impl GlmTokenizer {
    /// Loads `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Tokenizer(format!("{} not found", path.display())));
        }
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(Self { inner })
    }

    /// Token ids of `text`, special-token strings matched as single tokens, no BOS/EOS added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(format!("encode: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`; `skip_special` drops tokens marked special (`<think>` is not special).
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| Error::Tokenizer(format!("decode: {e}")))
    }

    /// Id of an exact token string (vocabulary or added token).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// String of a token id.
    pub fn token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Size of the vocabulary including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// Special token ids of one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Generation stops on any of these (generation_config first, else text_config).
    pub eos: Vec<u32>,
    pub pad: Option<u32>,
    pub image: u32,
    pub image_start: u32,
    pub image_end: u32,
    pub video: Option<u32>,
    pub video_start: Option<u32>,
    pub video_end: Option<u32>,
    pub think_start: Option<u32>,
    pub think_end: Option<u32>,
    pub box_start: Option<u32>,
    pub box_end: Option<u32>,
}

impl SpecialTokens {
    /// Collects the ids and checks that the tokenizer agrees with the config on their strings.
    pub fn resolve(cfg: &ModelConfig, gen: &GenerationConfig, tok: &GlmTokenizer) -> Result<Self> {
        let eos = gen
            .eos_token_id
            .as_ref()
            .map(|e| e.to_vec())
            .unwrap_or_else(|| cfg.eos_token_ids());
        if eos.is_empty() {
            return Err(Error::Config(
                "no eos_token_id in generation_config.json nor text_config".into(),
            ));
        }
        let checks = [
            ("image_token_id", Some(cfg.image_token_id), "<|image|>"),
            (
                "image_start_token_id",
                Some(cfg.image_start_token_id),
                "<|begin_of_image|>",
            ),
            (
                "image_end_token_id",
                Some(cfg.image_end_token_id),
                "<|end_of_image|>",
            ),
            ("video_token_id", cfg.video_token_id, "<|video|>"),
            (
                "video_start_token_id",
                cfg.video_start_token_id,
                "<|begin_of_video|>",
            ),
            (
                "video_end_token_id",
                cfg.video_end_token_id,
                "<|end_of_video|>",
            ),
        ];
        for (field, id, expected) in checks {
            let Some(id) = id else { continue };
            match tok.token(id) {
                Some(s) if s == expected => {}
                other => {
                    return Err(Error::Config(format!(
                        "{field} {id} is `{}` in tokenizer.json, expected `{expected}`",
                        other.unwrap_or_else(|| "<none>".into())
                    )))
                }
            }
        }
        Ok(Self {
            eos,
            pad: gen.pad_token_id.or(cfg.text_config.pad_token_id),
            image: cfg.image_token_id,
            image_start: cfg.image_start_token_id,
            image_end: cfg.image_end_token_id,
            video: cfg.video_token_id,
            video_start: cfg.video_start_token_id,
            video_end: cfg.video_end_token_id,
            think_start: tok.token_id("<think>"),
            think_end: tok.token_id("</think>"),
            box_start: tok.token_id("<|begin_of_box|>"),
            box_end: tok.token_id("<|end_of_box|>"),
        })
    }
}
