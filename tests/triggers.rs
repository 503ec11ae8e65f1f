//! End to end against the real servers of `scripts/services/start` (RabbitMQ, SeaweedFS):
//! `folio trigger` fed by a SeaweedFS webhook and by AWS-format events on RabbitMQ until results
//! appear, duplicated events processed once, malformed events dead-lettered while the trigger keeps
//! running, and `folio reprocess` interrupted and resumed enqueuing every stored page once.
//!
//! Skipped with a note when the servers are not configured, failed under `FOLIO_INTEGRATION=1`.

mod triggers_support;

use folio_schemas::{DocumentResult, DocumentStatus, EngineKind};
use folio_transport::amqp_events::{AmqpEventsConfig, AmqpEventsPublisher};
use folio_transport::{JobQueue, ObjectStore};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use triggers_support::*;

const PNG: &str = "tables/pubtabnet_PMC5198506_004_00.png";
const PDF_3P: &str = "multipage_pdf/tdp_will_AN_0182_3p.pdf";

fn write_rules(dir: &Path, tenant: &str, bucket: &str, prefix: &str) -> String {
    let path = dir.join("rules.yaml");
    std::fs::write(
        &path,
        format!("rules:\n  - tenant: {tenant}\n    bucket: {bucket}\n    prefix: {prefix}\n"),
    )
    .unwrap();
    path.display().to_string()
}

/// An AWS `ObjectCreated:Put` notification (key URL-encoded as S3 sends it).
fn aws_put(bucket: &str, key: &str, size: usize, etag: &str) -> Vec<u8> {
    serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "minio:s3", "eventName": "s3:ObjectCreated:Put",
        "eventTime": folio_api::events::records::now_rfc3339(),
        "s3": {"bucket": {"name": bucket}, "object": {"key": key.replace(' ', "+"), "size": size,
            "eTag": etag, "sequencer": "17A0000000000001"}}
    }]})
    .to_string()
    .into_bytes()
}

async fn read_document(store: &dyn ObjectStore, key: &str) -> DocumentResult {
    serde_json::from_slice(&store.get(key).await.unwrap()).unwrap()
}

fn events_config(s: &HashMap<String, String>, prefix: &str) -> AmqpEventsConfig {
    let mut cfg = AmqpEventsConfig::new(s["FOLIO_AMQP_URL"].clone()).with_prefix(prefix);
    cfg.delivery_limit = 5; // as the trigger below declares it
    cfg
}

