//! The `glm45v` engine's generator decodes the pages of a call together: on the tiny GLM-4.5V
//! fixture (f32, CPU, greedy; random weights, so the text is noise but deterministic) a page's
//! raw answer and parsed blocks are the same alone and in a batch with other pages, a
//! schema-constrained one among them; a request that fails (an image the processor rejects, a
//! page larger than the token budget) fails alone. Needs `scripts/setup`'s ONNX Runtime
//! (`$FOLIO_RUNTIME_DIR` or `~/.cache/folio`).

use candle_core::{DType, Device};
use folio_glm45v::model::{Glm45v, LoadOptions};
use folio_glm45v::vision::onnx::VisionOptions;
use folio_test_support::runtime_dir;
use folio_workers::engines::glm45v::page_parse::{
    parse_page, PageParseError, PageParseInput, ParsedPage,
};
use folio_workers::engines::glm45v::profiles::{Profile, ProfileKind};
use folio_workers::engines::glm45v::run::{GenOutput, GenRequest, TextGenerator};
use folio_workers::engines::glm45v::GlmGenerator;
use image::{Rgb, RgbImage};
use std::path::PathBuf;

/// The tiny checkpoint with its vision tower, images bounded to a few dozen tokens.
fn tiny_generator(max_tokens_in_flight: Option<usize>) -> GlmGenerator {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("glm45v/tests/fixtures/tiny");
    let opts = LoadOptions {
        dtype: DType::F32,
        device: Device::Cpu,
        ..LoadOptions::default()
    };
    let mut glm = Glm45v::load(&dir, &opts).expect("tiny model loads");
    glm.processor.config.size.longest_edge = 30_000;
    let mut vopts = VisionOptions::new(
        dir.join("vision.onnx"),
        runtime_dir().join("lib/libonnxruntime.so.1.31.1"),
    );
    vopts.intra_threads = 2;
    glm.attach_vision(&vopts).expect("vision tower attaches");
    GlmGenerator::new(glm, 0).with_max_tokens_in_flight(max_tokens_in_flight)
}

/// A white page with `bars` dark bars of width `bar`: different pages, different prompts.
fn page(w: u32, h: u32, bars: u32, bar: u32) -> RgbImage {
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    for k in 0..bars {
        let y = 10 + k * (h - 20) / bars.max(1);
        for x in 10..(10 + bar).min(w - 10) {
            for dy in 0..4 {
                img.put_pixel(x, y + dy, Rgb([20, 20, 20]));
            }
        }
    }
    img
}

fn request<'a>(image: &'a RgbImage, profile: &Profile, max_new_tokens: usize) -> GenRequest<'a> {
    GenRequest {
        image,
        prompt: profile.prompt(None),
        thinking: false,
        max_new_tokens,
        json_schema: profile.json_schema(),
    }
}

fn parse(
    profile: &Profile,
    image: &RgbImage,
    out: &GenOutput,
) -> Result<ParsedPage, PageParseError> {
    parse_page(&PageParseInput {
        profile,
        raw: &out.raw,
        truncated: out.truncated,
        image_size: image.dimensions(),
        region: None,
        block_id_prefix: "p1-",
    })
}

fn alone(generator: &GlmGenerator, req: &GenRequest<'_>) -> GenOutput {
    let mut out = generator.generate(std::slice::from_ref(req));
    assert_eq!(out.len(), 1);
    out.pop().expect("one").expect("generates alone")
}

#[test]
fn a_page_reads_the_same_alone_and_batched_with_others() {
    let generator = tiny_generator(None);
    let document = Profile::new(ProfileKind::Document);
    let chart = Profile::new(ProfileKind::Chart);
    assert!(
        chart.json_schema().is_some(),
        "the chart profile is constrained"
    );
    let images = [
        page(200, 120, 4, 150),
        page(240, 140, 2, 60),
        page(160, 160, 6, 120),
    ];
    let profiles = [&document, &document, &chart];
    // Different lengths, so sequences retire at different steps (the smallest chart JSON of
    // the schema is ~110 bytes).
    let budgets = [16, 10, 200];
    let requests: Vec<GenRequest> = images
        .iter()
        .zip(profiles)
        .zip(budgets)
        .map(|((img, p), n)| request(img, p, n))
        .collect();

    let singles: Vec<GenOutput> = requests.iter().map(|r| alone(&generator, r)).collect();
    let batched = generator.generate(&requests);
    assert_eq!(batched.len(), 3);
    for (i, (single, batched)) in singles.iter().zip(batched).enumerate() {
        let batched = batched.expect("generates batched");
        assert_eq!(batched.raw, single.raw, "request {i}: raw text");
        assert_eq!(batched.truncated, single.truncated, "request {i}");
        assert_eq!(
            parse(profiles[i], &images[i], &batched),
            parse(profiles[i], &images[i], single),
            "request {i}: parsed blocks"
        );
        for stage in ["processor", "vision", "prefill", "decode"] {
            assert!(
                batched.timings.get(stage).is_some_and(|ms| *ms >= 0.0),
                "request {i}: no {stage}: {:?}",
                batched.timings
            );
        }
    }
    // The constraint held in the batch: the chart answer is JSON from its first character.
    assert!(
        singles[2].raw.starts_with('{'),
        "constrained answer: {:?}",
        singles[2].raw
    );
    assert!(
        !singles[0].raw.is_empty() || !singles[1].raw.is_empty(),
        "the pages generated something"
    );
}

