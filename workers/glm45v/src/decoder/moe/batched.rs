//! The `Batched` MoE kernel for prefill-sized inputs: tokens bucketed per expert on the host
//! (routing read back once per layer), every bucket padded to the largest, and the experts'
//! gate/up and down projections run as two batched GEMMs over [E, M_max, ·] against the stacked
//! weights — a handful of launches per layer instead of a dozen per expert, and no copy of the
//! weights (padding rows point at an appended zero row and carry weight 0).

use candle_core::{DType, Tensor, D};

use crate::error::Result;

/// Σ_k w_k · expert_k(x) for `flat` [N, H] given per-expert buckets (token ids and weights);
/// `gate_up` [E, 2I, H], `down` [E, H, I]. Returns [N, H] in f32.
pub(super) fn experts(
    flat: &Tensor,
    tokens: &[Vec<u32>],
    weights: &[Vec<f32>],
    gate_up: &Tensor,
    down: &Tensor,
) -> Result<Tensor> {
    let (n, h) = flat.dims2()?;
    let (e, two_i, _) = gate_up.dims3()?;
    let inter = two_i / 2;
    let m = tokens.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let dummy = n as u32;
    let mut idx = Vec::with_capacity(e * m);
    let mut w = Vec::with_capacity(e * m);
    for ex in 0..e {
        let (t, ws) = (&tokens[ex], &weights[ex]);
        idx.extend_from_slice(t);
        w.extend_from_slice(ws);
        idx.extend(std::iter::repeat_n(dummy, m - t.len()));
        w.extend(std::iter::repeat_n(0f32, m - t.len()));
    }
    let dev = flat.device();
    let idx = Tensor::from_vec(idx, e * m, dev)?;
    let w = Tensor::from_vec(w, (e, m, 1), dev)?;
    let padded = Tensor::cat(&[flat, &Tensor::zeros((1, h), flat.dtype(), dev)?], 0)?;
    let xs = padded.index_select(&idx, 0)?.reshape((e, m, h))?;
    let hgu = xs.matmul(&gate_up.transpose(1, 2)?)?; // [E, M, 2I]
    let act = (hgu.narrow(D::Minus1, 0, inter)?.silu()? * hgu.narrow(D::Minus1, inter, inter)?)?;
    let y = act.matmul(&down.transpose(1, 2)?)?; // [E, M, H]
    let y = y
        .to_dtype(DType::F32)?
        .broadcast_mul(&w)?
        .reshape((e * m, h))?;
    let out = Tensor::zeros((n + 1, h), DType::F32, dev)?.index_add(&idx, &y, 0)?;
    Ok(out.narrow(0, 0, n)?)
}
