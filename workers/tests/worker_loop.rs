//! The worker loop against the real in-process queue and local-folder store, with small test engines
//! standing in for the models: the loop's own policy (settle only after a durable write, failure
//! records, completion, retries) is what is checked here.

mod support;

use bytes::Bytes;
use folio_schemas::{
    BBox, Block, BlockKind, DocKeys, DocumentResult, DocumentStatus, EngineInfo, EngineKind,
    JobOptions,
};
use folio_transport::{InProcessQueue, JobQueue, LocalDirStore, ObjectStore, TransportError};
use folio_workers::{Engine, EngineError, EngineOutput, PageInput, WorkerConfig};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

/// Echoes one block per page with the page's size; fails the pages it is told to.
struct TestEngine {
    fail_page: Option<u32>,
    panic_page: Option<u32>,
}

impl Engine for TestEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Ocr
    }
    fn info(&self) -> EngineInfo {
        EngineInfo {
            name: "test".into(),
            model: "echo".into(),
            revision: None,
            device: "cpu".into(),
            profile: None,
        }
    }
    fn max_batch(&self) -> usize {
        2
    }
    fn run(&self, pages: &[PageInput]) -> Vec<Result<EngineOutput, EngineError>> {
        pages
            .iter()
            .map(|p| {
                if Some(p.page) == self.panic_page {
                    panic!("engine bug on page {}", p.page);
                }
                if Some(p.page) == self.fail_page {
                    return Err(EngineError::Permanent {
                        code: "engine_failed",
                        message: "cannot read".into(),
                    });
                }
                let (w, h) = p.image.dimensions();
                let block = Block {
                    text: Some(format!("page {} is {w}x{h}", p.page)),
                    ..Block::new(
                        format!("p{}-b1", p.page),
                        BlockKind::Text,
                        BBox::new(0.0, 0.0, w as f32, h as f32),
                    )
                };
                Ok(EngineOutput {
                    blocks: vec![block],
                    warnings: vec![],
                    timings: Default::default(),
                    profile: None,
                })
            })
            .collect()
    }
}

/// A store that fails the first `failures` writes of result keys with a transient error.
#[derive(Debug)]
struct FlakyStore {
    inner: LocalDirStore,
    failures: AtomicU32,
}

