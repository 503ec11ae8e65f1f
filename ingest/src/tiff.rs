//! TIFF sources through the `tiff` crate: one page per IFD of the main chain (reduced-resolution
//! thumbnails are skipped), dimensions and colour type checked from each IFD before decoding,
//! then decoded and converted to upright 8-bit RGB: bilevel and 2/4-bit grey, 8/16-bit grey,
//! RGB, CMYK (naive), YCbCr (JPEG-in-TIFF), float; alpha flattened on white; planar or chunky.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageBuffer, Luma, LumaA, Rgb, Rgba};
use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::tags::Tag;
use tiff::{ColorType, TiffError};

use super::error::IngestError;
use super::sniff::MediaType;
use super::{
    check_page_count, check_pixels, density, pixels, resolve_pages, IngestConfig, RasterPage,
};

const TIFF: MediaType = MediaType::Tiff;
/// Bytes per pixel of the widest layout we decode (RGBA, 32-bit float).
const MAX_BYTES_PER_PIXEL: u64 = 16;

type TiffDecoder<'a> = Decoder<Cursor<&'a [u8]>>;

/// Validate every page IFD (dimensions, colour type) and count the pages.
pub(crate) fn page_count(bytes: &[u8], cfg: &IngestConfig) -> Result<u32, IngestError> {
    let (_, ifds) = page_ifds(bytes, cfg)?;
    Ok(ifds.len() as u32)
}

/// Decode `pages` (empty = all) one at a time, handing each to `on_page`.
pub(crate) fn rasterize(
    bytes: &[u8],
    pages: &[u32],
    cfg: &IngestConfig,
    on_page: &mut dyn FnMut(RasterPage) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let (mut decoder, ifds) = page_ifds(bytes, cfg)?;
    for page in resolve_pages(pages, ifds.len() as u32)? {
        let ifd = ifds[(page - 1) as usize];
        decoder.seek_to_image(ifd).map_err(map_tiff_error)?;
        let raster = decode_page(&mut decoder, page, cfg)?;
        on_page(raster)?;
    }
    Ok(())
}

/// Open the file and walk its IFD chain: the indices of the IFDs that are pages.
fn page_ifds<'a>(
    bytes: &'a [u8],
    cfg: &IngestConfig,
) -> Result<(TiffDecoder<'a>, Vec<usize>), IngestError> {
    let mut decoder = Decoder::new(Cursor::new(bytes)).map_err(map_tiff_error)?;
    let budget = usize::try_from(cfg.max_page_pixels.saturating_mul(MAX_BYTES_PER_PIXEL))
        .unwrap_or(usize::MAX);
    let mut limits = Limits::default();
    limits.decoding_buffer_size = budget;
    limits.intermediate_buffer_size = budget;
    decoder = decoder.with_limits(limits);

    // Thumbnails do not count as pages but still cost a walk: bound the chain too.
    let max_ifds = (cfg.max_pages as usize).saturating_mul(2).saturating_add(2);
    let mut ifds = Vec::new();
    let mut index = 0usize;
    loop {
        if !is_thumbnail(&mut decoder) {
            let page = ifds.len() as u32 + 1;
            if page > cfg.max_pages {
                check_page_count(TIFF, page, true, cfg)?;
            }
            check_pixels(
                TIFF,
                Some(page),
                decoder.dimensions().map_err(map_tiff_error)?,
                cfg,
            )?;
            decoder.colortype().map_err(map_tiff_error)?;
            check_compression(&mut decoder, page)?;
            check_chunks_in_file(&mut decoder, page, bytes.len())?;
            ifds.push(index);
        }
        if !decoder.more_images() {
            break;
        }
        index += 1;
        if index >= max_ifds {
            return Err(IngestError::TooManyPages {
                count: ifds.len() as u32,
                at_least: true,
                limit: cfg.max_pages,
            });
        }
        decoder.next_image().map_err(map_tiff_error)?;
    }
    check_page_count(TIFF, ifds.len() as u32, false, cfg)?;
    Ok((decoder, ifds))
}

