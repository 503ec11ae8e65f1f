//! Shared setup of the trigger tests: source buckets and Folio's bucket as local folders, the
//! in-process queue, real PDFium, corpus documents, and event bodies as the servers send them.

#![allow(dead_code)]

use bytes::Bytes;
use folio_api::events::{LocalBuckets, RuleSet, SourceBuckets, Trigger, TriggerConfig};
use folio_ingest::{IngestConfig, Ingestor};
use folio_schemas::{EngineKind, PageJob};
use folio_transport::{InProcessQueue, JobQueue, LocalDirStore, ObjectStore};
use std::sync::Arc;
use std::time::Duration;

pub use folio_test_support::pdfium_runtime_dir as runtime_dir;

pub fn corpus(rel: &str) -> Bytes {
    Bytes::from(folio_test_support::read_corpus(rel))
}

/// A three-page scanned PDF from the corpus.
pub const PDF_3P: &str = "multipage_pdf/tdp_will_AN_0182_3p.pdf";
/// A one-page PNG from the corpus.
pub const PNG: &str = "tables/pubtabnet_PMC5198506_004_00.png";

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub buckets: Arc<LocalBuckets>,
    pub store: Arc<dyn ObjectStore>,
    pub queue: InProcessQueue,
    pub trigger: Arc<Trigger>,
}

pub const RULES: &str = "
rules:
  - tenant: acme
    bucket: inbox
    prefix: scans/
  - tenant: acme
    bucket: typed
    content_types: [application/pdf]
";

impl Harness {
    pub fn new(rules: &str) -> Harness {
        Self::with_config(rules, TriggerConfig::default())
    }

    pub fn with_config(rules: &str, config: TriggerConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let buckets = Arc::new(LocalBuckets::new(dir.path().join("sources")));
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalDirStore::new(dir.path().join("folio")).unwrap());
        let queue = InProcessQueue::new(5);
        let rules: RuleSet = serde_yaml_ng::from_str(rules).unwrap();
        rules.validate().unwrap();
        let ingestor = Ingestor::new(IngestConfig::from_runtime_dir(&runtime_dir()));
        let trigger = Arc::new(Trigger::new(
            store.clone(),
            Arc::new(queue.clone()) as Arc<dyn JobQueue>,
            ingestor,
            buckets.clone(),
            rules,
            config,
        ));
        Harness {
            dir,
            buckets,
            store,
            queue,
            trigger,
        }
    }

    pub async fn put_source(&self, bucket: &str, key: &str, body: Bytes) {
        self.buckets
            .bucket(bucket)
            .unwrap()
            .put(key, body, "")
            .await
            .unwrap();
    }

    pub fn jobs(&self) -> usize {
        self.queue.ready_len(EngineKind::Ocr)
    }

    /// Every ready job, taken off the queue (acked).
    pub async fn drain(&self) -> Vec<PageJob> {
        let mut consumer = self.queue.consume(EngineKind::Ocr, 1000).await.unwrap();
        let mut jobs = Vec::new();
        while let Some(d) = consumer.try_next() {
            jobs.push(d.job.clone().unwrap());
            d.ack().await.unwrap();
        }
        jobs
    }

    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        self.store.list(prefix).await.unwrap()
    }
}

/// An AWS-format `ObjectCreated:Put` body (key URL-encoded as S3 does).
pub fn aws_put(bucket: &str, key: &str, size: u64, etag: &str, sequencer: &str) -> Bytes {
    let encoded: String = key
        .bytes()
        .map(|b| match b {
            b' ' => "+".to_string(),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'-' | b'_' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-03-01T10:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "folio",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encoded, "size": size, "eTag": etag, "sequencer": sequencer}}
    }]});
    Bytes::from(body.to_string())
}

/// A SeaweedFS filer webhook body for `event_type` of `/buckets/<bucket>/<key>`.
pub fn seaweed_event(event_type: &str, bucket: &str, key: &str, size: u64, etag: &str) -> Bytes {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(etag);
    let name = key.rsplit('/').next().unwrap_or(key);
    let parent = match key.rsplit_once('/') {
        Some((dir, _)) => format!("/buckets/{bucket}/{dir}"),
        None => format!("/buckets/{bucket}"),
    };
    let entry = serde_json::json!({"name": name, "attributes": {"file_size": size, "mtime": 1_795_923_361,
        "mime": ""}, "extended": {"Seaweed-X-Amz-ETag": b64}});
    let message = match event_type {
        "update" => {
            serde_json::json!({"old_entry": entry, "new_entry": entry, "new_parent_path": parent})
        }
        _ => serde_json::json!({"new_entry": entry, "new_parent_path": parent}),
    };
    Bytes::from(
        serde_json::json!({"event_type": event_type, "key": format!("/buckets/{bucket}/{key}"), "message": message})
            .to_string(),
    )
}

/// Wait until `cond` holds (polling), or panic after `secs`.
pub async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
