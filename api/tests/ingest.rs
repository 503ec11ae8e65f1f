//! Ingest against real PDFium (from `$FOLIO_RUNTIME_DIR` or `~/.cache/folio`; run
//! `scripts/setup` first) and real files: the shared corpus (`$FOLIO_CORPUS_DIR` or
//! `<repo>/../shared/corpus`), the fixtures in `tests/fixtures/` (made by `make_fixtures.py`)
//! and inputs built here byte by byte.

mod bench;
mod support;

use std::io::Cursor;

use folio_api::ingest::{sniff, IngestError, Ingestor, MediaType, PageRange};
use image::{ImageEncoder, Rgb, RgbImage};
use support::*;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const JOURNAL_4P: &str = "multipage_pdf/tapus_journal_96AP_4p.pdf";
const PASSWORD: &str = "folio-secret";

fn code<T: std::fmt::Debug>(r: Result<T, IngestError>) -> &'static str {
    r.expect_err("expected an error").code()
}

// ---- bad inputs ---------------------------------------------------------------------------

#[test]
fn empty_file() {
    let ing = ingestor();
    let e = ing.inspect(b"", None).expect_err("empty");
    assert_eq!(e.code(), "empty_file");
    assert!(e.is_input_error());
    assert_eq!(code(pages_of(&ing, b"", None, &[])), "empty_file");
}

#[test]
fn truncated_pdf_is_corrupt() {
    let ing = ingestor();
    let pdf = read_corpus(JOURNAL_4P);
    let half = &pdf[..pdf.len() / 2];
    assert_eq!(sniff(half).ok(), Some(MediaType::Pdf));
    let e = ing.inspect(half, None).expect_err("truncated");
    assert_eq!(e.code(), "corrupt_file", "{e}");
    assert!(e.is_input_error());
    assert_eq!(code(pages_of(&ing, half, None, &[])), "corrupt_file");
}

#[test]
fn text_file_is_unsupported_and_named() {
    let text = read_corpus("printed/tess_eurotext.gt.txt");
    let e = ingestor().inspect(&text, None).expect_err("text");
    assert_eq!(e.code(), "unsupported_type");
    assert!(e.is_input_error());
    assert!(e.to_string().contains("plain text"), "{e}");
}

#[test]
fn docx_is_unsupported_and_named() {
    let docx = zip(&[
        (
            "[Content_Types].xml",
            b"<?xml version=\"1.0\"?><Types/>".as_slice(),
        ),
        ("_rels/.rels", b"<Relationships/>".as_slice()),
        ("word/document.xml", b"<w:document/>".as_slice()),
    ]);
    let e = ingestor().inspect(&docx, None).expect_err("docx");
    assert_eq!(e.code(), "unsupported_type");
    assert!(e.to_string().contains("docx"), "{e}");
}

#[test]
fn encrypted_pdf_needs_the_right_password() {
    let ing = ingestor();
    for name in ["encrypted_rc4.pdf", "encrypted_aes256.pdf"] {
        let pdf = fixture(name);
        let e = ing.inspect(&pdf, None).expect_err(name);
        assert_eq!(e.code(), "encrypted_pdf", "{name}");
        assert!(e.to_string().contains("--password"), "{e}");
        assert_eq!(code(pages_of(&ing, &pdf, None, &[])), "encrypted_pdf");

        let e = ing.inspect(&pdf, Some("not-it")).expect_err(name);
        assert_eq!(e.code(), "wrong_password", "{name}");
        assert_eq!(
            code(pages_of(&ing, &pdf, Some("wrong"), &[])),
            "wrong_password"
        );

        let summary = ing.inspect(&pdf, Some(PASSWORD)).expect(name);
        assert_eq!(summary.page_count, 1);
        let pages = pages_of(&ing, &pdf, Some(PASSWORD), &[]).expect(name);
        // 300×400 pt at 200 DPI; the 50 pt black square sits in the top-left corner.
        let img = &pages[0].image;
        assert_eq!(img.dimensions(), (833, 1111), "{name}");
        assert!(
            mean_luma(img, 5, 5, 130, 130) < 10.0,
            "{name}: square missing"
        );
        assert!(
            mean_luma(img, 200, 200, 800, 1100) > 250.0,
            "{name}: page not white"
        );
    }
}

#[test]
fn pdf_without_pages() {
    let pdf = fixture("zero_pages.pdf");
    let e = ingestor().inspect(&pdf, None).expect_err("no pages");
    assert_eq!(e.code(), "no_pages");
    assert!(e.is_input_error());
}

