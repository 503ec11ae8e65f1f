//! The continuous-batching loop behind [`crate::generate::batch::generate_batch`]: a FIFO of submitted
//! requests, admission under a batch size and a token budget, prefill of newly admitted
//! sequences, one ragged decode step ([`TextModel::forward_ragged`]) for every running sequence,
//! retirement of finished ones — one [`Scheduler::step`] at a time, so an engine thread can keep
//! submitting pages while others decode.
//!
//! Admission is strict FIFO (a large request at the head waits for room rather than being
//! overtaken), reserving prompt tokens (image tokens included) + `max_new_tokens` for the whole
//! life of the sequence. Since a request larger than the whole budget is refused at
//! [`Scheduler::submit`], the head always fits once the running sequences have retired: the
//! loop cannot stall and no running sequence ever needs to be evicted.

use std::collections::VecDeque;
use std::time::Instant;

use candle_core::Tensor;

use super::seq::{RequestId, Sequence};
use super::{BatchOptions, BatchRequest};
use crate::decoder::kv_cache::KvCache;
use crate::decoder::text_model::TextModel;
use crate::error::{Error, Result};
use crate::generate::constraint::{prepare_all, TokenConstraint};
use crate::generate::{Flow, Generation};

/// What one step finished: request id and its result.
pub type Finished = Vec<(RequestId, Result<Generation>)>;

/// Batched generation over one model; see the module docs.
pub struct Scheduler<'m> {
    model: &'m TextModel,
    opts: BatchOptions,
    waiting: VecDeque<Sequence>,
    running: Vec<Sequence>,
    in_flight: usize,
    next_id: RequestId,
}

impl<'m> Scheduler<'m> {
    /// An empty scheduler; `max_batch` and `max_tokens_in_flight` must be ≥ 1.
    pub fn new(model: &'m TextModel, opts: BatchOptions) -> Result<Self> {
        if opts.max_batch == 0 || opts.max_tokens_in_flight == 0 {
            return Err(Error::InvalidInput(format!(
                "batch options need max_batch ≥ 1 and max_tokens_in_flight ≥ 1, got {} and {}",
                opts.max_batch, opts.max_tokens_in_flight
            )));
        }
        Ok(Self {
            model,
            opts,
            waiting: VecDeque::new(),
            running: Vec::new(),
            in_flight: 0,
            next_id: 0,
        })
    }

    /// Queues a request. Errors (nothing queued) on invalid parameters or prompt shapes, and
    /// when the request alone needs more tokens than the whole budget.
    pub fn submit(&mut self, req: BatchRequest) -> Result<RequestId> {
        let id = self.next_id;
        let seq = Sequence::new(self.model, id, req.prompt, req.params, req.constraint)?;
        if seq.reserved > self.opts.max_tokens_in_flight {
            return Err(Error::InvalidInput(format!(
                "request needs {} tokens ({} prompt tokens, images included, + {} max new tokens) \
                 but the batch budget is {} tokens in flight",
                seq.reserved,
                seq.out.prompt_tokens,
                seq.reserved - seq.out.prompt_tokens,
                self.opts.max_tokens_in_flight
            )));
        }
        self.next_id += 1;
        self.waiting.push_back(seq);
        Ok(id)
    }

