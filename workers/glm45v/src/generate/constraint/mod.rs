//! Constrained decoding: a [`TokenConstraint`] masks the logits before each sampling step and is
//! told the chosen token, so the output can only be a word of its language.
//!
//! [`JsonSchemaConstraint`] enforces a JSON Schema (the subset in [`schema`]): the output is one
//! compact JSON value that parses and validates, then only a stop id. Given the token budget
//! ([`TokenConstraint::set_max_tokens`], called by [`crate::generate::generate`]) it also
//! finishes in time: a token is allowed only if the shortest completion after it still fits, so
//! a model that rambles inside a string is steered to close it instead of being cut off.
//!
//! Why not llguidance: llguidance 1.9 enables `serde_json/preserve_order`, which cargo's
//! feature unification would switch on for the whole workspace (every serialised JSON map,
//! including the committed schema files, would change key order), and `toktrie_hf_tokenizers`
//! pulls a second `tokenizers` (0.21 next to our 0.22). The profiles' schemas are small and
//! fixed, so a byte-level matcher over GLM's byte-level vocabulary ([`vocab`]) does the same
//! job; its per-token cost is measured in `workers/examples/constraint_overhead.rs` (BENCHMARKS.md).

mod matcher;
mod schema;
mod vocab;

use std::sync::Arc;

pub use vocab::ConstraintVocab;

use crate::chat::tokenizer::GlmTokenizer;
use crate::error::{Error, Result};
use matcher::State;
use schema::Schema;

/// Restricts which tokens generation may choose.
pub trait TokenConstraint: Send {
    /// Works out the next step's allowed tokens ahead of time, so that [`Self::mask`] only
    /// applies them. The batch scheduler calls it on other threads while the decoder step runs
    /// (the mask depends on the tokens so far, not on the logits); the default does nothing.
    fn prepare(&mut self) {}
    /// Sets every disallowed logit to -inf (ids past the vocabulary included).
    fn mask(&mut self, logits: &mut [f32]) -> Result<()>;
    /// Advances past the chosen `token` (an error when it was not allowed).
    fn commit(&mut self, token: u32) -> Result<()>;
    /// True when the output so far is a complete match.
    fn is_complete(&self) -> bool;
    /// Tells the constraint how many tokens generation may produce (stop id excluded), so it
    /// can complete in time. Generation calls it once before the first step.
    fn set_max_tokens(&mut self, _max_tokens: usize) {}
}

/// [`TokenConstraint::prepare`] for every constraint, spread over all cores but one (the one
/// that drives the decoder step meanwhile).
pub fn prepare_all(constraints: &mut [&mut dyn TokenConstraint]) {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .max(1);
    let per_thread = constraints.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for chunk in constraints.chunks_mut(per_thread) {
            scope.spawn(move || chunk.iter_mut().for_each(|c| c.prepare()));
        }
    });
}

/// Output constrained to compact JSON valid under a JSON Schema, followed by a stop id.
#[derive(Debug)]
pub struct JsonSchemaConstraint {
    vocab: Arc<ConstraintVocab>,
    schema: Schema,
    state: State,
    stop_ids: Vec<u32>,
    max_tokens: Option<usize>,
    used: usize,
    allowed: Vec<bool>,
    /// `allowed` is already the set of the current state ([`TokenConstraint::prepare`]).
    prepared: bool,
}

impl JsonSchemaConstraint {
    /// A constraint for `schema` over `tok`'s vocabulary, ending with one of `stop_ids`.
    /// Indexes the vocabulary each time: for many pages, build a [`ConstraintVocab`] once and
    /// use [`JsonSchemaConstraint::with_vocab`].
    pub fn new(tok: &GlmTokenizer, schema: &serde_json::Value, stop_ids: &[u32]) -> Result<Self> {
        Self::with_vocab(Arc::new(ConstraintVocab::new(tok)?), schema, stop_ids)
    }

