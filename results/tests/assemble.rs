//! Assembly over a real (directory) store: incomplete until every selected page is recorded,
//! then `document.json` / `document.md` with `completed_at` from the page records; assembling
//! twice writes the same bytes.

use bytes::Bytes;
use folio_results::{to_bytes, try_assemble, Completion};
use folio_schemas::{
    BBox, Block, BlockKind, DocKeys, DocumentResult, DocumentStatus, EngineInfo, JobOptions,
    Manifest, PageError, PageImage, PageResult, SCHEMA_VERSION,
};
use folio_transport::{LocalDirStore, ObjectStore};

fn manifest(pages: Vec<u32>) -> Manifest {
    Manifest {
        schema_version: SCHEMA_VERSION.into(),
        tenant: "t".into(),
        document_id: "d".into(),
        file_name: Some("scan.pdf".into()),
        media_type: "application/pdf".into(),
        sha256: "ab".into(),
        size_bytes: 10,
        pages,
        source_page_count: 4,
        options: JobOptions::default(),
        created_at: "2026-01-01T00:00:00Z".into(),
        metadata: Default::default(),
    }
}

fn result(page: u32, finished_at: &str) -> PageResult {
    PageResult {
        schema_version: SCHEMA_VERSION.into(),
        document_id: "d".into(),
        page,
        image: PageImage {
            width: 10,
            height: 10,
            dpi: Some(72),
        },
        engine: EngineInfo {
            name: "ocr".into(),
            model: "m".into(),
            revision: None,
            device: "cpu".into(),
            profile: None,
        },
        blocks: vec![Block {
            text: Some(format!("page {page}")),
            ..Block::new("b1", BlockKind::Text, BBox::new(0.0, 0.0, 1.0, 1.0))
        }],
        markdown: format!("page {page}\n"),
        timings: Default::default(),
        warnings: vec![],
        finished_at: Some(finished_at.into()),
    }
}

fn error(page: u32, finished_at: &str) -> PageError {
    PageError {
        schema_version: SCHEMA_VERSION.into(),
        document_id: "d".into(),
        page,
        code: "image_undecodable".into(),
        message: "bad image".into(),
        attempts: 1,
        finished_at: Some(finished_at.into()),
    }
}

async fn put<T: serde::Serialize>(store: &dyn ObjectStore, key: &str, value: &T) {
    store
        .put(key, to_bytes(value), "application/json")
        .await
        .unwrap();
}

/// A temporary store holding the manifest of document `t/d` with `pages` selected.
async fn document_of(pages: Vec<u32>) -> (tempfile::TempDir, LocalDirStore, DocKeys) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDirStore::new(dir.path()).unwrap();
    let keys = DocKeys::new("t", "d");
    put(&store, &keys.manifest(), &manifest(pages)).await;
    (dir, store, keys)
}

/// Store page `page`'s result (`ok`) or its error record, finished at `at`, for document `t/d`.
async fn record(store: &dyn ObjectStore, page: u32, ok: bool, at: &str) {
    let keys = DocKeys::new("t", "d");
    if ok {
        put(store, &keys.page_result(page), &result(page, at)).await;
    } else {
        put(store, &keys.page_error(page), &error(page, at)).await;
    }
}

#[tokio::test]
async fn assembles_once_complete_with_the_latest_record_time_and_same_bytes_twice() {
    let (_dir, store, keys) = document_of(vec![1, 2, 3]).await;
    record(&store, 1, true, "2026-01-01T00:00:05.000Z").await;
    // Page 4 is not selected: its record is ignored, also for completed_at.
    record(&store, 4, true, "2026-01-01T09:00:00.000Z").await;
    assert_eq!(
        try_assemble(&store, "t", "d").await.unwrap(),
        Completion::Incomplete { done: 1, total: 3 }
    );
    assert!(!store.exists(&keys.document_json()).await.unwrap());

    // Page 2 failed first and then succeeded: the result wins.
    record(&store, 2, false, "2026-01-01T00:00:06.000Z").await;
    record(&store, 2, true, "2026-01-01T00:00:07.000Z").await;
    record(&store, 3, false, "2026-01-01T00:00:08.5+00:00").await;
    let Completion::Assembled(doc) = try_assemble(&store, "t", "d").await.unwrap() else {
        panic!("every page is recorded");
    };
    assert_eq!(doc.status, DocumentStatus::Partial);
    assert_eq!(
        doc.pages.iter().map(|p| p.page).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        doc.errors.iter().map(|e| e.page).collect::<Vec<_>>(),
        vec![3]
    );
    assert_eq!(
        doc.completed_at.as_deref(),
        Some("2026-01-01T00:00:08.500Z")
    );
    assert_eq!(doc.created_at, "2026-01-01T00:00:00Z");

    let json = store.get(&keys.document_json()).await.unwrap();
    let md = store.get(&keys.document_md()).await.unwrap();
    let stored: DocumentResult = serde_json::from_slice(&json).unwrap();
    assert_eq!(&stored, doc.as_ref());
    assert_eq!(md, Bytes::from(doc.markdown.clone()));
    assert!(doc
        .markdown
        .contains("<!-- page 3 could not be processed: image_undecodable -->"));

    try_assemble(&store, "t", "d").await.unwrap();
    assert_eq!(store.get(&keys.document_json()).await.unwrap(), json);
    assert_eq!(store.get(&keys.document_md()).await.unwrap(), md);
}

#[tokio::test]
async fn records_without_times_give_no_completed_at() {
    let (_dir, store, keys) = document_of(vec![1]).await;
    let mut r = result(1, "x");
    r.finished_at = None;
    put(&store, &keys.page_result(1), &r).await;
    let Completion::Assembled(doc) = try_assemble(&store, "t", "d").await.unwrap() else {
        panic!("the only page is recorded");
    };
    assert_eq!(doc.status, DocumentStatus::Complete);
    assert_eq!(doc.completed_at, None);
    let json = store.get(&keys.document_json()).await.unwrap();
    assert!(!String::from_utf8_lossy(&json).contains("completed_at"));
}

#[tokio::test]
async fn a_corrupt_page_record_is_reported_with_its_key() {
    let (_dir, store, keys) = document_of(vec![1]).await;
    store
        .put(
            &keys.page_result(1),
            Bytes::from_static(b"{"),
            "application/json",
        )
        .await
        .unwrap();
    let e = try_assemble(&store, "t", "d").await.unwrap_err();
    assert!(!e.is_transient());
    assert!(e.to_string().contains(&keys.page_result(1)), "{e}");
}
