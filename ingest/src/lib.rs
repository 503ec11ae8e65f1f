//! folio-ingest: sniff the type of an uploaded source, validate it, and rasterize its pages.
//! The first stage of the pipeline (ingest → queue → work → results); used by the upload API,
//! the bucket triggers, re-processing and the embedded `folio parse` / `folio render`.
//!
//! * [`sniff`] names the type from magic bytes (PDF, PNG, JPEG, TIFF, WebP, BMP).
//! * [`Ingestor::inspect`] validates the whole source without rendering pages: type,
//!   corruption, encryption, page count, per-page pixel budget of images (from headers).
//! * [`Ingestor::rasterize`] renders PDF pages with PDFium at the configured DPI (scaled down to
//!   the pixel budget) or decodes image pages (EXIF orientation applied, converted to RGB on
//!   white), one page at a time, handing each to a callback: at most one page image is alive.
//!
//! * [`png`] encodes a page image as the PNG stored between ingest and the workers, and
//!   [`stream`] runs the rasterizer on a blocking thread, handing encoded pages to async code
//!   with a bounded number in flight.
//!
//! PDFium is bound lazily on the first PDF, once per process (see `pdf.rs`). Nothing here
//! knows about HTTP, queues or storage.
//!
//! ```no_run
//! use folio_ingest::{IngestConfig, Ingestor, PageRange};
//!
//! let ingestor = Ingestor::new(IngestConfig::new("/root/.cache/folio/lib/libpdfium.so"));
//! let bytes = std::fs::read("scan.pdf")?;
//! let summary = ingestor.inspect(&bytes, None)?;
//! let pages = "2-".parse::<PageRange>()?.select(summary.page_count)?;
//! ingestor.rasterize(&bytes, None, &pages, &mut |page| {
//!     println!("page {}: {}x{}", page.page, page.image.width(), page.image.height());
//!     Ok(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod density;
mod error;
mod integrity;
mod page_range;
mod pdf;
mod pixels;
pub mod png;
mod raster;
pub mod render_pool;
mod sniff;
pub mod stream;
mod tiff;

use std::path::{Path, PathBuf};

pub use error::IngestError;
pub use page_range::PageRange;
pub use render_pool::{RenderCommand, RenderLimits, RenderPool};
pub use sniff::{sniff, MediaType};

/// Default rendering resolution for PDF pages.
pub const DEFAULT_DPI: u32 = 200;
/// Default per-page pixel budget (width × height).
pub const DEFAULT_MAX_PAGE_PIXELS: u64 = 50_000_000;
/// Default maximum number of pages in one source.
pub const DEFAULT_MAX_PAGES: u32 = 5000;
/// Highest DPI accepted in [`IngestConfig::dpi`]; higher values are clamped.
pub const MAX_DPI: u32 = 2400;

/// Settings of an [`Ingestor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// Path of `libpdfium.so` (PDFium build 8149, from `scripts/setup`).
    pub pdfium_lib: PathBuf,
    /// PDF rendering resolution (1..=[`MAX_DPI`]).
    pub dpi: u32,
    /// Per-page budget of width × height: PDF pages are rendered at a lower DPI to fit, images
    /// above it are rejected before decoding.
    pub max_page_pixels: u64,
    /// Sources with more pages are rejected.
    pub max_pages: u32,
}

impl IngestConfig {
    /// Defaults ([`DEFAULT_DPI`], [`DEFAULT_MAX_PAGE_PIXELS`], [`DEFAULT_MAX_PAGES`]) with the
    /// given PDFium library.
    pub fn new(pdfium_lib: impl Into<PathBuf>) -> Self {
        IngestConfig {
            pdfium_lib: pdfium_lib.into(),
            dpi: DEFAULT_DPI,
            max_page_pixels: DEFAULT_MAX_PAGE_PIXELS,
            max_pages: DEFAULT_MAX_PAGES,
        }
    }

    /// Defaults, with PDFium at `<runtime_dir>/lib/libpdfium.so` (the `scripts/setup` layout).
    pub fn from_runtime_dir(runtime_dir: &Path) -> Self {
        Self::new(runtime_dir.join("lib").join("libpdfium.so"))
    }
}

/// What [`Ingestor::inspect`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceSummary {
    pub media_type: MediaType,
    pub page_count: u32,
}

/// One rasterized page.
#[derive(Debug, Clone)]
pub struct RasterPage {
    /// 1-based page number in the source.
    pub page: u32,
    /// RGB pixels, upright (EXIF/TIFF orientation applied), transparency flattened on white.
    pub image: image::RgbImage,
    /// PDF: the effective rendering DPI (lower than asked when the pixel budget forced it).
    /// Images: the resolution stated in the file, if any.
    pub dpi: Option<u32>,
}

