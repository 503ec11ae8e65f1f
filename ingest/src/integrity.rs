//! Structural completeness of single-image files, checked without decoding pixels, so that
//! [`super::Ingestor::inspect`] catches the common damage (a cut-short upload) up front:
//! PNG chunks up to `IEND`, a JPEG's end-of-image marker after its scan data, WebP's RIFF size,
//! BMP pixel data within the file. TIFF strips and tiles are checked in `tiff.rs`.

use super::error::IngestError;
use super::sniff::MediaType;

/// `Err(CorruptFile)` when the file visibly ends before its data does.
pub(crate) fn check(bytes: &[u8], media: MediaType) -> Result<(), IngestError> {
    let problem = match media {
        MediaType::Png => png(bytes),
        MediaType::Jpeg => jpeg(bytes),
        MediaType::Webp => webp(bytes),
        MediaType::Bmp => bmp(bytes),
        MediaType::Pdf | MediaType::Tiff => None,
    };
    match problem {
        Some(detail) => Err(IngestError::corrupt(media, detail)),
        None => Ok(()),
    }
}

/// Every chunk within the file, through `IEND`.
fn png(b: &[u8]) -> Option<String> {
    let mut pos = 8usize;
    let mut seen_idat = false;
    loop {
        let Some(head) = b.get(pos..pos + 8) else {
            return Some("the file ends before its IEND chunk (cut short)".into());
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let end = pos.saturating_add(12).saturating_add(len);
        if end > b.len() {
            return Some(format!(
                "the {} chunk runs past the end of the file (cut short)",
                String::from_utf8_lossy(&head[4..8])
            ));
        }
        match &head[4..8] {
            b"IDAT" => seen_idat = true,
            b"IEND" if seen_idat => return None,
            b"IEND" => return Some("there is no image data (no IDAT chunk)".into()),
            _ => {}
        }
        pos = end;
    }
}

/// Markers walked to the first scan, then an end-of-image marker (`FF D9`) somewhere after it
/// (entropy-coded data cannot contain one; trailing bytes after it are allowed).
fn jpeg(b: &[u8]) -> Option<String> {
    let mut pos = 2usize;
    loop {
        let Some(&[ff, marker]) = b.get(pos..pos + 2) else {
            return Some("the file ends inside its headers (cut short)".into());
        };
        if ff != 0xFF {
            return Some(format!(
                "unexpected byte {ff:#04x} where a marker should be"
            ));
        }
        match marker {
            0xFF => pos += 1,
            0xD8 | 0x01 | 0xD0..=0xD7 => pos += 2,
            0xD9 => return Some("the image ends before any scan data".into()),
            _ => {
                let Some(&[hi, lo]) = b.get(pos + 2..pos + 4) else {
                    return Some("the file ends inside its headers (cut short)".into());
                };
                let seg_end = pos + 2 + usize::from(u16::from_be_bytes([hi, lo]));
                if seg_end > b.len() {
                    return Some(
                        "a header segment runs past the end of the file (cut short)".into(),
                    );
                }
                if marker == 0xDA {
                    let scan = &b[seg_end..];
                    return if scan.windows(2).any(|w| w == [0xFF, 0xD9]) {
                        None
                    } else {
                        Some("the file ends inside the image data (no end-of-image marker; cut short)".into())
                    };
                }
                pos = seg_end;
            }
        }
    }
}

/// The RIFF container's declared size fits in the file.
fn webp(b: &[u8]) -> Option<String> {
    let declared = u32::from_le_bytes(b.get(4..8)?.try_into().ok()?) as usize;
    let need = declared.saturating_add(8);
    (need > b.len()).then(|| {
        format!(
            "the file has {} bytes but its header declares {need} (cut short)",
            b.len()
        )
    })
}

/// Uncompressed (or bit-field) BMP: the pixel rows fit between the data offset and the end.
fn bmp(b: &[u8]) -> Option<String> {
    let u32_at = |i: usize| {
        b.get(i..i + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    let offset = u32_at(10)? as usize;
    let header = u32_at(14)?;
    if header < 40 {
        return None; // OS/2 core header: leave it to the decoder
    }
    let width = u32_at(18)? as i32;
    let height = (u32_at(22)? as i32).unsigned_abs();
    let bpp = u16::from_le_bytes(b.get(28..30)?.try_into().ok()?);
    let compression = u32_at(30)?;
    if !matches!(compression, 0 | 3 | 6) || width <= 0 {
        return None; // RLE and embedded JPEG/PNG sizes are not known up front
    }
    let row = (u64::from(width.unsigned_abs()) * u64::from(bpp)).div_ceil(32) * 4;
    let need = (offset as u64).saturating_add(row.saturating_mul(u64::from(height)));
    (need > b.len() as u64).then(|| {
        format!(
            "the pixel data needs {need} bytes but the file has {} (cut short)",
            b.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_needs_iend_after_idat() {
        let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
        b.extend_from_slice(&[0, 0, 0, 1]);
        b.extend_from_slice(b"IDAT\0\0\0\0\0");
        let mut whole = b.clone();
        whole.extend_from_slice(&[0, 0, 0, 0]);
        whole.extend_from_slice(b"IEND\0\0\0\0");
        assert_eq!(png(&whole), None);
        assert!(png(&b).is_some());
        assert!(png(&whole[..whole.len() - 2]).is_some());
    }

    #[test]
    fn jpeg_needs_eoi_after_scan() {
        let whole = [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xDA, 0, 2, 1, 2, 0xFF, 0x00, 3, 0xFF, 0xD9,
        ];
        assert_eq!(jpeg(&whole), None);
        assert!(jpeg(&whole[..whole.len() - 2]).is_some());
        assert!(jpeg(&whole[..5]).is_some());
    }

    #[test]
    fn webp_size() {
        let mut b = b"RIFF\x10\0\0\0WEBP".to_vec();
        assert!(webp(&b).is_some());
        b.resize(24, 0);
        assert_eq!(webp(&b), None);
    }
}
