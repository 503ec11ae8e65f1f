//! Batched generation across pages (issue #8, deliverable 5): several prompts (text or image,
//! each a [`Prompt`] with spliced vision rows and its own M-RoPE positions and rope delta)
//! decoded together under a batch size and a token/KV budget.
//!
//! Each sequence keeps its own [`crate::KvCache`]; a decode step is one decoder forward for the
//! next token of every running sequence ([`crate::decoder::text_model::TextModel::forward_ragged`]):
//! projections, norms, MoE and `lm_head` batched over the tokens, attention ragged (each token
//! over its own cache, no padding). Newly admitted sequences are prefilled on their own between
//! decode steps and join the next one. Each sequence has its own [`crate::generate::Sampler`]
//! (greedy or sampled, repetition penalty), stop ids, `max_new_tokens` and optional
//! [`TokenConstraint`], and produces what [`crate::generate::generate`] would alone (greedy:
//! the same tokens; the batched matmuls may differ from single-row ones in the last bits).
//!
//! [`generate_batch`] runs a fixed list to completion; [`Scheduler`] (`batch_scheduler.rs`) is
//! the step-by-step loop for callers that keep submitting.

use crate::decoder::text_model::TextModel;
use crate::error::Result;
use crate::generate::constraint::TokenConstraint;
use crate::generate::{Flow, Generation, GenerationParams, Prompt};

mod scheduler;
mod seq;

pub use scheduler::{Finished, Scheduler};
pub use seq::RequestId;

/// One prompt to generate after, with its own settings.
pub struct BatchRequest {
    pub prompt: Prompt,
    pub params: GenerationParams,
    /// Restricts the tokens this sequence may choose (schema-constrained profiles).
    pub constraint: Option<Box<dyn TokenConstraint>>,
}

impl BatchRequest {
    /// A request without constraint.
    pub fn new(prompt: Prompt, params: GenerationParams) -> Self {
        Self {
            prompt,
            params,
            constraint: None,
        }
    }
}

impl std::fmt::Debug for BatchRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchRequest")
            .field("prompt_tokens", &self.prompt.ids.len())
            .field("params", &self.params)
            .field("constrained", &self.constraint.is_some())
            .finish()
    }
}

/// Limits of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Most sequences decoded together.
    pub max_batch: usize,
    /// KV budget in tokens: the running sequences' prompt tokens (images included) plus their
    /// `max_new_tokens`, reserved at admission.
    pub max_tokens_in_flight: usize,
}

impl BatchOptions {
    /// A budget given in bytes of KV cache ([`TextModel::kv_bytes_per_token`] per token).
    pub fn from_kv_bytes(model: &TextModel, max_batch: usize, kv_bytes: usize) -> Self {
        Self {
            max_batch,
            max_tokens_in_flight: kv_bytes / model.kv_bytes_per_token().max(1),
        }
    }
}

/// Generates after every request, batched; results in request order. A request that cannot
/// run (invalid options or prompt, larger than the whole budget, its constraint failing) gets
/// its own `Err`; the outer `Err` is a decoder failure or invalid [`BatchOptions`].
/// `on_token(i, token)` sees every kept token of request `i`; `Flow::Stop` ends that request
/// ([`crate::generate::FinishReason::Cancelled`]).
pub fn generate_batch(
    model: &TextModel,
    reqs: Vec<BatchRequest>,
    opts: &BatchOptions,
    on_token: &mut dyn FnMut(usize, u32) -> Flow,
) -> Result<Vec<Result<Generation>>> {
    let mut sched = Scheduler::new(model, *opts)?;
    let mut results: Vec<Option<Result<Generation>>> = (0..reqs.len()).map(|_| None).collect();
    // Scheduler ids count accepted submissions only; map them back to request indices.
    let mut index_of = Vec::with_capacity(reqs.len());
    for (i, req) in reqs.into_iter().enumerate() {
        match sched.submit(req) {
            Ok(_) => index_of.push(i),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    while !sched.is_idle() {
        let finished = sched.step(&mut |id, token| on_token(index_of[id], token))?;
        for (id, result) in finished {
            results[index_of[id]] = Some(result);
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(unfinished())))
        .collect())
}

fn unfinished() -> crate::Error {
    crate::Error::InvalidInput("the batch ended without a result for this request".into())
}
