//! Resolution stated by an image file, in dots per inch: PNG `pHYs`, JPEG JFIF `APP0`, BMP
//! header, EXIF `XResolution`/`YResolution`. Header walks here read only metadata; a value
//! outside [`MIN_DPI`]..=[`MAX_DPI`] (e.g. JFIF's "1:1 aspect" or a zero) counts as not stated.

use super::sniff::MediaType;

/// Smallest resolution taken at face value.
const MIN_DPI: f64 = 10.0;
/// Largest resolution taken at face value.
const MAX_DPI: f64 = 20_000.0;

/// Horizontal and vertical resolution in DPI.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Density {
    pub x: f64,
    pub y: f64,
}

impl Density {
    /// The DPI along the displayed image's horizontal axis (after an orientation that may swap
    /// axes), rounded.
    pub(crate) fn horizontal_dpi(self, axes_swapped: bool) -> u32 {
        let v = if axes_swapped { self.y } else { self.x };
        v.round() as u32
    }
}

/// Values per `unit` (1 = inch, 2 = centimetre, 3 = metre) to DPI, if plausible.
fn density(x: f64, y: f64, unit: Unit) -> Option<Density> {
    let per_inch = match unit {
        Unit::Inch => 1.0,
        Unit::Centimetre => 2.54,
        Unit::Metre => 0.0254,
    };
    let (x, y) = (x * per_inch, y * per_inch);
    let ok = |v: f64| v.is_finite() && (MIN_DPI..=MAX_DPI).contains(&v);
    match (ok(x), ok(y)) {
        (true, true) => Some(Density { x, y }),
        (true, false) => Some(Density { x, y: x }),
        (false, true) => Some(Density { x: y, y }),
        (false, false) => None,
    }
}

#[derive(Debug, Clone, Copy)]
enum Unit {
    Inch,
    Centimetre,
    Metre,
}

/// The density stated in the file's own header (not EXIF).
pub(crate) fn from_header(bytes: &[u8], media: MediaType) -> Option<Density> {
    match media {
        MediaType::Png => png(bytes),
        MediaType::Jpeg => jfif(bytes),
        MediaType::Bmp => bmp(bytes),
        _ => None,
    }
}

/// PNG: walk chunks up to the first `IDAT` looking for `pHYs` (unit 1 = metre).
fn png(b: &[u8]) -> Option<Density> {
    let mut pos = 8usize;
    while pos + 8 <= b.len() {
        let len = u32::from_be_bytes(b.get(pos..pos + 4)?.try_into().ok()?) as usize;
        let kind = b.get(pos + 4..pos + 8)?;
        let data = b.get(pos + 8..pos.checked_add(8)?.checked_add(len)?)?;
        match kind {
            b"pHYs" if len == 9 && data[8] == 1 => {
                let x = u32::from_be_bytes(data[0..4].try_into().ok()?);
                let y = u32::from_be_bytes(data[4..8].try_into().ok()?);
                return density(f64::from(x), f64::from(y), Unit::Metre);
            }
            b"IDAT" | b"IEND" => return None,
            _ => {}
        }
        pos = pos.checked_add(12)?.checked_add(len)?;
    }
    None
}

/// JPEG: the JFIF `APP0` segment (units 1 = inch, 2 = cm; 0 = aspect ratio only).
fn jfif(b: &[u8]) -> Option<Density> {
    let mut pos = 2usize;
    while pos + 4 <= b.len() {
        if b[pos] != 0xFF {
            return None;
        }
        let marker = b[pos + 1];
        if marker == 0xFF {
            pos += 1; // fill byte
            continue;
        }
        // Start of scan or of a frame: no JFIF header came before it.
        if marker == 0xDA || (0xC0..=0xCF).contains(&marker) && marker != 0xC4 && marker != 0xCC {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([b[pos + 2], b[pos + 3]]));
        let seg = b.get(pos + 4..pos + 2 + len)?;
        if marker == 0xE0 && seg.len() >= 12 && seg.starts_with(b"JFIF\0") {
            let x = f64::from(u16::from_be_bytes([seg[8], seg[9]]));
            let y = f64::from(u16::from_be_bytes([seg[10], seg[11]]));
            return match seg[7] {
                1 => density(x, y, Unit::Inch),
                2 => density(x, y, Unit::Centimetre),
                _ => None,
            };
        }
        pos += 2 + len;
    }
    None
}

