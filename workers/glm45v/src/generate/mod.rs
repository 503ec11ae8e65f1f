//! Autoregressive generation over [`TextModel`]: one prefill, then one-token decode steps with
//! the caller-invisible KV cache; greedy or sampled (temperature, top-k, top-p, seed), repetition
//! penalty, stop on any stop id, a token budget, and a per-token callback that may stop early.
//!
//! Logit processing follows transformers' order: repetition penalty → temperature → top-k →
//! top-p, with an optional [`TokenConstraint`] masking the logits first (schema-constrained
//! decoding) and told every chosen token. Decode positions continue after the prompt's largest M-RoPE position
//! (`cache_len + rope_delta`, spec §2.4), so image prompts decode correctly.

pub mod batch;
pub mod constraint;
pub mod output;

use std::time::Instant;

use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::checkpoint::config::GenerationConfig;
use crate::decoder::mrope::{decode_positions, Positions3};
use crate::decoder::text_model::{DecoderInput, LogitsSelection, Record, TextModel};
use crate::error::{Error, Result};
use crate::generate::constraint::TokenConstraint;

/// Sampling settings (used when decoding is [`Decoding::Sample`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// > 0; logits are divided by it.
    pub temperature: f32,
    /// Keep the smallest set of top tokens whose probability reaches this (1.0 = off).
    pub top_p: f32,
    /// Keep the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Seed of the sampler's RNG (same seed, same output).
    pub seed: u64,
}

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decoding {
    Greedy,
    Sample(SamplingParams),
}

/// Options of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationParams {
    pub max_new_tokens: usize,
    pub decoding: Decoding,
    /// transformers' repetition penalty over prompt and output tokens (1.0 = off).
    pub repetition_penalty: f32,
    /// Generation ends when one of these is produced (it is not part of the output).
    pub stop_ids: Vec<u32>,
}

impl GenerationParams {
    /// Greedy decoding with the given stop ids.
    pub fn greedy(max_new_tokens: usize, stop_ids: Vec<u32>) -> Self {
        Self {
            max_new_tokens,
            decoding: Decoding::Greedy,
            repetition_penalty: 1.0,
            stop_ids,
        }
    }

    /// The checkpoint's defaults from `generation_config.json` (greedy unless `do_sample`).
    pub fn from_generation_config(gen: &GenerationConfig, stop_ids: Vec<u32>, seed: u64) -> Self {
        let temperature = gen.temperature.unwrap_or(1.0) as f32;
        let decoding = if gen.do_sample.unwrap_or(false) && temperature > 0.0 {
            Decoding::Sample(SamplingParams {
                temperature,
                top_p: gen.top_p.unwrap_or(1.0) as f32,
                top_k: gen.top_k.unwrap_or(0),
                seed,
            })
        } else {
            Decoding::Greedy
        };
        Self {
            max_new_tokens: gen.max_new_tokens.unwrap_or(8192),
            decoding,
            repetition_penalty: gen.repetition_penalty.unwrap_or(1.0) as f32,
            stop_ids,
        }
    }

    /// Rejects a non-positive repetition penalty, temperature or top-p (shared with `batch_seq`).
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(Error::InvalidInput(format!(
                "repetition_penalty {} must be > 0",
                self.repetition_penalty
            )));
        }
        if let Decoding::Sample(s) = self.decoding {
            if !(s.temperature.is_finite() && s.temperature > 0.0) {
                return Err(Error::InvalidInput(format!(
                    "temperature {} must be > 0 when sampling",
                    s.temperature
                )));
            }
            if !(s.top_p > 0.0 && s.top_p <= 1.0) {
                return Err(Error::InvalidInput(format!(
                    "top_p {} must be in (0, 1]",
                    s.top_p
                )));
            }
        }
        Ok(())
    }
}