/// `folio trigger` on the AMQP event queue of `prefix` (and a listener for `/metrics`).
fn spawn_amqp_trigger(
    s: &HashMap<String, String>,
    dir: &Path,
    rules: &str,
    prefix: &str,
) -> (Proc, String) {
    spawn_folio(
        &[
            "trigger",
            "--rules",
            rules,
            "--listen",
            "127.0.0.1:0",
            "--amqp-prefix",
            prefix,
            "--events-prefix",
            prefix,
            "--events-delivery-limit",
            "5",
        ],
        s,
        dir,
        "trigger",
        Some("folio trigger: listening on http://"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seaweedfs_webhook_object_to_results() {
    let Some(base) = services() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let token = "seaweed-webhook-token-0123456789";
    let weed = Seaweed::start(
        &dir.path().join("weed"),
        &format!("http://127.0.0.1:{port}/v1/events/seaweedfs"),
        token,
        "/buckets/inbox/",
    );
    let s = weed.settings(&base, "folio");
    let prefix = unique("sw");
    let rules = write_rules(dir.path(), "acme", "inbox", "scans/");
    let (mut trigger, addr) =
        spawn_webhook_trigger(&s, token, &rules, port, &prefix, dir.path(), "trigger");
    let store = bucket(&s, "folio").await;
    let inbox = bucket(&s, "inbox").await;
    let stop = CancellationToken::new();
    let worker = start_worker(&s, &prefix, store.clone(), stop.clone()).await;

    // A PUT with aws-sdk-s3 (S3Store), a folder, and an object outside the rule's prefix.
    inbox
        .put("scans/table 1.png", corpus(PNG), "image/png")
        .await
        .unwrap();
    inbox
        .put("elsewhere/x.png", corpus(PNG), "image/png")
        .await
        .unwrap();
    let docs = wait_for(240, "the document assembled from the webhook", || {
        let store = store.clone();
        async move { Some(documents(store.as_ref(), "acme/docs/").await).filter(|d| !d.is_empty()) }
    })
    .await;
    assert_eq!(docs.len(), 1, "only the object under scans/: {docs:?}");
    let doc = read_document(store.as_ref(), &docs[0]).await;
    assert_eq!(doc.status, DocumentStatus::Complete);
    assert_eq!(doc.source.file_name.as_deref(), Some("table 1.png"));
    assert!(
        !doc.pages[0].blocks.is_empty(),
        "the OCR found text on the table image"
    );

    // The same bytes again arrive as `update` with the same ETag: a duplicate.
    inbox
        .put("scans/table 1.png", corpus(PNG), "image/png")
        .await
        .unwrap();
    let metrics = wait_for(60, "the duplicate counted", || {
        let addr = addr.clone();
        async move {
            let (_, body) = http_get(&addr, "/metrics");
            (metric(
                &body,
                "folio_trigger_events_total",
                &["outcome=\"duplicate\""],
            ) >= 1.0)
                .then_some(body)
        }
    })
    .await;
    assert_eq!(
        metric(
            &metrics,
            "folio_trigger_events_total",
            &["outcome=\"submitted\"", "format=\"seaweedfs\""]
        ),
        1.0
    );
    let manifests = store
        .list("acme/docs/")
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.ends_with("manifest.json"))
        .count();
    assert_eq!(manifests, 1);
    stop.cancel();
    let _ = worker.await;
    trigger.signal("-TERM");
    assert_eq!(trigger.wait(60), Some(0), "{}", trigger.log());
    page_queue(&s, &prefix)
        .await
        .delete_topology()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_events_on_rabbitmq_to_results() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("aws");
    let tenant = unique("ten");
    let source = unique("src");
    let rules = write_rules(dir.path(), &tenant, &source, "in/");
    let store = bucket(&s, &s["FOLIO_S3_BUCKET"]).await;
    let src = bucket(&s, &source).await;
    let (mut trigger, _addr) = spawn_amqp_trigger(&s, dir.path(), &rules, &prefix);
    let publisher = AmqpEventsPublisher::connect(events_config(&s, &prefix))
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let worker = start_worker(&s, &prefix, store.clone(), stop.clone()).await;

    let png = corpus(PNG);
    src.put("in/scan één.png", png.clone(), "image/png")
        .await
        .unwrap();
    publisher
        .publish(&aws_put(
            &source,
            "in/scan%20%C3%A9%C3%A9n.png",
            png.len(),
            "\"aws-1\"",
        ))
        .await
        .unwrap();
    let docs = wait_for(240, "the document from the AMQP event", || {
        let (store, p) = (store.clone(), format!("{tenant}/docs/"));
        async move { Some(documents(store.as_ref(), &p).await).filter(|d| !d.is_empty()) }
    })
    .await;
    let doc = read_document(store.as_ref(), &docs[0]).await;
    assert_eq!(doc.status, DocumentStatus::Complete);
    assert_eq!(doc.source.file_name.as_deref(), Some("scan één.png"));
    stop.cancel();
    let _ = worker.await;
    trigger.signal("-TERM");
    assert_eq!(trigger.wait(60), Some(0), "{}", trigger.log());
    page_queue(&s, &prefix)
        .await
        .delete_topology()
        .await
        .unwrap();
    publisher.delete_topology().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_delivered_three_times_is_processed_once() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (prefix, tenant, source) = (unique("dup"), unique("ten"), unique("src"));
    let rules = write_rules(dir.path(), &tenant, &source, "");
    let src = bucket(&s, &source).await;
    let pdf = corpus(PDF_3P);
    src.put("will.pdf", pdf.clone(), "application/pdf")
        .await
        .unwrap();
    let (trigger, addr) = spawn_amqp_trigger(&s, dir.path(), &rules, &prefix);
    let publisher = AmqpEventsPublisher::connect(events_config(&s, &prefix))
        .await
        .unwrap();
    let event = aws_put(&source, "will.pdf", pdf.len(), "etag-will-1");
    for _ in 0..3 {
        publisher.publish(&event).await.unwrap();
    }
    let metrics = wait_for(120, "three deliveries settled", || {
        let addr = addr.clone();
        async move {
            let (_, body) = http_get(&addr, "/metrics");
            let settled = metric(
                &body,
                "folio_trigger_events_total",
                &["outcome=\"submitted\""],
            ) + metric(
                &body,
                "folio_trigger_events_total",
                &["outcome=\"duplicate\""],
            );
            (settled >= 3.0).then_some(body)
        }
    })
    .await;
    assert_eq!(
        metric(
            &metrics,
            "folio_trigger_events_total",
            &["outcome=\"submitted\""]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "folio_trigger_events_total",
            &["outcome=\"duplicate\""]
        ),
        2.0
    );
    let queue = page_queue(&s, &prefix).await;
    assert_eq!(
        queue.queue_depth(EngineKind::Ocr).await.unwrap(),
        3,
        "3 pages, once"
    );
    assert!(
        trigger.log().contains("duplicate event"),
        "{}",
        trigger.log()
    );
    drop(trigger);
    queue.delete_topology().await.unwrap();
    publisher.delete_topology().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_are_dead_lettered_and_the_trigger_keeps_running() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (prefix, tenant, source) = (unique("bad"), unique("ten"), unique("src"));
    let rules = write_rules(dir.path(), &tenant, &source, "");
    let (mut trigger, addr) = spawn_amqp_trigger(&s, dir.path(), &rules, &prefix);
    let publisher = AmqpEventsPublisher::connect(events_config(&s, &prefix))
        .await
        .unwrap();
    publisher
        .publish(b"{\"Records\": [{\"eventName\": \"ObjectCreated:Put\"}")
        .await
        .unwrap();
    publisher
        .publish(b"\xff\xfe not json at all")
        .await
        .unwrap();
    wait_for(60, "two messages in the dead-letter queue", || {
        let publisher = &publisher;
        async move { (publisher.depths().await.ok()?.1 == 2).then_some(()) }
    })
    .await;
    let (_, metrics) = http_get(&addr, "/metrics");
    assert_eq!(
        metric(
            &metrics,
            "folio_trigger_malformed_total",
            &["format=\"aws\""]
        ),
        2.0
    );
    assert!(
        trigger.log().contains("malformed event notification"),
        "{}",
        trigger.log()
    );
    // Still running: a good event after the bad ones is processed.
    assert!(trigger.child.try_wait().unwrap().is_none());
    let src = bucket(&s, &source).await;
    let png = corpus(PNG);
    src.put("ok.png", png.clone(), "image/png").await.unwrap();
    publisher
        .publish(&aws_put(&source, "ok.png", png.len(), "ok-1"))
        .await
        .unwrap();
    let queue = page_queue(&s, &prefix).await;
    wait_for(60, "the good event's page job", || {
        let queue = queue.clone();
        async move { (queue.queue_depth(EngineKind::Ocr).await.ok()? == 1).then_some(()) }
    })
    .await;
    trigger.signal("-TERM");
    assert_eq!(trigger.wait(60), Some(0), "{}", trigger.log());
    queue.delete_topology().await.unwrap();
    publisher.delete_topology().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folio_serve_takes_s3_events_on_its_own_listener() {
    let Some(s) = services() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (prefix, tenant, source) = (unique("srv"), unique("ten"), unique("src"));
    let rules = write_rules(dir.path(), &tenant, &source, "in/");
    let src = bucket(&s, &source).await;
    let pdf = corpus(PDF_3P);
    src.put("in/will.pdf", pdf.clone(), "application/pdf")
        .await
        .unwrap();
    let secret = "serve-events-secret-0123456789";
    let api_key = format!("serve-test-api-key-{}", unique("k"));
    let mut env = s.clone();
    env.insert("FOLIO_EVENTS_SECRET".into(), secret.into());
    let (mut serve, addr) = spawn_folio(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--api-keys",
            &format!("{api_key}={tenant}"),
            "--rules",
            &rules,
            "--amqp-prefix",
            &prefix,
        ],
        &env,
        dir.path(),
        "serve",
        Some("folio serve: listening on http://"),
    );
    let event = aws_put(&source, "in/will.pdf", pdf.len(), "\"serve-1\"");

    let (status, body) = http_post_json(&addr, "/v1/events/s3", &[], &event);
    assert_eq!(status, 401, "no secret: {body}");
    let (status, body) = http_post_json(
        &addr,
        "/v1/events/s3",
        &[("X-Folio-Events-Secret", secret)],
        &event,
    );
    assert_eq!(status, 200, "{body}\n{}", serve.log());
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let outcome = &answer["outcomes"][0];
    assert_eq!(outcome["outcome"], "submitted", "{body}");
    assert_eq!(outcome["pages"], 3, "{body}");
    let id = outcome["document_id"].as_str().unwrap().to_string();

    // The upload API sees the document, and its three page jobs are on the broker.
    let (status, body) = http_request(
        &addr,
        "GET",
        &format!("/v1/documents/{id}"),
        &[("Authorization", &format!("Bearer {api_key}"))],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let queue = page_queue(&s, &prefix).await;
    wait_for(30, "three page jobs", || {
        let queue = queue.clone();
        async move { (queue.queue_depth(EngineKind::Ocr).await.ok()? == 3).then_some(()) }
    })
    .await;

    // The same event again is a duplicate; the SeaweedFS route, without a token, stays off.
    let (status, body) = http_post_json(
        &addr,
        "/v1/events/s3",
        &[("X-Folio-Events-Secret", secret)],
        &event,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"duplicate\""), "{body}");
    let (status, body) = http_post_json(
        &addr,
        "/v1/events/seaweedfs",
        &[("Authorization", "Bearer whatever-token-0123456789")],
        b"{}",
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("events_disabled"), "{body}");
    assert_eq!(queue.queue_depth(EngineKind::Ocr).await.unwrap(), 3);

    serve.signal("-TERM");
    assert_eq!(serve.wait(60), Some(0), "{}", serve.log());
    queue.delete_topology().await.unwrap();
}

/// Take every job off `engine`'s queue of `prefix`: (document, page) pairs, sorted.
async fn drain(
    s: &HashMap<String, String>,
    prefix: &str,
    engine: EngineKind,
    expect: usize,
) -> Vec<(String, u32)> {
    let queue = page_queue(s, prefix).await;
    let mut consumer = queue.consume(engine, 256).await.unwrap();
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(3), consumer.next()).await {
            Ok(Some(Ok(d))) => {
                let job = d.job.clone().unwrap();
                got.push((job.document_id, job.page));
                d.ack().await.unwrap();
            }
            _ if got.len() >= expect => break,
            Ok(Some(Err(e))) => panic!("consuming: {e}"),
            _ => break,
        }
    }
    got.sort();
    got
}

