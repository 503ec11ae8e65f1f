//! The decoder's key/value cache: one entry per layer, owned by the caller and passed to every
//! forward call. Keys and values are stored after rotary, shaped [B, kv_heads, S, head_dim].
//!
//! The CUDA decode kernel (`attention_cuda.rs`) appends in place instead: a layer then keeps
//! buffers with room for more positions (capacity doubles when full) and the cached keys and
//! values are views of their first S positions. Copying appends (`append`) drop the buffers.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, TensorId, D};

use crate::error::Result;

/// Per-layer cached keys and values for one batch of sequences.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    in_place: Vec<Option<InPlace>>,
}

/// Buffers [B, kv_heads, capacity, head_dim] that a kernel appends into in place.
#[derive(Debug, Clone)]
struct InPlace {
    k: Tensor,
    v: Tensor,
    /// Ids of the views of the buffers held in `layers` (they must still be the cached ones).
    views: Option<(TensorId, TensorId)>,
    /// Shared by clones of the cache: a cloned cache must not write into the same buffers.
    owner: Arc<()>,
}

/// Smallest capacity of in-place buffers.
const MIN_CAPACITY: usize = 256;

impl KvCache {
    /// An empty cache for a decoder of `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            in_place: vec![None; num_layers],
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
        self.in_place.iter_mut().for_each(|l| *l = None);
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
        if let Some(buffers) = self.in_place.get_mut(layer) {
            *buffers = None;
        }
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

impl KvCache {
    /// In-place buffers of `layer` [B, kv_heads, capacity, head_dim] with room for one more
    /// position, and the number of positions cached. New or grown buffers get the cached
    /// positions copied in; buffers shared with a clone of this cache are never reused.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn reserve_one(
        &mut self,
        layer: usize,
        shape: (usize, usize, usize),
        dtype: DType,
        device: &Device,
    ) -> Result<(Tensor, Tensor, usize)> {
        let (b, kv, d) = shape;
        let slot = self
            .layers
            .get(layer)
            .ok_or_else(|| crate::Error::InvalidInput(format!("KV cache has no layer {layer}")))?;
        let past = match slot {
            Some((k, _)) => {
                let (kb, kh, _, kd) = k.dims4()?;
                if (kb, kh, kd) != (b, kv, d) || k.dtype() != dtype {
                    return Err(crate::Error::InvalidInput(format!(
                        "KV cache layer {layer} holds {:?} {:?}, the step wants [{b}, {kv}, S, {d}] {dtype:?}",
                        k.dims(),
                        k.dtype()
                    )));
                }
                k.dim(2)?
            }
            None => 0,
        };
        let reusable = match (&self.in_place[layer], slot) {
            (Some(ip), Some((k, v))) => {
                ip.views == Some((k.id(), v.id()))
                    && Arc::strong_count(&ip.owner) == 1
                    && ip.k.dim(2)? > past
            }
            (Some(ip), None) => Arc::strong_count(&ip.owner) == 1 && past == 0,
            _ => false,
        };
        if !reusable {
            let capacity = (past + 1).next_power_of_two().max(MIN_CAPACITY);
            let kb = Tensor::zeros((b, kv, capacity, d), dtype, device)?;
            let vb = Tensor::zeros((b, kv, capacity, d), dtype, device)?;
            if let Some((k, v)) = slot {
                kb.slice_set(&k.contiguous()?, 2, 0)?;
                vb.slice_set(&v.contiguous()?, 2, 0)?;
            }
            self.in_place[layer] = Some(InPlace {
                k: kb,
                v: vb,
                views: None,
                owner: Arc::new(()),
            });
        }
        let ip = self.in_place[layer]
            .as_ref()
            .ok_or_else(|| crate::Error::InvalidInput("KV cache buffers missing".into()))?;
        Ok((ip.k.clone(), ip.v.clone(), past))
    }

    /// Records that position `past` of `layer` was written into its in-place buffers.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn commit_one(&mut self, layer: usize, past: usize) -> Result<()> {
        let ip = self
            .in_place
            .get_mut(layer)
            .and_then(Option::as_mut)
            .ok_or_else(|| {
                crate::Error::InvalidInput(format!("KV cache layer {layer} has no buffers"))
            })?;
        let k = ip.k.narrow(2, 0, past + 1)?;
        let v = ip.v.narrow(2, 0, past + 1)?;
        ip.views = Some((k.id(), v.id()));
        self.layers[layer] = Some((k, v));
        Ok(())
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

    /// What the CUDA kernel does between `reserve_one` and `commit_one`: write position `past`.
    fn write_step(cache: &mut KvCache, value: f32) -> (Tensor, usize) {
        let dev = Device::Cpu;
        let (kb, vb, past) = cache
            .reserve_one(0, (1, 2, 4), DType::F32, &dev)
            .expect("reserve");
        let step = Tensor::full(value, (1, 2, 1, 4), &dev).expect("step");
        kb.slice_set(&step, 2, past).expect("k");
        vb.slice_set(&step, 2, past).expect("v");
        cache.commit_one(0, past).expect("commit");
        (kb, past)
    }

    #[test]
    fn in_place_appends_grow_and_never_share_buffers_with_a_clone() {
        let dev = Device::Cpu;
        let mut cache = KvCache::new(1);
        let prefill = Tensor::full(7f32, (1, 2, 3, 4), &dev).expect("prefill");
        cache.append(0, &prefill, &prefill).expect("prefill");
        let (first, past) = write_step(&mut cache, 1.0);
        assert_eq!(past, 3);
        assert_eq!(first.dim(2).expect("cap"), MIN_CAPACITY);
        let (again, _) = write_step(&mut cache, 2.0);
        assert_eq!(
            again.id(),
            first.id(),
            "buffers are reused while there is room"
        );
        assert_eq!(cache.seq_len(), 5);
        let (k, _) = cache.layers[0].clone().expect("cached");
        let col: Vec<f32> = k
            .narrow(3, 0, 1)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .expect("values");
        assert_eq!(col, vec![7.0, 7.0, 7.0, 1.0, 2.0, 7.0, 7.0, 7.0, 1.0, 2.0]);
        // A clone shares the buffers: the first to write moves to its own.
        let mut other = cache.clone();
        let (mine, _) = write_step(&mut cache, 3.0);
        let (theirs, _) = write_step(&mut other, 4.0);
        assert_ne!(mine.id(), first.id(), "the cache moved to its own buffers");
        assert_ne!(mine.id(), theirs.id());
        let last = |c: &KvCache| -> f32 {
            let (k, _) = c.layers[0].clone().expect("cached");
            k.narrow(2, 5, 1)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .expect("values")[0]
        };
        assert_eq!((last(&cache), last(&other)), (3.0, 4.0));
        // Growth past the capacity keeps every position.
        for i in 0..MIN_CAPACITY {
            write_step(&mut cache, i as f32);
        }
        assert_eq!(cache.seq_len(), 6 + MIN_CAPACITY);
        let (k, _) = cache.layers[0].clone().expect("cached");
        assert_eq!(k.dims(), &[1, 2, 6 + MIN_CAPACITY, 4]);
        // A copying append afterwards drops the buffers and still sees every position.
        let (k2, _) = cache
            .append(
                0,
                &prefill.narrow(2, 0, 1).expect("one"),
                &prefill.narrow(2, 0, 1).expect("one"),
            )
            .expect("append");
        assert_eq!(k2.dim(2).expect("len"), 7 + MIN_CAPACITY);
        assert!(cache.in_place[0].is_none());
    }
}
