//! The engine's failure path, driven by a scripted generator (the only test double: it stands
//! in for the model's text output) with the real parser and the real `ocr` engine as fallback
//! (needs `scripts/setup`'s runtime folder, `$FOLIO_RUNTIME_DIR` or `~/.cache/folio`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::profiles::ProfileKind;
use folio_schemas::{BlockKind, EngineInfo, JobOptions};
use image::{Rgb, RgbImage};

use super::run::{GenOutput, GenRequest, TextGenerator};
use super::{EngineSettings, Glm45vEngine, LazyOcr};
use crate::engine::{Engine, EngineError, PageInput};

/// What one request looked like.
#[derive(Debug, Clone)]
struct Seen {
    prompt: String,
    thinking: bool,
    schema: bool,
    size: (u32, u32),
}

type Answer = dyn Fn(usize, &GenRequest<'_>) -> Result<String, String> + Send + Sync;

/// Answers request `n` (counted over the whole test) with `answer(n, request)`.
struct Scripted {
    answer: Box<Answer>,
    seen: Mutex<Vec<Seen>>,
    calls: Mutex<Vec<usize>>,
}

impl Scripted {
    fn new(
        answer: impl Fn(usize, &GenRequest<'_>) -> Result<String, String> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Scripted {
            answer: Box::new(answer),
            seen: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
        })
    }
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl TextGenerator for Scripted {
    fn generate(&self, requests: &[GenRequest<'_>]) -> Vec<Result<GenOutput, String>> {
        self.calls.lock().expect("lock").push(requests.len());
        requests
            .iter()
            .map(|r| {
                let mut seen = self.seen.lock().expect("lock");
                let n = seen.len();
                seen.push(Seen {
                    prompt: r.prompt.clone(),
                    thinking: r.thinking,
                    schema: r.json_schema.is_some(),
                    size: r.image.dimensions(),
                });
                drop(seen);
                (self.answer)(n, r).map(|raw| GenOutput {
                    raw,
                    truncated: false,
                    timings: [("decode".to_string(), 1.0)].into_iter().collect(),
                })
            })
            .collect()
    }
}

fn runtime_dir() -> PathBuf {
    std::env::var_os("FOLIO_RUNTIME_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/folio")))
        .expect("FOLIO_RUNTIME_DIR or HOME")
}

fn real_ocr() -> LazyOcr {
    let mut cfg = folio_ocr::OcrConfig::from_runtime_dir(runtime_dir());
    cfg.threads = 2;
    LazyOcr::from_config(cfg)
}

fn corpus() -> PathBuf {
    std::env::var_os("FOLIO_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
}

fn engine(
    generator: Arc<Scripted>,
    ocr: LazyOcr,
    max_batch: usize,
    layout_first: bool,
) -> Glm45vEngine {
    Glm45vEngine::new(
        generator,
        ocr,
        EngineSettings {
            max_batch,
            max_new_tokens: 64,
            thinking: None,
            layout_first,
            default_profile: ProfileKind::Document,
        },
        EngineInfo {
            name: "glm45v".into(),
            model: "scripted".into(),
            revision: None,
            device: "cpu".into(),
            profile: None,
        },
    )
}

fn page(n: u32, image: RgbImage, profile: Option<&str>, prompt: Option<&str>) -> PageInput {
    PageInput {
        document_id: "d".into(),
        page: n,
        image,
        dpi: Some(200),
        options: JobOptions {
            engine: folio_schemas::EngineKind::Glm45v,
            profile: profile.map(String::from),
            prompt: prompt.map(String::from),
            ..JobOptions::default()
        },
    }
}

fn blank(w: u32, h: u32) -> RgbImage {
    RgbImage::from_pixel(w, h, Rgb([255, 255, 255]))
}

/// An ocr engine that must not be needed.
fn no_ocr() -> LazyOcr {
    LazyOcr::new(Box::new(|| {
        Err("the ocr engine was not expected to load".into())
    }))
}

const GOOD_DOC: &str = "<|begin_of_box|>[100,50,900,150]<|end_of_box|># Invoice 42\n\n\
                        <|begin_of_box|>[100,200,900,400]<|end_of_box|>Total due: 12 EUR";

#[test]
fn a_good_first_answer_is_parsed_with_the_page_profile() {
    let generator = Scripted::new(|_, _| Ok(GOOD_DOC.into()));
    let e = engine(generator.clone(), no_ocr(), 4, false);
    let out = e.run(&[page(3, blank(1000, 500), None, None)]);
    let out = out.into_iter().next().expect("one result").expect("ok");
    assert_eq!(out.profile.as_deref(), Some("document@1"));
    assert_eq!(
        summary(&out.blocks),
        vec![
            ("p3-b1", BlockKind::Title, "Invoice 42"),
            ("p3-b2", BlockKind::Text, "Total due: 12 EUR")
        ]
    );
    // Boxes in page pixels: 0..1000 of a 1000x500 page.
    assert_eq!(out.blocks[1].bbox.0, [100.0, 100.0, 900.0, 200.0]);
    assert!(out.timings.contains_key("parse") && out.timings.contains_key("decode"));
    let seen = generator.seen();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].thinking && !seen[0].schema && seen[0].size == (1000, 500));
}

