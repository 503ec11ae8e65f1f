//! Page jobs of every prompt profile through the real worker loop (in-process queue, local-folder
//! store) with the `glm45v` engine on the tiny GLM-4.5V fixture (random weights: the text is
//! noise, the plumbing is what is checked) and the real `ocr` engine as its fallback. Needs
//! `scripts/setup`'s runtime folder (`$FOLIO_RUNTIME_DIR` or `~/.cache/folio`).

mod support;

use bytes::Bytes;
use folio_schemas::{DocKeys, DocumentResult, DocumentStatus, EngineKind, JobOptions, PageResult};
use folio_test_support::{assert_valid, repo_root, runtime_dir};
use folio_transport::{InProcessQueue, JobQueue, LocalDirStore, ObjectStore};
use folio_workers::engines::glm45v::profiles::{Profile, ProfileKind};
use folio_workers::engines::glm45v::{Glm45vConfig, LazyOcr, Precision};
use folio_workers::engines::Glm45vEngine;
use folio_workers::{Engine, WorkerConfig};
use std::sync::Arc;
use std::time::Duration;
use support::*;

fn page_png(page: u32) -> Bytes {
    // A white page with dark bars: something for the vision tower and the ocr fallback.
    let mut img = image::RgbImage::from_pixel(160 + 40 * page, 120, image::Rgb([255, 255, 255]));
    for y in (20..100).step_by(20) {
        for x in 10..150 {
            img.put_pixel(x, y, image::Rgb([20, 20, 20]));
        }
    }
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    Bytes::from(out.into_inner())
}

/// Document `doc`: two pages of `page_png`, read with `options`.
async fn submit(store: &dyn ObjectStore, queue: &dyn JobQueue, doc: &str, options: &JobOptions) {
    let pages = (1..=2).map(page_png).collect();
    submit_pages(store, queue, doc, options, ("x.png", "image/png"), pages).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_glm45v_writes_schema_valid_results_for_every_profile() {
    let mut cfg = Glm45vConfig::new(
        repo_root().join("workers/glm45v/tests/fixtures/tiny"),
        runtime_dir().join("lib/libonnxruntime.so.1.31.1"),
    );
    cfg.dtype = Precision::F32;
    cfg.max_batch = 2;
    // Room for the JSON profiles: their schemas need ~100-200 bytes to close an object.
    cfg.max_new_tokens = 256;
    cfg.max_image_pixels = Some(30_000);
    cfg.vision_threads = 2;
    let mut ocr = folio_ocr::OcrConfig::from_runtime_dir(runtime_dir());
    ocr.threads = 2;
    let engine = Glm45vEngine::load(&cfg, LazyOcr::from_config(ocr)).expect("tiny model loads");
    assert_eq!(engine.kind(), EngineKind::Glm45v);
    assert_eq!(engine.max_batch(), 2);

    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn ObjectStore> = Arc::new(LocalDirStore::new(dir.path()).expect("store"));
    let queue = InProcessQueue::new(3);
    // One two-page document per profile, all on the queue before the worker starts.
    let mut docs = Vec::new();
    for kind in ProfileKind::ALL {
        let options = JobOptions {
            engine: EngineKind::Glm45v,
            profile: Some(kind.name().into()),
            prompt: (kind == ProfileKind::Question).then(|| "What is written here?".into()),
            ..JobOptions::default()
        };
        let doc = format!("g-{}", kind.name());
        submit(store.as_ref(), &queue, &doc, &options).await;
        docs.push(doc);
    }
    let config = WorkerConfig {
        delivery_limit: 3,
        ..WorkerConfig::default()
    };
    let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
    run_until_done(
        store.clone(),
        Arc::new(queue.clone()),
        Arc::new(engine),
        config,
        &docs,
        Duration::from_secs(600),
    )
    .await;

    for kind in ProfileKind::ALL {
        check_document(store.as_ref(), &format!("g-{}", kind.name()), kind).await;
    }
}

/// `document.json` of `doc` complete and schema-valid, each page read with `kind`'s profile
/// (or its stricter retry), timed stage by stage, and an ocr fallback only after that retry.
async fn check_document(store: &dyn ObjectStore, doc: &str, kind: ProfileKind) {
    let keys = DocKeys::new("t", doc);
    let bytes = store
        .get(&keys.document_json())
        .await
        .expect("document.json");
    let doc_json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    assert_valid("document_result.schema.json", &doc_json);
    let result: DocumentResult = serde_json::from_slice(&bytes).expect("document");
    assert_eq!(
        result.status,
        DocumentStatus::Complete,
        "{doc}: {:?}",
        result.errors
    );
    for n in 1..=2 {
        let bytes = store.get(&keys.page_result(n)).await.expect("page result");
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_valid("page_result.schema.json", &json);
        let page: PageResult = serde_json::from_slice(&bytes).expect("page");
        assert_eq!(page.engine.name, "glm45v");
        assert_eq!(page.engine.device, "cpu");
        let profile = page.engine.profile.clone().expect("engine.profile");
        let parsed = Profile::parse(&profile).expect("a profile id");
        assert_eq!(parsed.kind, kind, "{doc} page {n}: {profile}");
        for stage in ["processor", "vision", "prefill", "decode", "parse", "total"] {
            assert!(
                page.timings.contains_key(stage),
                "{doc}: no {stage}: {:?} (warnings {:?})",
                page.timings,
                page.warnings
            );
        }
        let fell_back = page
            .warnings
            .iter()
            .any(|w| w.contains("read by the ocr engine"));
        // A fallback happens only after the stricter retry, and the ocr engine's time is kept.
        assert_eq!(
            fell_back,
            page.timings.contains_key("ocr_fallback"),
            "{page:?}"
        );
        if fell_back {
            assert!(parsed.strict, "{profile}");
        }
    }
}