#[test]
fn huge_png_is_rejected_from_its_header() {
    let ing = ingestor();
    let png = png_header_only(30_000, 30_000);
    assert!(png.len() < 100);

    let meter = AllocMeter::start();
    let e = ing.inspect(&png, None).expect_err("too large");
    let e2 = pages_of(&ing, &png, None, &[]).expect_err("too large");
    let peak = meter.peak();

    assert_eq!(e.code(), "page_too_large");
    assert_eq!(e2.code(), "page_too_large");
    assert_eq!(
        e.to_string(),
        "PNG is 30000×30000 = 900 MP, above the 50 MP per-page limit"
    );
    // Decoding would need 2.7 GB; nothing near that (nor even 1 % of it) was allocated.
    assert!(peak < 16 << 20, "peak allocation {peak} bytes");

    // The same header at a small size goes on to decode, and the tiny IDAT fails there: so
    // the rejection above happened before decoding.
    let small = png_header_only(100, 100);
    assert_eq!(
        ing.inspect(&small, None).map(|s| s.page_count).ok(),
        Some(1)
    );
    assert_eq!(code(pages_of(&ing, &small, None, &[])), "corrupt_file");
}

#[test]
fn too_many_pages() {
    let mut cfg = config();
    cfg.max_pages = 3;
    let e = Ingestor::new(cfg)
        .inspect(&read_corpus(JOURNAL_4P), None)
        .expect_err("4 > 3");
    assert_eq!(e.code(), "too_many_pages");
    assert!(e.to_string().contains("limit of 3"), "{e}");
}

#[test]
fn truncated_images_are_corrupt() {
    let ing = ingestor();
    for rel in [
        "printed/tess_phototest.tif",
        "tables/pubtabnet_PMC5198506_004_00.png",
    ] {
        let bytes = read_corpus(rel);
        let half = &bytes[..bytes.len() / 2];
        assert_eq!(
            code(pages_of(&ing, half, None, &[])),
            "corrupt_file",
            "{rel}"
        );
    }
}

/// PDFium binds once per process, so the missing-library case runs in a fresh process: this
/// test re-runs the test binary on the ignored `runtime_missing_child`.
#[test]
fn missing_pdfium_is_a_runtime_error() {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "runtime_missing_child",
            "--nocapture",
        ])
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[test]
#[ignore = "run by missing_pdfium_is_a_runtime_error in a fresh process"]
fn runtime_missing_child() {
    let mut cfg = config();
    cfg.pdfium_lib = "/nonexistent/lib/libpdfium.so".into();
    let ing = Ingestor::new(cfg);
    let pdf = read_corpus(JOURNAL_4P);
    let e = ing.inspect(&pdf, None).expect_err("no pdfium");
    assert_eq!(e.code(), "runtime_missing");
    assert!(!e.is_input_error() && e.is_runtime_error());
    assert!(e.to_string().contains("scripts/setup"), "{e}");
    // Images do not need PDFium.
    let png = read_corpus("tables/pubtabnet_PMC5198506_004_00.png");
    assert_eq!(
        pages_of(&ing, &png, None, &[]).map(|p| p.len()).ok(),
        Some(1)
    );
    // A later call with the real library binds it then.
    let ok = Ingestor::new(config());
    assert_eq!(ok.inspect(&pdf, None).map(|s| s.page_count).ok(), Some(4));
}

// ---- PDFs ---------------------------------------------------------------------------------

