//! `IngestError`: everything that can go wrong while sniffing, validating or rasterizing a
//! source, with a stable snake_case [`IngestError::code`] and a split between the user's fault
//! ([`IngestError::is_input_error`]: CLI exit 3, HTTP 4xx) and ours
//! ([`IngestError::is_runtime_error`]: CLI exit 4).

use std::path::PathBuf;

use super::sniff::MediaType;

/// Error from [`super::sniff`], [`super::Ingestor`] or [`super::PageRange`].
///
/// Messages are written for the person who sent the file; [`IngestError::code`] is for machines.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// Zero bytes.
    #[error("the file is empty (0 bytes)")]
    EmptyFile,

    /// Not one of the supported types; `found` names what it looks like ("docx", "plain text", ...).
    #[error(
        "unsupported file type: {found}; supported types are PDF, PNG, JPEG, TIFF, WebP and BMP"
    )]
    UnsupportedType { found: String },

    /// A supported type using a variant we cannot decode (a palette TIFF, an unknown compression...).
    #[error("this {format} uses something Folio cannot decode: {detail}")]
    UnsupportedFeature { format: MediaType, detail: String },

    /// The bytes do not form a valid file of the sniffed type (truncated, damaged).
    #[error("the {format} file is damaged or truncated: {detail}")]
    CorruptFile { format: MediaType, detail: String },

    /// The PDF needs a password and none was given.
    #[error("the PDF is encrypted; pass its password (--password) to open it")]
    EncryptedPdf,

    /// A password was given and it does not open the PDF.
    #[error("the password given does not open this encrypted PDF")]
    WrongPassword,

    /// A well-formed document without a single page.
    #[error("the {format} has no pages")]
    NoPages { format: MediaType },

    /// A page whose pixel count (from the header, before decoding) is above the per-page budget.
    #[error(
        "{format}{at} is {width}×{height} = {mp} MP, above the {limit} MP per-page limit",
        at = page_suffix(*page),
        mp = megapixels(u64::from(*width) * u64::from(*height)),
        limit = megapixels(*limit_pixels)
    )]
    PageTooLarge {
        format: MediaType,
        /// 1-based page, for multi-page sources; `None` for a single image.
        page: Option<u32>,
        width: u32,
        height: u32,
        limit_pixels: u64,
    },

    /// A requested page number that the document does not have.
    #[error("page {page} does not exist: the document has {page_count} page(s)")]
    PageOutOfRange { page: u32, page_count: u32 },

    /// A page selection that does not parse ("0", "5-2", "abc").
    #[error("invalid page selection {input:?}: {reason} (expected e.g. \"3\", \"2-5\", \"2-\" or \"1,4-6\")")]
    InvalidPageRange { input: String, reason: String },

    /// More pages than the configured maximum.
    #[error("the document has {count}{more} pages, above the limit of {limit}",
        more = if *at_least { " or more" } else { "" })]
    TooManyPages {
        count: u32,
        /// `true` when counting stopped at the limit (multi-page TIFF).
        at_least: bool,
        limit: u32,
    },

    /// The PDFium library file does not exist.
    #[error("the PDFium library is missing at {}; run scripts/setup (or point FOLIO_RUNTIME_DIR at the runtime folder)", path.display())]
    RuntimeMissing { path: PathBuf },

    /// The PDFium library exists but cannot be loaded (wrong build, wrong architecture).
    #[error("the PDFium library at {} cannot be loaded ({reason}); run scripts/setup to fetch the pinned build", path.display())]
    RuntimeInvalid { path: PathBuf, reason: String },

    /// PDFium failed on something that is not the file's fault (e.g. a bitmap allocation).
    #[error("PDFium failed while {action}: {detail}")]
    Render { action: String, detail: String },

    /// The page callback of [`super::Ingestor::rasterize`] failed.
    #[error("the page consumer failed: {0}")]
    Sink(String),

    /// The render process went past the per-document wall-time limit and was stopped.
    #[error("rendering took longer than the {limit_secs} s limit for one document{at}; the document is too expensive to render", at = after(*after_page))]
    RenderTimeout {
        limit_secs: u64,
        /// The last page rendered before the limit hit, if any.
        after_page: Option<u32>,
    },

    /// The document needs more memory than a render process may use.
    #[error("rendering{at} needs more memory than the {limit_mib} MiB limit of a render process{detail}", at = page_suffix(*page), detail = detail_suffix(detail))]
    RenderTooLarge {
        limit_mib: u64,
        page: Option<u32>,
        detail: String,
    },

    /// The render process died while working on this document (a renderer crash); only this
    /// document is affected.
    #[error("the renderer crashed on this document{at} ({how}); other documents are not affected", at = after(*after_page))]
    RenderCrashed {
        /// The last page rendered before the crash, if any.
        after_page: Option<u32>,
        how: String,
    },

    /// An error the render process reported, carried across the process boundary with its
    /// code, message and class.
    #[error("{message}")]
    Remote {
        code: &'static str,
        message: String,
        input: bool,
        runtime: bool,
    },

    /// Reading or writing outside the decoders failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl IngestError {
    /// Stable machine-readable code, snake_case; never changes for a given variant.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::EmptyFile => "empty_file",
            IngestError::UnsupportedType { .. } => "unsupported_type",
            IngestError::UnsupportedFeature { .. } => "unsupported_feature",
            IngestError::CorruptFile { .. } => "corrupt_file",
            IngestError::EncryptedPdf => "encrypted_pdf",
            IngestError::WrongPassword => "wrong_password",
            IngestError::NoPages { .. } => "no_pages",
            IngestError::PageTooLarge { .. } => "page_too_large",
            IngestError::PageOutOfRange { .. } => "page_out_of_range",
            IngestError::InvalidPageRange { .. } => "invalid_page_range",
            IngestError::TooManyPages { .. } => "too_many_pages",
            IngestError::RuntimeMissing { .. } => "runtime_missing",
            IngestError::RuntimeInvalid { .. } => "runtime_invalid",
            IngestError::Render { .. } => "render_failed",
            IngestError::RenderTimeout { .. } => "render_timeout",
            IngestError::RenderTooLarge { .. } => "render_too_large",
            IngestError::RenderCrashed { .. } => "render_crashed",
            IngestError::Remote { code, .. } => code,
            IngestError::Sink(_) => "sink",
            IngestError::Io { .. } => "io",
        }
    }

    /// `true` when the user's file or arguments are at fault (CLI exit 3, HTTP 4xx).
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            IngestError::EmptyFile
                | IngestError::UnsupportedType { .. }
                | IngestError::UnsupportedFeature { .. }
                | IngestError::CorruptFile { .. }
                | IngestError::EncryptedPdf
                | IngestError::WrongPassword
                | IngestError::NoPages { .. }
                | IngestError::PageTooLarge { .. }
                | IngestError::PageOutOfRange { .. }
                | IngestError::InvalidPageRange { .. }
                | IngestError::TooManyPages { .. }
                | IngestError::RenderTimeout { .. }
                | IngestError::RenderTooLarge { .. }
                | IngestError::RenderCrashed { .. }
                | IngestError::Remote { input: true, .. }
        )
    }

    /// `true` when the installation is at fault: the native runtime is missing or unusable
    /// (CLI exit 4; HTTP 503).
    pub fn is_runtime_error(&self) -> bool {
        matches!(
            self,
            IngestError::RuntimeMissing { .. }
                | IngestError::RuntimeInvalid { .. }
                | IngestError::Remote { runtime: true, .. }
        )
    }

    pub(crate) fn corrupt(format: MediaType, detail: impl Into<String>) -> Self {
        IngestError::CorruptFile {
            format,
            detail: detail.into(),
        }
    }

    pub(crate) fn unsupported_feature(format: MediaType, detail: impl Into<String>) -> Self {
        IngestError::UnsupportedFeature {
            format,
            detail: detail.into(),
        }
    }
}