/// Compression schemes the decoder handles (none, CCITT G4, LZW, JPEG, Deflate, PackBits);
/// anything else is refused at inspection with its name rather than failing at decode time.
fn check_compression(decoder: &mut TiffDecoder<'_>, page: u32) -> Result<(), IngestError> {
    let method = decoder
        .find_tag_unsigned::<u16>(Tag::Compression)
        .map_err(map_tiff_error)?
        .unwrap_or(1);
    let name = match method {
        1 | 4 | 5 | 7 | 8 | 32773 | 32946 => return Ok(()),
        2 => "CCITT modified Huffman (RLE) compression",
        3 => "CCITT Group 3 fax compression",
        6 => "old-style JPEG compression",
        34712 => "JPEG 2000 compression",
        34925 => "LZMA compression",
        50000 => "Zstandard compression",
        50001 => "WebP compression",
        _ => "an unknown compression scheme",
    };
    Err(IngestError::unsupported_feature(
        TIFF,
        format!("page {page} uses {name} (code {method}); convert it to Group 4, LZW or Deflate"),
    ))
}

/// Every strip or tile of the current IFD lies inside the file (a cut-short file fails here,
/// before any pixel is decoded).
fn check_chunks_in_file(
    decoder: &mut TiffDecoder<'_>,
    page: u32,
    file_len: usize,
) -> Result<(), IngestError> {
    let (offsets, counts) = match decoder.find_tag_unsigned_vec::<u64>(Tag::StripOffsets) {
        Ok(Some(offsets)) => (offsets, Tag::StripByteCounts),
        _ => match decoder.find_tag_unsigned_vec::<u64>(Tag::TileOffsets) {
            Ok(Some(offsets)) => (offsets, Tag::TileByteCounts),
            _ => {
                return Err(IngestError::corrupt(
                    TIFF,
                    format!("page {page} has no image data"),
                ))
            }
        },
    };
    let counts = decoder
        .find_tag_unsigned_vec::<u64>(counts)
        .map_err(map_tiff_error)?
        .ok_or_else(|| IngestError::corrupt(TIFF, format!("page {page} has no byte counts")))?;
    let end = offsets
        .iter()
        .zip(&counts)
        .map(|(o, c)| o.saturating_add(*c))
        .max()
        .unwrap_or(0);
    if end > file_len as u64 {
        return Err(IngestError::corrupt(
            TIFF,
            format!("page {page}'s image data runs to byte {end} but the file has {file_len} (cut short)"),
        ));
    }
    Ok(())
}

/// `NewSubfileType` bit 0: a reduced-resolution copy of another page.
fn is_thumbnail(decoder: &mut TiffDecoder<'_>) -> bool {
    matches!(decoder.find_tag_unsigned::<u32>(Tag::NewSubfileType), Ok(Some(v)) if v & 1 == 1)
}

/// Decode the current IFD as page `page`.
fn decode_page(
    decoder: &mut TiffDecoder<'_>,
    page: u32,
    cfg: &IngestConfig,
) -> Result<RasterPage, IngestError> {
    let (width, height) = decoder.dimensions().map_err(map_tiff_error)?;
    check_pixels(TIFF, Some(page), (width, height), cfg)?;
    let color = decoder.colortype().map_err(map_tiff_error)?;
    let associated_alpha = matches!(
        decoder.find_tag_unsigned_vec::<u16>(Tag::ExtraSamples),
        Ok(Some(v)) if v.first() == Some(&1)
    );
    let planar = matches!(
        decoder.find_tag_unsigned::<u16>(Tag::PlanarConfiguration),
        Ok(Some(2))
    );
    let orientation = decoder
        .find_tag_unsigned::<u8>(Tag::Orientation)
        .ok()
        .flatten()
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms);
    let dpi = resolution(decoder);

    let samples = samples_per_pixel(color)?;
    let mut data = DecodingResult::U8(Vec::new());
    let layout = decoder
        .read_image_to_buffer(&mut data)
        .map_err(map_tiff_error)?;
    if planar && samples > 1 {
        if layout.planes < samples || data_len_bytes(&data) < layout.complete_len {
            return Err(IngestError::unsupported_feature(
                TIFF,
                format!("page {page}: planar layout with {} planes", layout.planes),
            ));
        }
        data = interleave_planes(data, samples, width as usize * height as usize);
    }
    if associated_alpha {
        match &mut data {
            DecodingResult::U8(v) => pixels::unpremultiply(v, samples),
            DecodingResult::U16(v) => pixels::unpremultiply(v, samples),
            _ => {}
        }
    }

    let mut img = to_dynamic(data, color, width, height, page)?;
    img.apply_orientation(orientation);
    let swapped = pixels::swaps_axes(orientation);
    let image = pixels::flatten_to_rgb(img);
    tracing::debug!(page, width, height, ?color, "TIFF page decoded");
    Ok(RasterPage {
        page,
        image,
        dpi: dpi.map(|d| d.horizontal_dpi(swapped)),
    })
}

