//! Image sources: multi-page TIFF, bilevel scans, JPEG (EXIF orientation, CMYK, stated DPI),
//! PNG variants, WebP and BMP, truncated images, and the whole shared corpus.

use std::io::Cursor;

use folio_ingest::{sniff, MediaType};
use image::{ImageEncoder, Rgb, RgbImage};

use crate::code;
use crate::support::*;

/// Four pages and one thumbnail IFD: grey 300 DPI, RGB rotated by its Orientation tag, RGBA
/// over white, 16-bit grey without resolution.
fn multipage_tiff() -> Vec<u8> {
    use tiff::encoder::{colortype, Compression, Rational, TiffEncoder};
    use tiff::tags::{ResolutionUnit, Tag};
    let mut buf = Cursor::new(Vec::new());
    let mut enc = TiffEncoder::new(&mut buf)
        .expect("encoder")
        .with_compression(Compression::Lzw);

    let gray: Vec<u8> = (0..60 * 40)
        .map(|i| if i % 60 < 30 { 0 } else { 255 })
        .collect();
    let mut img = enc.new_image::<colortype::Gray8>(60, 40).expect("page 1");
    img.resolution(ResolutionUnit::Inch, Rational { n: 300, d: 1 });
    img.write_data(&gray).expect("page 1 data");

    let rgb: Vec<u8> = (0..30 * 20)
        .flat_map(|i| {
            if i % 30 < 10 {
                [255, 0, 0]
            } else {
                [0, 0, 255]
            }
        })
        .collect();
    let mut img = enc.new_image::<colortype::RGB8>(30, 20).expect("page 2");
    img.resolution(ResolutionUnit::Centimeter, Rational { n: 100, d: 1 });
    img.encoder()
        .write_tag(Tag::Orientation, 6u16)
        .expect("orientation");
    img.write_data(&rgb).expect("page 2 data");

    let mut img = enc.new_image::<colortype::Gray8>(4, 4).expect("thumbnail");
    img.encoder()
        .write_tag(Tag::NewSubfileType, 1u32)
        .expect("subfile type");
    img.write_data(&[0u8; 16]).expect("thumbnail data");

    let rgba: Vec<u8> = (0..10 * 10)
        .flat_map(|i| {
            if i % 10 < 5 && i / 10 < 5 {
                [255, 0, 0, 255]
            } else {
                [0, 0, 0, 0]
            }
        })
        .collect();
    enc.write_image::<colortype::RGBA8>(10, 10, &rgba)
        .expect("page 3");
    enc.write_image::<colortype::Gray16>(8, 8, &[32768u16; 64])
        .expect("page 4");
    buf.into_inner()
}

#[test]
fn multipage_tiff_one_page_per_ifd() {
    let ing = ingestor();
    let tif = multipage_tiff();
    let summary = ing.inspect(&tif, None).expect("inspect");
    assert_eq!(
        (summary.media_type, summary.page_count),
        (MediaType::Tiff, 4)
    );
    let pages = pages_of(&ing, &tif, None, &[]).expect("decode");
    let dims: Vec<_> = pages
        .iter()
        .map(|p| (p.page, p.image.dimensions(), p.dpi))
        .collect();
    assert_eq!(
        dims,
        vec![
            (1, (60, 40), Some(300)),
            (2, (20, 30), Some(254)),
            (3, (10, 10), None),
            (4, (8, 8), None)
        ]
    );
    let p = |i: usize, x, y| pages[i].image.get_pixel(x, y).0;
    assert_eq!((p(0, 0, 0), p(0, 59, 0)), ([0; 3], [255; 3]));
    // Orientation 6: the stored left (red) columns become the top rows.
    assert_eq!((p(1, 10, 2), p(1, 10, 27)), ([255, 0, 0], [0, 0, 255]));
    assert_eq!((p(2, 1, 1), p(2, 8, 8)), ([255, 0, 0], [255; 3]));
    assert_eq!(p(3, 4, 4), [128; 3]);

    let only = pages_of(&ing, &tif, None, &[4, 2]).expect("select");
    assert_eq!(only.iter().map(|p| p.page).collect::<Vec<_>>(), vec![4, 2]);
    assert_eq!(code(pages_of(&ing, &tif, None, &[5])), "page_out_of_range");
}

