//! Helpers for the ingest tests: where the runtime and corpus are, an allocation meter, and
//! byte-level builders for inputs that are easier to describe than to commit (a PNG header
//! claiming 30000×30000, a .docx-shaped zip, an EXIF block).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

use folio_api::ingest::{IngestConfig, IngestError, Ingestor, RasterPage};

/// `$FOLIO_RUNTIME_DIR` or `~/.cache/folio`, with PDFium checked to be there.
pub fn runtime_dir() -> PathBuf {
    let dir = std::env::var_os("FOLIO_RUNTIME_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/folio")))
        .expect("neither FOLIO_RUNTIME_DIR nor HOME is set");
    let lib = dir.join("lib/libpdfium.so");
    assert!(
        lib.is_file(),
        "PDFium is missing at {}: run scripts/setup (or set FOLIO_RUNTIME_DIR)",
        lib.display()
    );
    dir
}

/// `$FOLIO_CORPUS_DIR` or `<repo>/../shared/corpus`.
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("FOLIO_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
}

/// A corpus file, checked to exist.
pub fn corpus(rel: &str) -> PathBuf {
    let path = corpus_dir().join(rel);
    assert!(
        path.is_file(),
        "corpus file {} is missing (set FOLIO_CORPUS_DIR)",
        path.display()
    );
    path
}

pub fn read_corpus(rel: &str) -> Vec<u8> {
    std::fs::read(corpus(rel)).expect("read corpus file")
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn config() -> IngestConfig {
    IngestConfig::from_runtime_dir(&runtime_dir())
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

// ---- byte builders ----------------------------------------------------------------------

/// CRC-32 (IEEE), as PNG chunks and zip entries need.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A PNG whose IHDR claims `width`×`height` RGB8, followed by a tiny IDAT (an empty zlib
/// stream: far too little data for any real image) and IEND.
pub fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// Insert a `pHYs` chunk (pixels per metre, both axes) right after a PNG's IHDR.
pub fn with_png_phys(png: &[u8], per_metre: u32) -> Vec<u8> {
    let after_ihdr = 8 + 8 + 13 + 4;
    let mut out = png[..after_ihdr].to_vec();
    let mut data = per_metre.to_be_bytes().to_vec();
    data.extend_from_slice(&per_metre.to_be_bytes());
    data.push(1);
    png_chunk(&mut out, b"pHYs", &data);
    out.extend_from_slice(&png[after_ihdr..]);
    out
}

/// A stored (uncompressed) zip with the given members: a real archive that unzip accepts.
pub fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let mut common = Vec::new();
        common.extend_from_slice(&20u16.to_le_bytes()); // version needed
        common.extend_from_slice(&0u16.to_le_bytes()); // flags
        common.extend_from_slice(&0u16.to_le_bytes()); // stored
        common.extend_from_slice(&0u32.to_le_bytes()); // time, date
        common.extend_from_slice(&crc.to_le_bytes());
        common.extend_from_slice(&(data.len() as u32).to_le_bytes());
        common.extend_from_slice(&(data.len() as u32).to_le_bytes());
        common.extend_from_slice(&(name.len() as u16).to_le_bytes());
        common.extend_from_slice(&0u16.to_le_bytes()); // extra length
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&common);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        central.extend_from_slice(&common);
        central.extend_from_slice(&[0; 8]); // comment len, disk, internal attrs
        central.extend_from_slice(&0u32.to_le_bytes()); // external attrs
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// Insert an APP1 EXIF segment with Orientation = `orientation` right after a JPEG's SOI.
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "not a JPEG");
    // Big-endian TIFF header, IFD0 at offset 8 with a single SHORT entry 0x0112.
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut seg = b"Exif\0\0".to_vec();
    seg.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((seg.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&seg);
    out.extend_from_slice(&jpeg[2..]);
    out
}
