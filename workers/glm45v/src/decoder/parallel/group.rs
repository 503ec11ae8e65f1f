//! The parallel decoder as one process drives it: every rank's [`RankDecoder`] on its own
//! device, each forward call run on one thread per rank (the ranks meet in the collectives),
//! the output taken from rank 0. With [`LocalComm`] and CPU devices this is the simulated
//! multi-rank decoder of the tests; with one GPU per rank and a GPU communicator it is
//! `folio work --gpus 0,1`'s decoder.
//!
//! Inputs are checked once before the ranks start. A rank that fails while running aborts
//! its communicator, so the others stop at their next collective instead of waiting; the error
//! reported is the failing rank's own, not the others' "aborted". As with NCCL's
//! `ncclCommAbort`, the group is unusable afterwards: the decoder is loaded again.

use std::sync::Arc;

use candle_core::{Device, Tensor};

use crate::checkpoint::config::TextConfig;
use crate::checkpoint::weights::Checkpoint;
use crate::decoder::kv_cache::KvCache;
use crate::decoder::moe::MoeKernel;
use crate::decoder::parallel::local::LocalComm;
use crate::decoder::parallel::rank::{RankDecoder, WeightLoad};
use crate::decoder::parallel::{Communicator, Partition};
use crate::decoder::text_model::{DecoderInput, DecoderOutput};
use crate::error::{Error, Result};

/// One sequence batch's KV caches, one per rank (each holds that rank's KV heads).
#[derive(Debug, Clone)]
pub struct ParallelCache {
    ranks: Vec<KvCache>,
}

impl ParallelCache {
    /// Cached positions (the same on every rank).
    pub fn seq_len(&self) -> usize {
        self.ranks.first().map_or(0, KvCache::seq_len)
    }

    /// Empties every rank's cache.
    pub fn reset(&mut self) {
        self.ranks.iter_mut().for_each(KvCache::reset);
    }
}

/// Every rank of the decoder in this process.
#[derive(Debug)]
pub struct ParallelDecoder {
    ranks: Vec<RankDecoder>,
}

