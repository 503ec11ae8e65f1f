//! [`RenderPool`]: at most `processes` render processes, idle ones kept warm (PDFium already
//! bound), one document per process at a time. A call waits for a free slot, takes an idle
//! process or starts one, and gives it back only when it is healthy and under its page budget.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::process::{Outcome, RenderProcess};
use super::wire::{Op, Request};
use super::{RenderCommand, RenderLimits};
use crate::pdf::PdfSource;
use crate::{IngestConfig, IngestError, RasterPage};

/// A pool of render processes; cheap to clone (clones share the processes).
#[derive(Debug, Clone)]
pub struct RenderPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    command: RenderCommand,
    limits: RenderLimits,
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Calls running now.
    busy: usize,
    idle: Vec<RenderProcess>,
}

impl RenderPool {
    /// A pool that starts processes with `command` on demand (none is started here).
    pub fn new(command: RenderCommand, limits: RenderLimits) -> RenderPool {
        RenderPool {
            inner: Arc::new(Inner {
                command,
                limits,
                state: Mutex::new(State::default()),
                freed: Condvar::new(),
            }),
        }
    }

    pub fn limits(&self) -> &RenderLimits {
        &self.inner.limits
    }

    /// Process ids of the render processes alive and idle now (tests, diagnostics).
    pub fn idle_pids(&self) -> Vec<u32> {
        self.lock().idle.iter().map(RenderProcess::pid).collect()
    }

    /// Validate a PDF in a render process: its page count.
    pub(crate) fn inspect(
        &self,
        source: PdfSource<'_>,
        password: Option<&str>,
        cfg: &IngestConfig,
    ) -> Result<u32, IngestError> {
        let answer = self.call(Op::Inspect, source, password, cfg, &mut |_| Ok(()))?;
        answer.ok_or_else(|| IngestError::RenderCrashed {
            after_page: None,
            how: "the render process answered a validation without a page count".into(),
        })
    }

    /// Render `pages` (empty: all) of a PDF in a render process, handing each to `on_page`.
    pub(crate) fn rasterize(
        &self,
        source: PdfSource<'_>,
        password: Option<&str>,
        pages: &[u32],
        cfg: &IngestConfig,
        on_page: &mut dyn FnMut(RasterPage) -> Result<(), IngestError>,
    ) -> Result<(), IngestError> {
        let op = Op::Render {
            pages: pages.to_vec(),
        };
        self.call(op, source, password, cfg, on_page).map(|_| ())
    }

    fn call(
        &self,
        op: Op,
        source: PdfSource<'_>,
        password: Option<&str>,
        cfg: &IngestConfig,
        on_page: &mut dyn FnMut(RasterPage) -> Result<(), IngestError>,
    ) -> Result<Option<u32>, IngestError> {
        let (path, inline) = match source {
            PdfSource::File(path) => (Some(path.to_string_lossy().into_owned()), None),
            PdfSource::Bytes(bytes) => (None, Some(bytes)),
        };
        let request = Request::new(op, cfg, password, path);
        let mut slot = self.acquire();
        let mut process = match slot.process.take() {
            Some(p) => p,
            None => RenderProcess::spawn(&self.inner.command, &self.inner.limits).map_err(|e| {
                IngestError::Render {
                    action: "starting a render process".into(),
                    detail: e.to_string(),
                }
            })?,
        };
        let limits = &self.inner.limits;
        match process.call(&request, inline, limits, on_page) {
            Outcome::Answered(result) => {
                if process.pages_rendered < limits.pages_per_process {
                    self.lock().idle.push(process);
                } else {
                    tracing::info!(
                        pid = process.pid(),
                        pages = process.pages_rendered,
                        "render process replaced after its page budget"
                    );
                    metrics::counter!("folio_render_processes_recycled_total").increment(1);
                }
                result
            }
            Outcome::Lost(e) => Err(e),
        }
    }

    /// Wait for a free slot; it carries an idle process when there is one.
    fn acquire(&self) -> Slot<'_> {
        let mut state = self.lock();
        while state.busy >= self.inner.limits.processes {
            state = self
                .inner
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.busy += 1;
        metrics::gauge!("folio_render_processes_busy").set(state.busy as f64);
        // An idle process that died meanwhile (killed from outside) is not handed to a document.
        let mut process = None;
        while let Some(mut p) = state.idle.pop() {
            if p.is_alive() {
                process = Some(p);
                break;
            }
            tracing::warn!(pid = p.pid(), "idle render process found dead; replaced");
        }
        Slot {
            pool: self,
            process,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A taken slot; dropping it frees the slot.
struct Slot<'a> {
    pool: &'a RenderPool,
    process: Option<RenderProcess>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        state.busy -= 1;
        metrics::gauge!("folio_render_processes_busy").set(state.busy as f64);
        drop(state);
        self.pool.inner.freed.notify_one();
    }
}
