//! The text decoder across several GPUs of one host (issue 15): tensor parallel attention and
//! dense MLPs, expert parallel MoE blocks, collectives behind one trait.
//!
//! Rank r of `world` ([`Partition`]) holds, per layer:
//!
//! | part | split | combine |
//! | --- | --- | --- |
//! | attention | query heads `[r·nh/w, (r+1)·nh/w)` and the KV heads they share (`q/k/v_proj` column-split with their biases, `o_proj` row-split); its own KV cache of those heads | all-reduce of the `o_proj` partial sums |
//! | dense MLP (layer < `first_k_dense_replace`) | `gate/up_proj` column-split, `down_proj` row-split | all-reduce |
//! | MoE router | replicated | — |
//! | routed experts | experts `[r·E/w, (r+1)·E/w)` (expert parallel) | one all-reduce per block, together with the shared expert |
//! | shared expert | tensor parallel like the dense MLP | (the same all-reduce) |
//! | embedding, norms | replicated | — |
//! | `lm_head` | vocabulary rows `[r·V/w, (r+1)·V/w)` | all-gather of the logit slices |
//!
//! Why these choices. The KV heads bound the tensor-parallel degree: each rank keeps whole KV
//! heads and the query heads that share them (GQA groups are contiguous), so `world` must divide
//! `num_key_value_heads` (8 for GLM-4.5V) — [`Partition::new`] refuses anything else. The
//! router is replicated: it is small (128 × 4096 f32 = 2 MiB a layer) and after the all-reduce
//! every rank holds the same hidden states, so every rank routes every token identically with
//! no exchange of routing decisions; each rank then runs only its experts on the tokens routed
//! to them and adds nothing for the others. The shared expert is tensor-parallel rather than
//! replicated so that its partial output joins the routed partial sum and the block needs one
//! all-reduce, not two, and its weights are split too. `lm_head` is split by vocabulary (it is
//! 1.2 GiB in bf16) and the logits, which are small, gathered; the embedding is a lookup and
//! stays whole.
//!
//! Loading: each rank opens the checkpoint [`sharded`](crate::checkpoint::weights::Checkpoint::sharded)
//! for its rank and the existing layers ask for their local shapes, so every split tensor is
//! read from the mapping as the rank's chunk only (`checkpoint/shard.rs`) — FP8 weights with
//! their per-row scales alike, in both expert layouts.
//!
//! Modules: [`comm`] the [`Communicator`] trait and [`local`] its in-process implementation
//! (N simulated ranks on threads, deterministic reduction order); [`rank`] one rank's decoder;
//! [`group`] the driver that runs every rank of one process on its own thread. An NCCL
//! communicator (cudarc's `nccl` feature) is not written yet: it would implement the same
//! trait behind the `cuda` feature.

pub mod comm;
pub mod group;
pub mod local;
pub mod rank;

use std::ops::Range;

use crate::checkpoint::config::TextConfig;
use crate::checkpoint::shard::RankShard;
use crate::error::{Error, Result};

pub use comm::Communicator;
pub use group::{ParallelCache, ParallelDecoder};
pub use local::LocalComm;
pub use rank::RankDecoder;

/// Rank `rank` of `world`: which heads, experts and rows it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub rank: usize,
    pub world: usize,
}

impl Partition {
    /// The partition of rank `rank` of `world` for `cfg`, or why `cfg` cannot be split so.
    pub fn new(rank: usize, world: usize, cfg: &TextConfig) -> Result<Self> {
        Self::check_world(world, cfg)?;
        if rank >= world {
            return Err(Error::Parallel(format!(
                "rank {rank} is outside a world of {world}"
            )));
        }
        Ok(Self { rank, world })
    }

