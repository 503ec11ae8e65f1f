//! Pixel conversions to 8-bit RGB: transparency flattened on white, higher bit depths scaled
//! down, sub-byte grey expanded, CMYK and YCbCr converted.

use image::{DynamicImage, GrayImage, Rgb, RgbImage};

/// Convert any decoded image to 8-bit RGB; alpha is composited over white.
pub(crate) fn flatten_to_rgb(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for px in rgba.as_raw().chunks_exact(4) {
        let a = u32::from(px[3]);
        for &c in &px[..3] {
            // c·a + 255·(1 − a), rounded.
            out.push(((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8);
        }
    }
    // The buffer has exactly w·h·3 bytes, so this cannot fail; fall back to white otherwise.
    RgbImage::from_raw(w, h, out).unwrap_or_else(|| RgbImage::from_pixel(w, h, Rgb([255; 3])))
}

/// Expand packed `bits`-per-pixel grey rows (1, 2 or 4 bits; each row starts on a byte) to
/// 8-bit grey, scaling the range to 0..=255. `None` when `data` is too short.
pub(crate) fn expand_packed_gray(
    data: &[u8],
    width: u32,
    height: u32,
    bits: u8,
) -> Option<GrayImage> {
    if !matches!(bits, 1 | 2 | 4) {
        return None;
    }
    let bits = usize::from(bits);
    let w = width as usize;
    let row_bytes = (w * bits).div_ceil(8);
    let max = (1u16 << bits) - 1;
    let mut out = Vec::with_capacity(w * height as usize);
    for row in data.chunks_exact(row_bytes).take(height as usize) {
        for x in 0..w {
            let bit = x * bits;
            let v = (row[bit / 8] >> (8 - bits - bit % 8)) as u16 & max;
            out.push((v * 255 / max) as u8);
        }
    }
    GrayImage::from_raw(width, height, out)
}

/// CMYK (8 bits per sample, 0 = no ink) to RGB with the usual naive conversion.
pub(crate) fn cmyk8_to_rgb(
    data: &[u8],
    width: u32,
    height: u32,
    samples: usize,
) -> Option<RgbImage> {
    let n = width as usize * height as usize;
    if samples < 4 || data.len() < n * samples {
        return None;
    }
    let mut out = Vec::with_capacity(n * 3);
    for px in data.chunks_exact(samples).take(n) {
        let k = 255 - u32::from(px[3]);
        for &c in &px[..3] {
            out.push(((255 - u32::from(c)) * k / 255) as u8);
        }
    }
    RgbImage::from_raw(width, height, out)
}

/// YCbCr (8 bits per sample, full range as in JFIF) to RGB.
pub(crate) fn ycbcr8_to_rgb(data: &[u8], width: u32, height: u32) -> Option<RgbImage> {
    let n = width as usize * height as usize;
    if data.len() < n * 3 {
        return None;
    }
    let mut out = Vec::with_capacity(n * 3);
    for px in data.chunks_exact(3).take(n) {
        let y = f32::from(px[0]);
        let cb = f32::from(px[1]) - 128.0;
        let cr = f32::from(px[2]) - 128.0;
        let to_u8 = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        out.push(to_u8(y + 1.402 * cr));
        out.push(to_u8(y - 0.344_136 * cb - 0.714_136 * cr));
        out.push(to_u8(y + 1.772 * cb));
    }
    RgbImage::from_raw(width, height, out)
}

/// Undo premultiplied ("associated") alpha in place: `samples` per pixel, alpha last, 8 or
/// 16 bits a sample.
pub(crate) fn unpremultiply<T>(data: &mut [T], samples: usize)
where
    T: Copy + Into<u64> + TryFrom<u64> + Bounded,
{
    if samples < 2 {
        return;
    }
    let max = T::MAX.into();
    for px in data.chunks_exact_mut(samples) {
        let (color, alpha) = px.split_at_mut(samples - 1);
        let a: u64 = alpha[0].into();
        if a == 0 || a == max {
            continue;
        }
        for c in color {
            let v = (((*c).into() * max + a / 2) / a).min(max);
            *c = T::try_from(v).unwrap_or(T::MAX);
        }
    }
}

/// The largest value of a sample type.
pub(crate) trait Bounded {
    const MAX: Self;
}

impl Bounded for u8 {
    const MAX: u8 = u8::MAX;
}

impl Bounded for u16 {
    const MAX: u16 = u16::MAX;
}

/// Whether an EXIF/TIFF orientation turns the image a quarter turn (width and height swap).
pub(crate) fn swaps_axes(orientation: image::metadata::Orientation) -> bool {
    use image::metadata::Orientation as O;
    matches!(
        orientation,
        O::Rotate90 | O::Rotate270 | O::Rotate90FlipH | O::Rotate270FlipH
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{LumaA, Rgba, RgbaImage};

    #[test]
    fn alpha_is_flattened_on_white() {
        let mut img = RgbaImage::new(2, 1);
        img.put_pixel(0, 0, Rgba([0, 0, 0, 0]));
        img.put_pixel(1, 0, Rgba([0, 0, 0, 255]));
        let rgb = flatten_to_rgb(DynamicImage::ImageRgba8(img));
        assert_eq!(rgb.get_pixel(0, 0), &Rgb([255, 255, 255]));
        assert_eq!(rgb.get_pixel(1, 0), &Rgb([0, 0, 0]));
        let half = image::ImageBuffer::from_pixel(1, 1, LumaA([0u16, 32768]));
        let rgb = flatten_to_rgb(DynamicImage::ImageLumaA16(half));
        assert_eq!(rgb.get_pixel(0, 0), &Rgb([127, 127, 127]));
    }

    #[test]
    fn one_bit_rows_are_byte_aligned() {
        // width 10: two bytes per row; row 0 = 1000000001, row 1 = 0111111110.
        let data = [0b1000_0000, 0b0100_0000, 0b0111_1111, 0b1000_0000];
        let g = expand_packed_gray(&data, 10, 2, 1).expect("enough data");
        assert_eq!(g.get_pixel(0, 0).0, [255]);
        assert_eq!(g.get_pixel(1, 0).0, [0]);
        assert_eq!(g.get_pixel(9, 0).0, [255]);
        assert_eq!(g.get_pixel(0, 1).0, [0]);
        assert_eq!(g.get_pixel(8, 1).0, [255]);
        assert!(expand_packed_gray(&data[..3], 10, 2, 1).is_none());
    }

    #[test]
    fn cmyk_and_ycbcr() {
        let rgb = cmyk8_to_rgb(&[0, 0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 255], 3, 1, 4).expect("data");
        assert_eq!(rgb.as_raw(), &[255, 255, 255, 0, 255, 255, 0, 0, 0]);
        let rgb = ycbcr8_to_rgb(&[255, 128, 128, 76, 85, 255], 2, 1).expect("data");
        assert_eq!(rgb.get_pixel(0, 0), &Rgb([255, 255, 255]));
        let red = rgb.get_pixel(1, 0).0;
        assert!(red[0] > 250 && red[1] < 5 && red[2] < 5, "{red:?}");
    }
}
