//! PDF sources through PDFium (pdfium-render, `thread_safe`: every PDFium call is serialised
//! behind one process-wide mutex, so parallel rendering needs processes).
//!
//! PDFium can be bound once per process: the binding lives in a static and is made on the first
//! PDF; a failed attempt is not remembered, so a later call with a fixed installation succeeds.
//! Pages are rendered at the configured DPI, lowered (to a whole DPI) when the page would exceed
//! the pixel budget, on a white background, annotations and form fields included.

use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use image::RgbImage;
use pdfium_render::prelude::{
    PdfBitmap, PdfBitmapFormat, PdfColor, PdfDocument, PdfRenderConfig, Pdfium, PdfiumError,
    PdfiumInternalError,
};

use super::error::IngestError;
use super::sniff::MediaType;
use super::{check_page_count, resolve_pages, IngestConfig, RasterPage};

const PDF: MediaType = MediaType::Pdf;
/// PDF user space unit: 72 points per inch.
const POINTS_PER_INCH: f64 = 72.0;

static PDFIUM: OnceLock<Pdfium> = OnceLock::new();
static BIND_LOCK: Mutex<()> = Mutex::new(());

/// The process-wide PDFium, bound from `lib` on first use.
fn pdfium(lib: &Path) -> Result<&'static Pdfium, IngestError> {
    if let Some(p) = PDFIUM.get() {
        return Ok(p);
    }
    let _guard = BIND_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(p) = PDFIUM.get() {
        return Ok(p);
    }
    if !lib.is_file() {
        return Err(IngestError::RuntimeMissing {
            path: lib.to_path_buf(),
        });
    }
    let pdfium = match Pdfium::bind_to_library(lib) {
        Ok(bindings) => {
            tracing::info!(path = %lib.display(), "PDFium bound");
            Pdfium::new(bindings)
        }
        // Other code in this process bound pdfium-render first: share its binding (in this
        // case `default` returns without loading anything).
        Err(PdfiumError::PdfiumLibraryBindingsAlreadyInitialized) => {
            tracing::warn!(path = %lib.display(), "PDFium was already bound in this process; using that binding");
            Pdfium::default()
        }
        Err(e) => {
            return Err(IngestError::RuntimeInvalid {
                path: lib.to_path_buf(),
                reason: describe(&e),
            })
        }
    };
    Ok(PDFIUM.get_or_init(|| pdfium))
}

/// Where a PDF is read from: bytes in memory, or a file that PDFium reads on demand (a large
/// upload is never loaded whole).
#[derive(Debug, Clone, Copy)]
pub(crate) enum PdfSource<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// Open the document and check its page count and every page's size.
pub(crate) fn page_count(
    source: PdfSource<'_>,
    password: Option<&str>,
    cfg: &IngestConfig,
) -> Result<u32, IngestError> {
    let pdfium = pdfium(&cfg.pdfium_lib)?;
    let doc = open(pdfium, source, password)?;
    let count = checked_count(&doc, cfg)?;
    for page in 1..=count {
        page_size(&doc, page)?;
    }
    Ok(count)
}

/// Checks a page's bitmap before PDFium allocates it: `(page, width, height, dpi)`. The render
/// process refuses pages whose bitmap would not fit its memory limit with it.
pub(crate) type BitmapGuard<'a> = &'a dyn Fn(u32, u32, u32, u32) -> Result<(), IngestError>;

/// No check beyond the pixel budget (rendering in the calling process).
pub(crate) fn no_guard(_: u32, _: u32, _: u32, _: u32) -> Result<(), IngestError> {
    Ok(())
}

/// [`page_count`], and then every page loaded, which makes PDFium parse its content (form
/// XObjects included), and its bitmap checked by `guard`: what a render process does to
/// validate a document, so that a content bomb fails validation under the process's limits.
pub(crate) fn inspect_pages(
    source: PdfSource<'_>,
    password: Option<&str>,
    cfg: &IngestConfig,
    guard: BitmapGuard<'_>,
) -> Result<u32, IngestError> {
    let pdfium = pdfium(&cfg.pdfium_lib)?;
    let doc = open(pdfium, source, password)?;
    let count = checked_count(&doc, cfg)?;
    for page in 1..=count {
        let (width, height, dpi) = fitted(&doc, page, cfg)?;
        guard(page, width, height, dpi)?;
        let loaded = doc
            .pages()
            .get(page_index(page)?)
            .map_err(|e| IngestError::corrupt(PDF, format!("page {page}: {}", describe(&e))))?;
        drop(loaded);
    }
    Ok(count)
}

