//! Page images as PNG, the format pages are stored in between ingest and workers.

use crate::IngestError;
use bytes::Bytes;

/// PNG with fast compression: page images are read back once by a worker, so encoding speed
/// matters more than size.
pub fn encode_png(img: &image::RgbImage) -> Result<Bytes, IngestError> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let mut out = Vec::with_capacity(img.as_raw().len() / 4);
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Sub)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| IngestError::Sink(format!("PNG encoding failed: {e}")))?;
    Ok(Bytes::from(out))
}