/// Validates and rasterizes sources. Create once and share: it is `Send + Sync`, cheap to
/// clone, and holds no per-document state.
#[derive(Debug, Clone)]
pub struct Ingestor {
    cfg: IngestConfig,
    /// Where PDFs are validated and rendered; in this process when `None`.
    pool: Option<RenderPool>,
}

impl Ingestor {
    /// An ingestor with `cfg`; out-of-range values are clamped (DPI to 1..=[`MAX_DPI`], budgets
    /// to at least 1). PDFium is not loaded until the first PDF.
    pub fn new(mut cfg: IngestConfig) -> Self {
        let dpi = cfg.dpi.clamp(1, MAX_DPI);
        if dpi != cfg.dpi {
            tracing::warn!(asked = cfg.dpi, used = dpi, "dpi out of range, clamped");
            cfg.dpi = dpi;
        }
        cfg.max_page_pixels = cfg.max_page_pixels.max(1);
        cfg.max_pages = cfg.max_pages.max(1);
        Ingestor { cfg, pool: None }
    }

    /// The same ingestor, validating and rendering PDFs in `pool`'s render processes
    /// (see [`render_pool`]).
    pub fn with_render_pool(mut self, pool: RenderPool) -> Ingestor {
        self.pool = Some(pool);
        self
    }

    /// The render pool PDFs go through, if any.
    pub fn render_pool(&self) -> Option<&RenderPool> {
        self.pool.as_ref()
    }

    /// The same ingestor (same render pool) with another configuration.
    pub fn with_config(&self, cfg: IngestConfig) -> Ingestor {
        Ingestor {
            pool: self.pool.clone(),
            ..Ingestor::new(cfg)
        }
    }

    /// The effective configuration.
    pub fn config(&self) -> &IngestConfig {
        &self.cfg
    }

    /// The same ingestor rendering PDFs at another DPI (e.g. a per-request option).
    pub fn with_dpi(&self, dpi: u32) -> Ingestor {
        self.with_config(IngestConfig {
            dpi,
            ..self.cfg.clone()
        })
    }

    /// Validate the whole source without rendering pages: type, corruption, encryption, page
    /// count, and for images the per-page pixel budget (from headers) and structural
    /// completeness (a cut-short file). Damage inside compressed pixel data that leaves the
    /// structure intact only shows when the page is rasterized.
    pub fn inspect(
        &self,
        bytes: &[u8],
        password: Option<&str>,
    ) -> Result<SourceSummary, IngestError> {
        let media_type = sniff(bytes)?;
        let page_count = match media_type {
            MediaType::Pdf => self.pdf_page_count(pdf::PdfSource::Bytes(bytes), password)?,
            MediaType::Tiff => tiff::page_count(bytes, &self.cfg)?,
            _ => {
                raster::check_header(bytes, media_type, &self.cfg)?;
                1
            }
        };
        tracing::debug!(%media_type, page_count, "source inspected");
        Ok(SourceSummary {
            media_type,
            page_count,
        })
    }

    /// Render or decode `pages` (1-based, in the order given; empty = every page) one at a
    /// time, calling `on_page` for each; stops at the first error from either side. Only one
    /// page image exists at a time (the one handed to `on_page`). `password` is used by PDFs
    /// only.
    pub fn rasterize(
        &self,
        bytes: &[u8],
        password: Option<&str>,
        pages: &[u32],
        on_page: &mut dyn FnMut(RasterPage) -> Result<(), IngestError>,
    ) -> Result<(), IngestError> {
        self.rasterize_source(pdf::PdfSource::Bytes(bytes), password, pages, on_page)
    }

    /// [`Ingestor::rasterize`] of a source in memory or in a file (a PDF file is read by PDFium
    /// on demand, an image file whole).
    fn rasterize_source(
        &self,
        source: pdf::PdfSource<'_>,
        password: Option<&str>,
        pages: &[u32],
        on_page: &mut dyn FnMut(RasterPage) -> Result<(), IngestError>,
    ) -> Result<(), IngestError> {
        let media_type = match source {
            pdf::PdfSource::Bytes(bytes) => sniff(bytes)?,
            pdf::PdfSource::File(path) => sniff(&read_head(path)?)?,
        };
        if media_type == MediaType::Pdf {
            return match &self.pool {
                Some(pool) => pool.rasterize(source, password, pages, &self.cfg, on_page),
                None => pdf::rasterize(source, password, pages, &self.cfg, &pdf::no_guard, on_page),
            };
        }
        let read;
        let bytes = match source {
            pdf::PdfSource::Bytes(bytes) => bytes,
            pdf::PdfSource::File(path) => {
                read = read_file(path)?;
                &read[..]
            }
        };
        if media_type == MediaType::Tiff {
            return tiff::rasterize(bytes, pages, &self.cfg, on_page);
        }
        for page in resolve_pages(pages, 1)? {
            let mut raster = raster::decode(bytes, media_type, &self.cfg)?;
            raster.page = page;
            on_page(raster)?;
        }
        Ok(())
    }
}

