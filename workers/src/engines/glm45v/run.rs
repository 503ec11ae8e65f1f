//! Reading images with prompt profiles: generation → [`parse_page`] → on failure one retry with
//! the stricter profile. What still fails is handed back to the caller, who falls back to the
//! `ocr` engine (whole page) or keeps the ocr engine's reading (a layout-first region).
//!
//! The model sits behind [`TextGenerator`] (images and prompts in, raw text out), so the policy
//! here is the same for the real checkpoint and for a scripted test double.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Instant;

use super::page_parse::{parse_page, PageParseInput, ParsedPage};
use super::profiles::Profile;
use image::RgbImage;

/// Milliseconds per stage (`processor`, `vision`, `prefill`, `decode`, `parse`, …).
pub type Timings = BTreeMap<String, f64>;

/// Adds `ms` to `stage`.
pub fn add_time(timings: &mut Timings, stage: &str, ms: f64) {
    *timings.entry(stage.to_string()).or_insert(0.0) += ms;
}

/// Adds every stage of `other` into `into`.
pub fn merge_times(into: &mut Timings, other: &Timings) {
    for (k, v) in other {
        add_time(into, k, *v);
    }
}

/// One answer to generate: an image (a page or a crop of one) and the user prompt.
#[derive(Debug, Clone)]
pub struct GenRequest<'a> {
    pub image: &'a RgbImage,
    pub prompt: String,
    /// Let the model reason in `<think>` first.
    pub thinking: bool,
    pub max_new_tokens: usize,
    /// For the JSON profiles: constrain decoding to this JSON Schema.
    pub json_schema: Option<serde_json::Value>,
}

/// The raw answer of one [`GenRequest`].
#[derive(Debug, Clone, PartialEq)]
pub struct GenOutput {
    /// Decoded without skipping special tokens (think and box tokens present), stop excluded.
    pub raw: String,
    /// Generation ended on the token budget rather than a stop token.
    pub truncated: bool,
    /// Milliseconds per stage of this answer (`processor`, `vision`, `prefill`, `decode`).
    pub timings: Timings,
}

/// The model's text output: one result per request, in order. Implementations may batch.
pub trait TextGenerator: Send + Sync {
    fn generate(&self, requests: &[GenRequest<'_>]) -> Vec<Result<GenOutput, String>>;
}

impl std::fmt::Debug for dyn TextGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn TextGenerator")
    }
}

/// One image to read with a profile.
#[derive(Debug, Clone)]
pub struct ReadTask<'a> {
    pub image: Cow<'a, RgbImage>,
    /// When `image` is a crop of the page: its box in page pixels.
    pub region: Option<[f32; 4]>,
    pub profile: Profile,
    /// The free prompt of the `question` profile.
    pub question: Option<String>,
    /// Block ids become `{prefix}b1`, `{prefix}b2`, …
    pub block_id_prefix: String,
}

/// Generation settings shared by every task of a call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadSettings {
    /// Requests handed to the generator at once.
    pub max_batch: usize,
    pub max_new_tokens: usize,
    /// Overrides each profile's `thinking_default` when set.
    pub thinking: Option<bool>,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadOutcome {
    /// Parsed with `profile` (the stricter one when the first answer was unusable).
    Parsed { page: ParsedPage, profile: Profile },
    /// No usable answer; `profile` is the last one tried.
    Failed { profile: Profile },
}

/// A task's outcome with what it cost and what went wrong on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadResult {
    pub outcome: ReadOutcome,
    /// Why each failed attempt failed, oldest first (`document@1: repetition loop: …`).
    pub failures: Vec<String>,
    pub timings: Timings,
}

impl ReadResult {
    /// The profile id recorded in results.
    pub fn profile_id(&self) -> String {
        match &self.outcome {
            ReadOutcome::Parsed { profile, .. } | ReadOutcome::Failed { profile } => profile.id(),
        }
    }
}

/// Reads every task: a first answer for all (in batches of `max_batch`), then one stricter
/// retry for those whose answer could not be parsed. A generator error is not retried (the
/// same image and model fail the same way); the task is reported failed.
pub fn read_all(
    generator: &dyn TextGenerator,
    tasks: &[ReadTask<'_>],
    settings: &ReadSettings,
) -> Vec<ReadResult> {
    let mut results: Vec<ReadResult> = tasks
        .iter()
        .map(|t| ReadResult {
            outcome: ReadOutcome::Failed { profile: t.profile },
            failures: Vec::new(),
            timings: Timings::new(),
        })
        .collect();
    let mut pending: Vec<(usize, Profile)> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (i, t.profile))
        .collect();
    while !pending.is_empty() {
        let mut retry = Vec::new();
        for chunk in pending.chunks(settings.max_batch.max(1)) {
            let requests: Vec<GenRequest> = chunk
                .iter()
                .map(|&(i, profile)| request(&tasks[i], profile, settings))
                .collect();
            let mut outputs = generator.generate(&requests);
            if outputs.len() != requests.len() {
                let msg = format!(
                    "the generator returned {} answers for {} requests",
                    outputs.len(),
                    requests.len()
                );
                outputs = requests.iter().map(|_| Err(msg.clone())).collect();
            }
            for (&(i, profile), output) in chunk.iter().zip(outputs) {
                let result = &mut results[i];
                result.outcome = ReadOutcome::Failed { profile };
                let output = match output {
                    Ok(o) => o,
                    Err(e) => {
                        result
                            .failures
                            .push(format!("{}: generation failed: {e}", profile.id()));
                        continue;
                    }
                };
                merge_times(&mut result.timings, &output.timings);
                let task = &tasks[i];
                let start = Instant::now();
                let parsed = parse_page(&PageParseInput {
                    profile: &profile,
                    raw: &output.raw,
                    truncated: output.truncated,
                    image_size: task.image.dimensions(),
                    region: task.region,
                    block_id_prefix: &task.block_id_prefix,
                });
                add_time(
                    &mut result.timings,
                    "parse",
                    start.elapsed().as_secs_f64() * 1e3,
                );
                match parsed {
                    Ok(page) => result.outcome = ReadOutcome::Parsed { page, profile },
                    Err(e) => {
                        result.failures.push(format!("{}: {e}", profile.id()));
                        if let Some(stricter) = profile.stricter() {
                            retry.push((i, stricter));
                        }
                    }
                }
            }
        }
        pending = retry;
    }
    results
}

fn request<'a>(task: &'a ReadTask<'_>, profile: Profile, s: &ReadSettings) -> GenRequest<'a> {
    GenRequest {
        image: task.image.as_ref(),
        prompt: profile.prompt(task.question.as_deref()),
        thinking: s.thinking.unwrap_or_else(|| profile.thinking_default()),
        max_new_tokens: s.max_new_tokens,
        json_schema: profile.json_schema(),
    }
}