/// BMP: `biXPelsPerMeter`/`biYPelsPerMeter` of a BITMAPINFOHEADER or later.
fn bmp(b: &[u8]) -> Option<Density> {
    let header = u32::from_le_bytes(b.get(14..18)?.try_into().ok()?);
    if header < 40 {
        return None;
    }
    let x = i32::from_le_bytes(b.get(38..42)?.try_into().ok()?);
    let y = i32::from_le_bytes(b.get(42..46)?.try_into().ok()?);
    density(f64::from(x), f64::from(y), Unit::Metre)
}

/// EXIF (a raw TIFF-structured block, as returned by image's `exif_metadata`):
/// `XResolution`, `YResolution`, `ResolutionUnit` (2 = inch, default; 3 = cm).
pub(crate) fn from_exif(exif: &[u8]) -> Option<Density> {
    use exif::{In, Tag, Value};
    let data = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    let parsed = exif::Reader::new().read_raw(data.to_vec()).ok()?;
    let rational = |tag| match parsed.get_field(tag, In::PRIMARY).map(|f| &f.value) {
        Some(Value::Rational(v)) => v.first().map(|r| r.to_f64()),
        _ => None,
    };
    let x = rational(Tag::XResolution)?;
    let y = rational(Tag::YResolution).unwrap_or(x);
    let unit = match parsed
        .get_field(Tag::ResolutionUnit, In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
    {
        None | Some(2) => Unit::Inch,
        Some(3) => Unit::Centimetre,
        Some(_) => return None,
    };
    density(x, y, unit)
}

/// TIFF resolution tags, already read: `unit` 2 = inch (default), 3 = cm, 1 = none.
pub(crate) fn from_tiff_tags(x: Option<f64>, y: Option<f64>, unit: Option<u64>) -> Option<Density> {
    let x = x?;
    let y = y.unwrap_or(x);
    match unit {
        None | Some(2) => density(x, y, Unit::Inch),
        Some(3) => density(x, y, Unit::Centimetre),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dpi(d: Option<Density>) -> Option<u32> {
        d.map(|d| d.horizontal_dpi(false))
    }

    #[test]
    fn png_phys() {
        let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
        b.extend_from_slice(&[0, 0, 0, 13]);
        b.extend_from_slice(b"IHDR");
        b.extend_from_slice(&[0; 13 + 4]);
        b.extend_from_slice(&[0, 0, 0, 9]);
        b.extend_from_slice(b"pHYs");
        b.extend_from_slice(&11811u32.to_be_bytes()); // 300 dpi
        b.extend_from_slice(&11811u32.to_be_bytes());
        b.push(1);
        b.extend_from_slice(&[0; 4]);
        assert_eq!(dpi(png(&b)), Some(300));
        assert_eq!(dpi(png(&b[..b.len() - 10])), None);
    }

    #[test]
    fn jfif_units() {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
        b.extend_from_slice(b"JFIF\0\x01\x02\x01\x01\x2c\x01\x2c\0\0");
        assert_eq!(dpi(jfif(&b)), Some(300));
        b[13] = 0; // aspect ratio only
        assert_eq!(dpi(jfif(&b)), None);
        b[13] = 2; // dots per cm: 300/cm = 762 dpi
        assert_eq!(dpi(jfif(&b)), Some(762));
    }

    #[test]
    fn implausible_values_are_not_stated() {
        assert_eq!(dpi(density(1.0, 1.0, Unit::Inch)), None);
        assert_eq!(dpi(density(0.0, 300.0, Unit::Inch)), Some(300));
        assert_eq!(dpi(from_tiff_tags(Some(200.0), None, None)), Some(200));
        assert_eq!(dpi(from_tiff_tags(Some(200.0), None, Some(1))), None);
    }
}
