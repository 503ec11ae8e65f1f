//! Type detection from magic bytes: [`sniff`] accepts PDF, PNG, JPEG, TIFF (BigTIFF too), WebP
//! and BMP, and names what it recognises among the rest (Office files, archives, other image
//! formats, HTML, plain text...) so the error can say what was sent. File names and declared
//! content types are never trusted.

use std::fmt;

use super::error::IngestError;

/// A supported source type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaType {
    Pdf,
    Png,
    Jpeg,
    /// Single- or multi-page TIFF (classic or BigTIFF).
    Tiff,
    Webp,
    Bmp,
}

impl MediaType {
    /// IANA media type, e.g. `application/pdf`.
    pub fn mime(self) -> &'static str {
        match self {
            MediaType::Pdf => "application/pdf",
            MediaType::Png => "image/png",
            MediaType::Jpeg => "image/jpeg",
            MediaType::Tiff => "image/tiff",
            MediaType::Webp => "image/webp",
            MediaType::Bmp => "image/bmp",
        }
    }

    /// Short human name, e.g. `PDF`.
    pub fn name(self) -> &'static str {
        match self {
            MediaType::Pdf => "PDF",
            MediaType::Png => "PNG",
            MediaType::Jpeg => "JPEG",
            MediaType::Tiff => "TIFF",
            MediaType::Webp => "WebP",
            MediaType::Bmp => "BMP",
        }
    }

    /// Usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            MediaType::Pdf => "pdf",
            MediaType::Png => "png",
            MediaType::Jpeg => "jpg",
            MediaType::Tiff => "tif",
            MediaType::Webp => "webp",
            MediaType::Bmp => "bmp",
        }
    }

    /// `true` for PDF (rendered by PDFium), `false` for raster images.
    pub fn is_pdf(self) -> bool {
        self == MediaType::Pdf
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How far into the file a `%PDF-` header may start (PDFium and Acrobat accept leading junk).
const PDF_HEADER_WINDOW: usize = 1024;

/// Detect the type of `bytes` from their content.
///
/// Errors: [`IngestError::EmptyFile`] for no bytes; [`IngestError::UnsupportedType`] naming what
/// the bytes look like otherwise.
pub fn sniff(bytes: &[u8]) -> Result<MediaType, IngestError> {
    if bytes.is_empty() {
        return Err(IngestError::EmptyFile);
    }
    if let Some(t) = supported(bytes) {
        return Ok(t);
    }
    Err(IngestError::UnsupportedType {
        found: describe_unsupported(bytes),
    })
}

fn supported(b: &[u8]) -> Option<MediaType> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(MediaType::Png);
    }
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(MediaType::Jpeg);
    }
    if b.starts_with(b"II*\0")
        || b.starts_with(b"MM\0*")
        || b.starts_with(b"II+\0")
        || b.starts_with(b"MM\0+")
    {
        return Some(MediaType::Tiff);
    }
    if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        return Some(MediaType::Webp);
    }
    if is_bmp(b) {
        return Some(MediaType::Bmp);
    }
    let window = &b[..b.len().min(PDF_HEADER_WINDOW)];
    if find(window, b"%PDF-").is_some() {
        return Some(MediaType::Pdf);
    }
    None
}

/// "BM" alone is too weak (text can start with it): also require a known DIB header size.
fn is_bmp(b: &[u8]) -> bool {
    if b.len() < 18 || !b.starts_with(b"BM") {
        return false;
    }
    let dib = u32::from_le_bytes([b[14], b[15], b[16], b[17]]);
    matches!(dib, 12 | 16 | 40 | 52 | 56 | 64 | 108 | 124)
}

/// A short human description of an unsupported file, for the error message.
fn describe_unsupported(b: &[u8]) -> String {
    if b.starts_with(b"PK\x03\x04") || b.starts_with(b"PK\x05\x06") {
        return describe_zip(b);
    }
    let magic: &[(&[u8], &str)] = &[
        (
            b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1",
            "legacy Microsoft Office document (doc/xls/ppt)",
        ),
        (b"GIF87a", "GIF image"),
        (b"GIF89a", "GIF image"),
        (b"\x00\x00\x00\x0CjP  \r\n\x87\n", "JPEG 2000 image"),
        (b"\xFF\x4F\xFF\x51", "JPEG 2000 codestream"),
        (b"AT&TFORM", "DjVu document"),
        (b"%!PS", "PostScript document"),
        (b"{\\rtf", "RTF document"),
        (b"8BPS", "Photoshop document (PSD)"),
        (b"\x1F\x8B", "gzip archive"),
        (b"7z\xBC\xAF\x27\x1C", "7-Zip archive"),
        (b"Rar!\x1A\x07", "RAR archive"),
        (b"\x7FELF", "executable (ELF)"),
        (b"MZ", "Windows executable"),
        (b"\x00\x00\x01\x00", "icon (ICO)"),
        (b"\x97JB2\r\n\x1A\n", "JBIG2 image"),
    ];
    for (m, name) in magic {
        if b.starts_with(m) {
            return (*name).to_string();
        }
    }
    if b.len() >= 12 && &b[4..8] == b"ftyp" {
        return match &b[8..12] {
            b"avif" | b"avis" => "AVIF image".into(),
            b"heic" | b"heix" | b"heim" | b"heis" | b"mif1" | b"msf1" => "HEIC/HEIF image".into(),
            b"qt  " => "QuickTime video".into(),
            _ => "MP4/ISO media file".into(),
        };
    }
    if b.len() >= 12 && &b[0..4] == b"RIFF" {
        return match &b[8..12] {
            b"WAVE" => "WAV audio".into(),
            b"AVI " => "AVI video".into(),
            _ => "RIFF file".into(),
        };
    }
    if b.starts_with(&[0xFF, 0xFE]) || b.starts_with(&[0xFE, 0xFF]) {
        return "plain text (UTF-16)".into();
    }
    if let Some(text) = as_text(b) {
        return describe_text(&text);
    }
    let head: Vec<String> = b.iter().take(4).map(|x| format!("{x:02x}")).collect();
    format!("unknown binary data (starts with {})", head.join(" "))
}