/// A prompt: token ids, and optionally spliced embeddings and explicit M-RoPE positions.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub ids: Vec<u32>,
    /// [1, T, hidden] input embeddings (e.g. with vision rows); `None` = embed `ids`.
    pub embeds: Option<Tensor>,
    /// 3-row positions; `None` = text positions `0..T`.
    pub positions: Option<Positions3>,
}

impl Prompt {
    /// A text-only prompt.
    pub fn text(ids: Vec<u32>) -> Self {
        Self {
            ids,
            embeds: None,
            positions: None,
        }
    }
}

/// Whether generation continues after a streamed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop id was produced.
    Stop(u32),
    /// `max_new_tokens` reached.
    Length,
    /// The callback asked to stop.
    Cancelled,
}

/// Result of [`generate`].
#[derive(Debug, Clone)]
pub struct Generation {
    /// Generated ids, without the stop id.
    pub tokens: Vec<u32>,
    pub finish: FinishReason,
    pub prompt_tokens: usize,
    pub prefill_secs: f64,
    pub decode_secs: f64,
}

/// Generates after `prompt`; `on_token` sees every kept token as it is produced. With a
/// `constraint`, only tokens it allows are chosen (it should allow the stop ids once complete).
pub fn generate(
    model: &TextModel,
    prompt: &Prompt,
    params: &GenerationParams,
    mut constraint: Option<&mut dyn TokenConstraint>,
    on_token: &mut dyn FnMut(u32) -> Flow,
) -> Result<Generation> {
    params.validate()?;
    let n = prompt.ids.len();
    if n == 0 {
        return Err(Error::InvalidInput("empty prompt".into()));
    }
    let device = model.device().clone();
    let embeds = match &prompt.embeds {
        Some(e) => e.clone(),
        None => model.embed(&Tensor::new(prompt.ids.as_slice(), &device)?.unsqueeze(0)?)?,
    };
    let positions = prompt
        .positions
        .clone()
        .unwrap_or_else(|| Positions3::text(n));
    if positions.len() != n || embeds.dims().get(1) != Some(&n) {
        return Err(Error::InvalidInput(format!(
            "prompt has {n} ids but {} positions and embeds {:?}",
            positions.len(),
            embeds.dims()
        )));
    }
    let rope_delta = positions.rope_delta();
    let mut sampler = Sampler::new(params, &prompt.ids, model.vocab_size());
    if let Some(c) = constraint.as_deref_mut() {
        c.set_max_tokens(params.max_new_tokens);
    }
    let mut cache = model.new_cache();
    let mut out = Generation {
        tokens: Vec::new(),
        finish: FinishReason::Length,
        prompt_tokens: n,
        prefill_secs: 0.0,
        decode_secs: 0.0,
    };
    if params.max_new_tokens == 0 {
        return Ok(out);
    }
    let start = Instant::now();
    let pos = positions.to_tensor(&device)?;
    let mut logits = step(model, &embeds, &pos, &mut cache)?;
    out.prefill_secs = start.elapsed().as_secs_f64();
    let start = Instant::now();
    loop {
        let token = sampler.next_with(&mut logits, constraint.as_deref_mut())?;
        if params.stop_ids.contains(&token) {
            out.finish = FinishReason::Stop(token);
            break;
        }
        out.tokens.push(token);
        if on_token(token) == Flow::Stop {
            out.finish = FinishReason::Cancelled;
            break;
        }
        if out.tokens.len() >= params.max_new_tokens {
            break;
        }
        let e = model.embed(&Tensor::new(&[[token]], &device)?)?;
        let p = decode_positions(cache.seq_len(), rope_delta, 1, &device)?;
        logits = step(model, &e, &p, &mut cache)?;
    }
    out.decode_secs = start.elapsed().as_secs_f64();
    Ok(out)
}

fn step(
    model: &TextModel,
    embeds: &Tensor,
    pos: &Tensor,
    cache: &mut crate::KvCache,
) -> Result<Vec<f32>> {
    let input = DecoderInput {
        embeds,
        positions: pos,
        logits: LogitsSelection::Last,
        record: Record::default(),
    };
    let logits = model
        .forward(input, cache)?
        .logits
        .ok_or_else(|| Error::InvalidInput("decoder returned no logits".into()))?;
    Ok(logits.flatten_all()?.to_vec1::<f32>()?)
}

