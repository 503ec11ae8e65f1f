//! The render process's side: `folio __render` calls [`run_child`], which limits its own
//! address space (`RLIMIT_AS`), then answers requests from stdin on stdout until stdin closes.
//! PDFium is bound once, on the first PDF, and reused for every following request.
//!
//! Besides the hard limit, the child refuses politely what it can see coming: a page whose
//! bitmap would not fit the memory left is `render_too_large` before PDFium allocates it, and
//! a PDFium failure after the address space came close to the limit is reported as
//! `render_too_large` too. A watchdog thread ends the process when one request runs far past
//! the pool's wall-time limit (the pool kills it first; this covers a pool that is gone).

use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::memory;
use super::wire::{self, Frame, Op, Reply, Request, WireError};
use crate::pdf::{self, PdfSource};
use crate::{IngestConfig, IngestError, RasterPage};

/// Exit status of a render process stopped by its own watchdog.
pub const WATCHDOG_EXIT: i32 = 86;

/// How a render process is started (the flags of `folio __render`).
#[derive(Debug, Clone)]
pub struct ChildSettings {
    pub pdfium_lib: PathBuf,
    /// Address-space limit in MiB (`RLIMIT_AS`); 0: none.
    pub memory_limit_mib: u64,
    /// The watchdog ends the process when one request has run this long; 0: no watchdog.
    pub watchdog_secs: u64,
}

/// Serve requests on stdin/stdout until stdin closes. Errors only when the pipes fail or the
/// limit cannot be set; every document problem is an answer, not an error.
pub fn run_child(settings: &ChildSettings) -> io::Result<()> {
    if settings.memory_limit_mib > 0 {
        memory::limit_address_space(settings.memory_limit_mib)?;
    }
    let busy_since = Arc::new(AtomicU64::new(0));
    if settings.watchdog_secs > 0 {
        start_watchdog(busy_since.clone(), settings.watchdog_secs);
    }
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    loop {
        let request = match wire::read_frame(&mut input)? {
            None => return Ok(()),
            Some(Frame::Json(body)) => wire::parse::<Request>(&body)?,
            Some(Frame::Bytes(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a bytes frame without its request",
                ))
            }
        };
        let inline = match request.path {
            Some(_) => None,
            None => match wire::read_frame(&mut input)? {
                Some(Frame::Bytes(bytes)) => Some(bytes),
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the request's source bytes are missing",
                    ))
                }
            },
        };
        busy_since.store(now_ms(), Ordering::Relaxed);
        let answer = handle(settings, &request, inline.as_deref(), &mut output);
        busy_since.store(0, Ordering::Relaxed);
        // An error here is the pipe itself: the pool is gone or gave up on us.
        wire::write_json(&mut output, &answer?)?;
    }
}

/// Run one request; document errors become [`Reply::Failed`], a failing pipe is the error.
fn handle(
    settings: &ChildSettings,
    request: &Request,
    inline: Option<&[u8]>,
    output: &mut impl Write,
) -> io::Result<Reply> {
    let mut cfg = IngestConfig::new(&settings.pdfium_lib);
    cfg.dpi = request.dpi;
    cfg.max_page_pixels = request.max_page_pixels;
    cfg.max_pages = request.max_pages;
    let path = request.path.as_deref().map(Path::new);
    let source = match (path, inline) {
        (Some(path), _) => PdfSource::File(path),
        (None, Some(bytes)) => PdfSource::Bytes(bytes),
        (None, None) => PdfSource::Bytes(&[]),
    };
    let limit = settings.memory_limit_mib;
    let guard = |page: u32, width: u32, height: u32, dpi: u32| {
        memory::check_bitmap(limit, page, width, height, dpi)
    };
    let password = request.password.as_deref();
    let mut pipe_error = None;
    let result = match &request.op {
        Op::Inspect => pdf::inspect_pages(source, password, &cfg, &guard)
            .map(|page_count| Reply::Summary { page_count }),
        Op::Render { pages } => {
            let mut send = |page: RasterPage| {
                let (width, height) = page.image.dimensions();
                let head = Reply::Page {
                    page: page.page,
                    dpi: page.dpi,
                    width,
                    height,
                };
                wire::write_json(output, &head)
                    .and_then(|()| wire::write_bytes(output, page.image.as_raw()))
                    .map_err(|e| {
                        let message = e.to_string();
                        pipe_error = Some(e);
                        IngestError::Sink(message)
                    })
            };
            pdf::rasterize(source, password, pages, &cfg, &guard, &mut send).map(|()| Reply::Done)
        }
    };
    if let Some(e) = pipe_error {
        return Err(e);
    }
    Ok(match result {
        Ok(reply) => reply,
        Err(e) => Reply::Failed(WireError::from(&memory::blame_on_limit(e, limit))),
    })
}

fn start_watchdog(busy_since: Arc<AtomicU64>, secs: u64) {
    let spawned = std::thread::Builder::new()
        .name("render-watchdog".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let since = busy_since.load(Ordering::Relaxed);
            if since != 0 && now_ms().saturating_sub(since) > secs * 1000 {
                tracing::error!(
                    secs,
                    "render process: one request ran past the watchdog limit; exiting"
                );
                std::process::exit(WATCHDOG_EXIT);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "render process: no watchdog thread");
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}
