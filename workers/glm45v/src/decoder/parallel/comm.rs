//! The collectives the parallel decoder needs, behind one trait: an in-process implementation
//! for simulated ranks ([`super::local`]); NCCL (one communicator per GPU of the host) would be
//! another implementation of the same trait.
//!
//! Every rank calls the same collectives in the same order (the decoder's layer loop is the
//! same on every rank); a rank that fails calls [`Communicator::abort`] so that the others
//! return an error instead of waiting for it forever.

use candle_core::Tensor;

use crate::error::Result;

/// One rank's handle on a group of `world` ranks.
pub trait Communicator: Send + Sync + std::fmt::Debug {
    /// This rank (0-based).
    fn rank(&self) -> usize;

    /// Number of ranks.
    fn world(&self) -> usize;

    /// The element-wise sum of every rank's `t` (same shape and dtype on every rank), in `t`'s
    /// dtype; every rank gets the same result.
    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor>;

    /// Every rank's `t` stacked in rank order: [world, ..t's shape] on this rank's device.
    fn all_gather(&self, t: &Tensor) -> Result<Tensor>;

    /// Rank `root`'s `t` on every rank (the others' `t` gives the shape and dtype only).
    fn broadcast(&self, t: &Tensor, root: usize) -> Result<Tensor>;

    /// Makes every pending and later collective of the group fail with `why` (a rank that
    /// cannot take part any more calls this).
    fn abort(&self, why: &str);
}
