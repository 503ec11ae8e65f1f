//! Trigger benchmarks against the real servers (ignored by default; BENCHMARKS.md, "Triggers"):
//!
//!   set -a; . "$FOLIO_SERVICES_DIR/env"; set +a
//!   cargo test --release --test triggers_bench -- --ignored --nocapture --test-threads 1
//!
//! - `reprocess_enqueue_rate`: `folio reprocess` over 10,000 stored pages (2,500 documents of a
//!   real 4-page PDF rendered at 36 DPI), once with the default checkpoint write per page job and
//!   once with `--checkpoint-every 100`; page jobs per second of the whole run, listing included.
//! - `trigger_latency`: from the start of an object's PUT to its page job on RabbitMQ, one object
//!   at a time (100 each): through SeaweedFS's filer webhook, and through an AWS-format event
//!   published on RabbitMQ right after the PUT; p50/p99.

mod triggers_support;

use bytes::Bytes;
use folio_api::ingest::{IngestConfig, Ingestor, PageRange};
use folio_api::submit::{accept, enqueue_pages, SubmitRequest};
use folio_schemas::{DocKeys, EngineKind, JobOptions};
use folio_transport::amqp_events::{AmqpEventsConfig, AmqpEventsPublisher};
use folio_transport::{InProcessQueue, JobQueue, ObjectStore};
use std::sync::Arc;
use std::time::{Duration, Instant};
use triggers_support::*;

const PDF_4P: &str = "multipage_pdf/tapus_journal_96AP_4p.pdf";
const PNG: &str = "tables/pubtabnet_PMC5198506_004_00.png";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: needs the services; see the module docs"]
async fn reprocess_enqueue_rate() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tenant = unique("bench");
    let store = bucket(&s, &s["FOLIO_S3_BUCKET"]).await;
    let setup = Instant::now();
    store_pages(store.clone(), &tenant, 2_500).await;
    eprintln!(
        "setup: 2,500 documents / 10,000 page images stored in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    let url = format!("s3://{}/{tenant}/docs/", s["FOLIO_S3_BUCKET"]);
    for every in ["1", "100"] {
        let prefix = unique("rate");
        let args = [
            "reprocess",
            &url,
            "--engine",
            "glm45v",
            "--amqp-prefix",
            &prefix,
            "--checkpoint-every",
            every,
            "-q",
        ];
        let started = Instant::now();
        let (mut p, _) = spawn_folio(&args, &s, dir.path(), &format!("every{every}"), None);
        assert_eq!(p.wait(1800), Some(0), "{}", p.log());
        let secs = started.elapsed().as_secs_f64();
        let queue = page_queue(&s, &prefix).await;
        let depth = queue.queue_depth(EngineKind::Glm45v).await.unwrap();
        assert_eq!(depth, 10_000);
        let summary = p
            .log()
            .lines()
            .find(|l| l.starts_with("folio reprocess:"))
            .unwrap_or_default()
            .to_string();
        eprintln!("checkpoint every {every}: 10,000 page jobs in {secs:.1} s wall = {:.0} pages/s\n  {summary}", 10_000.0 / secs);
        queue.delete_topology().await.unwrap();
    }
}

