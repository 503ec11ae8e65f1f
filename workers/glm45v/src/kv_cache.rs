//! The decoder's key/value cache: one entry per layer, owned by the caller and passed to every
//! forward call. Keys and values are stored after rotary, shaped [B, kv_heads, S, head_dim].

use candle_core::{Tensor, D};

use crate::error::Result;

/// Per-layer cached keys and values for one batch of sequences.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// An empty cache for a decoder of `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
        }
    }

    /// Number of cached positions (0 when empty).
    pub fn seq_len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .and_then(|(k, _)| k.dim(2).ok())
            .unwrap_or(0)
    }

    /// Number of layers this cache was made for.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Drops everything cached.
    pub fn reset(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
    }

    /// Appends `k`, `v` of layer `layer` and returns the full keys and values so far.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let slot = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| crate::Error::InvalidInput(format!("KV cache has no layer {layer}")))?;
        let (k, v) = match slot.take() {
            None => (k.contiguous()?, v.contiguous()?),
            Some((pk, pv)) => (
                Tensor::cat(&[&pk, k], D::Minus2)?,
                Tensor::cat(&[&pv, v], D::Minus2)?,
            ),
        };
        *slot = Some((k.clone(), v.clone()));
        Ok((k, v))
    }
}
