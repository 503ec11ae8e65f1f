//! Single-image sources (PNG, JPEG, WebP, BMP) through the `image` crate: the pixel budget is
//! checked from the header before any pixel is decoded, then the file's structure (see
//! `integrity.rs`), then the image is decoded, turned upright from its EXIF orientation, and
//! converted to RGB on white.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};

use super::error::IngestError;
use super::sniff::MediaType;
use super::{check_pixels, density, integrity, pixels, IngestConfig, RasterPage};

/// Headroom of the decoder's allocation limit over the decoded image itself.
const DECODER_SLACK_BYTES: u64 = 64 << 20;
/// Bytes per pixel of the widest output the decoders produce (RGBA, 32-bit float).
const MAX_BYTES_PER_PIXEL: u64 = 16;

/// Read the header only and check the pixel budget.
pub(crate) fn check_header(
    bytes: &[u8],
    media: MediaType,
    cfg: &IngestConfig,
) -> Result<(), IngestError> {
    let decoder = open(bytes, media)?;
    check_pixels(media, None, decoder.dimensions(), cfg)?;
    integrity::check(bytes, media)
}

/// Decode the whole image as page 1.
pub(crate) fn decode(
    bytes: &[u8],
    media: MediaType,
    cfg: &IngestConfig,
) -> Result<RasterPage, IngestError> {
    let mut decoder = open(bytes, media)?;
    check_pixels(media, None, decoder.dimensions(), cfg)?;
    integrity::check(bytes, media)?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(
        cfg.max_page_pixels
            .saturating_mul(MAX_BYTES_PER_PIXEL)
            .saturating_add(DECODER_SLACK_BYTES),
    );
    decoder
        .set_limits(limits)
        .map_err(|e| map_image_error(media, e))?;

    // Metadata problems never cost the page: log them and go on without.
    let exif = decoder.exif_metadata().unwrap_or_else(|e| {
        tracing::warn!(%media, error = %e, "unreadable EXIF block ignored");
        None
    });
    let orientation = decoder.orientation().unwrap_or_else(|e| {
        tracing::warn!(%media, error = %e, "unreadable orientation ignored");
        Orientation::NoTransforms
    });

    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(media, e))?;
    img.apply_orientation(orientation);
    let image = pixels::flatten_to_rgb(img);

    let swapped = pixels::swaps_axes(orientation);
    let dpi = density::from_header(bytes, media)
        .or_else(|| exif.as_deref().and_then(density::from_exif))
        .map(|d| d.horizontal_dpi(swapped));
    tracing::debug!(%media, width = image.width(), height = image.height(), ?dpi, ?orientation, "image decoded");
    Ok(RasterPage {
        page: 1,
        image,
        dpi,
    })
}

/// A decoder positioned after the header, without limits (the budget is checked by the caller
/// from the dimensions, so a huge header gives our own error and not a limit error).
fn open(bytes: &[u8], media: MediaType) -> Result<impl ImageDecoder + '_, IngestError> {
    let format = match media {
        MediaType::Png => ImageFormat::Png,
        MediaType::Jpeg => ImageFormat::Jpeg,
        MediaType::Webp => ImageFormat::WebP,
        MediaType::Bmp => ImageFormat::Bmp,
        MediaType::Tiff => ImageFormat::Tiff,
        MediaType::Pdf => {
            return Err(IngestError::unsupported_feature(
                media,
                "a PDF is not an image (internal routing error)",
            ))
        }
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.no_limits();
    reader.into_decoder().map_err(|e| map_image_error(media, e))
}

fn map_image_error(media: MediaType, e: ImageError) -> IngestError {
    match e {
        ImageError::Decoding(d) => IngestError::corrupt(media, d.to_string()),
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            IngestError::corrupt(media, "the file ends too early")
        }
        ImageError::IoError(io) => IngestError::corrupt(media, io.to_string()),
        ImageError::Unsupported(u) => IngestError::unsupported_feature(media, u.to_string()),
        ImageError::Limits(l) => IngestError::corrupt(
            media,
            format!("decoding needs more memory than the image size allows ({l})"),
        ),
        ImageError::Parameter(p) => IngestError::corrupt(media, p.to_string()),
        ImageError::Encoding(e) => IngestError::Render {
            action: format!("converting a {media}"),
            detail: e.to_string(),
        },
    }
}