/// Logit processing and token choice (host side, per step).
#[derive(Debug)]
pub struct Sampler {
    decoding: Decoding,
    penalty: f32,
    seen: Vec<bool>,
    rng: StdRng,
}

impl Sampler {
    /// A sampler that penalises the prompt tokens from the start.
    pub fn new(params: &GenerationParams, prompt: &[u32], vocab: usize) -> Self {
        let mut seen = vec![false; vocab];
        for &t in prompt {
            if let Some(s) = seen.get_mut(t as usize) {
                *s = true;
            }
        }
        let seed = match params.decoding {
            Decoding::Sample(s) => s.seed,
            Decoding::Greedy => 0,
        };
        Self {
            decoding: params.decoding,
            penalty: params.repetition_penalty,
            seen,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Picks the next token from `logits` (modified in place) and records it as seen.
    pub fn next(&mut self, logits: &mut [f32]) -> Result<u32> {
        self.next_with(logits, None)
    }

    /// [`Sampler::next`] under `constraint`: disallowed logits are set to -inf before any other
    /// processing, and the chosen token is committed to the constraint.
    pub fn next_with<'c>(
        &mut self,
        logits: &mut [f32],
        constraint: Option<&mut (dyn TokenConstraint + 'c)>,
    ) -> Result<u32> {
        if logits.len() != self.seen.len() {
            return Err(Error::InvalidInput(format!(
                "logits of width {} for a vocabulary of {}",
                logits.len(),
                self.seen.len()
            )));
        }
        let mut constraint = constraint;
        if let Some(c) = constraint.as_deref_mut() {
            c.mask(logits)?;
        }
        if self.penalty != 1.0 {
            for (l, &s) in logits.iter_mut().zip(&self.seen) {
                if s {
                    *l = if *l < 0.0 {
                        *l * self.penalty
                    } else {
                        *l / self.penalty
                    };
                }
            }
        }
        let token = match self.decoding {
            Decoding::Greedy => argmax(logits),
            Decoding::Sample(p) => sample(logits, p, &mut self.rng),
        };
        if let Some(c) = constraint {
            // Checked on the chosen token rather than by another pass over the vocabulary: the
            // best (or a sampled) logit is -inf only when the constraint allowed nothing.
            if logits
                .get(token as usize)
                .is_none_or(|l| *l == f32::NEG_INFINITY)
            {
                return Err(Error::InvalidInput(
                    "the token constraint allows no token".into(),
                ));
            }
            c.commit(token)?;
        }
        self.seen[token as usize] = true;
        Ok(token)
    }
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if *v > logits[best] {
            best = i;
        }
    }
    best as u32
}

fn sample(logits: &[f32], p: SamplingParams, rng: &mut StdRng) -> u32 {
    let mut cand: Vec<(usize, f32)> = logits
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .map(|(i, &v)| (i, v / p.temperature))
        .collect();
    if cand.is_empty() {
        return 0;
    }
    cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if p.top_k > 0 && p.top_k < cand.len() {
        let kth = cand[p.top_k - 1].1;
        cand.retain(|c| c.1 >= kth);
    }
    let max = cand[0].1;
    let mut probs: Vec<f32> = cand.iter().map(|c| (c.1 - max).exp()).collect();
    let total: f32 = probs.iter().sum();
    probs.iter_mut().for_each(|x| *x /= total);
    if p.top_p < 1.0 {
        let mut acc = 0.0;
        let mut keep = probs.len();
        for (i, pr) in probs.iter().enumerate() {
            acc += pr;
            if acc >= p.top_p {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
        cand.truncate(keep);
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= total);
    }
    let r: f32 = rng.random();
    let mut acc = 0.0;
    for (c, pr) in cand.iter().zip(&probs) {
        acc += pr;
        if r < acc {
            return c.0 as u32;
        }
    }
    // Rounding left `r` past the last sum: the last candidate that has any probability.
    cand.iter()
        .zip(&probs)
        .rev()
        .find(|(_, pr)| **pr > 0.0)
        .map_or(cand[0].0 as u32, |(c, _)| c.0 as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(decoding: Decoding, penalty: f32) -> GenerationParams {
        GenerationParams {
            max_new_tokens: 1,
            decoding,
            repetition_penalty: penalty,
            stop_ids: vec![],
        }
    }

    fn sp(temperature: f32, top_p: f32, top_k: usize, seed: u64) -> Decoding {
        Decoding::Sample(SamplingParams {
            temperature,
            top_p,
            top_k,
            seed,
        })
    }

    /// A constraint that allows nothing (its mask leaves every logit at -inf).
    struct Nothing;

    impl crate::generate::constraint::TokenConstraint for Nothing {
        fn mask(&mut self, logits: &mut [f32]) -> Result<()> {
            logits.iter_mut().for_each(|l| *l = f32::NEG_INFINITY);
            Ok(())
        }
        fn commit(&mut self, _token: u32) -> Result<()> {
            panic!("nothing may be committed")
        }
        fn is_complete(&self) -> bool {
            false
        }
    }

    #[test]
    fn a_constraint_that_allows_nothing_is_an_error_greedy_or_sampled() {
        let sampled = Decoding::Sample(SamplingParams {
            temperature: 0.7,
            top_p: 1.0,
            top_k: 0,
            seed: 1,
        });
        for decoding in [Decoding::Greedy, sampled] {
            let mut s = Sampler::new(&params(decoding, 1.0), &[], 4);
            let mut logits = [0.5, 2.0, -1.0, 0.0];
            let e = s
                .next_with(&mut logits, Some(&mut Nothing))
                .expect_err("no token is allowed");
            assert!(e.to_string().contains("allows no token"), "{e}");
        }
    }

    #[test]
    fn repetition_penalty_follows_transformers() {
        let mut s = Sampler::new(&params(Decoding::Greedy, 2.0), &[0, 1], 3);
        let mut logits = [3.0, -1.0, 1.6];
        assert_eq!(s.next(&mut logits).expect("next"), 2);
        assert_eq!(logits, [1.5, -2.0, 1.6]);
    }

    #[test]
    fn top_k_and_top_p_restrict_the_support() {
        let logits = [2.0f32, 1.9, 1.8, -5.0, 0.0];
        for seed in 0..300 {
            let mut s = Sampler::new(&params(sp(1.0, 1.0, 2, seed), 1.0), &[], 5);
            assert!(s.next(&mut logits.clone()).expect("next") < 2);
            let mut s = Sampler::new(&params(sp(1.0, 0.01, 0, seed), 1.0), &[], 5);
            assert_eq!(s.next(&mut logits.clone()).expect("next"), 0);
        }
    }

    #[test]
    fn sampling_follows_the_softmax_and_the_seed() {
        let logits = [0.0f32, (3.0f32).ln()]; // p = 0.25, 0.75
        let mut ones = 0;
        for seed in 0..4000 {
            let mut s = Sampler::new(&params(sp(1.0, 1.0, 0, seed), 1.0), &[], 2);
            ones += s.next(&mut logits.clone()).expect("next") as usize;
        }
        let frac = ones as f32 / 4000.0;
        assert!((frac - 0.75).abs() < 0.03, "{frac}");
        let draw = |seed| {
            let mut s = Sampler::new(&params(sp(0.7, 0.9, 0, seed), 1.0), &[], 2);
            (0..20)
                .map(|_| s.next(&mut logits.clone()).expect("next"))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn bad_options_are_rejected() {
        let p = params(sp(0.0, 1.0, 0, 0), 1.0);
        assert!(p.validate().is_err());
        let p = params(Decoding::Greedy, 0.0);
        assert!(p.validate().is_err());
    }
}
