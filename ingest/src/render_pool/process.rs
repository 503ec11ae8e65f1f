//! One render process seen from the pool: spawn it, send it a request, read its answer with
//! the wall-time limit running, watch its address space, and when it dies or has to be killed,
//! say why ([`Death`]) so the document gets `render_timeout`, `render_too_large` or
//! `render_crashed`.

use std::io::{self, BufReader, BufWriter};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use image::RgbImage;

use super::memory;
use super::wire::{self, Frame, Reply, Request};
use super::{RenderCommand, RenderLimits};
use crate::{IngestError, RasterPage};

/// How often the address space is sampled while waiting.
const POLL: Duration = Duration::from_millis(50);

/// A live render process.
#[derive(Debug)]
pub(crate) struct RenderProcess {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    frames: Receiver<io::Result<Frame>>,
    /// Pages rendered since it started (for the page budget).
    pub pages_rendered: u64,
    /// The highest address space seen.
    peak_bytes: u64,
}

/// What a call did to the process.
#[derive(Debug)]
pub(crate) enum Outcome<T> {
    /// The process answered (success or a document error) and can take another request.
    Answered(Result<T, IngestError>),
    /// The process is dead or was killed; the error says why, for this document only.
    Lost(IngestError),
}

impl RenderProcess {
    pub fn spawn(command: &RenderCommand, limits: &RenderLimits) -> io::Result<RenderProcess> {
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .arg("--pdfium")
            .arg(&command.pdfium_lib)
            .arg("--memory-limit-mib")
            .arg(limits.memory_limit_mib.to_string())
            .arg("--watchdog-secs")
            .arg(limits.watchdog().as_secs().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("render process without pipes"));
        };
        let (tx, frames) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(format!("render-{}", child.id()))
            .spawn(move || {
                let mut stdout = BufReader::with_capacity(1 << 20, stdout);
                loop {
                    let frame = wire::read_frame(&mut stdout);
                    let end = !matches!(frame, Ok(Some(_)));
                    let sent = match frame {
                        Ok(Some(f)) => tx.send(Ok(f)),
                        Ok(None) => break,
                        Err(e) => tx.send(Err(e)),
                    };
                    if end || sent.is_err() {
                        break;
                    }
                }
            })?;
        metrics::counter!("folio_render_processes_started_total").increment(1);
        tracing::info!(pid = child.id(), "render process started");
        Ok(RenderProcess {
            child,
            stdin: BufWriter::with_capacity(1 << 20, stdin),
            frames,
            pages_rendered: 0,
            peak_bytes: 0,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Send `request` (and `inline` source bytes) and read the answer: pages go to `on_page`,
    /// and the time spent there does not count against the limit (a slow consumer is not an
    /// expensive document). `Summary` answers give `Some(page_count)`, `Done` gives `None`.
    pub fn call(
        &mut self,
        request: &Request,
        inline: Option<&[u8]>,
        limits: &RenderLimits,
        on_page: &mut dyn FnMut(RasterPage) -> Result<(), IngestError>,
    ) -> Outcome<Option<u32>> {
        let sent = wire::write_json(&mut self.stdin, request)
            .and_then(|()| inline.map_or(Ok(()), |b| wire::write_bytes(&mut self.stdin, b)));
        if let Err(e) = sent {
            return Outcome::Lost(self.lost(None, &format!("its input closed ({e})"), limits));
        }
        let mut budget = limits.document_timeout;
        let mut last_page = None;
        loop {
            let waited = Instant::now();
            let frame = self.next_frame(budget, last_page, limits);
            budget = budget.saturating_sub(waited.elapsed());
            let reply = match frame {
                Ok(Frame::Json(body)) => wire::parse::<Reply>(&body),
                Ok(Frame::Bytes(_)) => Err(io::Error::other("pixels without a page header")),
                Err(lost) => return Outcome::Lost(lost),
            };
            let reply = match reply {
                Ok(r) => r,
                Err(e) => return Outcome::Lost(self.lost(last_page, &e.to_string(), limits)),
            };
            match reply {
                Reply::Summary { page_count } => return Outcome::Answered(Ok(Some(page_count))),
                Reply::Done => return Outcome::Answered(Ok(None)),
                Reply::Failed(e) => {
                    return Outcome::Answered(Err(e.into_error(limits.memory_limit_mib)))
                }
                Reply::Page {
                    page,
                    dpi,
                    width,
                    height,
                } => {
                    last_page = Some(page);
                    let waited = Instant::now();
                    let pixels = match self.next_frame(budget, last_page, limits) {
                        Ok(Frame::Bytes(b)) => b,
                        Ok(Frame::Json(_)) => {
                            let why = "a page header without pixels";
                            return Outcome::Lost(self.lost(last_page, why, limits));
                        }
                        Err(lost) => return Outcome::Lost(lost),
                    };
                    budget = budget.saturating_sub(waited.elapsed());
                    let Some(image) = RgbImage::from_raw(width, height, pixels) else {
                        let why = "pixels that do not match the page size";
                        return Outcome::Lost(self.lost(last_page, why, limits));
                    };
                    self.pages_rendered += 1;
                    if let Err(e) = on_page(RasterPage { page, image, dpi }) {
                        // The child goes on rendering pages nobody reads: stop it.
                        self.kill();
                        return Outcome::Lost(e);
                    }
                }
            }
        }
    }

    /// The next frame within `budget`; on timeout the process is killed.
    fn next_frame(
        &mut self,
        budget: Duration,
        last_page: Option<u32>,
        limits: &RenderLimits,
    ) -> Result<Frame, IngestError> {
        let deadline = Instant::now() + budget;
        loop {
            self.sample_memory();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.kill();
                metrics::counter!("folio_render_failures_total", "reason" => "timeout")
                    .increment(1);
                tracing::warn!(pid = self.pid(), after_page = ?last_page, "render process over the document time limit; killed");
                return Err(IngestError::RenderTimeout {
                    limit_secs: limits.document_timeout.as_secs(),
                    after_page: last_page,
                });
            }
            match self.frames.recv_timeout(left.min(POLL)) {
                Ok(Ok(frame)) => return Ok(frame),
                Ok(Err(e)) => return Err(self.lost(last_page, &e.to_string(), limits)),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.lost(last_page, "its output closed", limits))
                }
            }
        }
    }

    fn sample_memory(&mut self) {
        if let Some((peak, _)) = memory::vm_peak_and_size(Some(self.pid())) {
            self.peak_bytes = self.peak_bytes.max(peak);
        }
    }

    /// The process stopped answering (`what`): make sure it is gone and classify its end.
    fn lost(&mut self, last_page: Option<u32>, what: &str, limits: &RenderLimits) -> IngestError {
        self.sample_memory();
        let _ = self.child.kill();
        let status = self.child.wait();
        let how = match &status {
            Ok(s) => describe_status(*s),
            Err(e) => format!("cannot be waited for: {e}"),
        };
        let death = if memory::near_limit(self.peak_bytes, limits.memory_limit_mib) {
            IngestError::RenderTooLarge {
                limit_mib: limits.memory_limit_mib,
                page: None,
                detail: format!("the render process reached its limit and {how}"),
            }
        } else {
            IngestError::RenderCrashed {
                after_page: last_page,
                how: format!("{what}; the render process {how}"),
            }
        };
        let reason = death.code().trim_start_matches("render_").to_owned();
        metrics::counter!("folio_render_failures_total", "reason" => reason).increment(1);
        tracing::warn!(pid = self.pid(), after_page = ?last_page, peak_mib = self.peak_bytes >> 20, error = %death, "render process lost");
        death
    }

    /// Kill and reap (idempotent).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RenderProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(super::child::WATCHDOG_EXIT), _) => "was stopped by its watchdog".into(),
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig} ({})", signal_name(sig)),
        _ => format!("ended ({status})"),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        15 => "SIGTERM",
        _ => "signal",
    }
}