/// Zip containers: Office Open XML, OpenDocument, EPUB, or a plain archive. Local file headers
/// put member names in clear near the start, so a substring search is enough to name them.
fn describe_zip(b: &[u8]) -> String {
    let head = &b[..b.len().min(64 * 1024)];
    let first = |table: &[(&[u8], &str)]| {
        table
            .iter()
            .find(|(needle, _)| find(head, needle).is_some())
            .map(|(_, name)| name.to_string())
    };
    if find(head, b"mimetype").is_some() {
        if let Some(name) = first(&[
            (
                b"application/vnd.oasis.opendocument.text",
                "OpenDocument text (odt)",
            ),
            (
                b"application/vnd.oasis.opendocument.spreadsheet",
                "OpenDocument spreadsheet (ods)",
            ),
            (
                b"application/vnd.oasis.opendocument.presentation",
                "OpenDocument presentation (odp)",
            ),
            (b"application/epub+zip", "EPUB e-book"),
        ]) {
            return name;
        }
    }
    let ooxml = find(head, b"[Content_Types].xml").is_some();
    if ooxml || find(head, b"_rels/.rels").is_some() {
        if let Some(name) = first(&[
            (b"word/", "Word document (docx)"),
            (b"xl/", "Excel workbook (xlsx)"),
            (b"ppt/", "PowerPoint presentation (pptx)"),
        ]) {
            return name;
        }
        return "Office Open XML package (docx/xlsx/pptx)".into();
    }
    "ZIP archive".into()
}

/// The first 4 KiB as text, when they are UTF-8 without control bytes.
fn as_text(b: &[u8]) -> Option<String> {
    let head = &b[..b.len().min(4096)];
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // A multi-byte character cut at the 4 KiB boundary is still text.
        Err(e) if e.error_len().is_none() && e.valid_up_to() + 4 > head.len() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    let bad = text
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0C'))
        .count();
    (bad == 0).then(|| text.trim_start_matches('\u{FEFF}').to_string())
}

fn describe_text(text: &str) -> String {
    let start: String = text.trim_start().chars().take(512).collect();
    let lower = start.to_ascii_lowercase();
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        return "HTML document".into();
    }
    if lower.starts_with("<svg") || (lower.starts_with("<?xml") && lower.contains("<svg")) {
        return "SVG image".into();
    }
    if lower.starts_with("<?xml") {
        return "XML document".into();
    }
    if lower.starts_with('{') || lower.starts_with('[') {
        return "JSON or other structured text".into();
    }
    "plain text".into()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsupported(b: &[u8]) -> String {
        match sniff(b) {
            Err(IngestError::UnsupportedType { found }) => found,
            other => panic!("expected unsupported, got {other:?}"),
        }
    }

    #[test]
    fn supported_types() {
        assert_eq!(sniff(b"%PDF-1.7\n").ok(), Some(MediaType::Pdf));
        assert_eq!(sniff(b"junk\r\n%PDF-1.4\n").ok(), Some(MediaType::Pdf));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n....").ok(), Some(MediaType::Png));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]).ok(), Some(MediaType::Jpeg));
        assert_eq!(sniff(b"II*\0\x08\0\0\0").ok(), Some(MediaType::Tiff));
        assert_eq!(sniff(b"MM\0*\0\0\0\x08").ok(), Some(MediaType::Tiff));
        assert_eq!(sniff(b"II+\0\x08\0\0\0").ok(), Some(MediaType::Tiff));
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 ").ok(), Some(MediaType::Webp));
        let mut bmp = b"BM\0\0\0\0\0\0\0\0\x36\0\0\0".to_vec();
        bmp.extend_from_slice(&40u32.to_le_bytes());
        assert_eq!(sniff(&bmp).ok(), Some(MediaType::Bmp));
    }

    #[test]
    fn empty_is_its_own_error() {
        assert!(matches!(sniff(b""), Err(IngestError::EmptyFile)));
    }

    #[test]
    fn unsupported_types_are_named() {
        assert_eq!(unsupported(b"Hello, world.\nSecond line.\n"), "plain text");
        assert_eq!(unsupported(b"BMW and Audi\n"), "plain text");
        assert_eq!(
            unsupported(b"  <!DOCTYPE html><html></html>"),
            "HTML document"
        );
        assert_eq!(unsupported(b"GIF89a\x01\0\x01\0"), "GIF image");
        assert_eq!(
            unsupported(b"PK\x03\x04....[Content_Types].xml....word/document.xml"),
            "Word document (docx)"
        );
        assert_eq!(
            unsupported(b"PK\x03\x04....[Content_Types].xml....xl/workbook.xml"),
            "Excel workbook (xlsx)"
        );
        assert_eq!(unsupported(b"PK\x03\x04..readme.txt"), "ZIP archive");
        assert_eq!(
            unsupported(b"\0\0\0\x1cftypheic\0\0\0\0"),
            "HEIC/HEIF image"
        );
        assert!(unsupported(&[0x00, 0x01, 0x02, 0x03, 0x04]).starts_with("unknown binary data"));
    }
}