/// Render `pages` (empty = all) one at a time, handing each to `on_page`.
pub(crate) fn rasterize(
    source: PdfSource<'_>,
    password: Option<&str>,
    pages: &[u32],
    cfg: &IngestConfig,
    guard: BitmapGuard<'_>,
    on_page: &mut dyn FnMut(RasterPage) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let pdfium = pdfium(&cfg.pdfium_lib)?;
    let doc = open(pdfium, source, password)?;
    let count = checked_count(&doc, cfg)?;
    for page in resolve_pages(pages, count)? {
        let started = Instant::now();
        let raster = render(&doc, page, cfg, guard)?;
        tracing::debug!(
            page,
            width = raster.image.width(),
            height = raster.image.height(),
            dpi = ?raster.dpi,
            ms = started.elapsed().as_millis() as u64,
            "PDF page rendered"
        );
        on_page(raster)?;
    }
    Ok(())
}

fn open<'a>(
    pdfium: &'a Pdfium,
    source: PdfSource<'a>,
    password: Option<&str>,
) -> Result<PdfDocument<'a>, IngestError> {
    let loaded = match source {
        PdfSource::Bytes(bytes) => {
            warn_if_truncated(bytes);
            pdfium.load_pdf_from_byte_slice(bytes, password)
        }
        PdfSource::File(path) => {
            warn_if_truncated(&file_tail(path)?);
            pdfium.load_pdf_from_file(path, password)
        }
    };
    loaded.map_err(|e| match e {
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::PasswordError) => {
            if password.is_some() {
                IngestError::WrongPassword
            } else {
                IngestError::EncryptedPdf
            }
        }
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::SecurityError) => {
            IngestError::unsupported_feature(PDF, "its encryption scheme is not supported")
        }
        other => IngestError::corrupt(PDF, describe(&other)),
    })
}

/// The last KiB of the file at `path` (for [`warn_if_truncated`]).
fn file_tail(path: &Path) -> Result<Vec<u8>, IngestError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |source| IngestError::Io {
        context: format!("reading {}", path.display()),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(1024)))
        .map_err(io)?;
    let mut tail = Vec::with_capacity(1024);
    file.read_to_end(&mut tail).map_err(io)?;
    Ok(tail)
}

/// A PDF ends with `%%EOF` (readers tolerate up to 1 KiB after it). PDFium refuses a file cut
/// before its cross-reference data (format error, measured on the corpus at 25–95 % of the
/// length), which covers real truncations; a missing marker alone is common enough in files
/// from odd producers that it only earns a warning.
fn warn_if_truncated(bytes: &[u8]) {
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    if !tail.windows(5).any(|w| w == b"%%EOF") {
        tracing::warn!("the PDF does not end with %%EOF; it may be truncated");
    }
}

fn checked_count(doc: &PdfDocument<'_>, cfg: &IngestConfig) -> Result<u32, IngestError> {
    let count = u32::try_from(doc.pages().len()).unwrap_or(0);
    check_page_count(PDF, count, false, cfg)?;
    Ok(count)
}

/// Page size in points, as displayed (the page's /Rotate applied).
fn page_size(doc: &PdfDocument<'_>, page: u32) -> Result<(f64, f64), IngestError> {
    let index = page_index(page)?;
    let rect = doc
        .pages()
        .page_size(index)
        .map_err(|e| IngestError::corrupt(PDF, format!("page {page}: {}", describe(&e))))?;
    let (w, h) = (
        f64::from(rect.width().value),
        f64::from(rect.height().value),
    );
    if !(w.is_finite() && h.is_finite() && w > 0.0 && h > 0.0) {
        return Err(IngestError::corrupt(
            PDF,
            format!("page {page} has an invalid size ({w}×{h} pt)"),
        ));
    }
    Ok((w, h))
}

fn page_index(page: u32) -> Result<i32, IngestError> {
    page.checked_sub(1)
        .and_then(|i| i32::try_from(i).ok())
        .ok_or(IngestError::PageOutOfRange {
            page,
            page_count: i32::MAX as u32,
        })
}

/// Pixel size and effective DPI of a `w_pt`×`h_pt` page at `dpi` within `max_pixels`.
fn fit(w_pt: f64, h_pt: f64, dpi: u32, max_pixels: u64) -> Option<(u32, u32, u32)> {
    let size = |d: u32| {
        let s = f64::from(d) / POINTS_PER_INCH;
        let px = |pt: f64| (pt * s).round().clamp(1.0, f64::from(u32::MAX)) as u32;
        (px(w_pt), px(h_pt))
    };
    let area = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
    let mut d = dpi;
    if area(size(d)) > max_pixels {
        let scale = (max_pixels as f64 / (w_pt * h_pt)).sqrt();
        d = d.min((scale * POINTS_PER_INCH).floor() as u32);
        while d > 0 && area(size(d)) > max_pixels {
            d -= 1;
        }
    }
    if d == 0 {
        return None;
    }
    let (w, h) = size(d);
    Some((w, h, d))
}

