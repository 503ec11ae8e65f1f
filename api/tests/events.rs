//! The trigger over local folders and the in-process queue, with real PDFium and corpus files:
//! submission, deduplication, rejection records, filters, stale versions, and the consumer loop
//! (duplicates, malformed bodies, retries).

mod events_support;

use bytes::Bytes;
use events_support::*;
use folio_api::events::consumer::{self, ChannelStream, ConsumerConfig, ConsumerStats};
use folio_api::events::records::{Marker, MarkerState, Rejection, SourceIndex};
use folio_api::events::{Disposition, EventFormat, Ignored, Outcome, TriggerConfig};
use folio_schemas::{DocKeys, Manifest};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn submitted(outcomes: &[Outcome]) -> Vec<(String, u32)> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Submitted {
                document_id, pages, ..
            } => Some((document_id.clone(), *pages)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_event_submits_the_object_through_the_upload_path() {
    let h = Harness::new(RULES);
    let pdf = corpus(PDF_3P);
    let key = "scans/2026/will of März.pdf";
    h.put_source("inbox", key, pdf.clone()).await;
    let report = h
        .trigger
        .process_body(
            EventFormat::Aws,
            &aws_put("inbox", key, pdf.len() as u64, "\"e1\"", "0A"),
        )
        .await;
    assert_eq!(report.disposition(), Disposition::Ack, "{report:?}");
    let docs = submitted(&report.outcomes);
    assert_eq!(docs.len(), 1);
    let (doc_id, pages) = &docs[0];
    assert_eq!(*pages, 3);
    let jobs = h.drain().await;
    assert_eq!(jobs.len(), 3);
    assert!(jobs
        .iter()
        .all(|j| j.document_id == *doc_id && j.tenant == "acme"));
    let keys = DocKeys::new("acme", doc_id);
    let manifest: Manifest =
        serde_json::from_slice(&h.store.get(&keys.manifest()).await.unwrap()).unwrap();
    assert_eq!(manifest.file_name.as_deref(), Some("will of März.pdf"));
    assert_eq!(manifest.media_type, "application/pdf");
    assert_eq!(manifest.metadata["source"], format!("s3://inbox/{key}"));
    assert_eq!(h.store.get(&keys.source()).await.unwrap(), pdf);
    for page in 1..=3 {
        assert!(h.store.exists(&keys.page_image(page)).await.unwrap());
    }
    // The marker is settled and the key's index points at the document.
    let markers = h.keys("acme/triggers/seen/").await;
    assert_eq!(markers.len(), 1);
    let marker: Marker = serde_json::from_slice(&h.store.get(&markers[0]).await.unwrap()).unwrap();
    assert_eq!(
        (marker.state, marker.document_id.as_str()),
        (MarkerState::Done, doc_id.as_str())
    );
    let index = h.keys("acme/triggers/objects/").await;
    let index: SourceIndex =
        serde_json::from_slice(&h.store.get(&index[0]).await.unwrap()).unwrap();
    assert_eq!(
        (index.key.as_str(), index.sequencer.as_deref()),
        (key, Some("0A"))
    );

    // The same event again: a duplicate, nothing enqueued.
    let again = h
        .trigger
        .process_body(
            EventFormat::Aws,
            &aws_put("inbox", key, pdf.len() as u64, "e1", "0A"),
        )
        .await;
    assert_eq!(again.disposition(), Disposition::Ack);
    assert!(
        matches!(&again.outcomes[..], [Outcome::Duplicate { document_id, .. }] if document_id == doc_id)
    );
    assert_eq!(h.jobs(), 0);

    // An older version arriving late (lower sequencer) is stale; a newer one is a new document.
    let old = h
        .trigger
        .process_body(
            EventFormat::Aws,
            &aws_put("inbox", key, pdf.len() as u64, "e0", "09"),
        )
        .await;
    assert_eq!(old.outcomes, vec![Outcome::Ignored(Ignored::Stale)]);
    let newer = h
        .trigger
        .process_body(
            EventFormat::Aws,
            &aws_put("inbox", key, pdf.len() as u64, "e2", "0B"),
        )
        .await;
    let newer = submitted(&newer.outcomes);
    assert_eq!(newer.len(), 1);
    assert_ne!(&newer[0].0, doc_id);
    assert_eq!(h.jobs(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_objects_get_a_rejection_record_and_are_acknowledged() {
    let h = Harness::with_config(
        RULES,
        TriggerConfig {
            max_object_bytes: 1_000_000,
            ..TriggerConfig::default()
        },
    );
    h.put_source(
        "inbox",
        "scans/notes.txt",
        Bytes::from_static(b"just some text, not a document\n"),
    )
    .await;
    let report = h
        .trigger
        .process_body(
            EventFormat::Aws,
            &aws_put("inbox", "scans/notes.txt", 31, "t1", "01"),
        )
        .await;
    assert_eq!(report.disposition(), Disposition::Ack);
    let Outcome::Rejected {
        code, record_key, ..
    } = &report.outcomes[0]
    else {
        panic!("{report:?}")
    };
    assert_eq!(code, "unsupported_type");
    let record: Rejection =
        serde_json::from_slice(&h.store.get(record_key).await.unwrap()).unwrap();
    assert_eq!(
        (record.key.as_str(), record.version.as_str()),
        ("scans/notes.txt", "t1")
    );
    assert!(
        record.message.contains("unsupported file type"),
        "{}",
        record.message
    );
    // Redelivered: a duplicate, not a second record or a loop.
    let again = h
        .trigger
        .process_body(
            EventFormat::Aws,
            &aws_put("inbox", "scans/notes.txt", 31, "t1", "01"),
        )
        .await;
    assert!(matches!(again.outcomes[0], Outcome::Duplicate { .. }));
    assert_eq!(h.keys("acme/triggers/rejected/").await.len(), 1);

    // Too large by the event's size: rejected without fetching (the object does not even exist).
    let big = h
        .trigger
        .process_body(
            EventFormat::Aws,
            &aws_put("inbox", "scans/huge.pdf", 5_000_000, "h1", "02"),
        )
        .await;
    assert!(matches!(&big.outcomes[0], Outcome::Rejected { code, .. } if code == "too_large"));
    // A corrupt PDF: the ingest error code.
    let mut cut = corpus(PDF_3P).to_vec();
    cut.truncate(3000);
    h.put_source("inbox", "scans/cut.pdf", Bytes::from(cut))
        .await;
    let corrupt = h
        .trigger
        .process_body(
            EventFormat::Aws,
            &aws_put("inbox", "scans/cut.pdf", 3000, "c1", "03"),
        )
        .await;
    assert!(
        matches!(&corrupt.outcomes[0], Outcome::Rejected { code, .. } if code == "corrupt_file"),
        "{corrupt:?}"
    );
    // Deleted before it was fetched.
    let gone = h
        .trigger
        .process_body(
            EventFormat::Aws,
            &aws_put("inbox", "scans/gone.pdf", 10, "g1", "04"),
        )
        .await;
    assert_eq!(gone.outcomes, vec![Outcome::Ignored(Ignored::Gone)]);
    assert_eq!(h.jobs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_filters_and_ignored_events() {
    let h = Harness::new(RULES);
    let png = corpus(PNG);
    // Outside the prefix, in an unwatched bucket, a folder marker, a deletion, a test event.
    h.put_source("inbox", "other/a.png", png.clone()).await;
    for (body, reason) in [
        (
            aws_put("inbox", "other/a.png", png.len() as u64, "x", "01"),
            Ignored::NoRule,
        ),
        (
            aws_put("elsewhere", "scans/a.png", 1, "x", "01"),
            Ignored::NoRule,
        ),
        (
            aws_put("inbox", "scans/folder/", 0, "x", "01"),
            Ignored::Directory,
        ),
    ] {
        let r = h.trigger.process_body(EventFormat::Aws, &body).await;
        assert_eq!(r.outcomes, vec![Outcome::Ignored(reason)]);
        assert_eq!(r.disposition(), Disposition::Ack);
    }
    let delete = String::from_utf8(aws_put("inbox", "scans/a.png", 1, "x", "01").to_vec())
        .unwrap()
        .replace("ObjectCreated:Put", "ObjectRemoved:Delete");
    let r = h
        .trigger
        .process_body(EventFormat::Aws, delete.as_bytes())
        .await;
    assert_eq!(r.outcomes, vec![Outcome::Ignored(Ignored::NotACreation)]);
    let test = br#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"inbox"}"#;
    let r = h.trigger.process_body(EventFormat::Aws, test).await;
    assert_eq!(r.outcomes, vec![Outcome::Ignored(Ignored::TestEvent)]);
    // The `typed` bucket takes PDFs only, judged by the bytes when the event declares no type.
    h.put_source("typed", "a.png", png.clone()).await;
    let r = h
        .trigger
        .process_body(
            EventFormat::Aws,
            &aws_put("typed", "a.png", png.len() as u64, "p", "01"),
        )
        .await;
    assert_eq!(r.outcomes, vec![Outcome::Ignored(Ignored::ContentType)]);
    let pdf = corpus(PDF_3P);
    h.put_source("typed", "b.bin", pdf.clone()).await;
    let r = h
        .trigger
        .process_body(
            EventFormat::Aws,
            &aws_put("typed", "b.bin", pdf.len() as u64, "q", "01"),
        )
        .await;
    assert_eq!(submitted(&r.outcomes).len(), 1, "{r:?}");
    assert_eq!(h.jobs(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seaweedfs_creates_updates_and_multipart_parts() {
    let h = Harness::new(RULES);
    let png = corpus(PNG);
    h.put_source("inbox", "scans/t.png", png.clone()).await;
    let n = png.len() as u64;
    let part = seaweed_event("create", "inbox", ".uploads/abc/0001_x.part", n, "p1");
    let r = h.trigger.process_body(EventFormat::SeaweedFs, &part).await;
    assert_eq!(r.outcomes, vec![Outcome::Ignored(Ignored::MultipartPart)]);
    let create = seaweed_event("create", "inbox", "scans/t.png", n, "v1");
    let first = submitted(
        &h.trigger
            .process_body(EventFormat::SeaweedFs, &create)
            .await
            .outcomes,
    );
    assert_eq!(first.len(), 1);
    // A re-put of the same bytes arrives as `update` with the same ETag: a duplicate.
    let same = seaweed_event("update", "inbox", "scans/t.png", n, "v1");
    let r = h.trigger.process_body(EventFormat::SeaweedFs, &same).await;
    assert!(matches!(r.outcomes[0], Outcome::Duplicate { .. }), "{r:?}");
    // New content: a new version, a new document.
    let changed = seaweed_event("update", "inbox", "scans/t.png", n, "v2");
    let second = submitted(
        &h.trigger
            .process_body(EventFormat::SeaweedFs, &changed)
            .await
            .outcomes,
    );
    assert_eq!(second.len(), 1);
    assert_ne!(first[0].0, second[0].0);
    assert_eq!(h.jobs(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_processes_triplicates_once_and_rejects_malformed_bodies() {
    let h = Harness::new(RULES);
    let pdf = corpus(PDF_3P);
    h.put_source("inbox", "scans/dup.pdf", pdf.clone()).await;
    let (stream, mut handles) = ChannelStream::new();
    let stats = Arc::new(ConsumerStats::default());
    let shutdown = CancellationToken::new();
    let config = ConsumerConfig {
        concurrency: 4,
        retry_delay: Duration::from_millis(50),
        ..ConsumerConfig::default()
    };
    let run = tokio::spawn(consumer::run(
        h.trigger.clone(),
        EventFormat::Aws,
        Box::new(stream),
        config,
        stats.clone(),
        shutdown.clone(),
    ));
    let event = aws_put("inbox", "scans/dup.pdf", pdf.len() as u64, "d1", "01");
    for _ in 0..3 {
        handles.feed.send(event.clone()).unwrap();
    }
    handles
        .feed
        .send(Bytes::from_static(b"{\"Records\": [{\"eventName\": 5}]}"))
        .unwrap();
    handles
        .feed
        .send(Bytes::from_static(b"\x00\x01 not json"))
        .unwrap();
    let mut acked = 0;
    let mut rejected = 0;
    while acked < 3 || rejected < 2 {
        let (_, disposition) =
            tokio::time::timeout(Duration::from_secs(60), handles.settled.recv())
                .await
                .expect("settlements keep coming")
                .unwrap();
        match disposition {
            Disposition::Ack => acked += 1,
            Disposition::Reject => rejected += 1,
            Disposition::Retry => {}
        }
    }
    // Still running after the malformed ones: a later event is processed.
    let png = corpus(PNG);
    h.put_source("inbox", "scans/later.png", png.clone()).await;
    handles
        .feed
        .send(aws_put(
            "inbox",
            "scans/later.png",
            png.len() as u64,
            "l1",
            "01",
        ))
        .unwrap();
    let (_, d) = handles.settled.recv().await.unwrap();
    assert_eq!(d, Disposition::Ack);
    shutdown.cancel();
    run.await.unwrap();
    assert_eq!(
        h.jobs(),
        3 + 1,
        "the triplicated event enqueued its 3 pages once"
    );
    assert_eq!(stats.rejected.load(Ordering::Relaxed), 2);
    assert_eq!(stats.acked.load(Ordering::Relaxed), 4);
    assert_eq!(
        h.keys("acme/docs/")
            .await
            .iter()
            .filter(|k| k.ends_with("manifest.json"))
            .count(),
        2
    );
}
