//! Shared by the worker crate's integration tests: where the runtime lives, and a document
//! submitted the way the API would leave it (manifest, page images, one job per page).

#![allow(dead_code)]

use bytes::Bytes;
use folio_schemas::{DocKeys, JobOptions, Manifest, PageJob, SCHEMA_VERSION};
use folio_transport::{JobQueue, ObjectStore};
use std::path::PathBuf;

/// `scripts/setup`'s runtime folder: `$FOLIO_RUNTIME_DIR`, else `~/.cache/folio`.
pub fn runtime_dir() -> PathBuf {
    std::env::var_os("FOLIO_RUNTIME_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/folio")))
        .expect("FOLIO_RUNTIME_DIR or HOME")
}

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