impl Ingestor {
    /// [`Ingestor::inspect`] of the file at `path`. A PDF is read by PDFium on demand, never
    /// whole; an image is read into memory (its decoded pixels, bounded by the pixel budget,
    /// are larger than the file anyway).
    pub fn inspect_file(
        &self,
        path: &Path,
        password: Option<&str>,
    ) -> Result<SourceSummary, IngestError> {
        match sniff(&read_head(path)?)? {
            MediaType::Pdf => {
                let page_count = self.pdf_page_count(pdf::PdfSource::File(path), password)?;
                Ok(SourceSummary {
                    media_type: MediaType::Pdf,
                    page_count,
                })
            }
            _ => self.inspect(&read_file(path)?, password),
        }
    }

    /// [`Ingestor::rasterize`] of the file at `path` (read as in [`Ingestor::inspect_file`]).
    pub fn rasterize_file(
        &self,
        path: &Path,
        password: Option<&str>,
        pages: &[u32],
        on_page: &mut dyn FnMut(RasterPage) -> Result<(), IngestError>,
    ) -> Result<(), IngestError> {
        self.rasterize_source(pdf::PdfSource::File(path), password, pages, on_page)
    }
}

impl Ingestor {
    /// Validate a PDF: in a render process when there is a pool (every page loaded, under its
    /// limits), here otherwise (page count and sizes).
    fn pdf_page_count(
        &self,
        source: pdf::PdfSource<'_>,
        password: Option<&str>,
    ) -> Result<u32, IngestError> {
        match &self.pool {
            Some(pool) => pool.inspect(source, password, &self.cfg),
            None => pdf::page_count(source, password, &self.cfg),
        }
    }
}

/// Enough of the file at `path` to sniff its type.
fn read_head(path: &Path) -> Result<Vec<u8>, IngestError> {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .map_err(|source| IngestError::Io {
            context: format!("reading {}", path.display()),
            source,
        })?;
    Ok(head)
}

fn read_file(path: &Path) -> Result<Vec<u8>, IngestError> {
    std::fs::read(path).map_err(|source| IngestError::Io {
        context: format!("reading {}", path.display()),
        source,
    })
}

/// Check `pages` against `page_count`; empty means all pages.
fn resolve_pages(pages: &[u32], page_count: u32) -> Result<Vec<u32>, IngestError> {
    if pages.is_empty() {
        return Ok((1..=page_count).collect());
    }
    if let Some(&page) = pages.iter().find(|&&p| p == 0 || p > page_count) {
        return Err(IngestError::PageOutOfRange { page, page_count });
    }
    Ok(pages.to_vec())
}

/// Reject sources with more pages than allowed, and sources without pages.
fn check_page_count(
    format: MediaType,
    count: u32,
    at_least: bool,
    cfg: &IngestConfig,
) -> Result<(), IngestError> {
    if count == 0 {
        return Err(IngestError::NoPages { format });
    }
    if count > cfg.max_pages {
        return Err(IngestError::TooManyPages {
            count,
            at_least,
            limit: cfg.max_pages,
        });
    }
    Ok(())
}

/// Reject a page whose pixel count is above the budget.
fn check_pixels(
    format: MediaType,
    page: Option<u32>,
    (width, height): (u32, u32),
    cfg: &IngestConfig,
) -> Result<(), IngestError> {
    if u64::from(width) * u64::from(height) > cfg.max_page_pixels {
        return Err(IngestError::PageTooLarge {
            format,
            page,
            width,
            height,
            limit_pixels: cfg.max_page_pixels,
        });
    }
    if width == 0 || height == 0 {
        return Err(IngestError::corrupt(
            format,
            format!("the image is {width}×{height} pixels"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingestor_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Ingestor>();
    }

    #[test]
    fn resolve_pages_checks_range() {
        assert_eq!(resolve_pages(&[], 3).ok(), Some(vec![1, 2, 3]));
        assert_eq!(resolve_pages(&[3, 1], 3).ok(), Some(vec![3, 1]));
        assert_eq!(
            resolve_pages(&[4], 3).map_err(|e| e.code()),
            Err("page_out_of_range")
        );
        assert_eq!(
            resolve_pages(&[0], 3).map_err(|e| e.code()),
            Err("page_out_of_range")
        );
    }

    #[test]
    fn config_is_clamped() {
        let mut cfg = IngestConfig::new("/x");
        cfg.dpi = 0;
        assert_eq!(Ingestor::new(cfg).config().dpi, 1);
        assert_eq!(
            Ingestor::new(IngestConfig::new("/x"))
                .with_dpi(10_000)
                .config()
                .dpi,
            MAX_DPI
        );
    }
}
