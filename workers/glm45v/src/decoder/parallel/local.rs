//! In-process collectives for N ranks on N threads of one process: what the CPU tests use to
//! run the sharded decoder with simulated ranks, and what a host without NCCL would use.
//!
//! Each collective is an exchange through shared slots: every rank puts its tensor in its
//! slot, waits for all (a generation-counting barrier), reads every slot, and waits again
//! before the slots are reused. Reductions add the ranks' tensors in rank order (0, 1, …) on
//! every rank, so all ranks get bitwise the same sum and a run is reproducible. The barrier has
//! a timeout and an abort flag: a rank that fails or never arrives makes the others fail with
//! a message instead of hanging.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use candle_core::Tensor;

use crate::decoder::parallel::comm::Communicator;
use crate::error::{Error, Result};

/// How long a rank waits for the others at one collective before giving up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
struct BarrierState {
    arrived: usize,
    generation: u64,
    aborted: Option<String>,
}

#[derive(Debug)]
struct Shared {
    world: usize,
    slots: Mutex<Vec<Option<Tensor>>>,
    sync: Mutex<BarrierState>,
    turn: Condvar,
    timeout: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A rank that panicked while holding the lock left consistent data (plain assignments).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Waits until every rank has arrived (or the group is aborted, or the timeout passes).
    fn barrier(&self, rank: usize) -> Result<()> {
        let mut st = lock(&self.sync);
        if let Some(why) = &st.aborted {
            return Err(Error::Parallel(format!(
                "rank {rank}: group aborted: {why}"
            )));
        }
        let generation = st.generation;
        st.arrived += 1;
        if st.arrived == self.world {
            st.arrived = 0;
            st.generation += 1;
            self.turn.notify_all();
            return Ok(());
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            st = self
                .turn
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if st.generation != generation {
                return Ok(());
            }
            if let Some(why) = &st.aborted {
                return Err(Error::Parallel(format!(
                    "rank {rank}: group aborted: {why}"
                )));
            }
            if Instant::now() >= deadline {
                let why = format!(
                    "rank {rank} waited {:?} at a collective for the other ranks",
                    self.timeout
                );
                st.aborted = Some(why.clone());
                self.turn.notify_all();
                return Err(Error::Parallel(why));
            }
        }
    }
}

/// One rank of an in-process group ([`LocalComm::group`]).
#[derive(Debug, Clone)]
pub struct LocalComm {
    rank: usize,
    shared: Arc<Shared>,
}

impl LocalComm {
    /// The `world` ranks of a new group, rank i at index i.
    pub fn group(world: usize) -> Vec<LocalComm> {
        Self::group_with_timeout(world, DEFAULT_TIMEOUT)
    }