#[test]
fn an_unusable_answer_is_retried_once_with_the_stricter_profile() {
    let generator = Scripted::new(|n, _| {
        Ok(if n == 0 {
            "the the the the ".repeat(40)
        } else {
            GOOD_DOC.into()
        })
    });
    let e = engine(generator.clone(), no_ocr(), 1, false);
    let out = e.run(&[page(1, blank(800, 600), Some("document"), None)]);
    let out = out.into_iter().next().expect("one").expect("ok");
    assert_eq!(out.profile.as_deref(), Some("document-strict@1"));
    assert_eq!(out.blocks.len(), 2);
    assert!(
        out.warnings[0].contains("first answer unusable") && out.warnings[0].contains("repetition"),
        "{:?}",
        out.warnings
    );
    let seen = generator.seen();
    assert_eq!(seen.len(), 2);
    assert_ne!(
        seen[0].prompt, seen[1].prompt,
        "the retry uses the stricter prompt"
    );
    assert_eq!(out.timings["decode"], 2.0, "both attempts are timed");
}

#[test]
fn two_unusable_answers_fall_back_to_the_ocr_engine() {
    let image = image::open(corpus().join("printed/tess_phototest.tif"))
        .expect("corpus image")
        .to_rgb8();
    let generator = Scripted::new(|_, _| Ok("<think>Looking at the rows".into()));
    let e = engine(generator.clone(), real_ocr(), 2, false);
    let out = e.run(&[page(1, image, Some("table"), None)]);
    let out = out
        .into_iter()
        .next()
        .expect("one")
        .expect("the page is not lost");
    assert_eq!(out.profile.as_deref(), Some("table-strict@1"));
    assert!(
        out.warnings[0].contains("table@1")
            && out.warnings[0].contains("table-strict@1")
            && out.warnings[0].contains("read by the ocr engine"),
        "{:?}",
        out.warnings
    );
    let text: String = out.blocks.iter().filter_map(|b| b.text.clone()).collect();
    assert!(text.contains("quick brown"), "ocr text: {text}");
    assert!(out.timings.contains_key("ocr_fallback") && out.timings["decode"] == 2.0);
    assert_eq!(generator.seen().len(), 2);
}

#[test]
fn a_generator_error_is_not_retried_and_falls_back() {
    let generator = Scripted::new(|_, _| Err("CUDA out of memory".into()));
    let e = engine(generator.clone(), real_ocr(), 1, false);
    let out = e.run(&[page(1, blank(200, 100), None, None)]);
    let out = out.into_iter().next().expect("one").expect("fallback");
    assert_eq!(generator.seen().len(), 1);
    assert!(
        out.warnings[0].contains("CUDA out of memory"),
        "{:?}",
        out.warnings
    );
    assert_eq!(out.profile.as_deref(), Some("document@1"));
}

