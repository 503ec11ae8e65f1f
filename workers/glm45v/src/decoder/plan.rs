//! The start-up memory plan (issue 13): the decoder's weights as they will be resident, the
//! vision tower, a workspace and the KV cache against the device's free memory. It sets how
//! many pages decode together and the KV budget, and refuses — naming the numbers — when the
//! model cannot fit at all.
//!
//! The workspace is the largest transient of a prefill: one MoE layer's experts widened to the
//! activation dtype when they are FP8 (the W8A16 prefill path) plus a fixed margin for the
//! activations of a page-sized prefill and the allocator.

use crate::error::{Error, Result};

const GIB: f64 = (1u64 << 30) as f64;

/// Fixed part of the workspace: activations of a ≈ 1,300-token prefill (hidden states, q/k/v,
/// packed expert rows and their outputs ≈ 0.5 GiB) plus the allocator's slack.
pub const WORKSPACE_MARGIN: u64 = 2 << 30;

/// What the plan is made from (bytes, except where said).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanInputs {
    /// Free device memory before loading.
    pub device_free: u64,
    /// The device's total memory.
    pub device_total: u64,
    /// Decoder weights as they will be resident (FP8 kept FP8).
    pub weights: u64,
    /// The vision tower on the same device (0 when it runs elsewhere).
    pub vision: u64,
    /// Transient memory of the largest step ([`workspace`]).
    pub workspace: u64,
    /// KV cache of one token of one sequence (all layers, K and V).
    pub kv_per_token: u64,
    /// Prompt plus output tokens of one page.
    pub tokens_per_page: u64,
    /// The most pages the scheduler may decode together.
    pub max_pages: usize,
}

/// The plan: what is left for the KV cache and how many pages decode together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    pub inputs: PlanInputs,
    /// Bytes left for the KV cache.
    pub kv_budget: u64,
    /// Pages whose KV caches fit the budget together (≤ `max_pages`, ≥ 1).
    pub pages_together: usize,
}

/// The workspace for `experts_widened` bytes of one MoE layer's experts in the activation dtype
/// (0 for dense checkpoints, whose experts are used as they are).
pub fn workspace(experts_widened: u64) -> u64 {
    experts_widened + WORKSPACE_MARGIN
}

/// Plans `inp`, or explains why the model cannot fit: the error names the bytes needed for one
/// page and what the device has.
pub fn plan(inp: PlanInputs) -> Result<MemoryPlan> {
    let fixed = inp.weights + inp.vision + inp.workspace;
    let per_page = inp.kv_per_token.saturating_mul(inp.tokens_per_page);
    let needed = fixed + per_page;
    if needed > inp.device_free {
        return Err(Error::DoesNotFit(format!(
            "GLM-4.5V needs {:.1} GiB (weights {:.1}, vision {:.1}, workspace {:.1}, KV of one page {:.2}), the device has {:.1} GiB free of {:.1}: use the FP8 checkpoint on an H200 (≈ 141 GiB), or several GPUs",
            needed as f64 / GIB,
            inp.weights as f64 / GIB,
            inp.vision as f64 / GIB,
            inp.workspace as f64 / GIB,
            per_page as f64 / GIB,
            inp.device_free as f64 / GIB,
            inp.device_total as f64 / GIB,
        )));
    }
    let kv_budget = inp.device_free - fixed;
    let pages = kv_budget
        .checked_div(per_page)
        .map_or(inp.max_pages, |p| usize::try_from(p).unwrap_or(usize::MAX));
    Ok(MemoryPlan {
        inputs: inp,
        kv_budget,
        pages_together: pages.clamp(1, inp.max_pages.max(1)),
    })
}

impl MemoryPlan {
    /// The KV budget in tokens of all sequences decoded together (the scheduler's
    /// `max_tokens_in_flight`).
    pub fn max_tokens_in_flight(&self) -> usize {
        let tokens = self
            .kv_budget
            .checked_div(self.inputs.kv_per_token)
            .unwrap_or(u64::MAX);
        usize::try_from(tokens).unwrap_or(usize::MAX)
    }
}

impl std::fmt::Display for MemoryPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.inputs;
        write!(
            f,
            "device {:.1} GiB free of {:.1}: weights {:.1}, vision {:.1}, workspace {:.1} → KV budget {:.1} GiB = {} pages of {} tokens together ({:.0} KiB per token)",
            i.device_free as f64 / GIB,
            i.device_total as f64 / GIB,
            i.weights as f64 / GIB,
            i.vision as f64 / GIB,
            i.workspace as f64 / GIB,
            self.kv_budget as f64 / GIB,
            self.pages_together,
            i.tokens_per_page,
            i.kv_per_token as f64 / 1024.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;

    fn inputs(free: u64, weights: u64) -> PlanInputs {
        PlanInputs {
            device_free: free,
            device_total: free,
            weights,
            vision: G,
            workspace: workspace(4 * G),
            kv_per_token: 188_416,
            tokens_per_page: 4096,
            max_pages: 64,
        }
    }

    #[test]
    fn fp8_on_an_h200_leaves_room_for_pages() {
        let p = plan(inputs(139 * G, 101 * G)).expect("fits");
        assert_eq!(p.kv_budget, 139 * G - 101 * G - G - 6 * G);
        // 31 GiB / (184 KiB · 4096) = 43 pages.
        assert_eq!(p.pages_together, 43);
        assert!(p.to_string().contains("43 pages"), "{p}");
        assert_eq!(p.max_tokens_in_flight() as u64, p.kv_budget / 188_416);
    }

    #[test]
    fn bf16_on_an_h100_is_refused_with_the_numbers() {
        let e = plan(inputs(79 * G, 201 * G)).expect_err("does not fit");
        let msg = e.to_string();
        assert!(msg.contains("needs 208.7 GiB"), "{msg}");
        assert!(msg.contains("has 79.0 GiB free"), "{msg}");
        assert!(msg.contains("FP8"), "{msg}");
    }

    #[test]
    fn pages_are_capped_and_at_least_one() {
        let p = plan(inputs(1000 * G, 10 * G)).expect("fits");
        assert_eq!(p.pages_together, 64);
        let tight = inputs(101 * G + G + 6 * G + 188_416 * 4096, 101 * G);
        assert_eq!(plan(tight).expect("fits one").pages_together, 1);
    }
}