#[test]
fn a_failing_request_fails_alone_and_the_others_are_answered() {
    // 2 000 tokens: a page of ~100 prompt tokens + 16 new fits, one asking for 5 000 does not.
    let generator = tiny_generator(Some(2_000));
    let document = Profile::new(ProfileKind::Document);
    let good_a = page(200, 120, 4, 150);
    let good_b = page(240, 140, 2, 60);
    // 1x300 after the processor's minimum-size scaling: an aspect ratio it rejects.
    let sliver = RgbImage::from_pixel(2, 600, Rgb([0, 0, 0]));
    let requests = [
        request(&good_a, &document, 16),
        request(&sliver, &document, 16),
        request(&good_b, &document, 5_000),
        request(&good_b, &document, 12),
    ];
    let expected_a = alone(&generator, &requests[0]);
    let expected_b = alone(&generator, &requests[3]);
    let out = generator.generate(&requests);
    assert_eq!(out.len(), 4);
    let mut out = out.into_iter();
    let a = out.next().expect("a").expect("the first page is answered");
    assert_eq!(a.raw, expected_a.raw);
    let e = out
        .next()
        .expect("sliver")
        .expect_err("the processor rejects it");
    assert!(e.contains("aspect ratio"), "{e}");
    let e = out
        .next()
        .expect("too big")
        .expect_err("larger than the budget");
    assert!(e.contains("budget"), "{e}");
    let b = out.next().expect("b").expect("the last page is answered");
    assert_eq!(b.raw, expected_b.raw);
}

/// Continuous batching: pages arriving from several threads at different times join the one
/// running batch (a later, short page finishes before an earlier, long one) and each reads the
/// same as alone.
#[test]
fn pages_from_several_callers_join_the_running_batch() {
    // Stops ignored: every answer is exactly its token budget, so the long page is long.
    let generator = tiny_generator(None)
        .with_max_batch(4)
        .with_ignore_stop(true);
    let document = Profile::new(ProfileKind::Document);
    let long_page = page(200, 120, 4, 150);
    let short_pages = [page(240, 140, 2, 60), page(160, 160, 6, 120)];
    let long_req = request(&long_page, &document, 1_500);
    let short_reqs: Vec<GenRequest> = short_pages
        .iter()
        .map(|p| request(p, &document, 6))
        .collect();
    let expected_long = alone(&generator, &long_req);
    let expected_short: Vec<GenOutput> = short_reqs.iter().map(|r| alone(&generator, r)).collect();

    let finished = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let (generator, finished) = (&generator, &finished);
        let long_req = &long_req;
        s.spawn(move || {
            let out = generator.generate(std::slice::from_ref(long_req));
            finished.lock().unwrap().push(("long", out));
        });
        // Let the long page start decoding before the short ones arrive.
        std::thread::sleep(std::time::Duration::from_millis(150));
        for (k, req) in short_reqs.iter().enumerate() {
            s.spawn(move || {
                let out = generator.generate(std::slice::from_ref(req));
                finished
                    .lock()
                    .unwrap()
                    .push((["short0", "short1"][k], out));
            });
        }
    });
    let finished = finished.into_inner().unwrap();
    let order: Vec<&str> = finished.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        order.last(),
        Some(&"long"),
        "the long page retires last: {order:?}"
    );
    for (name, mut out) in finished {
        let out = out.pop().expect("one answer").expect("answered");
        let expected = match name {
            "long" => &expected_long,
            "short0" => &expected_short[0],
            _ => &expected_short[1],
        };
        assert_eq!(out.raw, expected.raw, "{name}: same as alone");
        assert!(
            !out.truncated,
            "{name}: an answer of exactly its budget is not a cut"
        );
    }
}
