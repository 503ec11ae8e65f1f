//! Fused CUDA kernels of the decoder (issue #7) and their process-wide switch.
//!
//! `decode.cu` (compiled with NVRTC on first use, feature `cuda`): single-query attention with
//! q/k/v bias, partial RoPE and the KV-cache append in place (flash-decoding: partial softmax
//! per chunk of 32 positions, then a merge), and RMSNorm with an optional fused residual add.
//! `prefill.cu` (`prefill.rs`): causal GQA attention for prefill (several queries per
//! sequence), flash-attention style — bf16 on the tensor cores (`mma.sync` m16n8k16), f32 tiled.
//! `fp8.cu` (`fp8.rs`): the FP8 weight kernels — W8A16 decode GEMV (dense and the fused MoE's),
//! dequantisation for prefill, synthetic FP8 weights.
//! The decoder takes them when [`fused_enabled`] is true, the tensors are on CUDA in f32 or bf16
//! and the shapes are supported; otherwise the candle ops run as before (the CPU always does).
//!
//! The switch starts from `FOLIO_FUSED_CUDA` (`0` turns the kernels off; default on) and can be
//! flipped with [`set_fused_enabled`] — the GPU benchmark measures both paths side by side and
//! falls back to the candle path when the kernels' parity self-check fails on the device.

use std::sync::atomic::{AtomicU8, Ordering};

#[cfg(feature = "cuda")]
pub(crate) mod cuda;
#[cfg(feature = "cuda")]
pub(crate) mod fp8;
#[cfg(feature = "cuda")]
pub(crate) mod nvrtc;
#[cfg(feature = "cuda")]
pub(crate) mod prefill;

/// 0: not read yet, 1: off, 2: on.
static FUSED: AtomicU8 = AtomicU8::new(0);

/// Whether the fused CUDA decode kernels are used where they apply.
pub fn fused_enabled() -> bool {
    match FUSED.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let on = std::env::var("FOLIO_FUSED_CUDA").map_or(true, |v| v.trim() != "0");
            FUSED.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
    }
}

/// Turns the fused CUDA kernels on or off for the whole process (takes effect on the next op).
pub fn set_fused_enabled(enabled: bool) {
    FUSED.store(if enabled { 2 } else { 1 }, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_flips() {
        set_fused_enabled(false);
        assert!(!fused_enabled());
        set_fused_enabled(true);
        assert!(fused_enabled());
    }
}
