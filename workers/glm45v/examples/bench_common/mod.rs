//! What the CPU benchmarks (`bench_cpu`, `bench_batch`) share: the `--dtype` parser.

use candle_core::DType;

/// `--dtype f32|bf16`.
pub fn dtype(s: &str) -> Result<DType, String> {
    match s {
        "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        other => Err(format!("f32|bf16, got {other:?}")),
    }
}
