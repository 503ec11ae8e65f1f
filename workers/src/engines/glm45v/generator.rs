//! The real [`TextGenerator`]: a loaded GLM-4.5V checkpoint with its vision tower. Per request:
//! processor → vision tower and prompt → generation (JSON-Schema constrained for the JSON
//! profiles) → raw text, with the time of each stage.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use folio_glm45v::chat::{ChatMessage, ChatOptions};
use folio_glm45v::constraint::{ConstraintVocab, JsonSchemaConstraint, TokenConstraint};
use folio_glm45v::generation::{generate, FinishReason, Flow};
use folio_glm45v::model::Glm45v;
use folio_glm45v::vision_prompt::Media;
use image::DynamicImage;

use super::run::{add_time, GenOutput, GenRequest, TextGenerator, Timings};

/// A loaded checkpoint; one request at a time (the decoder uses every core or the whole GPU).
pub struct GlmGenerator {
    glm: Mutex<Glm45v>,
    /// The tokenizer indexed for constrained decoding, built on the first JSON request.
    vocab: OnceLock<Result<Arc<ConstraintVocab>, String>>,
    seed: u64,
}

impl std::fmt::Debug for GlmGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlmGenerator").finish_non_exhaustive()
    }
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

impl GlmGenerator {
    /// Wraps a checkpoint with its vision tower attached.
    pub fn new(glm: Glm45v, seed: u64) -> Self {
        GlmGenerator {
            glm: Mutex::new(glm),
            vocab: OnceLock::new(),
            seed,
        }
    }

    fn vocab(&self, glm: &Glm45v) -> Result<Arc<ConstraintVocab>, String> {
        self.vocab
            .get_or_init(|| {
                ConstraintVocab::new(&glm.tokenizer)
                    .map(Arc::new)
                    .map_err(|e| {
                        format!("cannot index the vocabulary for constrained decoding: {e}")
                    })
            })
            .clone()
    }

    fn generate_one(&self, glm: &Glm45v, req: &GenRequest<'_>) -> Result<GenOutput, String> {
        let err = |e: folio_glm45v::Error| e.to_string();
        let mut timings = Timings::new();
        let start = Instant::now();
        let processed = glm
            .processor
            .process(&DynamicImage::ImageRgb8(req.image.clone()))
            .map_err(err)?;
        add_time(&mut timings, "processor", ms(start));

        let start = Instant::now();
        let chat = ChatOptions {
            enable_thinking: req.thinking,
            ..ChatOptions::default()
        };
        let messages = [ChatMessage::user_with_images(1, req.prompt.as_str())];
        let media = Media {
            images: std::slice::from_ref(&processed),
            videos: &[],
        };
        let ids = glm.encode_with_media(&messages, chat, media).map_err(err)?;
        let prompt = glm.media_prompt(ids, media).map_err(err)?;
        add_time(&mut timings, "vision", ms(start));

        let mut params = glm.default_params(self.seed);
        params.max_new_tokens = req.max_new_tokens;
        let mut constraint = match &req.json_schema {
            Some(schema) => Some(
                JsonSchemaConstraint::with_vocab(self.vocab(glm)?, schema, &params.stop_ids)
                    .map_err(err)?,
            ),
            None => None,
        };
        let generation = generate(
            &glm.model,
            &prompt,
            &params,
            constraint.as_mut().map(|c| c as &mut dyn TokenConstraint),
            &mut |_| Flow::Continue,
        )
        .map_err(err)?;
        add_time(&mut timings, "prefill", generation.prefill_secs * 1e3);
        add_time(&mut timings, "decode", generation.decode_secs * 1e3);
        let raw = glm
            .tokenizer
            .decode(&generation.tokens, false)
            .map_err(err)?;
        tracing::debug!(
            prompt_tokens = generation.prompt_tokens,
            new_tokens = generation.tokens.len(),
            "glm45v answer"
        );
        Ok(GenOutput {
            raw,
            truncated: generation.finish == FinishReason::Length,
            timings,
        })
    }
}

impl TextGenerator for GlmGenerator {
    fn generate(&self, requests: &[GenRequest<'_>]) -> Vec<Result<GenOutput, String>> {
        // A panic in an earlier call leaves the model itself intact (no state survives a call).
        let glm = self.glm.lock().unwrap_or_else(|p| p.into_inner());
        requests
            .iter()
            .map(|r| self.generate_one(&glm, r))
            .collect()
    }
}
