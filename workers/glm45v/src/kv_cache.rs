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
            // Both parts contiguous, so `cat` copies into one contiguous buffer; with a strided
            // part it would return a transposed view that batched matmuls reject for B > 1.
            Some((pk, pv)) => (
                Tensor::cat(&[&pk, &k.contiguous()?], D::Minus2)?,
                Tensor::cat(&[&pv, &v.contiguous()?], D::Minus2)?,
            ),
        };
        *slot = Some((k.clone(), v.clone()));
        Ok((k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn appended_batches_stay_contiguous_and_ordered() {
        let dev = Device::Cpu;
        let mut cache = KvCache::new(1);
        // [B=2, kv=2, S, D=4]; the new step is a strided view, as decode produces it.
        let first = Tensor::arange(0f32, 48.0, &dev)
            .and_then(|t| t.reshape((2, 2, 3, 4)))
            .expect("first");
        cache.append(0, &first, &first).expect("prefill");
        let step = Tensor::arange(100f32, 132.0, &dev)
            .and_then(|t| t.reshape((2, 2, 1, 8)))
            .and_then(|t| t.narrow(3, 0, 4))
            .expect("step");
        assert!(!step.is_contiguous());
        let (k, v) = cache.append(0, &step, &step).expect("decode");
        assert!(k.is_contiguous() && v.is_contiguous());
        assert_eq!(k.dims(), &[2, 2, 4, 4]);
        assert_eq!(cache.seq_len(), 4);
        let last = k.narrow(2, 3, 1).expect("last");
        let want = step.contiguous().expect("contiguous");
        let diff = (last - want)
            .and_then(|d| d.abs())
            .and_then(|d| d.sum_all())
            .and_then(|d| d.to_dtype(DType::F32))
            .and_then(|d| d.to_scalar::<f32>())
            .expect("diff");
        assert_eq!(diff, 0.0);
        // A batched matmul against the cached keys works for B > 1.
        let q = Tensor::ones((2, 2, 1, 4), DType::F32, &dev).expect("q");
        let scores = q.matmul(&k.t().expect("t")).expect("matmul");
        assert_eq!(scores.dims(), &[2, 2, 1, 4]);
    }
}