impl ParallelDecoder {
    /// Loads rank i onto `devices[i]` with communicator `comms[i]` (rank i of `devices.len()`);
    /// refuses a world that does not split `cfg` before reading any weight.
    pub fn load(
        cfg: &TextConfig,
        ckpt: &Checkpoint,
        weights: WeightLoad<'_>,
        devices: &[Device],
        comms: Vec<Arc<dyn Communicator>>,
    ) -> Result<Self> {
        Partition::check_world(devices.len(), cfg)?;
        if comms.len() != devices.len()
            || comms
                .iter()
                .enumerate()
                .any(|(i, c)| c.rank() != i || c.world() != devices.len())
        {
            return Err(Error::Parallel(format!(
                "{} devices need communicators of ranks 0..{} of that world, got {:?}",
                devices.len(),
                devices.len(),
                comms
                    .iter()
                    .map(|c| (c.rank(), c.world()))
                    .collect::<Vec<_>>()
            )));
        }
        let ranks = devices
            .iter()
            .zip(comms)
            .map(|(dev, comm)| RankDecoder::load(cfg, ckpt, weights, dev, comm))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { ranks })
    }

    /// `world` simulated ranks on the CPU with in-process collectives ([`LocalComm`]).
    pub fn load_local(
        cfg: &TextConfig,
        ckpt: &Checkpoint,
        weights: WeightLoad<'_>,
        world: usize,
    ) -> Result<Self> {
        Partition::check_world(world, cfg)?;
        let comms = LocalComm::group(world)
            .into_iter()
            .map(|c| Arc::new(c) as Arc<dyn Communicator>)
            .collect();
        Self::load(cfg, ckpt, weights, &vec![Device::Cpu; world], comms)
    }

    /// The ranks (rank i at index i).
    pub fn ranks(&self) -> &[RankDecoder] {
        &self.ranks
    }

    /// Number of ranks.
    pub fn world(&self) -> usize {
        self.ranks.len()
    }

    /// Chooses the MoE kernel of every rank.
    pub fn set_moe_kernel(&mut self, kernel: MoeKernel) {
        self.ranks.iter_mut().for_each(|r| r.set_moe_kernel(kernel));
    }

    /// Fresh caches, one per rank.
    pub fn new_cache(&self) -> ParallelCache {
        ParallelCache {
            ranks: self.ranks.iter().map(RankDecoder::new_cache).collect(),
        }
    }

    /// Token embeddings [B, T, hidden] on rank 0's device.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        self.ranks[0].embed(ids)
    }

    /// [`TextModel::forward`](crate::decoder::text_model::TextModel::forward) across the ranks;
    /// rank 0's output (every rank's is the same).
    pub fn forward(
        &self,
        input: DecoderInput<'_>,
        cache: &mut ParallelCache,
    ) -> Result<DecoderOutput> {
        Ok(self.forward_each(input, cache)?.swap_remove(0))
    }

    /// Like [`ParallelDecoder::forward`], every rank's output in rank order.
    pub fn forward_each(
        &self,
        input: DecoderInput<'_>,
        cache: &mut ParallelCache,
    ) -> Result<Vec<DecoderOutput>> {
        self.check_cache(cache)?;
        self.ranks[0].check_input(&input, &cache.ranks[0])?;
        self.on_ranks(&mut cache.ranks, |rank, kv| {
            let embeds = input.embeds.to_device(rank.device())?;
            let positions = input.positions.to_device(rank.device())?;
            let mine = DecoderInput {
                embeds: &embeds,
                positions: &positions,
                ..input
            };
            rank.forward(mine, kv)
        })
    }

    /// [`TextModel::forward_ragged`](crate::decoder::text_model::TextModel::forward_ragged)
    /// across the ranks: `caches[i]` is sequence i's [`ParallelCache`]; f32 logits [N, vocab].
    pub fn forward_ragged(
        &self,
        embeds: &Tensor,
        positions: &Tensor,
        caches: &mut [&mut ParallelCache],
    ) -> Result<Tensor> {
        for c in caches.iter() {
            self.check_cache(c)?;
        }
        self.ranks[0].check_ragged(embeds, positions, caches.iter().map(|c| &c.ranks[0]))?;
        // Regroup per rank: rank r gets every sequence's rank-r cache.
        let mut per_rank: Vec<Vec<&mut KvCache>> =
            (0..self.ranks.len()).map(|_| Vec::new()).collect();
        for cache in caches.iter_mut() {
            for (r, kv) in cache.ranks.iter_mut().enumerate() {
                per_rank[r].push(kv);
            }
        }
        let mut outs = self.on_ranks(&mut per_rank, |rank, kvs| {
            let embeds = embeds.to_device(rank.device())?;
            let positions = positions.to_device(rank.device())?;
            rank.forward_ragged(&embeds, &positions, kvs)
        })?;
        Ok(outs.swap_remove(0))
    }

    fn check_cache(&self, cache: &ParallelCache) -> Result<()> {
        if cache.ranks.len() != self.ranks.len() {
            return Err(Error::InvalidInput(format!(
                "the cache has {} ranks, the decoder {}",
                cache.ranks.len(),
                self.ranks.len()
            )));
        }
        Ok(())
    }

    /// Runs `f` on every rank (with that rank's `state`) on its own thread; results in rank
    /// order, or the first rank's own error.
    fn on_ranks<S: Send, T: Send>(
        &self,
        state: &mut [S],
        f: impl Fn(&RankDecoder, &mut S) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        let results: Vec<Result<T>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .ranks
                .iter()
                .zip(state.iter_mut())
                .map(|(rank, st)| {
                    let f = &f;
                    s.spawn(move || {
                        let out = f(rank, st);
                        if let Err(e) = &out {
                            rank.abort(&e.to_string());
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .enumerate()
                .map(|(r, h)| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Parallel(format!(
                            "rank {r} panicked during a forward"
                        )))
                    })
                })
                .collect()
        });
        let mut outs = Vec::with_capacity(results.len());
        let mut first_err: Option<Error> = None;
        for res in results {
            match res {
                Ok(v) => outs.push(v),
                // A peer's own failure explains the others' "group aborted".
                Err(e) => match &first_err {
                    Some(Error::Parallel(m)) if m.contains("group aborted") => first_err = Some(e),
                    None => first_err = Some(e),
                    Some(_) => {}
                },
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(outs),
        }
    }
}