/// `docs` documents of the 4-page PDF: one submitted through the upload path at 36 DPI, the
/// others with copies of its stored page images (16 writes at a time).
async fn store_pages(store: Arc<dyn ObjectStore>, tenant: &str, docs: usize) {
    let ingestor = Ingestor::new(IngestConfig::from_runtime_dir(&runtime_dir()));
    let req = SubmitRequest {
        tenant: tenant.into(),
        document_id: None,
        file_name: Some("journal.pdf".into()),
        bytes: corpus(PDF_4P),
        password: None,
        pages: PageRange::all(),
        options: JobOptions {
            dpi: 36,
            ..JobOptions::default()
        },
        metadata: Default::default(),
    };
    let accepted = accept(store.as_ref(), &ingestor, req).await.unwrap();
    let first = accepted.manifest.clone();
    let scratch: Arc<dyn JobQueue> = Arc::new(InProcessQueue::new(5));
    enqueue_pages(store.clone(), scratch, &ingestor, accepted, |_| {})
        .await
        .unwrap();
    let src = DocKeys::new(tenant, &first.document_id);
    let mut images = Vec::new();
    for p in 1..=4 {
        images.push(store.get(&src.page_image(p)).await.unwrap());
    }
    let mut writes: Vec<(String, Bytes)> = Vec::new();
    for i in 1..docs {
        let mut m = first.clone();
        m.document_id = format!("{}-{i:05}", first.document_id);
        let keys = DocKeys::new(tenant, &m.document_id);
        writes.push((
            keys.manifest(),
            Bytes::from(serde_json::to_vec(&m).unwrap()),
        ));
        for (p, png) in images.iter().enumerate() {
            writes.push((keys.page_image(p as u32 + 1), png.clone()));
        }
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    for (key, body) in writes {
        let (store, permit) = (store.clone(), sem.clone().acquire_owned().await.unwrap());
        tasks.spawn(async move {
            store.put(&key, body, "").await.unwrap();
            drop(permit);
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    eprintln!(
        "{name}: n={} p50={:.0} ms p99={:.0} ms min={:.0} ms max={:.0} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms[0],
        ms[ms.len() - 1]
    );
}

/// Wait for the next page job on `consumer`, ack it, and return.
async fn next_job(consumer: &mut Box<dyn folio_transport::JobConsumer>) {
    let d = tokio::time::timeout(Duration::from_secs(60), consumer.next())
        .await
        .expect("a page job within 60 s")
        .expect("consumer open")
        .expect("delivery");
    d.ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: needs the services; see the module docs"]
async fn trigger_latency() {
    let Some(base) = services() else { return };
    let dir = tempfile::tempdir().unwrap();
    let png = corpus(PNG);
    const N: usize = 100;

    // SeaweedFS: PUT → filer webhook → folio trigger → page job.
    let port = free_port();
    let token = "bench-webhook-token-0123456789";
    let weed = Seaweed::start(
        &dir.path().join("weed"),
        &format!("http://127.0.0.1:{port}/v1/events/seaweedfs"),
        token,
        "/buckets/inbox/",
    );
    let s = weed.settings(&base, "folio");
    let prefix = unique("latw");
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, "rules:\n  - tenant: acme\n    bucket: inbox\n").unwrap();
    let rules = rules.display().to_string();
    let mut env = s.clone();
    env.insert("FOLIO_SEAWEEDFS_TOKEN".into(), token.into());
    let listen = format!("127.0.0.1:{port}");
    let (_trigger, _) = spawn_folio(
        &[
            "trigger",
            "--rules",
            &rules,
            "--listen",
            &listen,
            "--no-amqp",
            "--amqp-prefix",
            &prefix,
            "--s3-create-bucket",
        ],
        &env,
        dir.path(),
        "trigger-webhook",
        Some("folio trigger: listening on http://"),
    );
    let inbox = bucket(&s, "inbox").await;
    let queue = page_queue(&s, &prefix).await;
    let mut consumer = queue.consume(EngineKind::Ocr, 1).await.unwrap();
    let mut webhook = Vec::new();
    for i in 0..N {
        let t0 = Instant::now();
        inbox
            .put(&format!("lat/{i:04}.png"), png.clone(), "image/png")
            .await
            .unwrap();
        next_job(&mut consumer).await;
        webhook.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    drop(consumer);
    queue.delete_topology().await.unwrap();
    report("SeaweedFS webhook: PUT start -> page job", webhook);

    // RabbitMQ: PUT, then an AWS-format event published → folio trigger → page job.
    let prefix = unique("lata");
    let source = unique("src");
    std::fs::write(
        dir.path().join("rules-amqp.yaml"),
        format!("rules:\n  - tenant: acme\n    bucket: {source}\n"),
    )
    .unwrap();
    let rules = dir.path().join("rules-amqp.yaml").display().to_string();
    let (_trigger, _) = spawn_folio(
        &[
            "trigger",
            "--rules",
            &rules,
            "--listen",
            "127.0.0.1:0",
            "--amqp-prefix",
            &prefix,
            "--events-prefix",
            &prefix,
        ],
        &base,
        dir.path(),
        "trigger-amqp",
        Some("folio trigger: listening on http://"),
    );
    let src = bucket(&base, &source).await;
    let publisher = AmqpEventsPublisher::connect(
        AmqpEventsConfig::new(base["FOLIO_AMQP_URL"].clone()).with_prefix(&prefix),
    )
    .await
    .unwrap();
    let queue = page_queue(&base, &prefix).await;
    let mut consumer = queue.consume(EngineKind::Ocr, 1).await.unwrap();
    let mut amqp = Vec::new();
    for i in 0..N {
        let key = format!("lat/{i:04}.png");
        let t0 = Instant::now();
        src.put(&key, png.clone(), "image/png").await.unwrap();
        let event = serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put",
            "eventTime": folio_api::events::records::now_rfc3339(),
            "s3": {"bucket": {"name": source}, "object": {"key": key, "size": png.len(), "eTag": format!("e{i}")}}}]});
        publisher
            .publish(event.to_string().as_bytes())
            .await
            .unwrap();
        next_job(&mut consumer).await;
        amqp.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    drop(consumer);
    queue.delete_topology().await.unwrap();
    publisher.delete_topology().await.unwrap();
    report("AWS event on RabbitMQ: PUT start -> page job", amqp);
}