async fn reprocess_interrupted(
    signal: &str,
    tag: &str,
) -> Option<(Vec<(String, u32)>, BTreeSet<(String, u32)>)> {
    let s = services()?;
    let dir = tempfile::tempdir().unwrap();
    let (prefix, tenant) = (unique(tag), unique("ten"));
    let store = bucket(&s, &s["FOLIO_S3_BUCKET"]).await;
    let ids = store_documents(store.clone(), &tenant, 50, 100).await; // 200 pages
    let url = format!("s3://{}/{tenant}/docs/", s["FOLIO_S3_BUCKET"]);
    let args = [
        "reprocess",
        &url,
        "--engine",
        "glm45v",
        "--rate",
        "60/s",
        "--amqp-prefix",
        &prefix,
        "-q",
    ];
    let (mut first, _) = spawn_folio(&args, &s, dir.path(), "first", None);
    let queue = page_queue(&s, &prefix).await;
    wait_for(60, "half the pages enqueued", || {
        let queue = queue.clone();
        async move { (queue.queue_depth(EngineKind::Glm45v).await.ok()? >= 100).then_some(()) }
    })
    .await;
    first.signal(signal);
    let code = first.wait(60);
    let before = queue.queue_depth(EngineKind::Glm45v).await.unwrap();
    assert!((100..200).contains(&before), "stopped halfway: {before}");
    if signal == "-INT" {
        assert_eq!(code, Some(130), "{}", first.log());
        assert!(first.log().contains("--resume"), "{}", first.log());
    }
    let mut resume = args.to_vec();
    resume.push("--resume");
    let (mut second, _) = spawn_folio(&resume, &s, dir.path(), "second", None);
    assert_eq!(second.wait(120), Some(0), "{}", second.log());
    assert!(
        second
            .log()
            .contains("50 item(s): 50 submitted (200 page jobs)"),
        "{}",
        second.log()
    );
    let got = drain(&s, &prefix, EngineKind::Glm45v, 200).await;
    let want: BTreeSet<(String, u32)> = ids
        .iter()
        .flat_map(|id| (1..=4).map(move |p| (id.clone(), p)))
        .collect();
    queue.delete_topology().await.unwrap();
    Some((got, want))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprocess_interrupted_by_ctrl_c_and_resumed_enqueues_every_page_once() {
    let Some((got, want)) = reprocess_interrupted("-INT", "rpi").await else {
        return;
    };
    assert_eq!(got.len(), 200, "exactly 200 jobs");
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprocess_killed_and_resumed_enqueues_every_page_at_least_once() {
    let Some((got, want)) = reprocess_interrupted("-KILL", "rpk").await else {
        return;
    };
    // A hard kill can lose the checkpoint of the jobs published since its last write: with the
    // default of one write per job, at most one job is published twice.
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
    assert!((200..=201).contains(&got.len()), "{} jobs", got.len());
}
