//! Shared by the worker crate's integration tests: a document submitted the way the API would
//! leave it (manifest, page images, one job per page), and a worker run until it is done.
//! Where the runtime lives comes from `folio-test-support`.

#![allow(dead_code)]

use bytes::Bytes;
use folio_schemas::{DocKeys, JobOptions, Manifest, PageJob, SCHEMA_VERSION};
use folio_transport::{JobQueue, ObjectStore};

/// Store the manifest of document `doc` of tenant `t` (a source named `file_name` of
/// `media_type`) and `pages[i]` as the image of page i + 1, and publish one job per page.
pub async fn submit_pages(
    store: &dyn ObjectStore,
    queue: &dyn JobQueue,
    doc: &str,
    options: &JobOptions,
    (file_name, media_type): (&str, &str),
    pages: Vec<Bytes>,
) {
    let count = pages.len() as u32;
    let keys = DocKeys::new("t", doc);
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION.into(),
        tenant: "t".into(),
        document_id: doc.into(),
        file_name: Some(file_name.into()),
        media_type: media_type.into(),
        sha256: "00".into(),
        size_bytes: 1,
        pages: (1..=count).collect(),
        source_page_count: count,
        options: options.clone(),
        created_at: "2026-01-01T00:00:00Z".into(),
        metadata: Default::default(),
    };
    store
        .put(
            &keys.manifest(),
            serde_json::to_vec(&manifest).expect("json").into(),
            "application/json",
        )
        .await
        .expect("manifest");
    for (page, body) in (1..=count).zip(pages) {
        store
            .put(&keys.page_image(page), body, "image/png")
            .await
            .expect("page image");
        let job = PageJob {
            schema_version: SCHEMA_VERSION.into(),
            tenant: "t".into(),
            document_id: doc.into(),
            page,
            page_count: count,
            image_key: keys.page_image(page),
            options: options.clone(),
            dpi: Some(200),
            traceparent: None,
            submitted_at: "2026-01-01T00:00:00Z".into(),
        };
        queue.publish(&job).await.expect("publish");
    }
}

/// Runs a [`folio_workers::Worker`] over `queue` until every document of `docs` is done (panics
/// after `timeout`), then stops it and checks that it ended cleanly.
pub async fn run_until_done(
    store: std::sync::Arc<dyn ObjectStore>,
    queue: std::sync::Arc<dyn JobQueue>,
    engine: std::sync::Arc<dyn folio_workers::Engine>,
    config: folio_workers::WorkerConfig,
    docs: &[&str],
    timeout: std::time::Duration,
) {
    let mut pending: std::collections::BTreeSet<String> =
        docs.iter().map(|d| d.to_string()).collect();
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let worker = folio_workers::Worker::new(store, queue, engine, config).with_events(tx);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { worker.run(shutdown).await })
    };
    let wait = async {
        while let Some(e) = events.recv().await {
            if let folio_workers::WorkerEvent::DocumentDone { document_id, .. } = &e {
                pending.remove(document_id);
                if pending.is_empty() {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .expect("every document completes");
    shutdown.cancel();
    task.await.expect("join").expect("worker");
}