#[async_trait::async_trait]
impl ObjectStore for FlakyStore {
    async fn put(&self, key: &str, body: Bytes, ct: &str) -> Result<(), TransportError> {
        if key.contains("/results/") && self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(TransportError::new(
                folio_transport::ErrorKind::Unavailable,
                "s3 is down",
            ));
        }
        self.inner.put(key, body, ct).await
    }
    async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        ct: &str,
    ) -> Result<bool, TransportError> {
        self.inner.put_if_absent(key, body, ct).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, TransportError> {
        self.inner.get(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool, TransportError> {
        self.inner.exists(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, TransportError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), TransportError> {
        self.inner.delete(key).await
    }
}

fn png(w: u32, h: u32) -> Bytes {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    Bytes::from(out.into_inner())
}

/// Store a manifest and page images for `pages` pages and publish their jobs; page `corrupt` gets
/// bytes that are not an image.
async fn submit(
    store: &dyn ObjectStore,
    queue: &dyn JobQueue,
    doc: &str,
    pages: u32,
    corrupt: Option<u32>,
) {
    let options = JobOptions {
        engine: EngineKind::Ocr,
        ..JobOptions::default()
    };
    let bodies = (1..=pages)
        .map(|page| {
            if Some(page) == corrupt {
                Bytes::from_static(b"not a png")
            } else {
                png(10 * page, 20)
            }
        })
        .collect();
    submit_pages(
        store,
        queue,
        doc,
        &options,
        ("x.pdf", "application/pdf"),
        bodies,
    )
    .await;
}

/// A local-folder store (behind a [`FlakyStore`] when result writes should fail first) and an
/// in-process queue with a delivery limit of 3.
struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<dyn ObjectStore>,
    flaky: Option<Arc<FlakyStore>>,
    queue: InProcessQueue,
}

impl Setup {
    /// `failures`: result writes that fail transiently before the store works (0: no wrapper).
    fn new(failures: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalDirStore::new(dir.path()).unwrap();
        let (store, flaky): (Arc<dyn ObjectStore>, _) = if failures == 0 {
            (Arc::new(local), None)
        } else {
            let flaky = Arc::new(FlakyStore {
                inner: local,
                failures: AtomicU32::new(failures),
            });
            (flaky.clone(), Some(flaky))
        };
        Setup {
            _dir: dir,
            store,
            flaky,
            queue: InProcessQueue::new(3),
        }
    }

    /// Submit `pages` pages of `doc` (page `corrupt` unreadable), run a worker until the document
    /// is assembled, and read it back.
    async fn process(
        &self,
        doc: &str,
        pages: u32,
        corrupt: Option<u32>,
        engine: TestEngine,
        config: WorkerConfig,
    ) -> (DocumentResult, Bytes) {
        submit(self.store.as_ref(), &self.queue, doc, pages, corrupt).await;
        run_until_done(
            self.store.clone(),
            Arc::new(self.queue.clone()),
            Arc::new(engine),
            config,
            &[doc],
            Duration::from_secs(20),
        )
        .await;
        document(self.store.as_ref(), doc).await
    }

    /// Result writes of the flaky store still to fail.
    fn failures_left(&self) -> u32 {
        self.flaky
            .as_ref()
            .map_or(0, |f| f.failures.load(Ordering::SeqCst))
    }
}

async fn document(store: &dyn ObjectStore, doc: &str) -> (DocumentResult, Bytes) {
    let bytes = store
        .get(&DocKeys::new("t", doc).document_json())
        .await
        .unwrap();
    (serde_json::from_slice(&bytes).unwrap(), bytes)
}

/// Delivery limit 3, short waits; `outage_wait`: how long a page is held while the store fails.
fn config(outage_wait: Duration) -> WorkerConfig {
    WorkerConfig {
        delivery_limit: 3,
        retry_delay: Duration::from_millis(10),
        outage_wait,
    }
}

impl TestEngine {
    fn echo() -> Self {
        TestEngine {
            fail_page: None,
            panic_page: None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_once_failures_recorded_and_dead_lettered() {
    let setup = Setup::new(0);
    let engine = TestEngine {
        fail_page: Some(2),
        panic_page: Some(5),
    };
    let (doc, bytes) = setup
        .process("d1", 5, Some(4), engine, config(Duration::ZERO))
        .await;
    assert_eq!(doc.status, DocumentStatus::Partial);
    assert_eq!(
        doc.pages.iter().map(|p| p.page).collect::<Vec<_>>(),
        vec![1, 3]
    );
    let codes: Vec<(u32, &str)> = doc
        .errors
        .iter()
        .map(|e| (e.page, e.code.as_str()))
        .collect();
    assert_eq!(
        codes,
        vec![
            (2, "engine_failed"),
            (4, "image_undecodable"),
            (5, "engine_panicked")
        ]
    );
    assert_eq!(
        doc.pages[1].blocks[0].text.as_deref(),
        Some("page 3 is 30x20")
    );
    let queue = &setup.queue;
    assert_eq!(queue.dead_letters(EngineKind::Ocr).len(), 3);
    assert_eq!(queue.ready_len(EngineKind::Ocr), 0);
    // Assembling again gives the same bytes.
    folio_results::try_assemble(setup.store.as_ref(), "t", "d1")
        .await
        .unwrap();
    assert_eq!(document(setup.store.as_ref(), "d1").await.1, bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_store_failures_are_retried_without_losing_pages() {
    let setup = Setup::new(2);
    let (doc, _) = setup
        .process("d2", 3, None, TestEngine::echo(), config(Duration::ZERO))
        .await;
    assert_eq!(doc.status, DocumentStatus::Complete);
    assert_eq!(doc.pages.len(), 3);
    assert_eq!(setup.failures_left(), 0, "the failures happened");
    assert!(setup.queue.dead_letters(EngineKind::Ocr).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_failing_past_the_delivery_limit_is_recorded() {
    let setup = Setup::new(3);
    let (doc, _) = setup
        .process("d3", 1, None, TestEngine::echo(), config(Duration::ZERO))
        .await;
    assert_eq!(doc.status, DocumentStatus::Partial);
    assert_eq!(doc.errors[0].code, "delivery_limit");
    assert_eq!(doc.errors[0].attempts, 3);
}

/// More failing writes than the delivery limit allows: held in place, the pages still complete,
/// each on its first delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_is_ridden_out_without_spending_deliveries() {
    let setup = Setup::new(8);
    let (doc, _) = setup
        .process(
            "d4",
            3,
            None,
            TestEngine::echo(),
            config(Duration::from_secs(10)),
        )
        .await;
    assert_eq!(doc.status, DocumentStatus::Complete, "{:?}", doc.errors);
    assert_eq!(
        doc.pages.iter().map(|p| p.page).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(setup.failures_left(), 0, "the failures happened");
    assert!(setup.queue.dead_letters(EngineKind::Ocr).is_empty());
}

/// Page 1 is slow: it waits until every other page has been through the engine. With `max_batch`
/// pages in flight, each on its own, the others keep flowing through the free slots; a loop that
/// ran fixed batches would hold pages 4–6 back until page 1 gave up.
struct SlowFirstPage {
    others_done: std::sync::Mutex<u32>,
    changed: std::sync::Condvar,
    first_saw: std::sync::Mutex<Option<u32>>,
    max_in_engine: AtomicU32,
    in_engine: AtomicU32,
}

impl Engine for SlowFirstPage {
    fn kind(&self) -> EngineKind {
        EngineKind::Ocr
    }
    fn info(&self) -> EngineInfo {
        TestEngine::echo().info()
    }
    fn max_batch(&self) -> usize {
        3
    }
    fn run(&self, pages: &[PageInput]) -> Vec<Result<EngineOutput, EngineError>> {
        let now = self.in_engine.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_engine.fetch_max(now, Ordering::SeqCst);
        if pages.iter().any(|p| p.page == 1) {
            let done = self.others_done.lock().unwrap();
            let (done, _) = self
                .changed
                .wait_timeout_while(done, Duration::from_secs(10), |d| *d < 5)
                .unwrap();
            *self.first_saw.lock().unwrap() = Some(*done);
        }
        let out = TestEngine::echo().run(pages);
        self.in_engine.fetch_sub(1, Ordering::SeqCst);
        if pages.iter().all(|p| p.page != 1) {
            *self.others_done.lock().unwrap() += pages.len() as u32;
            self.changed.notify_all();
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_page_does_not_hold_back_the_others() {
    let setup = Setup::new(0);
    submit(setup.store.as_ref(), &setup.queue, "d5", 6, None).await;
    let engine = Arc::new(SlowFirstPage {
        others_done: std::sync::Mutex::new(0),
        changed: std::sync::Condvar::new(),
        first_saw: std::sync::Mutex::new(None),
        max_in_engine: AtomicU32::new(0),
        in_engine: AtomicU32::new(0),
    });
    run_until_done(
        setup.store.clone(),
        Arc::new(setup.queue.clone()),
        engine.clone(),
        config(Duration::ZERO),
        &["d5"],
        Duration::from_secs(30),
    )
    .await;
    let (doc, _) = document(setup.store.as_ref(), "d5").await;
    assert_eq!(doc.status, DocumentStatus::Complete, "{:?}", doc.errors);
    assert_eq!(
        *engine.first_saw.lock().unwrap(),
        Some(5),
        "pages 2–6 went through the engine while page 1 was still in it"
    );
    assert!(
        engine.max_in_engine.load(Ordering::SeqCst) <= 3,
        "never more than max_batch"
    );
    assert!(
        engine.max_in_engine.load(Ordering::SeqCst) >= 2,
        "pages ran side by side"
    );
}
