//! Rasterization out of process: a pool of render processes (`folio __render`, the same binary
//! in a hidden mode) that validate and render PDFs with PDFium, so that a PDF which makes PDFium
//! crash, allocate without end or compute for hours costs one document, never the process that
//! serves uploads.
//!
//! **Why here, in `folio-ingest`.** PDFium calls stay in this crate (`pdf.rs`); the pool is the
//! other half of the same concern — how those calls are run — and it needs nothing outside the
//! standard library's process and pipe types, so it keeps `folio-ingest` free of HTTP, queues and
//! storage. An [`Ingestor`](crate::Ingestor) built with [`Ingestor::with_render_pool`](crate::Ingestor::with_render_pool)
//! sends every PDF through the pool and keeps decoding images in process (the `image` and
//! `tiff` decoders are Rust, with pixel budgets checked before decoding); every caller — the
//! upload API, the triggers, `folio parse` — gets the same isolation by using that ingestor.
//! The child's entry point is [`run_child`]; the binary only parses its flags.
//!
//! **Limits** ([`RenderLimits`], filled from the binary's flags — `FOLIO_RENDER_*`):
//! - a wall-time limit per document and call (validation, then rendering), counting only time
//!   spent waiting for the child, not time the caller spends storing pages: the child is killed
//!   and the document gets `render_timeout`;
//! - an address-space limit (`RLIMIT_AS`) the child puts on itself: a page whose bitmap would
//!   not fit is refused before PDFium allocates it, and a child that dies near its limit is
//!   `render_too_large`;
//! - a page budget: a process that has rendered that many pages is replaced after its document,
//!   which bounds whatever PDFium leaks;
//! - a crash (any other death, or a garbled answer) is `render_crashed` for that document; the
//!   next request starts a fresh process.
//!
//! **Validation in the child** loads every page (PDFium parses its content then, nested form
//! XObjects included), so content bombs fail before an upload is accepted (HTTP 422); limits hit
//! while rendering an accepted document fail its remaining pages with the same codes.
//!
//! Protocol: [`wire`]; one child: `process.rs`; the pool: `pool.rs`; memory: `memory.rs`.

mod child;
mod memory;
mod pool;
mod process;
pub mod wire;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

pub use child::{run_child, ChildSettings, WATCHDOG_EXIT};
pub use pool::RenderPool;

/// Default wall-time limit per document and call.
pub const DEFAULT_DOCUMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default address-space limit of a render process (MiB).
pub const DEFAULT_MEMORY_LIMIT_MIB: u64 = 2048;
/// Default pages a process renders before it is replaced.
pub const DEFAULT_PAGES_PER_PROCESS: u64 = 1000;
/// Default number of render processes.
pub const DEFAULT_PROCESSES: usize = 3;

/// The limits of a [`RenderPool`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderLimits {
    /// Render processes alive at most (= documents validated or rendered at once).
    pub processes: usize,
    /// Wall time one call (validating or rendering one document) may take.
    pub document_timeout: Duration,
    /// Address space of one render process, MiB (`RLIMIT_AS`).
    pub memory_limit_mib: u64,
    /// Pages a process renders before it is replaced (after the document it is on).
    pub pages_per_process: u64,
}

impl Default for RenderLimits {
    fn default() -> Self {
        RenderLimits {
            processes: DEFAULT_PROCESSES,
            document_timeout: DEFAULT_DOCUMENT_TIMEOUT,
            memory_limit_mib: DEFAULT_MEMORY_LIMIT_MIB,
            pages_per_process: DEFAULT_PAGES_PER_PROCESS,
        }
    }
}

impl RenderLimits {
    /// The first setting that is zero (none may be), by name.
    pub fn zero_setting(&self) -> Option<&'static str> {
        [
            ("processes", self.processes == 0),
            ("document_timeout", self.document_timeout.is_zero()),
            ("memory_limit_mib", self.memory_limit_mib == 0),
            ("pages_per_process", self.pages_per_process == 0),
        ]
        .into_iter()
        .find_map(|(name, zero)| zero.then_some(name))
    }

    /// The child's own backstop: well past the pool's limit, so the pool always acts first.
    fn watchdog(&self) -> Duration {
        self.document_timeout * 2 + Duration::from_secs(10)
    }
}

/// How to start a render process: `program args… --pdfium LIB --memory-limit-mib N
/// --watchdog-secs S`; the program must end up in [`run_child`].
#[derive(Debug, Clone)]
pub struct RenderCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub pdfium_lib: PathBuf,
}
