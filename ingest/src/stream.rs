//! Page streaming: rasterize a source on a blocking thread and hand each page, encoded as PNG,
//! to async code through a bounded channel. At most `in_flight` encoded pages wait between the
//! two sides and the pixels of a page are dropped once encoded, so a 2,000-page PDF never sits
//! in memory as images.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};

use crate::png::encode_png;
use crate::{IngestError, Ingestor, RasterPage};

/// Where a source's bytes are read from.
#[derive(Debug, Clone)]
pub enum PageSource {
    /// The whole source in memory.
    Memory(Bytes),
    /// A local copy (a large upload streamed to disk), deleted when the last holder drops it.
    /// PDFs are read from it on demand, never whole.
    File(Arc<tempfile::TempPath>),
}

/// One page, rasterized and encoded.
#[derive(Debug, Clone)]
pub struct EncodedPage {
    /// 1-based page number in the source.
    pub page: u32,
    /// As [`RasterPage::dpi`].
    pub dpi: Option<u32>,
    /// The page image as PNG ([`encode_png`]).
    pub png: Bytes,
}

/// The receiving side of a running rasterizer: [`PageStream::next`] until `None`, then
/// [`PageStream::finish`] for the rasterizer's own result.
#[derive(Debug)]
pub struct PageStream {
    pages: mpsc::Receiver<EncodedPage>,
    rasterizer: JoinHandle<Result<(), IngestError>>,
}

impl PageStream {
    /// Start rasterizing `pages` (1-based, in order; empty = all) of `source` on a blocking
    /// thread. Needs a Tokio runtime. `in_flight` is raised to at least 1.
    pub fn spawn(
        ingestor: Ingestor,
        source: PageSource,
        password: Option<String>,
        pages: Vec<u32>,
        in_flight: usize,
    ) -> PageStream {
        let (tx, rx) = mpsc::channel::<EncodedPage>(in_flight.max(1));
        let rasterizer = tokio::task::spawn_blocking(move || {
            let mut on_page = |page: RasterPage| {
                let png = encode_png(&page.image)?;
                let encoded = EncodedPage {
                    page: page.page,
                    dpi: page.dpi,
                    png,
                };
                drop(page);
                // The receiver is gone only when the consumer stopped; it reports its own error.
                tx.blocking_send(encoded)
                    .map_err(|_| IngestError::Sink("uploader stopped".into()))
            };
            let password = password.as_deref();
            match &source {
                PageSource::Memory(bytes) => {
                    ingestor.rasterize(bytes, password, &pages, &mut on_page)
                }
                PageSource::File(path) => {
                    ingestor.rasterize_file(path, password, &pages, &mut on_page)
                }
            }
        });
        PageStream {
            pages: rx,
            rasterizer,
        }
    }

    /// The next encoded page, in the order asked; `None` once the rasterizer is done (or failed).
    pub async fn next(&mut self) -> Option<EncodedPage> {
        self.pages.recv().await
    }

    /// Stop receiving (a rasterizer still running then fails with [`IngestError::Sink`]) and
    /// wait for it: its result, or the join error if its thread panicked or was cancelled.
    pub async fn finish(self) -> Result<Result<(), IngestError>, JoinError> {
        drop(self.pages);
        self.rasterizer.await
    }
}
