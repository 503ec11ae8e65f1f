//! The real [`TextGenerator`]: a loaded GLM-4.5V checkpoint with its vision tower, decoded with
//! continuous batching. Each caller (one worker page in flight) prepares its requests on its own
//! thread — processor, vision tower, prompt — and hands each ready prompt to the one decoder
//! thread ([`DecodeLoop`]), which admits it into the running batch as soon as a slot is free and
//! answers it the moment it finishes. Each request has its own `max_new_tokens` and, for the JSON
//! profiles, its own JSON-Schema constraint. A request that fails (an image the processor
//! rejects, a prompt larger than the token budget, a constraint with no way out) fails alone.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use folio_glm45v::chat::{ChatMessage, ChatOptions};
use folio_glm45v::generate::batch::{BatchOptions, BatchRequest};
use folio_glm45v::generate::constraint::{ConstraintVocab, JsonSchemaConstraint, TokenConstraint};
use folio_glm45v::generate::{FinishReason, Generation, Prompt};
use folio_glm45v::model::Glm45v;
use folio_glm45v::vision::prompt::Media;
use image::DynamicImage;

use super::decode_loop::DecodeLoop;
use super::run::{add_time, GenOutput, GenRequest, TextGenerator, Timings};

/// Sequences decoded together when no batch size is given.
pub const DEFAULT_MAX_BATCH: usize = 16;

/// A loaded checkpoint shared by the preparing callers and the decoder thread.
#[derive(Debug)]
pub struct GlmGenerator {
    glm: Arc<Glm45v>,
    /// The decoder thread, started on the first request with the options set by then.
    decoder: OnceLock<Result<DecodeLoop, String>>,
    /// The tokenizer indexed for constrained decoding, built on the first JSON request.
    vocab: OnceLock<Result<Arc<ConstraintVocab>, String>>,
    seed: u64,
    /// Most sequences decoded together.
    max_batch: usize,
    /// KV budget in tokens (prompt + image tokens + `max_new_tokens` of the sequences decoded
    /// together); `None`: no budget beyond the batch size.
    max_tokens_in_flight: Option<usize>,
    /// Decode until `max_new_tokens` whatever the model says (benchmarks with random weights).
    ignore_stop: bool,
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

impl GlmGenerator {
    /// Wraps a checkpoint with its vision tower attached; [`DEFAULT_MAX_BATCH`], no token budget.
    pub fn new(glm: Glm45v, seed: u64) -> Self {
        GlmGenerator {
            glm: Arc::new(glm),
            decoder: OnceLock::new(),
            vocab: OnceLock::new(),
            seed,
            max_batch: DEFAULT_MAX_BATCH,
            max_tokens_in_flight: None,
            ignore_stop: false,
        }
    }

    /// Bounds the tokens decoded together (see [`BatchOptions::max_tokens_in_flight`]): a
    /// request that alone needs more fails with a clear error, others wait for room.
    pub fn with_max_tokens_in_flight(mut self, tokens: Option<usize>) -> Self {
        self.max_tokens_in_flight = tokens;
        self
    }

    /// The most sequences decoded together (at least 1).
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Ignores the stop tokens: every answer is exactly `max_new_tokens` long (and not reported
    /// as truncated). Only for benchmarks, where random weights would otherwise end pages at
    /// arbitrary lengths.
    pub fn with_ignore_stop(mut self, ignore: bool) -> Self {
        self.ignore_stop = ignore;
        self
    }

    /// The loaded checkpoint.
    pub fn model(&self) -> &Glm45v {
        &self.glm
    }

    fn decoder(&self) -> Result<&DecodeLoop, String> {
        self.decoder
            .get_or_init(|| {
                let opts = BatchOptions {
                    max_batch: self.max_batch,
                    max_tokens_in_flight: self.max_tokens_in_flight.unwrap_or(usize::MAX),
                };
                DecodeLoop::start(self.glm.clone(), opts)
            })
            .as_ref()
            .map_err(Clone::clone)
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

    /// Processor → vision tower and prompt for one request, timed.
    fn prepare(&self, glm: &Glm45v, req: &GenRequest<'_>) -> Result<(Prompt, Timings), String> {
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
        Ok((prompt, timings))
    }

    /// The decoder request of `req`: its parameters and, for a JSON profile, a fresh constraint.
    fn batch_request(
        &self,
        glm: &Glm45v,
        req: &GenRequest<'_>,
        prompt: Prompt,
    ) -> Result<BatchRequest, String> {
        let mut params = glm.default_params(self.seed);
        params.max_new_tokens = req.max_new_tokens;
        if self.ignore_stop {
            params.stop_ids.clear();
        }
        let constraint = match &req.json_schema {
            Some(schema) => Some(Box::new(
                JsonSchemaConstraint::with_vocab(self.vocab(glm)?, schema, &params.stop_ids)
                    .map_err(|e| e.to_string())?,
            ) as Box<dyn TokenConstraint>),
            None => None,
        };
        Ok(BatchRequest {
            prompt,
            params,
            constraint,
        })
    }
}

/// A finished generation as raw text with its timings. `decode` is the wall time the request
/// spent in the running batch (its latency, shared with the requests decoded beside it).
fn answer(glm: &Glm45v, generation: Generation, mut timings: Timings) -> Result<GenOutput, String> {
    add_time(&mut timings, "prefill", generation.prefill_secs * 1e3);
    add_time(&mut timings, "decode", generation.decode_secs * 1e3);
    let raw = glm
        .tokenizer
        .decode(&generation.tokens, false)
        .map_err(|e| e.to_string())?;
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

impl TextGenerator for GlmGenerator {
    fn generate(&self, requests: &[GenRequest<'_>]) -> Vec<Result<GenOutput, String>> {
        let glm = self.glm.as_ref();
        // Each request goes to the decoder as soon as it is prepared, so its prefill can start
        // while the next one is still in the vision tower.
        let submitted: Vec<Result<_, String>> = requests
            .iter()
            .map(|req| {
                let (prompt, timings) = self.prepare(glm, req)?;
                let request = self.batch_request(glm, req, prompt)?;
                Ok((self.decoder()?.submit(request)?, timings))
            })
            .collect();
        submitted
            .into_iter()
            .map(|s| {
                let (pending, timings) = s?;
                let generation = DecodeLoop::wait(&pending)?;
                let mut out = answer(glm, generation, timings)?;
                // Asked for exactly `max_new_tokens`: the length is the request, not a cut.
                out.truncated &= !self.ignore_stop;
                Ok(out)
            })
            .collect()
    }
}