/// `XResolution`/`YResolution`/`ResolutionUnit` of the current IFD.
fn resolution(decoder: &mut TiffDecoder<'_>) -> Option<density::Density> {
    let mut rational = |tag| match decoder.find_tag(tag) {
        Ok(Some(tiff::decoder::ifd::Value::Rational(n, d))) if d != 0 => {
            Some(f64::from(n) / f64::from(d))
        }
        Ok(Some(tiff::decoder::ifd::Value::List(v))) => match v.first() {
            Some(tiff::decoder::ifd::Value::Rational(n, d)) if *d != 0 => {
                Some(f64::from(*n) / f64::from(*d))
            }
            _ => None,
        },
        _ => None,
    };
    let x = rational(Tag::XResolution);
    let y = rational(Tag::YResolution);
    let unit = decoder
        .find_tag_unsigned::<u64>(Tag::ResolutionUnit)
        .ok()
        .flatten();
    density::from_tiff_tags(x, y, unit)
}

fn samples_per_pixel(color: ColorType) -> Result<usize, IngestError> {
    Ok(match color {
        ColorType::Gray(_) => 1,
        ColorType::GrayA(_) => 2,
        ColorType::RGB(_) | ColorType::YCbCr(_) | ColorType::Lab(_) => 3,
        ColorType::RGBA(_) | ColorType::CMYK(_) => 4,
        ColorType::CMYKA(_) => 5,
        ColorType::Multiband { num_samples, .. } => usize::from(num_samples),
        ColorType::Palette(_) => 1,
        other => {
            return Err(IngestError::unsupported_feature(
                TIFF,
                format!("colour type {other:?}"),
            ))
        }
    })
}

fn data_len_bytes(data: &DecodingResult) -> usize {
    match data {
        DecodingResult::U8(v) => v.len(),
        DecodingResult::U16(v) => v.len() * 2,
        DecodingResult::F32(v) => v.len() * 4,
        _ => 0,
    }
}

/// Planes one after another → samples interleaved per pixel.
fn interleave_planes(data: DecodingResult, samples: usize, n: usize) -> DecodingResult {
    fn go<T: Copy + Default>(v: &[T], samples: usize, n: usize) -> Vec<T> {
        let mut out = vec![T::default(); n * samples];
        for (s, plane) in v.chunks(n).take(samples).enumerate() {
            for (i, &x) in plane.iter().enumerate() {
                out[i * samples + s] = x;
            }
        }
        out
    }
    match data {
        DecodingResult::U8(v) => DecodingResult::U8(go(&v, samples, n)),
        DecodingResult::U16(v) => DecodingResult::U16(go(&v, samples, n)),
        DecodingResult::F32(v) => DecodingResult::F32(go(&v, samples, n)),
        other => other,
    }
}

