//! Helpers for the ingest tests: the ingestor over the test runtime and an allocation meter; the
//! corpus, fixtures and byte-level input builders come from `folio-test-support`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use folio_ingest::{IngestConfig, IngestError, Ingestor, RasterPage};

pub use folio_test_support::built::*;
pub use folio_test_support::{corpus_dir, fixture, read_corpus};

pub fn config() -> IngestConfig {
    IngestConfig::from_runtime_dir(&folio_test_support::pdfium_runtime_dir())
}

pub fn ingestor() -> Ingestor {
    Ingestor::new(config())
}

/// Rasterize into a vector (tests only; real callers stream).
pub fn pages_of(
    ing: &Ingestor,
    bytes: &[u8],
    password: Option<&str>,
    pages: &[u32],
) -> Result<Vec<RasterPage>, IngestError> {
    let mut out = Vec::new();
    ing.rasterize(bytes, password, pages, &mut |p| {
        out.push(p);
        Ok(())
    })?;
    Ok(out)
}

/// Mean luminance (0..=255) of a rectangle.
pub fn mean_luma(img: &image::RgbImage, x0: u32, y0: u32, x1: u32, y1: u32) -> f64 {
    let mut sum = 0u64;
    let mut n = 0u64;
    for y in y0..y1 {
        for x in x0..x1 {
            let p = img.get_pixel(x, y).0;
            sum += (u64::from(p[0]) * 299 + u64::from(p[1]) * 587 + u64::from(p[2]) * 114) / 1000;
            n += 1;
        }
    }
    sum as f64 / n.max(1) as f64
}

// ---- allocation meter -------------------------------------------------------------------

/// Counts the bytes this thread has live, and the peak since [`AllocMeter::start`].
pub struct CountingAlloc;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn bump(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the wrapper only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            bump(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        bump(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            bump(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Peak bytes allocated (and still live) on this thread between `start` and `peak`.
pub struct AllocMeter {
    base: isize,
}

impl AllocMeter {
    pub fn start() -> Self {
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        AllocMeter { base }
    }

    pub fn peak(&self) -> usize {
        (PEAK.with(Cell::get) - self.base).max(0) as usize
    }
}