    /// True when nothing is waiting or running.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Number of sequences being decoded.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Number of requests not yet admitted.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Ids of the requests not yet admitted, oldest first.
    pub fn waiting_ids(&self) -> impl Iterator<Item = RequestId> + '_ {
        self.waiting.iter().map(|s| s.id)
    }

    /// Tokens reserved by the running sequences.
    pub fn tokens_in_flight(&self) -> usize {
        self.in_flight
    }

    /// Admits what fits, prefills it, then runs one decode step of every running sequence;
    /// returns the requests that finished. A sequence's own failure (e.g. its constraint allows
    /// no token) finishes it with an error; a failed decoder step is returned as `Err` after
    /// dropping the running sequences (their caches are inconsistent), waiting ones stay queued.
    pub fn step(&mut self, on_token: &mut dyn FnMut(RequestId, u32) -> Flow) -> Result<Finished> {
        let mut done = Vec::new();
        self.admit(on_token, &mut done);
        if let Err(e) = self.decode(on_token, &mut done) {
            self.running.clear();
            self.in_flight = 0;
            return Err(e);
        }
        Ok(done)
    }

    /// Moves waiting requests into the batch while the head fits, prefilling each.
    fn admit(&mut self, on_token: &mut dyn FnMut(RequestId, u32) -> Flow, done: &mut Finished) {
        while self.running.len() < self.opts.max_batch {
            let fits = self
                .waiting
                .front()
                .is_some_and(|s| self.in_flight + s.reserved <= self.opts.max_tokens_in_flight);
            let Some(mut seq) = fits.then(|| self.waiting.pop_front()).flatten() else {
                break;
            };
            if seq.is_empty_request() {
                done.push((seq.id, Ok(seq.out)));
                continue;
            }
            let first = seq
                .prefill(self.model)
                .and_then(|mut logits| seq.accept(&mut logits, on_token));
            match first {
                Ok(true) => done.push((seq.id, Ok(seq.out))),
                Ok(false) => {
                    self.in_flight += seq.reserved;
                    self.running.push(seq);
                }
                Err(e) => done.push((seq.id, Err(e))),
            }
        }
    }

    /// One ragged decode step of every running sequence, then retirement.
    fn decode(
        &mut self,
        on_token: &mut dyn FnMut(RequestId, u32) -> Flow,
        done: &mut Finished,
    ) -> Result<()> {
        if self.running.is_empty() {
            return Ok(());
        }
        let start = Instant::now();
        let n = self.running.len();
        let mut ids = Vec::with_capacity(n);
        let mut pos = Vec::with_capacity(n);
        for s in &self.running {
            ids.push(s.pending.ok_or_else(|| {
                Error::InvalidInput(format!("running request {} has no pending token", s.id))
            })?);
            pos.push(s.decode_position()?);
        }
        let device = self.model.device();
        let embeds = self.model.embed(&Tensor::from_vec(ids, (n, 1), device)?)?;
        let rows: Vec<u32> = pos.iter().cycle().take(3 * n).copied().collect();
        let positions = Tensor::from_vec(rows, (3, n, 1), device)?;
        let logits = {
            let mut caches: Vec<&mut KvCache> = Vec::with_capacity(n);
            let mut constraints: Vec<&mut dyn TokenConstraint> = Vec::new();
            for s in self.running.iter_mut() {
                let (cache, constraint) = s.cache_and_constraint();
                caches.push(cache);
                constraints.extend(constraint);
            }
            let model = self.model;
            // The next masks depend only on the tokens so far: they are worked out on other
            // threads while this one drives the decoder step (off the critical path).
            std::thread::scope(|scope| {
                let masks = (!constraints.is_empty())
                    .then(|| scope.spawn(move || prepare_all(&mut constraints)));
                let logits = model
                    .forward_ragged(&embeds, &positions, &mut caches)
                    .and_then(|t| Ok(t.to_vec2::<f32>()?));
                if let Some(Err(panic)) = masks.map(|h| h.join()) {
                    std::panic::resume_unwind(panic);
                }
                logits
            })?
        };
        let mut logits = logits;
        let picks = choose_all(&mut self.running, &mut logits);
        let mut still = Vec::with_capacity(n);
        for (mut seq, pick) in self.running.drain(..).zip(picks) {
            let finished = pick.and_then(|token| seq.record(token, on_token));
            seq.out.decode_secs += start.elapsed().as_secs_f64();
            match finished {
                Ok(false) => still.push(seq),
                Ok(true) => {
                    self.in_flight -= seq.reserved;
                    done.push((seq.id, Ok(seq.out)));
                }
                Err(e) => {
                    self.in_flight -= seq.reserved;
                    done.push((seq.id, Err(e)));
                }
            }
        }
        self.running = still;
        Ok(())
    }
}

/// Logit values below which choosing on one thread is cheaper than spreading the work.
const PARALLEL_CHOICE_MIN: usize = 1 << 20;

/// Each running sequence's next token from its row of `logits` ([`Sequence::choose`]: mask,
/// penalty, argmax or sampling — several passes over the vocabulary each). At batch 64 over
/// GLM's 151,552 ids that is tens of milliseconds on one thread, so large batches choose on
/// every core; each sequence only touches its own sampler, constraint and row, so the picks
/// are the same on any number of threads.
fn choose_all(running: &mut [Sequence], logits: &mut [Vec<f32>]) -> Vec<Result<u32>> {
    let width = logits.first().map_or(0, Vec::len);
    if running.len() < 2 || running.len() * width < PARALLEL_CHOICE_MIN {
        return running
            .iter_mut()
            .zip(logits.iter_mut())
            .map(|(s, row)| s.choose(row))
            .collect();
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(running.len());
    let per_thread = running.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = running
            .chunks_mut(per_thread)
            .zip(logits.chunks_mut(per_thread))
            .map(|(seqs, rows)| {
                scope.spawn(move || {
                    seqs.iter_mut()
                        .zip(rows.iter_mut())
                        .map(|(s, row)| s.choose(row))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}