/// " page 3" or nothing.
fn page_suffix(page: Option<u32>) -> String {
    page.map(|p| format!(" page {p}")).unwrap_or_default()
}

/// " (after page 3)" or nothing.
fn after(page: Option<u32>) -> String {
    page.map(|p| format!(" (after page {p})"))
        .unwrap_or_default()
}

/// ": detail" or nothing.
fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// Every code [`IngestError::code`] can return, so a code read back from the render process
/// becomes the same `&'static str` (an unknown one is `render_failed`).
pub(crate) fn known_code(code: &str) -> &'static str {
    const CODES: &[&str] = &[
        "empty_file",
        "unsupported_type",
        "unsupported_feature",
        "corrupt_file",
        "encrypted_pdf",
        "wrong_password",
        "no_pages",
        "page_too_large",
        "page_out_of_range",
        "invalid_page_range",
        "too_many_pages",
        "runtime_missing",
        "runtime_invalid",
        "render_failed",
        "render_timeout",
        "render_too_large",
        "render_crashed",
        "sink",
        "io",
    ];
    CODES
        .iter()
        .find(|c| **c == code)
        .copied()
        .unwrap_or("render_failed")
}

/// Pixels as megapixels for messages: "900", "50", "0.3", "12.5".
fn megapixels(pixels: u64) -> String {
    let tenths = (pixels + 50_000) / 100_000;
    if tenths % 10 == 0 {
        format!("{}", tenths / 10)
    } else {
        format!("{}.{}", tenths / 10, tenths % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_too_large_message_names_size_and_limit() {
        let e = IngestError::PageTooLarge {
            format: MediaType::Png,
            page: None,
            width: 30_000,
            height: 30_000,
            limit_pixels: 50_000_000,
        };
        assert_eq!(
            e.to_string(),
            "PNG is 30000×30000 = 900 MP, above the 50 MP per-page limit"
        );
        let e = IngestError::PageTooLarge {
            format: MediaType::Tiff,
            page: Some(3),
            width: 5000,
            height: 2500,
            limit_pixels: 10_000_000,
        };
        assert_eq!(
            e.to_string(),
            "TIFF page 3 is 5000×2500 = 12.5 MP, above the 10 MP per-page limit"
        );
    }

    #[test]
    fn codes_and_classes() {
        assert_eq!(IngestError::EmptyFile.code(), "empty_file");
        assert!(IngestError::EmptyFile.is_input_error());
        let missing = IngestError::RuntimeMissing {
            path: PathBuf::from("/nope/libpdfium.so"),
        };
        assert_eq!(missing.code(), "runtime_missing");
        assert!(!missing.is_input_error());
        assert!(missing.is_runtime_error());
        assert!(missing.to_string().contains("run scripts/setup"));
        let sink = IngestError::Sink("disk full".into());
        assert!(!sink.is_input_error() && !sink.is_runtime_error());
    }
}