#[test]
fn a_failed_fallback_is_a_permanent_page_error() {
    let generator = Scripted::new(|_, _| Ok(String::new()));
    let e = engine(generator, no_ocr(), 1, false);
    let out = e.run(&[page(1, blank(200, 100), None, None)]);
    match out.into_iter().next().expect("one") {
        Err(EngineError::Permanent { code, message }) => {
            assert_eq!(code, "engine_failed");
            assert!(
                message.contains("empty") && message.contains("not expected"),
                "{message}"
            );
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

#[test]
fn json_profiles_are_constrained_and_questions_need_a_prompt() {
    let chart = r#"{"chart_type":"bar","title":"Sales","axes":{"x":{"title":null,"unit":null},"y":{"title":"EUR","unit":null}},"series":[{"name":"2024","points":[{"x":"Q1","y":3},{"x":"Q2","y":5}]}]}"#;
    let generator = Scripted::new(move |_, r| {
        Ok(if r.json_schema.is_some() {
            chart.to_string()
        } else {
            "It says 12 EUR.".to_string()
        })
    });
    let e = engine(generator.clone(), no_ocr(), 8, false);
    let out = e.run(&[
        page(1, blank(300, 200), Some("chart"), None),
        page(
            2,
            blank(300, 200),
            Some("question"),
            Some("What is the total?"),
        ),
        page(3, blank(300, 200), Some("question"), None),
        page(4, blank(300, 200), Some("poem"), None),
    ]);
    let mut out = out.into_iter();
    let c = out.next().expect("chart").expect("ok");
    assert_eq!(c.profile.as_deref(), Some("chart@1"));
    let series = &c.blocks[0].chart.as_ref().expect("chart block").series;
    assert_eq!(series[0].points.len(), 2);
    let q = out.next().expect("question").expect("ok");
    assert_eq!(q.profile.as_deref(), Some("question@1"));
    assert_eq!(q.blocks[0].text.as_deref(), Some("It says 12 EUR."));
    for bad in out {
        assert!(
            matches!(
                bad,
                Err(EngineError::Permanent {
                    code: "invalid_options",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    let seen = generator.seen();
    assert_eq!(seen.len(), 2, "invalid jobs reach no generator");
    assert!(seen[0].schema, "charts are schema-constrained");
    let default = |k| super::profiles::Profile::new(k).thinking_default();
    assert_eq!(seen[0].thinking, default(ProfileKind::Chart));
    assert!(seen[1].prompt.contains("What is the total?") && !seen[1].schema);
    assert_eq!(seen[1].thinking, default(ProfileKind::Question));
}

#[test]
fn pages_are_batched_and_retries_batched_again() {
    let generator = Scripted::new(|n, _| {
        Ok(if n == 1 {
            "x".repeat(3).repeat(100)
        } else {
            GOOD_DOC.into()
        })
    });
    let e = engine(generator.clone(), no_ocr(), 2, false);
    assert_eq!(e.max_batch(), 2);
    let pages: Vec<PageInput> = (1..=3)
        .map(|n| page(n, blank(100, 100), None, None))
        .collect();
    let out = e.run(&pages);
    assert!(out.iter().all(|o| o.is_ok()));
    let profiles: Vec<String> = out
        .into_iter()
        .map(|o| o.expect("ok").profile.expect("profile"))
        .collect();
    assert_eq!(
        profiles,
        vec!["document@1", "document-strict@1", "document@1"]
    );
    assert_eq!(*generator.calls.lock().expect("lock"), vec![2, 1, 1]);
}

#[test]
fn layout_first_reads_each_region_with_its_profile_and_merges_in_order() {
    // A generated two-column page (title, columns, list, table: several regions; the ocr engine
    // reads a plain page such as tess_phototest as one paragraph).
    let image = image::open(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("ocr/tests/data/multicolumn/two_col_grey_skew1.jpg"),
    )
    .expect("generated page")
    .to_rgb8();
    // The second region's answer is unusable twice (its retry is recognised by its crop size):
    // it keeps the ocr engine's reading.
    let second: Mutex<Option<(u32, u32)>> = Mutex::new(None);
    let generator = Scripted::new(move |n, r| {
        let mut second = second.lock().expect("lock");
        if n == 1 {
            *second = Some(r.image.dimensions());
        }
        Ok(if *second == Some(r.image.dimensions()) {
            String::new()
        } else {
            format!("<|begin_of_box|>[0,0,1000,1000]<|end_of_box|>region text {n}")
        })
    });
    let e = engine(generator.clone(), real_ocr(), 4, true);
    let out = e.run(&[page(1, image.clone(), None, None)]);
    let out = out.into_iter().next().expect("one").expect("ok");
    let regions = e
        .ocr
        .read(&page(1, image, None, None), &mut Default::default(), "t")
        .expect("ocr")
        .blocks;
    assert!(
        regions.len() >= 2,
        "the page has several regions: {regions:?}"
    );
    let seen = generator.seen();
    // One request per region, plus the stricter retry of the second.
    assert_eq!(seen.len(), regions.len() + 1);
    assert_eq!(out.blocks.len(), regions.len());
    for (i, (b, r)) in out.blocks.iter().zip(&regions).enumerate() {
        assert_eq!(b.id, format!("p1-b{}", i + 1));
        // Crops are the region plus a margin, and a whole-crop box maps back onto the page.
        assert!(b.bbox.x0() <= r.bbox.x0() + 0.5 && b.bbox.x1() >= r.bbox.x1() - 0.5);
        if i == 1 {
            assert_eq!(b.text, r.text, "kept the ocr reading");
        } else {
            assert!(
                b.text.as_deref().unwrap_or("").starts_with("region text"),
                "{b:?}"
            );
        }
    }
    assert!(seen[0].size.0 < 1000, "regions are crops, not the page");
    assert!(out
        .warnings
        .iter()
        .any(|w| w.contains("kept the ocr engine's reading")));
    assert_eq!(out.profile.as_deref(), Some("layout-first:document@1"));
    assert!(out.timings.contains_key("layout"));
}

/// `(id, kind, text)` of each block, for comparing pages in one assertion.
pub(crate) fn summary(blocks: &[folio_schemas::Block]) -> Vec<(&str, BlockKind, &str)> {
    blocks
        .iter()
        .map(|b| (b.id.as_str(), b.kind, b.text.as_deref().unwrap_or("")))
        .collect()
}