/// Pixel size and DPI page `page` is rendered at, or `PageTooLarge` when no DPI fits the budget.
fn fitted(
    doc: &PdfDocument<'_>,
    page: u32,
    cfg: &IngestConfig,
) -> Result<(u32, u32, u32), IngestError> {
    let (w_pt, h_pt) = page_size(doc, page)?;
    fit(w_pt, h_pt, cfg.dpi, cfg.max_page_pixels).ok_or_else(|| {
        let (width, height, _) =
            fit(w_pt, h_pt, cfg.dpi, u64::MAX).unwrap_or((u32::MAX, u32::MAX, 0));
        IngestError::PageTooLarge {
            format: PDF,
            page: Some(page),
            width,
            height,
            limit_pixels: cfg.max_page_pixels,
        }
    })
}

fn render(
    doc: &PdfDocument<'_>,
    page: u32,
    cfg: &IngestConfig,
    guard: BitmapGuard<'_>,
) -> Result<RasterPage, IngestError> {
    let (width, height, dpi) = fitted(doc, page, cfg)?;
    guard(page, width, height, dpi)?;
    if dpi < cfg.dpi {
        tracing::info!(
            page,
            asked = cfg.dpi,
            used = dpi,
            "page rendered at a lower DPI to fit the pixel budget"
        );
    }
    let pdf_page = doc
        .pages()
        .get(page_index(page)?)
        .map_err(|e| IngestError::corrupt(PDF, format!("page {page}: {}", describe(&e))))?;
    let config = PdfRenderConfig::new()
        .set_fixed_size(pixels_i32(width)?, pixels_i32(height)?)
        .set_format(PdfBitmapFormat::BGRx)
        .set_reverse_byte_order(true)
        .set_clear_color(PdfColor::WHITE)
        .render_annotations(true)
        .render_form_data(true);
    let bitmap = pdf_page
        .render_with_config(&config)
        .map_err(|e| IngestError::Render {
            action: format!("rendering page {page} at {width}×{height}"),
            detail: describe(&e),
        })?;
    let image = to_rgb(&bitmap, width, height).ok_or_else(|| IngestError::Render {
        action: format!("reading the bitmap of page {page}"),
        detail: "unexpected bitmap size or format".into(),
    })?;
    Ok(RasterPage {
        page,
        image,
        dpi: Some(dpi),
    })
}

fn pixels_i32(v: u32) -> Result<i32, IngestError> {
    i32::try_from(v).map_err(|_| IngestError::Render {
        action: "sizing a bitmap".into(),
        detail: format!("{v} pixels is too wide for PDFium"),
    })
}

/// RGBx rows (possibly padded) → packed RGB.
fn to_rgb(bitmap: &PdfBitmap<'_>, width: u32, height: u32) -> Option<RgbImage> {
    let raw = bitmap.as_raw_bytes();
    let (w, h) = (width as usize, height as usize);
    if h == 0 || bitmap.width() as usize != w || bitmap.height() as usize != h {
        return None;
    }
    let stride = raw.len() / h;
    if stride < w * 4 {
        return None;
    }
    let mut out = Vec::with_capacity(w * h * 3);
    for row in raw.chunks_exact(stride) {
        for px in row[..w * 4].chunks_exact(4) {
            out.extend_from_slice(&px[..3]);
        }
    }
    RgbImage::from_raw(width, height, out)
}

fn describe(e: &PdfiumError) -> String {
    match e {
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::FormatError) => {
            "PDFium cannot parse it (format error)".into()
        }
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::FileError) => {
            "PDFium cannot read it (file error)".into()
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_dpi_when_under_budget() {
        // A4 at 200 DPI: 1654×2339.
        assert_eq!(fit(595.0, 842.0, 200, 50_000_000), Some((1653, 2339, 200)));
    }

    #[test]
    fn fit_lowers_dpi_to_budget() {
        let (w, h, d) = fit(595.0, 842.0, 600, 4_000_000).expect("fits");
        assert!(u64::from(w) * u64::from(h) <= 4_000_000);
        assert!(d < 600 && d > 190, "{d}");
        // The next DPI up would not fit.
        let s = f64::from(d + 1) / 72.0;
        assert!((595.0 * s).round() * (842.0 * s).round() > 4_000_000.0);
        assert_eq!(fit(1.0e6, 1.0e6, 200, 100), None);
    }
}
