//! `folio reprocess` over local folders and the in-process queue: stored documents re-enqueued
//! without rasterizing, raw objects ingested, `--only-failed`, `--since`, `--dry-run`, and
//! interruption + `--resume` enqueuing every page exactly once.

mod events_support;

use bytes::Bytes;
use events_support::*;
use folio_api::reprocess::{
    NoProgress, ProgressSink, ReprocessError, ReprocessOptions, Reprocessor, RunReport, S3Url,
};
use folio_api::submit::{accept, enqueue_pages, SubmitRequest};
use folio_ingest::{IngestConfig, Ingestor, PageRange};
use folio_schemas::{DocKeys, EngineKind, JobOptions, Manifest, PageJob};
use folio_transport::{InProcessQueue, JobQueue, LocalDirStore, ObjectStore};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const FOLIO: &str = "folio-data";

struct Env {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    folio: Arc<dyn ObjectStore>,
    queue: InProcessQueue,
    ingestor: Ingestor,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let folio: Arc<dyn ObjectStore> = Arc::new(LocalDirStore::new(root.join(FOLIO)).unwrap());
        Env {
            _dir: dir,
            root,
            folio,
            queue: InProcessQueue::new(5),
            ingestor: Ingestor::new(IngestConfig::from_runtime_dir(&runtime_dir())),
        }
    }

    fn bucket(&self, name: &str) -> Arc<dyn ObjectStore> {
        Arc::new(LocalDirStore::new(self.root.join(name)).unwrap())
    }

    fn options(&self, url: &str) -> ReprocessOptions {
        ReprocessOptions {
            source: url.parse::<S3Url>().unwrap(),
            folio_bucket: FOLIO.into(),
            tenant: None,
            engine: None,
            profile: None,
            since: None,
            only_failed: false,
            dry_run: false,
            rate: None,
            resume: false,
            restart: false,
            checkpoint_every: 1,
        }
    }

    fn reprocessor(&self, options: ReprocessOptions) -> Reprocessor {
        let source = if options.source.bucket == FOLIO {
            self.folio.clone()
        } else {
            self.bucket(&options.source.bucket)
        };
        Reprocessor::new(
            self.folio.clone(),
            source,
            Arc::new(self.queue.clone()) as Arc<dyn JobQueue>,
            self.ingestor.clone(),
            options,
        )
    }

    /// Every job waiting, by engine, taken off the queue.
    async fn drain(&self, engine: EngineKind) -> Vec<PageJob> {
        let mut c = self.queue.consume(engine, 10_000).await.unwrap();
        let mut out = Vec::new();
        while let Some(d) = c.try_next() {
            out.push(d.job.clone().unwrap());
            d.ack().await.unwrap();
        }
        out
    }

    /// One document through the real submit path, then `copies` more with the same stored
    /// files under other ids (results written for every page; page 2 of each failed).
    async fn stored_documents(&self, tenant: &str, copies: usize) -> Vec<String> {
        let scratch = InProcessQueue::new(5);
        let req = SubmitRequest {
            tenant: tenant.into(),
            document_id: None,
            file_name: Some("will.pdf".into()),
            bytes: corpus(PDF_3P),
            password: None,
            pages: PageRange::all(),
            options: JobOptions::default(),
            metadata: Default::default(),
        };
        let accepted = accept(self.folio.as_ref(), &self.ingestor, req)
            .await
            .unwrap();
        let first = accepted.manifest.clone();
        let q: Arc<dyn JobQueue> = Arc::new(scratch);
        enqueue_pages(self.folio.clone(), q, &self.ingestor, accepted, |_| {})
            .await
            .unwrap();
        let src = DocKeys::new(tenant, &first.document_id);
        let mut ids = Vec::new();
        for i in 0..=copies {
            let id = if i == 0 {
                first.document_id.clone()
            } else {
                format!("{}-{i:04}", first.document_id)
            };
            let keys = DocKeys::new(tenant, &id);
            let mut m = first.clone();
            m.document_id = id.clone();
            m.created_at = format!("2026-01-{:02}T00:00:00Z", 1 + i % 28);
            self.put_json(&keys.manifest(), &m).await;
            for p in 1..=3 {
                if i > 0 {
                    let png = self.folio.get(&src.page_image(p)).await.unwrap();
                    self.folio
                        .put(&keys.page_image(p), png, "image/png")
                        .await
                        .unwrap();
                }
                let key = if p == 2 {
                    keys.page_error(p)
                } else {
                    keys.page_result(p)
                };
                self.folio
                    .put(&key, Bytes::from_static(b"{}"), "application/json")
                    .await
                    .unwrap();
            }
            self.folio
                .put(&keys.document_json(), Bytes::from_static(b"{}"), "")
                .await
                .unwrap();
            ids.push(id);
        }
        ids
    }

    async fn put_json<T: serde::Serialize>(&self, key: &str, v: &T) {
        let body = Bytes::from(serde_json::to_vec(v).unwrap());
        self.folio.put(key, body, "application/json").await.unwrap();
    }
}