#[test]
fn bilevel_corpus_tiffs() {
    let ing = ingestor();
    for (rel, dpi) in [
        ("printed/tess_phototest.tif", 200),
        ("printed/tess_eurotext.tif", 300),
    ] {
        let tif = read_corpus(rel);
        assert_eq!(sniff(&tif).ok(), Some(MediaType::Tiff));
        let pages = pages_of(&ing, &tif, None, &[]).expect(rel);
        assert_eq!(pages.len(), 1, "{rel}");
        assert_eq!(pages[0].dpi, Some(dpi), "{rel}");
        let img = &pages[0].image;
        assert!(
            img.pixels().all(|p| p.0 == [0; 3] || p.0 == [255; 3]),
            "{rel}: not bilevel"
        );
        let luma = mean_luma(img, 0, 0, img.width(), img.height());
        assert!((180.0..252.0).contains(&luma), "{rel}: mean luma {luma}");
    }
    let pages = pages_of(&ing, &read_corpus("printed/tess_phototest.tif"), None, &[]).expect("tif");
    assert_eq!(pages[0].image.dimensions(), (640, 480));
}

#[test]
fn libtiff_group4_pages_and_group3_refusal() {
    let ing = ingestor();
    let tif = fixture("fax4_2p.tif");
    assert_eq!(ing.inspect(&tif, None).map(|s| s.page_count).ok(), Some(2));
    let pages = pages_of(&ing, &tif, None, &[]).expect("group 4");
    for p in &pages {
        assert_eq!(
            (p.image.dimensions(), p.dpi),
            ((40, 20), Some(204)),
            "page {}",
            p.page
        );
    }
    // Page 1: left half black; page 2: top half black.
    assert_eq!(
        (
            mean_luma(&pages[0].image, 0, 0, 20, 20),
            mean_luma(&pages[0].image, 20, 0, 40, 20)
        ),
        (0.0, 255.0)
    );
    assert_eq!(
        (
            mean_luma(&pages[1].image, 0, 0, 40, 10),
            mean_luma(&pages[1].image, 0, 10, 40, 20)
        ),
        (0.0, 255.0)
    );

    let e = ing
        .inspect(&fixture("fax3.tif"), None)
        .expect_err("group 3");
    assert_eq!(e.code(), "unsupported_feature");
    assert!(e.to_string().contains("Group 3"), "{e}");
}

fn jpeg_half_black(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, _| {
        if x < w / 2 {
            Rgb([0; 3])
        } else {
            Rgb([255; 3])
        }
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .expect("encode");
    out
}

#[test]
fn jpeg_exif_orientation_6_is_applied() {
    let ing = ingestor();
    let plain = jpeg_half_black(40, 20);
    let page = pages_of(&ing, &plain, None, &[]).expect("plain").remove(0);
    assert_eq!(page.image.dimensions(), (40, 20));

    let rotated = with_exif_orientation(&plain, 6);
    let page = pages_of(&ing, &rotated, None, &[])
        .expect("rotated")
        .remove(0);
    assert_eq!(page.image.dimensions(), (20, 40));
    // Rotated 90° clockwise: the stored left (black) half is now on top.
    assert!(mean_luma(&page.image, 0, 0, 20, 16) < 20.0);
    assert!(mean_luma(&page.image, 0, 24, 20, 40) > 235.0);
}

#[test]
fn corpus_jpegs_keep_pixels_and_stated_dpi() {
    let ing = ingestor();
    for (rel, dpi) in [
        ("handwritten/tdp_AD78_0002-0.jpg", Some(300)),
        ("printed/tapus_btv1b53097347b_8.jpg", Some(400)),
        // JFIF units 0: an aspect ratio, not a resolution.
        ("printed/tapus_FRAN_0011_11083.jpg", None),
    ] {
        let jpg = read_corpus(rel);
        let header = image::ImageReader::new(Cursor::new(&jpg))
            .with_guessed_format()
            .expect("guess");
        let dims = header.into_dimensions().expect("dims");
        let page = pages_of(&ing, &jpg, None, &[]).expect(rel).remove(0);
        assert_eq!(
            (page.page, page.image.dimensions(), page.dpi),
            (1, dims, dpi),
            "{rel}"
        );
    }
}

#[test]
fn cmyk_jpeg_becomes_rgb() {
    let page = pages_of(&ingestor(), &fixture("cmyk.jpg"), None, &[])
        .expect("cmyk")
        .remove(0);
    assert_eq!(page.image.dimensions(), (16, 8));
    let cyan = page.image.get_pixel(2, 4).0;
    let black = page.image.get_pixel(13, 4).0;
    assert!(
        cyan[0] < 60 && cyan[1] > 190 && cyan[2] > 190,
        "cyan came out as {cyan:?}"
    );
    assert!(black.iter().all(|&c| c < 60), "black came out as {black:?}");
}

#[test]
fn png_variants_become_rgb_on_white() {
    let ing = ingestor();
    // Palette with a transparent entry.
    let page = pages_of(&ing, &fixture("palette.png"), None, &[])
        .expect("palette")
        .remove(0);
    assert_eq!(page.image.get_pixel(1, 1).0, [255, 0, 0]);
    assert_eq!(page.image.get_pixel(6, 1).0, [255; 3]);

    // 16-bit RGBA with a half-transparent black pixel.
    let samples: Vec<u16> = (0..4 * 2)
        .flat_map(|i| {
            if i % 4 < 2 {
                [0, 0, 0, 32768]
            } else {
                [65535, 0, 0, 65535]
            }
        })
        .collect();
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_ne_bytes()).collect();
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&bytes, 4, 2, image::ExtendedColorType::Rgba16)
        .expect("encode");
    let page = pages_of(&ing, &png, None, &[]).expect("16-bit").remove(0);
    assert_eq!(page.image.get_pixel(0, 0).0, [127; 3]);
    assert_eq!(page.image.get_pixel(3, 1).0, [255, 0, 0]);
    assert_eq!(page.dpi, None);
    // The same PNG stating 11811 px/m = 300 DPI.
    let page = pages_of(&ing, &with_png_phys(&png, 11811), None, &[])
        .expect("pHYs")
        .remove(0);
    assert_eq!(page.dpi, Some(300));
}

fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 4) as u8, (y * 8) as u8, 200]))
}

/// The image as lossless WebP and as BMP.
fn webp_and_bmp(img: &RgbImage) -> (Vec<u8>, Vec<u8>) {
    let (w, h) = img.dimensions();
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .expect("webp");
    let mut bmp = Vec::new();
    image::codecs::bmp::BmpEncoder::new(&mut bmp)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .expect("bmp");
    (webp, bmp)
}

#[test]
fn webp_and_bmp_round_trip() {
    let ing = ingestor();
    let img = gradient(12, 6);
    let (webp, bmp) = webp_and_bmp(&img);
    for (bytes, t) in [(webp, MediaType::Webp), (bmp, MediaType::Bmp)] {
        assert_eq!(
            ing.inspect(&bytes, None).map(|s| s.media_type).ok(),
            Some(t)
        );
        let page = pages_of(&ing, &bytes, None, &[]).expect("decode").remove(0);
        assert!(page.image == img, "{t} pixels changed");
    }
}

/// Every document of the shared corpus passes inspection and rasterizes to the announced
/// number of non-empty pages (images at their own pixel size).
#[test]
fn whole_corpus_ingests() {
    let ing = ingestor();
    let mut checked = 0;
    for category in [
        "printed",
        "handwritten",
        "tables",
        "charts",
        "multipage_pdf",
    ] {
        let dir = corpus_dir().join(category);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !name.contains(".gt.") && !name.ends_with(".md")
            })
            .collect();
        entries.sort();
        for path in entries {
            let name = path.display().to_string();
            let bytes = std::fs::read(&path).expect("read");
            let summary = ing
                .inspect(&bytes, None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut pages = 0;
            ing.rasterize(&bytes, None, &[], &mut |p| {
                pages += 1;
                assert_eq!(p.page, pages, "{name}");
                assert!(p.image.width() > 0 && p.image.height() > 0, "{name}");
                if !summary.media_type.is_pdf() && summary.media_type != MediaType::Tiff {
                    let dims = image::ImageReader::new(Cursor::new(&bytes))
                        .with_guessed_format()
                        .expect("guess")
                        .into_dimensions()
                        .expect("dims");
                    assert_eq!(p.image.dimensions(), dims, "{name}");
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(pages, summary.page_count, "{name}");
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} corpus files found");
}

#[test]
fn truncated_images_are_corrupt() {
    let ing = ingestor();
    let mut files: Vec<(String, Vec<u8>)> = [
        "printed/tess_phototest.tif",
        "tables/pubtabnet_PMC5198506_004_00.png",
        "handwritten/tdp_AD78_0002-0.jpg",
    ]
    .iter()
    .map(|rel| (rel.to_string(), read_corpus(rel)))
    .collect();
    let (webp, bmp) = webp_and_bmp(&gradient(64, 32));
    files.push(("generated.webp".into(), webp));
    files.push(("generated.bmp".into(), bmp));
    for (name, bytes) in files {
        let half = &bytes[..bytes.len() / 2];
        // inspect sees the damage from the file structure, before decoding anything.
        assert_eq!(code(ing.inspect(half, None)), "corrupt_file", "{name}");
        assert_eq!(
            code(pages_of(&ing, half, None, &[])),
            "corrupt_file",
            "{name}"
        );
        // The whole file is fine.
        assert!(ing.inspect(&bytes, None).is_ok(), "{name}");
    }
}
