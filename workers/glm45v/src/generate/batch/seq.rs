//! One sequence of the batch scheduler (`batch.rs`): its validated prompt, sampler, optional
//! token constraint, own KV cache and output so far. The per-token logic is
//! [`crate::generate::generate`]'s, step for step, so a sequence decodes in a batch exactly as
//! it would alone (same sampler calls, same stop checks, same decode positions).

use std::time::Instant;

use candle_core::Tensor;

use crate::decoder::kv_cache::KvCache;
use crate::decoder::mrope::Positions3;
use crate::decoder::text_model::{DecoderInput, LogitsSelection, Record, TextModel};
use crate::error::{Error, Result};
use crate::generate::constraint::TokenConstraint;
use crate::generate::{FinishReason, Flow, Generation, GenerationParams, Prompt, Sampler};

/// Identifies a request submitted to a [`crate::generate::batch::Scheduler`] (submission order, from 0).
pub type RequestId = usize;

/// A submitted request, checked and waiting or running.
pub(crate) struct Sequence {
    pub id: RequestId,
    /// Prompt tokens (image tokens included) + `max_new_tokens`: what admission reserves.
    pub reserved: usize,
    /// Taken at prefill.
    prompt: Option<(Prompt, Positions3)>,
    params: GenerationParams,
    constraint: Option<Box<dyn TokenConstraint>>,
    sampler: Sampler,
    pub cache: KvCache,
    rope_delta: i64,
    /// The last kept token, to be fed by the next decode step.
    pub pending: Option<u32>,
    pub out: Generation,
}

impl Sequence {
    /// Checks `prompt` and `params` the way [`crate::generate::generate`] does (shapes more
    /// strictly: embeds must be [1, T, hidden]) and sizes the reservation.
    pub fn new(
        model: &TextModel,
        id: RequestId,
        prompt: Prompt,
        params: GenerationParams,
        mut constraint: Option<Box<dyn TokenConstraint>>,
    ) -> Result<Self> {
        params.validate()?;
        let n = prompt.ids.len();
        if n == 0 {
            return Err(Error::InvalidInput("empty prompt".into()));
        }
        let positions = prompt
            .positions
            .clone()
            .unwrap_or_else(|| Positions3::text(n));
        if positions.len() != n {
            return Err(Error::InvalidInput(format!(
                "prompt has {n} ids but {} positions",
                positions.len()
            )));
        }
        if let Some(e) = &prompt.embeds {
            if e.dims() != [1, n, model.hidden_size()] {
                return Err(Error::InvalidInput(format!(
                    "prompt has {n} ids but embeds {:?} (want [1, {n}, {}])",
                    e.dims(),
                    model.hidden_size()
                )));
            }
        }
        let rope_delta = positions.rope_delta();
        let sampler = Sampler::new(&params, &prompt.ids, model.vocab_size());
        if let Some(c) = constraint.as_deref_mut() {
            c.set_max_tokens(params.max_new_tokens);
        }
        Ok(Self {
            id,
            reserved: n + params.max_new_tokens,
            prompt: Some((prompt, positions)),
            constraint,
            sampler,
            cache: model.new_cache(),
            rope_delta,
            pending: None,
            out: Generation {
                tokens: Vec::new(),
                finish: FinishReason::Length,
                prompt_tokens: n,
                prefill_secs: 0.0,
                decode_secs: 0.0,
            },
            params,
        })
    }

    /// True when nothing is to be generated (`max_new_tokens` = 0): no prefill, like `generate`.
    pub fn is_empty_request(&self) -> bool {
        self.params.max_new_tokens == 0
    }

    /// Runs the prompt through the decoder into this sequence's cache; returns the last logits.
    pub fn prefill(&mut self, model: &TextModel) -> Result<Vec<f32>> {
        let (prompt, positions) = self
            .prompt
            .take()
            .ok_or_else(|| Error::InvalidInput("sequence prefilled twice".into()))?;
        let start = Instant::now();
        let device = model.device();
        let embeds = match prompt.embeds {
            Some(e) => e,
            None => model.embed(&Tensor::new(prompt.ids.as_slice(), device)?.unsqueeze(0)?)?,
        };
        let pos = positions.to_tensor(device)?;
        let input = DecoderInput {
            embeds: &embeds,
            positions: &pos,
            logits: LogitsSelection::Last,
            record: Record::default(),
        };
        let logits = model
            .forward(input, &mut self.cache)?
            .logits
            .ok_or_else(|| Error::InvalidInput("decoder returned no logits".into()))?;
        let logits = logits.flatten_all()?.to_vec1::<f32>()?;
        self.out.prefill_secs = start.elapsed().as_secs_f64();
        Ok(logits)
    }

    /// M-RoPE position of the pending token: `cache_len + rope_delta` (as `decode_positions`).
    pub fn decode_position(&self) -> Result<u32> {
        let p = self.cache.seq_len() as i64 + self.rope_delta;
        u32::try_from(p).map_err(|_| {
            Error::InvalidInput(format!(
                "decode position {p} is out of range (cache {}, delta {})",
                self.cache.seq_len(),
                self.rope_delta
            ))
        })
    }

    /// The KV cache and the constraint, borrowed apart (the decoder step writes the one while
    /// other threads prepare the other's next mask).
    pub fn cache_and_constraint(&mut self) -> (&mut KvCache, Option<&mut dyn TokenConstraint>) {
        (
            &mut self.cache,
            self.constraint.as_deref_mut().map(|c| c as _),
        )
    }

    /// Chooses the next token from `logits` and records it; true when the sequence finished.
    /// `on_token` sees every kept token (the stop id is not kept).
    pub fn accept(
        &mut self,
        logits: &mut [f32],
        on_token: &mut dyn FnMut(RequestId, u32) -> Flow,
    ) -> Result<bool> {
        let token = self.choose(logits)?;
        self.record(token, on_token)
    }

    /// The sampling half of [`Self::accept`]: mask, penalty and choice of the next token from
    /// `logits` (its own sampler and constraint only, so sequences can choose on several threads).
    pub fn choose(&mut self, logits: &mut [f32]) -> Result<u32> {
        self.pending = None;
        self.sampler
            .next_with(logits, self.constraint.as_deref_mut().map(|c| c as _))
    }

    /// The recording half of [`Self::accept`]: keeps `token` (unless it is a stop id); true when
    /// the sequence finished.
    pub fn record(
        &mut self,
        token: u32,
        on_token: &mut dyn FnMut(RequestId, u32) -> Flow,
    ) -> Result<bool> {
        if self.params.stop_ids.contains(&token) {
            self.out.finish = FinishReason::Stop(token);
            return Ok(true);
        }
        self.out.tokens.push(token);
        if on_token(self.id, token) == Flow::Stop {
            self.out.finish = FinishReason::Cancelled;
            return Ok(true);
        }
        if self.out.tokens.len() >= self.params.max_new_tokens {
            return Ok(true);
        }
        self.pending = Some(token);
        Ok(false)
    }
}
