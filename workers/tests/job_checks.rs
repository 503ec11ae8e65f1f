//! The worker trusts no message: forged page jobs on the real in-process queue and local-folder
//! store (wrapped to record every key touched) are dead-lettered as `invalid_job` without a key
//! outside the job's own `{tenant}/docs/{document_id}/` being read, and nothing is written for
//! them; an honest document after them is processed as usual.

mod support;

use bytes::Bytes;
use folio_schemas::{
    BBox, Block, BlockKind, DocKeys, EngineInfo, EngineKind, JobOptions, Manifest, PageJob,
    SCHEMA_VERSION,
};
use folio_transport::{InProcessQueue, JobQueue, LocalDirStore, ObjectStore, TransportError};
use folio_workers::{Engine, EngineError, EngineOutput, PageInput, WorkerConfig, WorkerEvent};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// One block per page.
struct Echo;

impl Engine for Echo {
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
        1
    }
    fn run(&self, pages: &[PageInput]) -> Vec<Result<EngineOutput, EngineError>> {
        pages
            .iter()
            .map(|p| {
                Ok(EngineOutput {
                    blocks: vec![Block::new(
                        format!("p{}-b1", p.page),
                        BlockKind::Text,
                        BBox::new(0.0, 0.0, 1.0, 1.0),
                    )],
                    warnings: vec![],
                    timings: Default::default(),
                    profile: None,
                })
            })
            .collect()
    }
}

/// A local-folder store that records `(operation, key)` for every call.
#[derive(Debug)]
struct RecordingStore {
    inner: LocalDirStore,
    calls: Mutex<Vec<(&'static str, String)>>,
}

impl RecordingStore {
    fn record(&self, op: &'static str, key: &str) {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((op, key.to_string()));
    }
    fn take(&self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait::async_trait]
impl ObjectStore for RecordingStore {
    async fn put(&self, key: &str, body: Bytes, ct: &str) -> Result<(), TransportError> {
        self.record("put", key);
        self.inner.put(key, body, ct).await
    }
    async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        ct: &str,
    ) -> Result<bool, TransportError> {
        self.record("put", key);
        self.inner.put_if_absent(key, body, ct).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, TransportError> {
        self.record("get", key);
        self.inner.get(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool, TransportError> {
        self.record("exists", key);
        self.inner.exists(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, TransportError> {
        self.record("list", prefix);
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), TransportError> {
        self.record("delete", key);
        self.inner.delete(key).await
    }
}

fn png() -> Bytes {
    let img = image::RgbImage::from_pixel(30, 20, image::Rgb([255, 255, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    Bytes::from(out.into_inner())
}

fn job(tenant: &str, doc: &str, page: u32, page_count: u32, image_key: String) -> PageJob {
    PageJob {
        schema_version: SCHEMA_VERSION.into(),
        tenant: tenant.into(),
        document_id: doc.into(),
        page,
        page_count,
        image_key,
        options: JobOptions::default(),
        dpi: Some(200),
        traceparent: None,
        submitted_at: "2026-01-01T00:00:00Z".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_jobs_touch_nothing_outside_their_prefix_and_are_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RecordingStore {
        inner: LocalDirStore::new(dir.path()).unwrap(),
        calls: Mutex::new(Vec::new()),
    });
    let queue = Arc::new(InProcessQueue::new(3));
    // The victim: tenant `beta`'s one-page document `v1` (manifest and image, no job).
    let victim = DocKeys::new("beta", "v1");
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION.into(),
        tenant: "beta".into(),
        document_id: "v1".into(),
        file_name: None,
        media_type: "image/png".into(),
        sha256: "00".into(),
        size_bytes: 1,
        pages: vec![1],
        source_page_count: 1,
        options: JobOptions::default(),
        created_at: "2026-01-01T00:00:00Z".into(),
        metadata: Default::default(),
    };
    let json = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    let inner = &store.inner;
    inner
        .put(&victim.manifest(), json, "application/json")
        .await
        .unwrap();
    inner
        .put(&victim.page_image(1), png(), "image/png")
        .await
        .unwrap();
    store.take();

    let forged = [
        // Tenant `t`'s job pointing at `beta`'s page.
        (job("t", "d1", 1, 1, victim.page_image(1)), None),
        // A tenant and a document id that are paths.
        (job("t/../beta", "v1", 1, 1, victim.page_image(1)), None),
        (
            job("t", "v1/../../beta/docs/v1", 1, 1, victim.page_image(1)),
            None,
        ),
        // `beta`'s document, a page the manifest does not list: its manifest is the one read.
        (
            job("beta", "v1", 2, 2, victim.page_image(2)),
            Some(victim.manifest()),
        ),
        // A document `t` does not have: its (absent) manifest is the one read.
        (
            job("t", "v1", 1, 1, DocKeys::new("t", "v1").page_image(1)),
            Some(DocKeys::new("t", "v1").manifest()),
        ),
    ];
    for (j, _) in &forged {
        queue.publish(j).await.unwrap();
    }
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let config = WorkerConfig {
        delivery_limit: 3,
        retry_delay: Duration::from_millis(10),
        outage_wait: Duration::ZERO,
    };
    let worker = folio_workers::Worker::new(store.clone(), queue.clone(), Arc::new(Echo), config)
        .with_events(tx);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { worker.run(shutdown).await })
    };
    let mut checks = Vec::new();
    while checks.len() < forged.len() {
        let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("every forged job is rejected")
            .expect("worker events");
        match event {
            WorkerEvent::JobRejected { check, .. } => checks.push(check),
            other => panic!("a forged job was processed: {other:?}"),
        }
    }
    assert_eq!(
        checks,
        [
            "image_key",
            "tenant",
            "document_id",
            "page_not_in_manifest",
            "no_manifest"
        ]
    );
    let reads: Vec<String> = forged.iter().filter_map(|(_, read)| read.clone()).collect();
    let calls = store.take();
    assert_eq!(
        calls,
        reads.iter().map(|k| ("get", k.clone())).collect::<Vec<_>>(),
        "only the manifests under the jobs' own prefixes are read, nothing is written"
    );
    let dead = queue.dead_letter_reasons(EngineKind::Ocr);
    assert_eq!(dead.len(), forged.len());
    assert!(dead.iter().all(|(_, reason)| reason == "invalid_job"));

    // An honest document after them is processed as usual.
    submit_pages(
        store.as_ref(),
        queue.as_ref(),
        "d2",
        &JobOptions::default(),
        ("d.png", "image/png"),
        vec![png()],
    )
    .await;
    let done = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(e) = events.recv().await {
            if matches!(&e, WorkerEvent::DocumentDone { document_id, .. } if document_id == "d2") {
                return true;
            }
        }
        false
    })
    .await
    .expect("the honest document completes");
    assert!(done);
    assert!(store
        .take()
        .iter()
        .all(|(_, key)| key.starts_with("t/docs/d2/")));
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