/// Cancels the run after `after` page jobs.
struct StopAfter {
    after: u64,
    seen: AtomicU64,
    stop: CancellationToken,
}

impl StopAfter {
    /// Run `opts`, cancelled (as by Ctrl-C) once `after` page jobs are enqueued.
    async fn run(env: &Env, opts: ReprocessOptions, after: u64) -> RunReport {
        let stop = CancellationToken::new();
        let sink = Arc::new(StopAfter {
            after,
            seen: AtomicU64::new(0),
            stop: stop.clone(),
        });
        let report = env.reprocessor(opts).run(stop, sink).await.unwrap();
        assert!(report.interrupted);
        report
    }
}

impl ProgressSink for StopAfter {
    fn page_enqueued(&self) {
        if self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.after {
            self.stop.cancel();
        }
    }
}

fn pairs(jobs: &[PageJob]) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = jobs
        .iter()
        .map(|j| (j.document_id.clone(), j.page))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_documents_are_reenqueued_once_across_an_interruption() {
    let env = Env::new();
    let ids = env.stored_documents("acme", 19).await; // 20 documents, 60 pages
    let mut opts = env.options(&format!("s3://{FOLIO}/acme/docs/"));
    opts.engine = Some(EngineKind::Glm45v);
    opts.profile = Some("document".into());
    let first = StopAfter::run(&env, opts.clone(), 25).await;
    assert_eq!(first.summary.pages, 25);
    // Without --resume the interrupted run is not silently restarted.
    let refused = env
        .reprocessor(opts.clone())
        .run(CancellationToken::new(), Arc::new(NoProgress))
        .await;
    assert!(matches!(refused, Err(ReprocessError::Usage(m)) if m.contains("--resume")));
    let mut resume = opts.clone();
    resume.resume = true;
    let second = env
        .reprocessor(resume.clone())
        .run(CancellationToken::new(), Arc::new(NoProgress))
        .await
        .unwrap();
    assert!(!second.interrupted && second.resumed);
    assert_eq!(
        (
            second.summary.items,
            second.summary.submitted,
            second.summary.pages
        ),
        (20, 20, 60)
    );
    let jobs = env.drain(EngineKind::Glm45v).await;
    let got = pairs(&jobs);
    let want: Vec<(String, u32)> = {
        let mut v: Vec<_> = ids
            .iter()
            .flat_map(|id| (1..=3).map(move |p| (id.clone(), p)))
            .collect();
        v.sort();
        v
    };
    assert_eq!(got, want, "every stored page enqueued exactly once");
    assert!(jobs
        .iter()
        .all(|j| j.options.profile.as_deref() == Some("document")));
    assert!(jobs.iter().all(|j| j.image_key.ends_with(".png")));
    // Outputs cleared, manifest updated, page images untouched (nothing re-rasterized).
    let keys = DocKeys::new("acme", &ids[3]);
    let m: Manifest =
        serde_json::from_slice(&env.folio.get(&keys.manifest()).await.unwrap()).unwrap();
    assert_eq!(m.options.engine, EngineKind::Glm45v);
    assert!(!env.folio.exists(&keys.document_json()).await.unwrap());
    assert!(env
        .folio
        .list(&keys.results_prefix())
        .await
        .unwrap()
        .is_empty());
    assert!(env.folio.exists(&keys.page_image(3)).await.unwrap());
    // Finished: resuming again is refused, a fresh run is allowed.
    assert!(env
        .reprocessor(resume)
        .run(CancellationToken::new(), Arc::new(NoProgress))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_failed_since_and_dry_run() {
    let env = Env::new();
    let ids = env.stored_documents("acme", 4).await; // created 2026-01-01 .. 01-05
    env.stored_documents("beta", 0).await;
    let none = || Arc::new(NoProgress);
    let mut dry = env.options(&format!("s3://{FOLIO}/"));
    dry.dry_run = true;
    let report = env
        .reprocessor(dry)
        .run(CancellationToken::new(), none())
        .await
        .unwrap();
    assert_eq!((report.summary.items, report.summary.pages), (6, 18));
    assert_eq!(env.queue.ready_len(EngineKind::Ocr), 0);
    assert!(
        env.folio.list(".folio/").await.unwrap().is_empty(),
        "a dry run writes nothing"
    );
    assert!(env
        .folio
        .exists(&DocKeys::new("acme", &ids[0]).document_json())
        .await
        .unwrap());

    let mut failed = env.options(&format!("s3://{FOLIO}/"));
    failed.only_failed = true;
    failed.tenant = Some("acme".into());
    failed.since = Some(time::macros::datetime!(2026-01-03 00:00 UTC));
    let report = env
        .reprocessor(failed)
        .run(CancellationToken::new(), none())
        .await
        .unwrap();
    assert_eq!(
        (
            report.summary.items,
            report.summary.skipped,
            report.summary.pages
        ),
        (5, 2, 3)
    );
    let jobs = env.drain(EngineKind::Ocr).await;
    assert!(jobs.iter().all(|j| j.page == 2 && j.tenant == "acme"));
    let keys = DocKeys::new("acme", &ids[4]);
    assert!(!env.folio.exists(&keys.page_error(2)).await.unwrap());
    assert!(
        env.folio.exists(&keys.page_result(1)).await.unwrap(),
        "other pages keep their results"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_objects_are_ingested_then_known() {
    let env = Env::new();
    let inbox = env.bucket("inbox");
    for name in ["a.pdf", "b.pdf", "c.pdf"] {
        inbox
            .put(&format!("scans/{name}"), corpus(PDF_3P), "")
            .await
            .unwrap();
    }
    inbox
        .put("scans/readme.txt", Bytes::from_static(b"hello"), "")
        .await
        .unwrap();
    let none = || Arc::new(NoProgress);
    let opts = env.options("s3://inbox/scans/");
    let missing_tenant = env
        .reprocessor(opts.clone())
        .run(CancellationToken::new(), none())
        .await;
    assert!(matches!(missing_tenant, Err(ReprocessError::Usage(m)) if m.contains("--tenant")));
    let mut opts = opts;
    opts.tenant = Some("acme".into());
    // Stopped in the middle of the second PDF, then resumed.
    StopAfter::run(&env, opts.clone(), 4).await;
    let mut resume = opts.clone();
    resume.resume = true;
    let report = env
        .reprocessor(resume)
        .run(CancellationToken::new(), none())
        .await
        .unwrap();
    assert_eq!(
        (
            report.summary.submitted,
            report.summary.failed,
            report.summary.pages
        ),
        (3, 1, 9)
    );
    assert!(
        report.summary.failures[0].contains("unsupported_type"),
        "{:?}",
        report.summary.failures
    );
    let jobs = env.drain(EngineKind::Ocr).await;
    let got = pairs(&jobs);
    let unique: BTreeSet<_> = got.iter().cloned().collect();
    assert_eq!(
        (got.len(), unique.len()),
        (9, 9),
        "each page of each object exactly once"
    );
    let manifests = env
        .folio
        .list("acme/docs/")
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.ends_with("manifest.json"))
        .count();
    assert_eq!(manifests, 3);

    // Again with another engine: the documents are known now, their images are enqueued.
    let mut again = opts.clone();
    again.engine = Some(EngineKind::Glm45v);
    let report = env
        .reprocessor(again)
        .run(CancellationToken::new(), none())
        .await
        .unwrap();
    assert_eq!((report.summary.submitted, report.summary.pages), (3, 9));
    let jobs = env.drain(EngineKind::Glm45v).await;
    assert_eq!(pairs(&jobs), got);
    let manifests_after = env
        .folio
        .list("acme/docs/")
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.ends_with("manifest.json"))
        .count();
    assert_eq!(
        manifests_after, 3,
        "no new documents: nothing ingested again"
    );
}