    /// Whether `cfg` splits over `world` ranks; the error names the size that does not divide
    /// and the world sizes that work.
    pub fn check_world(world: usize, cfg: &TextConfig) -> Result<()> {
        if world == 0 {
            return Err(Error::Parallel(
                "a parallel decoder needs at least one rank".into(),
            ));
        }
        let splits = Self::splits(cfg);
        for (what, n) in &splits {
            if n % world != 0 {
                let valid: Vec<String> = (1..=world.max(*n))
                    .filter(|w| splits.iter().all(|(_, m)| m % w == 0))
                    .map(|w| w.to_string())
                    .collect();
                return Err(Error::Parallel(format!(
                    "cannot split the decoder over {world} ranks: {what} = {n} is not divisible by {world} (tensor parallelism keeps whole KV heads on each rank, expert parallelism whole experts); world sizes that work for this model: {}",
                    valid.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The sizes that are split evenly across ranks.
    fn splits(cfg: &TextConfig) -> [(&'static str, usize); 6] {
        [
            ("num_key_value_heads", cfg.num_key_value_heads),
            ("num_attention_heads", cfg.num_attention_heads),
            ("n_routed_experts", cfg.n_routed_experts),
            ("intermediate_size (dense MLP)", cfg.intermediate_size),
            (
                "moe_intermediate_size × n_shared_experts (shared expert)",
                cfg.moe_intermediate_size * cfg.n_shared_experts,
            ),
            ("vocab_size (lm_head)", cfg.vocab_size),
        ]
    }

    /// What the checkpoint hands this rank (`checkpoint/shard.rs`).
    pub fn shard(&self) -> RankShard {
        RankShard {
            rank: self.rank,
            world: self.world,
        }
    }

    /// The routed experts this rank holds (global indices).
    pub fn experts(&self, cfg: &TextConfig) -> Range<usize> {
        let (start, len) = self.shard().range(cfg.n_routed_experts);
        start..start + len
    }

    /// The vocabulary rows of `lm_head` this rank holds.
    pub fn vocab(&self, cfg: &TextConfig) -> Range<usize> {
        let (start, len) = self.shard().range(cfg.vocab_size);
        start..start + len
    }

    /// `cfg` as one rank's attention sees it: its query and KV heads, the head size fixed
    /// (it is derived from the global head count when the file leaves it out).
    pub fn local_attention_config(&self, cfg: &TextConfig) -> TextConfig {
        let mut local = cfg.clone();
        local.head_dim = Some(cfg.head_dim());
        local.num_attention_heads = cfg.num_attention_heads / self.world;
        local.num_key_value_heads = cfg.num_key_value_heads / self.world;
        local
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_partition_refuses_a_world_that_splits_kv_heads() {
        let mut cfg = crate::checkpoint::synthetic::text_config(2).expect("config");
        crate::checkpoint::synthetic::shrink_to_cpu_size(&mut cfg);
        assert!(Partition::new(1, 2, &cfg).is_ok());
        let msg = Partition::new(0, 3, &cfg).expect_err("3 ranks").to_string();
        assert!(msg.contains("num_key_value_heads = 2"), "{msg}");
        assert!(
            msg.contains("world sizes that work for this model: 1, 2"),
            "{msg}"
        );
        assert!(Partition::new(2, 2, &cfg).is_err());
        assert!(Partition::check_world(0, &cfg).is_err());
        // The real model: 8 KV heads, 96 query heads, 128 experts.
        let real = crate::checkpoint::synthetic::text_config(2).expect("config");
        for w in [1, 2, 4, 8] {
            assert!(Partition::check_world(w, &real).is_ok(), "world {w}");
        }
        let msg = Partition::check_world(16, &real)
            .expect_err("16")
            .to_string();
        assert!(msg.contains("num_key_value_heads = 8"), "{msg}");
    }

    #[test]
    fn parallel_partition_ranges_cover_everything_once() {
        let cfg = crate::checkpoint::synthetic::text_config(2).expect("config");
        let parts: Vec<Partition> = (0..4)
            .map(|r| Partition::new(r, 4, &cfg).expect("partition"))
            .collect();
        let experts: Vec<usize> = parts.iter().flat_map(|p| p.experts(&cfg)).collect();
        assert_eq!(experts, (0..cfg.n_routed_experts).collect::<Vec<_>>());
        let local = parts[3].local_attention_config(&cfg);
        assert_eq!(local.num_attention_heads, 24);
        assert_eq!(local.num_key_value_heads, 2);
        assert_eq!(local.head_dim(), 128);
    }
}