    /// Like [`LocalComm::group`] with another barrier timeout.
    pub fn group_with_timeout(world: usize, timeout: Duration) -> Vec<LocalComm> {
        let shared = Arc::new(Shared {
            world,
            slots: Mutex::new(vec![None; world]),
            sync: Mutex::new(BarrierState::default()),
            turn: Condvar::new(),
            timeout,
        });
        (0..world)
            .map(|rank| LocalComm {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }

    /// Every rank's `t` in rank order, checked to have `t`'s shape and dtype.
    fn exchange(&self, t: &Tensor, what: &str) -> Result<Vec<Tensor>> {
        lock(&self.shared.slots)[self.rank] = Some(t.clone());
        self.shared.barrier(self.rank)?;
        let all: Vec<Option<Tensor>> = lock(&self.shared.slots).clone();
        self.shared.barrier(self.rank)?;
        all.into_iter()
            .enumerate()
            .map(|(r, s)| {
                let s = s.ok_or_else(|| {
                    Error::Parallel(format!("{what}: rank {r} put no tensor in its slot"))
                })?;
                if s.dims() != t.dims() || s.dtype() != t.dtype() {
                    return Err(Error::Parallel(format!(
                        "{what}: rank {r} has {:?} {:?}, rank {} {:?} {:?}",
                        s.dims(),
                        s.dtype(),
                        self.rank,
                        t.dims(),
                        t.dtype()
                    )));
                }
                Ok(s.to_device(t.device())?)
            })
            .collect()
    }
}

impl Communicator for LocalComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.shared.world
    }

    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        if self.shared.world == 1 {
            return Ok(t.clone());
        }
        let all = self.exchange(t, "all_reduce_sum")?;
        let mut sum = all[0].clone();
        for other in &all[1..] {
            sum = (sum + other)?;
        }
        Ok(sum)
    }

    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        if self.shared.world == 1 {
            return Ok(t.unsqueeze(0)?);
        }
        let all = self.exchange(t, "all_gather")?;
        Ok(Tensor::stack(&all, 0)?)
    }

    fn broadcast(&self, t: &Tensor, root: usize) -> Result<Tensor> {
        if root >= self.shared.world {
            return Err(Error::Parallel(format!(
                "broadcast from rank {root} in a world of {}",
                self.shared.world
            )));
        }
        if self.shared.world == 1 {
            return Ok(t.clone());
        }
        let mut all = self.exchange(t, "broadcast")?;
        Ok(all.swap_remove(root))
    }

    fn abort(&self, why: &str) {
        let mut st = lock(&self.shared.sync);
        if st.aborted.is_none() {
            st.aborted = Some(format!("rank {}: {why}", self.rank));
        }
        self.shared.turn.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Runs `f` on every rank of a fresh group, each on its own thread; results in rank order.
    fn on_ranks<T: Send>(
        comms: Vec<LocalComm>,
        f: impl Fn(&LocalComm) -> Result<T> + Sync,
    ) -> Vec<Result<T>> {
        std::thread::scope(|s| {
            let handles: Vec<_> = comms.iter().map(|c| s.spawn(|| f(c))).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("rank thread"))
                .collect()
        })
    }

    fn rank_tensor(rank: usize) -> Result<Tensor> {
        let v: Vec<f32> = (0..6).map(|i| (rank * 10 + i) as f32 * 0.1).collect();
        Ok(Tensor::from_vec(v, (2, 3), &Device::Cpu)?)
    }

    #[test]
    fn parallel_local_collectives_match_their_definitions() {
        for world in [1usize, 2, 3, 4] {
            let got = on_ranks(LocalComm::group(world), |c| {
                let t = rank_tensor(c.rank())?;
                // Several rounds in a row: the slots are reused safely.
                let sum = c.all_reduce_sum(&t)?;
                let gathered = c.all_gather(&t)?;
                let root = c.broadcast(&t, world - 1)?;
                let sum2 = c.all_reduce_sum(&(t * 2.0)?)?;
                Ok((sum, gathered, root, sum2))
            });
            let mut want = rank_tensor(0).expect("t");
            for r in 1..world {
                want = (want + rank_tensor(r).expect("t")).expect("add");
            }
            let want = want.to_vec2::<f32>().expect("vec");
            for (rank, res) in got.into_iter().enumerate() {
                let (sum, gathered, root, sum2) = res.expect("collectives");
                assert_eq!(sum.to_vec2::<f32>().expect("sum"), want, "rank {rank}");
                let twice: Vec<Vec<f32>> = want
                    .iter()
                    .map(|r| r.iter().map(|v| v * 2.0).collect())
                    .collect();
                let sum2 = sum2.to_vec2::<f32>().expect("sum2");
                for (a, b) in sum2.iter().flatten().zip(twice.iter().flatten()) {
                    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
                }
                assert_eq!(gathered.dims(), [world, 2, 3]);
                for r in 0..world {
                    assert_eq!(
                        gathered
                            .get(r)
                            .and_then(|g| g.to_vec2::<f32>())
                            .expect("row"),
                        rank_tensor(r)
                            .and_then(|t| Ok(t.to_vec2::<f32>()?))
                            .expect("t")
                    );
                }
                assert_eq!(
                    root.to_vec2::<f32>().expect("root"),
                    rank_tensor(world - 1)
                        .and_then(|t| Ok(t.to_vec2::<f32>()?))
                        .expect("t")
                );
            }
        }
    }

    #[test]
    fn parallel_local_sum_is_bitwise_the_same_on_every_rank() {
        let got = on_ranks(LocalComm::group(4), |c| {
            let t = Tensor::randn(0f32, 1f32, 1000, &Device::Cpu)?;
            c.all_reduce_sum(&t)?.to_vec1::<f32>().map_err(Error::from)
        });
        let first = got[0].as_ref().expect("rank 0").clone();
        for r in got {
            assert_eq!(r.expect("rank"), first);
        }
    }

    #[test]
    fn parallel_local_abort_and_mismatch_fail_instead_of_hanging() {
        // Rank 1 fails before the collective and aborts: rank 0 gets an error, not a hang.
        let got = on_ranks(LocalComm::group(2), |c| {
            if c.rank() == 1 {
                c.abort("could not load its shard");
                return Err(Error::Parallel("rank 1 failed".into()));
            }
            c.all_reduce_sum(&Tensor::zeros(3, DType::F32, &Device::Cpu)?)
        });
        let msg = got[0].as_ref().expect_err("aborted").to_string();
        assert!(msg.contains("could not load its shard"), "{msg}");
        // A rank that never arrives: the timeout.
        let comms = LocalComm::group_with_timeout(2, Duration::from_millis(50));
        let msg = comms[0]
            .all_reduce_sum(&Tensor::zeros(3, DType::F32, &Device::Cpu).expect("t"))
            .expect_err("timeout")
            .to_string();
        assert!(msg.contains("waited"), "{msg}");
        // Shapes that differ across ranks.
        let got = on_ranks(LocalComm::group(2), |c| {
            c.all_reduce_sum(&Tensor::zeros(2 + c.rank(), DType::F32, &Device::Cpu)?)
        });
        for r in got {
            let msg = r.expect_err("mismatch").to_string();
            assert!(msg.contains("all_reduce_sum: rank"), "{msg}");
        }
    }
}