/// Decoded samples → an image the `image` crate can convert.
fn to_dynamic(
    data: DecodingResult,
    color: ColorType,
    width: u32,
    height: u32,
    page: u32,
) -> Result<DynamicImage, IngestError> {
    let short =
        || IngestError::corrupt(TIFF, format!("page {page}: less pixel data than its size"));
    let unsupported =
        || IngestError::unsupported_feature(TIFF, format!("page {page}: colour type {color:?}"));
    let n = width as usize * height as usize;
    macro_rules! buffer {
        ($px:ident, $v:expr, $ch:expr, $variant:ident) => {{
            let mut v = $v;
            v.truncate(n * $ch);
            DynamicImage::$variant(
                ImageBuffer::<$px<_>, _>::from_raw(width, height, v).ok_or_else(short)?,
            )
        }};
    }
    Ok(match (color, data) {
        (ColorType::Gray(b @ (1 | 2 | 4)), DecodingResult::U8(v)) => DynamicImage::ImageLuma8(
            pixels::expand_packed_gray(&v, width, height, b).ok_or_else(short)?,
        ),
        (ColorType::Gray(8), DecodingResult::U8(v)) => buffer!(Luma, v, 1, ImageLuma8),
        (ColorType::Gray(16), DecodingResult::U16(v)) => buffer!(Luma, v, 1, ImageLuma16),
        (ColorType::Gray(32), DecodingResult::F32(v)) => {
            let rgb: Vec<f32> = v.iter().take(n).flat_map(|&g| [g, g, g]).collect();
            buffer!(Rgb, rgb, 3, ImageRgb32F)
        }
        (c, DecodingResult::U8(v)) if gray_alpha_depth(c) == Some(8) => {
            buffer!(LumaA, v, 2, ImageLumaA8)
        }
        (c, DecodingResult::U16(v)) if gray_alpha_depth(c) == Some(16) => {
            buffer!(LumaA, v, 2, ImageLumaA16)
        }
        (ColorType::RGB(8), DecodingResult::U8(v)) => buffer!(Rgb, v, 3, ImageRgb8),
        (ColorType::RGB(16), DecodingResult::U16(v)) => buffer!(Rgb, v, 3, ImageRgb16),
        (ColorType::RGB(32), DecodingResult::F32(v)) => buffer!(Rgb, v, 3, ImageRgb32F),
        (ColorType::RGBA(8), DecodingResult::U8(v)) => buffer!(Rgba, v, 4, ImageRgba8),
        (ColorType::RGBA(16), DecodingResult::U16(v)) => buffer!(Rgba, v, 4, ImageRgba16),
        (ColorType::RGBA(32), DecodingResult::F32(v)) => buffer!(Rgba, v, 4, ImageRgba32F),
        (ColorType::CMYK(8), DecodingResult::U8(v)) => {
            DynamicImage::ImageRgb8(pixels::cmyk8_to_rgb(&v, width, height, 4).ok_or_else(short)?)
        }
        (ColorType::CMYKA(8), DecodingResult::U8(v)) => {
            DynamicImage::ImageRgb8(pixels::cmyk8_to_rgb(&v, width, height, 5).ok_or_else(short)?)
        }
        (ColorType::CMYK(16), DecodingResult::U16(v)) => {
            let v8: Vec<u8> = v.iter().map(|&s| (s >> 8) as u8).collect();
            DynamicImage::ImageRgb8(pixels::cmyk8_to_rgb(&v8, width, height, 4).ok_or_else(short)?)
        }
        (ColorType::YCbCr(8), DecodingResult::U8(v)) => {
            DynamicImage::ImageRgb8(pixels::ycbcr8_to_rgb(&v, width, height).ok_or_else(short)?)
        }
        _ => return Err(unsupported()),
    })
}

fn map_tiff_error(e: TiffError) -> IngestError {
    match e {
        TiffError::FormatError(f) => IngestError::corrupt(TIFF, f.to_string()),
        TiffError::UnsupportedError(u) => IngestError::unsupported_feature(TIFF, u.to_string()),
        TiffError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            IngestError::corrupt(TIFF, "the file ends too early")
        }
        TiffError::IoError(io) => IngestError::corrupt(TIFF, io.to_string()),
        TiffError::LimitsExceeded => IngestError::corrupt(
            TIFF,
            "decoding needs more memory than the image size allows",
        ),
        other => IngestError::corrupt(TIFF, other.to_string()),
    }
}
/// The bit depth of grey + alpha, whether the file says so or calls it two bands.
fn gray_alpha_depth(color: ColorType) -> Option<u8> {
    match color {
        ColorType::GrayA(bits)
        | ColorType::Multiband {
            bit_depth: bits,
            num_samples: 2,
        } => Some(bits),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_and_alpha_in_either_spelling() {
        assert_eq!(gray_alpha_depth(ColorType::GrayA(8)), Some(8));
        let two_bands = ColorType::Multiband {
            bit_depth: 16,
            num_samples: 2,
        };
        assert_eq!(gray_alpha_depth(two_bands), Some(16));
        let three_bands = ColorType::Multiband {
            bit_depth: 8,
            num_samples: 3,
        };
        assert_eq!(gray_alpha_depth(three_bands), None);
        assert_eq!(gray_alpha_depth(ColorType::RGB(8)), None);
    }
}
