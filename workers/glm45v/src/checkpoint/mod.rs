//! The checkpoint on disk: `config.json` (and `generation_config.json`), the sharded safetensors
//! weights, FP8 (compressed-tensors) dequantisation, one rank's part of a tensor for the
//! parallel decoder (`shard.rs`), and random weights of the real shapes for benchmarks.

pub mod config;
pub mod fp8;
pub mod shard;
pub mod synthetic;
pub mod weights;