    /// A constraint over an already indexed vocabulary.
    pub fn with_vocab(
        vocab: Arc<ConstraintVocab>,
        schema: &serde_json::Value,
        stop_ids: &[u32],
    ) -> Result<Self> {
        let schema = Schema::compile(schema)?;
        if schema.depth > matcher::MAX_DEPTH {
            return Err(Error::InvalidInput(format!(
                "JSON schema nests {} levels; at most {} are supported",
                schema.depth,
                matcher::MAX_DEPTH
            )));
        }
        if stop_ids.is_empty() {
            return Err(Error::InvalidInput(
                "a JSON schema constraint needs a stop id to end on".into(),
            ));
        }
        Ok(Self {
            allowed: vec![false; vocab.len()],
            vocab,
            state: State::new(&schema),
            schema,
            stop_ids: stop_ids.to_vec(),
            max_tokens: None,
            used: 0,
            prepared: false,
        })
    }

    /// Tokens still available after the next one, for content (the stop id needs the last).
    fn left_after_next(&self) -> Option<i64> {
        self.max_tokens
            .map(|n| n as i64 - 1 - (self.used as i64 + 1))
    }

    fn fill_allowed(&mut self) {
        let left = self.left_after_next();
        let fits = |cost: u32| left.is_none_or(|l| i64::from(cost) <= l);
        let allowed = &mut self.allowed;
        allowed.iter_mut().for_each(|a| *a = false);
        let (v, s, st) = (&*self.vocab, &self.schema, self.state);
        if st.is_complete() {
            for &id in &self.stop_ids {
                if let Some(a) = allowed.get_mut(id as usize) {
                    *a = true;
                }
            }
            return;
        }
        let mut try_token = |id: u32| {
            if let Some(bytes) = &v.bytes[id as usize] {
                let mut next = st;
                if next.feed(s, bytes) && fits(next.min_to_complete(s)) {
                    allowed[id as usize] = true;
                }
            }
        };
        if let Some(top) = st.string_top(s) {
            for &id in &v.other {
                try_token(id);
            }
            for &(id, chars) in &v.plain {
                if top.chars + chars <= top.max && fits(top.min_to_complete_after(chars)) {
                    allowed[id as usize] = true;
                }
            }
        } else {
            for b in 0..=255u8 {
                let mut next = st;
                if next.step(s, b) {
                    for &id in &v.by_first[b as usize] {
                        try_token(id);
                    }
                }
            }
        }
    }
}

impl TokenConstraint for JsonSchemaConstraint {
    fn prepare(&mut self) {
        if !self.prepared {
            self.fill_allowed();
            self.prepared = true;
        }
    }

    fn mask(&mut self, logits: &mut [f32]) -> Result<()> {
        self.prepare();
        let mut any = false;
        for (i, l) in logits.iter_mut().enumerate() {
            if self.allowed.get(i).copied().unwrap_or(false) {
                any |= *l > f32::NEG_INFINITY;
            } else {
                *l = f32::NEG_INFINITY;
            }
        }
        if !any {
            return Err(Error::InvalidInput(format!(
                "JSON schema constraint: no token fits after {} tokens (budget {:?}, {} bytes \
                 still needed)",
                self.used,
                self.max_tokens,
                self.state.min_to_complete(&self.schema)
            )));
        }
        Ok(())
    }

    fn commit(&mut self, token: u32) -> Result<()> {
        if self.state.is_complete() {
            return if self.stop_ids.contains(&token) {
                Ok(())
            } else {
                Err(Error::InvalidInput(format!(
                    "JSON schema constraint: token {token} after the complete value (only a stop id may follow)"
                )))
            };
        }
        let bytes = self
            .vocab
            .bytes
            .get(token as usize)
            .and_then(|b| b.as_deref())
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "JSON schema constraint: token {token} is not allowed in JSON output"
                ))
            })?;
        let mut next = self.state;
        if !next.feed(&self.schema, bytes) {
            return Err(Error::InvalidInput(format!(
                "JSON schema constraint: token {token} ({:?}) does not continue a valid value",
                String::from_utf8_lossy(bytes)
            )));
        }
        self.state = next;
        self.used += 1;
        self.prepared = false;
        Ok(())
    }

    fn is_complete(&self) -> bool {
        self.state.is_complete()
    }

    fn set_max_tokens(&mut self, max_tokens: usize) {
        self.max_tokens = Some(max_tokens);
        self.prepared = false;
    }
}