#[test]
fn multipage_pdf_renders_every_page_at_200_dpi() {
    let ing = ingestor();
    let pdf = read_corpus(JOURNAL_4P);
    let summary = ing.inspect(&pdf, None).expect("inspect");
    assert_eq!(summary.media_type, MediaType::Pdf);
    assert_eq!(summary.page_count, 4);

    let mut seen = Vec::new();
    ing.rasterize(&pdf, None, &[], &mut |p| {
        // img2pdf scaled these pages to A4 (210×297 mm): 1653.5×2338.6 px at 200 DPI.
        assert_eq!(p.image.dimensions(), (1654, 2339), "page {}", p.page);
        assert_eq!(p.dpi, Some(200));
        // A typewritten page: dark ink on light paper, not a blank render.
        let luma = mean_luma(&p.image, 0, 0, 1654, 2339);
        assert!(
            (100.0..250.0).contains(&luma),
            "page {} mean luma {luma}",
            p.page
        );
        seen.push((p.page, luma));
        Ok(())
    })
    .expect("rasterize");
    assert_eq!(
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(
        seen.windows(2).all(|w| w[0].1 != w[1].1),
        "pages look identical: {seen:?}"
    );

    for (rel, n) in [
        ("multipage_pdf/tdp_will_AN_0182_3p.pdf", 3),
        ("multipage_pdf/olmocr_mattsnotes_3p.pdf", 3),
        ("multipage_pdf/tapus_catalogue_1962_3p.pdf", 3),
    ] {
        assert_eq!(
            ing.inspect(&read_corpus(rel), None)
                .map(|s| s.page_count)
                .ok(),
            Some(n),
            "{rel}"
        );
    }
}

#[test]
fn page_selection() {
    let ing = ingestor();
    let pdf = read_corpus(JOURNAL_4P);
    let count = ing.inspect(&pdf, None).expect("inspect").page_count;

    let pages = "2-"
        .parse::<PageRange>()
        .expect("parse")
        .select(count)
        .expect("select");
    let got = pages_of(&ing, &pdf, None, &pages).expect("rasterize");
    assert_eq!(
        got.iter().map(|p| p.page).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );

    let three = "3"
        .parse::<PageRange>()
        .expect("parse")
        .select(count)
        .expect("select");
    let alone = pages_of(&ing, &pdf, None, &three).expect("rasterize");
    assert_eq!(alone.len(), 1);
    assert_eq!(alone[0].page, 3);
    assert!(
        alone[0].image == got[1].image,
        "page 3 differs between runs"
    );

    let e = "2-5"
        .parse::<PageRange>()
        .expect("parse")
        .select(count)
        .expect_err("5 > 4");
    assert_eq!(e.code(), "page_out_of_range");
    assert_eq!(code(pages_of(&ing, &pdf, None, &[5])), "page_out_of_range");
    assert_eq!(code("0".parse::<PageRange>()), "invalid_page_range");
}

#[test]
fn pixel_budget_lowers_pdf_dpi() {
    let mut cfg = config();
    cfg.max_page_pixels = 1_000_000;
    let pages =
        pages_of(&Ingestor::new(cfg), &read_corpus(JOURNAL_4P), None, &[1]).expect("render");
    let (w, h) = pages[0].image.dimensions();
    let dpi = pages[0].dpi.expect("dpi");
    assert!(u64::from(w) * u64::from(h) <= 1_000_000, "{w}×{h}");
    assert!((90..200).contains(&dpi), "{dpi}");
    // The recorded DPI is the one the pixels were rendered at.
    assert_eq!(w, (595.2756_f64 * f64::from(dpi) / 72.0).round() as u32);
}

#[test]
fn pdf_page_rotation_is_honoured() {
    let pages = pages_of(&ingestor(), &fixture("rotated.pdf"), None, &[]).expect("render");
    let (upright, rotated) = (&pages[0].image, &pages[1].image);
    assert_eq!(upright.dimensions(), (833, 1111));
    assert_eq!(rotated.dimensions(), (1111, 833));
    // /Rotate 90 turns the page clockwise: the top-left square ends up top-right.
    assert!(mean_luma(upright, 5, 5, 130, 130) < 10.0);
    assert!(mean_luma(rotated, 1111 - 130, 5, 1111 - 5, 130) < 10.0);
    assert!(mean_luma(rotated, 5, 5, 130, 130) > 250.0);
}

#[test]
fn sink_error_stops_rasterizing() {
    let ing = ingestor();
    let pdf = read_corpus(JOURNAL_4P);
    let mut calls = 0;
    let e = ing
        .rasterize(&pdf, None, &[], &mut |_| {
            calls += 1;
            Err(IngestError::Sink("disk full".into()))
        })
        .expect_err("sink fails");
    assert_eq!(calls, 1);
    assert_eq!(e.code(), "sink");
    assert!(!e.is_input_error());
}

// ---- images -------------------------------------------------------------------------------

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

#[test]
fn webp_and_bmp_round_trip() {
    let ing = ingestor();
    let img = RgbImage::from_fn(12, 6, |x, y| Rgb([(x * 20) as u8, (y * 40) as u8, 200]));
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .write_image(img.as_raw(), 12, 6, image::ExtendedColorType::Rgb8)
        .expect("webp");
    let mut bmp = Vec::new();
    image::codecs::bmp::BmpEncoder::new(&mut bmp)
        .write_image(img.as_raw(), 12, 6, image::ExtendedColorType::Rgb8)
        .expect("bmp");
    for (bytes, t) in [(webp, MediaType::Webp), (bmp, MediaType::Bmp)] {
        assert_eq!(
            ing.inspect(&bytes, None).map(|s| s.media_type).ok(),
            Some(t)
        );
        let page = pages_of(&ing, &bytes, None, &[]).expect("decode").remove(0);
        assert!(page.image == img, "{t} pixels changed");
    }
}
