//! Loading one rank's shard of a tensor straight from the mapped safetensors (issue 15).
//!
//! A [`RankShard`] (rank r of `world`) set on a [`Checkpoint`](super::weights::Checkpoint)
//! changes what a lookup may ask for: a layer that asks for a tensor with exactly one dimension
//! `world` times smaller than stored gets rank r's contiguous chunk of that dimension
//! (`[r·n/world, (r+1)·n/world)`), read from the mapping without materialising the whole tensor;
//! a lookup with the stored shape gets the whole tensor (norms, biases of row-split layers, the
//! router, the per-row scales of a weight split along its input dimension). Any other shape is
//! the usual "wrong shape" error with the tensor's name.
//!
//! So the partition plan lives in the layers (`decoder/parallel`): a column-parallel
//! projection asks for `[out/world, in]`, a row-parallel one for `[out, in/world]`, the experts
//! of an expert-parallel block for `[E/world, ..]`, and each rank holds only its part.

use candle_core::{DType, Device, Tensor};

/// Rank `rank` of `world` equal shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankShard {
    pub rank: usize,
    pub world: usize,
}

impl RankShard {
    /// The dimension to split so that `stored` becomes `requested` (`Ok(None)`: the shapes are
    /// equal, load it whole); an error message when `requested` is neither the stored shape nor
    /// one `world`-th of it along exactly one dimension.
    pub fn split_dim(
        &self,
        stored: &[usize],
        requested: &[usize],
    ) -> std::result::Result<Option<usize>, String> {
        if stored == requested {
            return Ok(None);
        }
        let differing: Vec<usize> = (0..stored.len())
            .filter(|&d| requested.get(d) != Some(&stored[d]))
            .collect();
        match differing.as_slice() {
            [d] if stored.len() == requested.len()
                && self.world > 1
                && requested[*d] * self.world == stored[*d] =>
            {
                Ok(Some(*d))
            }
            _ => Err(format!(
                "stored {stored:?} is neither the requested {requested:?} nor {} shards of it along one dimension",
                self.world
            )),
        }
    }

    /// Rank's range `(start, len)` of a dimension of size `n` (`n` divisible by `world`).
    pub fn range(&self, n: usize) -> (usize, usize) {
        let len = n / self.world;
        (self.rank * len, len)
    }
}

/// Rank's chunk of dimension `dim` of the stored tensor (`data` little-endian C order of
/// `shape`, elements of `dtype`), as a tensor on `dev`: only the chunk's bytes are copied.
pub fn load_narrow(
    data: &[u8],
    shape: &[usize],
    dtype: DType,
    dim: usize,
    shard: RankShard,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    let n = shape[dim];
    if n % shard.world != 0 || shard.rank >= shard.world {
        candle_core::bail!(
            "dimension {dim} of {shape:?} does not split into {} shards (rank {})",
            shard.world,
            shard.rank
        )
    }
    let (start, len) = shard.range(n);
    let outer: usize = shape[..dim].iter().product();
    let inner: usize = shape[dim + 1..].iter().product::<usize>() * dtype.size_in_bytes();
    let expected = outer * n * inner;
    if data.len() != expected {
        candle_core::bail!(
            "stored data has {} bytes, {shape:?} of {dtype:?} needs {expected}",
            data.len()
        )
    }
    let mut out = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        let from = (o * n + start) * inner;
        out.extend_from_slice(&data[from..from + len * inner]);
    }
    let mut narrowed = shape.to_vec();
    narrowed[dim] = len;
    Tensor::from_raw_buffer(&out, dtype, &narrowed, dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_split_dim_is_the_one_shrunk_dimension() {
        let s = RankShard { rank: 1, world: 2 };
        assert_eq!(s.split_dim(&[8, 4], &[8, 4]), Ok(None));
        assert_eq!(s.split_dim(&[8, 4], &[4, 4]), Ok(Some(0)));
        assert_eq!(s.split_dim(&[8, 4], &[8, 2]), Ok(Some(1)));
        assert!(s.split_dim(&[8, 4], &[4, 2]).is_err());
        assert!(s.split_dim(&[8, 4], &[2, 4]).is_err());
        assert!(s.split_dim(&[8, 4], &[8]).is_err());
    }

    #[test]
    fn parallel_load_narrow_takes_the_ranks_chunk() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let full = Tensor::arange(0f32, 24., &dev)?.reshape((2, 4, 3))?;
        let bytes: Vec<u8> = full
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        for dim in 0..3 {
            for world in [1usize, 2, 4] {
                if full.dims()[dim] % world != 0 {
                    continue;
                }
                for rank in 0..world {
                    let shard = RankShard { rank, world };
                    let got = load_narrow(&bytes, full.dims(), DType::F32, dim, shard, &dev)?;
                    let (start, len) = shard.range(full.dims()[dim]);
                    let want = full.narrow(dim, start, len)?;
                    assert_eq!(
                        got.flatten_all()?.to_vec1::<f32>()?,
                        want.flatten_all()?.to_vec1::<f32>()?,
                        "dim {dim}, rank {rank} of {world}"
                    );
                }
            }
        }
        assert!(load_narrow(
            &bytes,
            &[2, 4, 3],
            DType::F32,
            2,
            RankShard { rank: 0, world: 2 },
            &dev
        )
        .is_err());
        Ok(())
    }
}
