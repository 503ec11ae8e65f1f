//! The real [`TextGenerator`]: a loaded GLM-4.5V checkpoint with its vision tower. Each request
//! of a call goes through the processor, the vision tower and the prompt on its own; then all of
//! them are decoded together ([`generate_batch`]: one ragged decoder step for every running
//! sequence), each with its own `max_new_tokens` and, for the JSON profiles, its own JSON-Schema
//! constraint. A request that fails (an image the processor rejects, a prompt larger than the
//! token budget, a constraint with no way out) fails alone; the others are answered.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use folio_glm45v::chat::{ChatMessage, ChatOptions};
use folio_glm45v::generate::batch::{generate_batch, BatchOptions, BatchRequest};
use folio_glm45v::generate::constraint::{ConstraintVocab, JsonSchemaConstraint, TokenConstraint};
use folio_glm45v::generate::{FinishReason, Flow, Generation, Prompt};
use folio_glm45v::model::Glm45v;
use folio_glm45v::vision::prompt::Media;
use image::DynamicImage;

use super::run::{add_time, GenOutput, GenRequest, TextGenerator, Timings};

/// A loaded checkpoint; one call at a time (the decoder uses every core or the whole GPU), the
/// requests of a call decoded together.
#[derive(Debug)]
pub struct GlmGenerator {
    glm: Mutex<Glm45v>,
    /// The tokenizer indexed for constrained decoding, built on the first JSON request.
    vocab: OnceLock<Result<Arc<ConstraintVocab>, String>>,
    seed: u64,
    /// KV budget of a call in tokens (prompt + image tokens + `max_new_tokens` of the sequences
    /// decoded together); `None`: no budget beyond the number of requests.
    max_tokens_in_flight: Option<usize>,
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// A request ready to decode: its prompt (vision rows spliced in) and the stages timed so far.
struct Prepared {
    index: usize,
    prompt: Prompt,
    timings: Timings,
}

impl GlmGenerator {
    /// Wraps a checkpoint with its vision tower attached; no token budget.
    pub fn new(glm: Glm45v, seed: u64) -> Self {
        GlmGenerator {
            glm: Mutex::new(glm),
            vocab: OnceLock::new(),
            seed,
            max_tokens_in_flight: None,
        }
    }

    /// Bounds the tokens decoded together (see [`BatchOptions::max_tokens_in_flight`]): a
    /// request that alone needs more fails with a clear error, others wait for room.
    pub fn with_max_tokens_in_flight(mut self, tokens: Option<usize>) -> Self {
        self.max_tokens_in_flight = tokens;
        self
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

    /// Decodes `prepared` together; one result per entry, in order. A decoder failure of the
    /// whole batch (e.g. out of memory in a batched step) is retried one request at a time, so
    /// only the requests that fail alone are lost.
    fn decode(
        &self,
        glm: &Glm45v,
        requests: &[GenRequest<'_>],
        prepared: Vec<Prepared>,
    ) -> Vec<Result<GenOutput, String>> {
        match self.decode_together(glm, requests, &prepared) {
            Ok(outputs) => outputs,
            Err(e) if prepared.len() > 1 => {
                tracing::warn!(error = %e, requests = prepared.len(),
                    "glm45v: batched decoding failed; decoding each request alone");
                prepared
                    .into_iter()
                    .map(|p| {
                        self.decode_together(glm, requests, std::slice::from_ref(&p))
                            .and_then(|mut o| o.pop().ok_or_else(|| "no answer".to_string()))
                            .unwrap_or_else(Err)
                    })
                    .collect()
            }
            Err(e) => vec![Err(e)],
        }
    }

    /// One [`generate_batch`] over `prepared`; `Err` only when the whole batch failed.
    fn decode_together(
        &self,
        glm: &Glm45v,
        requests: &[GenRequest<'_>],
        prepared: &[Prepared],
    ) -> Result<Vec<Result<GenOutput, String>>, String> {
        // Requests whose decoder request cannot be built (constraint) fail here, alone.
        let mut outputs: Vec<Option<Result<GenOutput, String>>> = Vec::new();
        let mut batch = Vec::new();
        let mut in_batch = Vec::new();
        for (k, p) in prepared.iter().enumerate() {
            match self.batch_request(glm, &requests[p.index], p.prompt.clone()) {
                Ok(r) => {
                    batch.push(r);
                    in_batch.push(k);
                    outputs.push(None);
                }
                Err(e) => outputs.push(Some(Err(e))),
            }
        }
        if !batch.is_empty() {
            let opts = BatchOptions {
                max_batch: batch.len(),
                max_tokens_in_flight: self.max_tokens_in_flight.unwrap_or(usize::MAX),
            };
            let start = Instant::now();
            let generations = generate_batch(&glm.model, batch, &opts, &mut |_, _| Flow::Continue)
                .map_err(|e| e.to_string())?;
            let shares = decode_shares(start.elapsed().as_secs_f64(), &generations);
            for ((k, generation), share) in in_batch.into_iter().zip(generations).zip(shares) {
                outputs[k] = Some(
                    generation
                        .map_err(|e| e.to_string())
                        .and_then(|g| answer(glm, g, share, prepared[k].timings.clone())),
                );
            }
        }
        Ok(outputs
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err("the batch returned no answer".into())))
            .collect())
    }
}

/// Each generation's share of the batch's decode time, in seconds. Prefills run one sequence at
/// a time and are each sequence's own; the rest of the batch's wall time is decode steps, where
/// a step produces one token for every running sequence. That time is split in proportion to
/// the tokens each sequence produced, so the shares add up to the batch's decode wall time
/// (pages/hour stays an honest sum) and a page that generated more pays more.
fn decode_shares(wall_secs: f64, generations: &[folio_glm45v::Result<Generation>]) -> Vec<f64> {
    let ok = || generations.iter().filter_map(|g| g.as_ref().ok());
    let prefill: f64 = ok().map(|g| g.prefill_secs).sum();
    let tokens: usize = ok().map(|g| g.tokens.len()).sum();
    let decode = (wall_secs - prefill).max(0.0);
    generations
        .iter()
        .map(|g| match g {
            Ok(g) if tokens > 0 => decode * g.tokens.len() as f64 / tokens as f64,
            _ => 0.0,
        })
        .collect()
}

/// A finished generation as raw text with its timings.
fn answer(
    glm: &Glm45v,
    generation: Generation,
    decode_share_secs: f64,
    mut timings: Timings,
) -> Result<GenOutput, String> {
    add_time(&mut timings, "prefill", generation.prefill_secs * 1e3);
    add_time(&mut timings, "decode", decode_share_secs * 1e3);
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
        // A panic in an earlier call leaves the model itself intact (no state survives a call).
        let glm = self.glm.lock().unwrap_or_else(|p| p.into_inner());
        let mut results: Vec<Option<Result<GenOutput, String>>> =
            requests.iter().map(|_| None).collect();
        let mut prepared = Vec::with_capacity(requests.len());
        for (index, req) in requests.iter().enumerate() {
            match self.prepare(&glm, req) {
                Ok((prompt, timings)) => prepared.push(Prepared {
                    index,
                    prompt,
                    timings,
                }),
                Err(e) => results[index] = Some(Err(e)),
            }
        }
        let indices: Vec<usize> = prepared.iter().map(|p| p.index).collect();
        if !prepared.is_empty() {
            for (i, out) in indices
                .into_iter()
                .zip(self.decode(&glm, requests, prepared))
            {
                results[i] = Some(out);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err("no answer for this request".into())))
            .collect()
    }
}
