//! The upload API end to end through the router (no socket), over the real `LocalDirStore`,
//! `InProcessQueue` and `Ingestor` (PDFium), with corpus documents: uploads (raw, multipart,
//! chunked, spooled), the jobs they enqueue, status from the store, results, and every error
//! status with its code. Uploads and status here; errors in `http_cases/errors.rs`; operations,
//! a real OCR worker, the socket server and the committed OpenAPI file in `http_cases/service.rs`.

mod http_cases;
mod http_support;

use axum::body::Bytes;
use axum::http::StatusCode;
use folio_results::{try_assemble, Completion};
use folio_schemas::{
    BBox, Block, BlockKind, DocKeys, DocumentResult, DocumentStatus, EngineInfo, EngineKind,
    Manifest, PageError, PageImage, PageResult, SCHEMA_VERSION,
};
use folio_transport::ObjectStore;
use http_support::*;

fn page_result(doc: &str, page: u32, text: &str) -> PageResult {
    PageResult {
        schema_version: SCHEMA_VERSION.into(),
        document_id: doc.into(),
        page,
        image: PageImage {
            width: 100,
            height: 100,
            dpi: Some(72),
        },
        engine: EngineInfo {
            name: "ocr".into(),
            model: "test-writer".into(),
            revision: None,
            device: "cpu".into(),
            profile: None,
        },
        blocks: vec![Block {
            text: Some(text.into()),
            ..Block::new("b1", BlockKind::Text, BBox::new(0.0, 0.0, 10.0, 10.0))
        }],
        markdown: text.into(),
        timings: Default::default(),
        warnings: vec![],
        finished_at: Some(format!("2026-01-01T00:00:{page:02}.000Z")),
    }
}

fn page_error(doc: &str, page: u32) -> PageError {
    PageError {
        schema_version: SCHEMA_VERSION.into(),
        document_id: doc.into(),
        page,
        code: "image_undecodable".into(),
        message: "the page image cannot be decoded".into(),
        attempts: 1,
        finished_at: Some(format!("2026-01-01T00:01:{page:02}.000Z")),
    }
}

async fn put_json<T: serde::Serialize>(h: &Harness, key: &str, value: &T) {
    let body = Bytes::from(serde_json::to_vec_pretty(value).unwrap());
    h.store.put(key, body, "application/json").await.unwrap();
}

#[tokio::test]
async fn raw_pdf_upload_answers_202_and_enqueues_one_job_per_page() {
    let h = Harness::new();
    let pdf = corpus(PDF_3P);
    let reply = h
        .upload(KEY_ACME, pdf.clone(), "?dpi=72&filename=catalogue.pdf")
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let body = reply.json();
    let id = body["document_id"].as_str().unwrap().to_string();
    assert_eq!(body["pages"], 3);
    assert_eq!(body["status_url"], format!("/v1/documents/{id}"));
    assert_eq!(
        reply.header("location"),
        Some(format!("/v1/documents/{id}").as_str())
    );

    // Source and manifest are stored before the 202.
    let keys = DocKeys::new("acme", &id);
    assert_eq!(h.store.get(&keys.source()).await.unwrap().len(), pdf.len());
    let manifest: Manifest =
        serde_json::from_slice(&h.store.get(&keys.manifest()).await.unwrap()).unwrap();
    assert_eq!(manifest.pages, vec![1, 2, 3]);
    assert_eq!(manifest.options.dpi, 72);
    assert_eq!(manifest.file_name.as_deref(), Some("catalogue.pdf"));
    assert_eq!(manifest.media_type, "application/pdf");

    h.state.wait_background().await;
    let jobs = h.drain_jobs().await;
    let pages: Vec<u32> = jobs.iter().map(|j| j.page).collect();
    assert_eq!(pages, vec![1, 2, 3]);
    for job in &jobs {
        assert_eq!(job.tenant, "acme");
        assert_eq!(job.document_id, id);
        assert_eq!(job.image_key, keys.page_image(job.page));
        assert_eq!(job.options.engine, EngineKind::Ocr);
        assert_eq!(job.page_count, 3);
        let png = h.store.get(&job.image_key).await.unwrap();
        let img = image::load_from_memory(&png).unwrap();
        assert!(
            img.width() > 300 && img.height() > 300,
            "{}x{}",
            img.width(),
            img.height()
        );
    }
    assert_eq!(h.state.in_flight().count("acme"), 0);

    // Nothing is done yet: every page pending.
    let status = h.get(Some(KEY_ACME), &format!("/v1/documents/{id}")).await;
    assert_eq!(status.status, StatusCode::OK);
    let s = status.json();
    assert_eq!(s["status"], "processing");
    assert_eq!(
        (s["pages_total"].as_u64(), s["pages_done"].as_u64()),
        (Some(3), Some(0))
    );
    assert!(s["pages"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["state"] == "pending"));
    assert_eq!(s["created_at"], manifest.created_at);
}

#[tokio::test]
async fn multipart_upload_takes_options_from_fields_and_the_part_file_name() {
    let h = Harness::new();
    let req = multipart_upload(
        KEY_ACME,
        Some(("scans/catalogue.pdf", corpus(PDF_3P))),
        &[("pages", "2-3")],
        "?dpi=72",
    );
    let reply = h.send(req).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    assert_eq!(reply.json()["pages"], 2);
    let id = reply.json()["document_id"].as_str().unwrap().to_string();
    h.state.wait_background().await;
    let pages: Vec<u32> = h.drain_jobs().await.iter().map(|j| j.page).collect();
    assert_eq!(pages, vec![2, 3]);
    let keys = DocKeys::new("acme", &id);
    let manifest: Manifest =
        serde_json::from_slice(&h.store.get(&keys.manifest()).await.unwrap()).unwrap();
    assert_eq!(manifest.file_name.as_deref(), Some("catalogue.pdf"));
    assert_eq!(manifest.source_page_count, 3);

    // The same option in the query and a field is ambiguous.
    let req = multipart_upload(
        KEY_ACME,
        Some(("a.pdf", corpus(PDF_3P))),
        &[("dpi", "100")],
        "?dpi=72",
    );
    let reply = h.send(req).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "conflicting_option")
    );
    let req = multipart_upload(KEY_ACME, None, &[("pages", "1")], "");
    let reply = h.send(req).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "missing_file")
    );
    let req = multipart_upload(
        KEY_ACME,
        Some(("a.pdf", corpus(PDF_3P))),
        &[("colour", "red")],
        "",
    );
    let reply = h.send(req).await;
    assert_eq!(reply.error_code(), "unknown_field");
}

#[tokio::test]
async fn large_uploads_are_spooled_and_chunked_bodies_work() {
    // A threshold far below the file size forces the temporary-file path.
    let h = Harness::with(|c| c.memory_threshold = 64 * 1024);
    let pdf = corpus(PDF_3P);
    let (mut tx, request) = streamed_upload(KEY_ACME, "?dpi=72&pages=1");
    let sender = tokio::spawn(async move {
        for chunk in pdf.chunks(100_000) {
            tx.send_data(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
    });
    let reply = h.send(request).await;
    sender.await.unwrap();
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let id = reply.json()["document_id"].as_str().unwrap().to_string();
    let stored = h
        .store
        .get(&DocKeys::new("acme", &id).source())
        .await
        .unwrap();
    assert_eq!(
        &stored[..],
        &corpus(PDF_3P)[..],
        "the spooled bytes are stored unchanged"
    );
    let metrics = h.get(None, "/metrics").await.text();
    assert!(metrics.contains("folio_uploads_spooled_total"), "{metrics}");
}

#[tokio::test]
async fn status_pages_and_results_follow_what_the_store_holds() {
    let h = Harness::new();
    let id = h
        .upload_ok(KEY_ACME, corpus(PDF_3P), "?dpi=72&pages=1-2")
        .await;
    let keys = DocKeys::new("acme", &id);
    let uri = format!("/v1/documents/{id}");

    // Page 1 done, page 2 pending.
    put_json(&h, &keys.page_result(1), &page_result(&id, 1, "first page")).await;
    let s = h.get(Some(KEY_ACME), &uri).await.json();
    assert_eq!(
        (s["status"].as_str(), s["pages_done"].as_u64()),
        (Some("processing"), Some(1))
    );
    assert_eq!(s["pages"][0]["state"], "done");
    assert_eq!(s["pages"][1]["state"], "pending");

    let result = h.get(Some(KEY_ACME), &format!("{uri}/result")).await;
    assert_eq!(
        (result.status, result.error_code().as_str()),
        (StatusCode::CONFLICT, "incomplete")
    );
    assert_eq!(
        result.json()["status"]["pages_done"],
        1,
        "a 409 carries the status"
    );
    let page1 = h.get(Some(KEY_ACME), &format!("{uri}/pages/1")).await;
    assert_eq!(page1.status, StatusCode::OK);
    assert_eq!(page1.header("x-folio-page-state"), Some("done"));
    let parsed: PageResult = serde_json::from_slice(&page1.body).unwrap();
    assert_eq!(parsed.markdown, "first page");
    let page2 = h.get(Some(KEY_ACME), &format!("{uri}/pages/2")).await;
    assert_eq!(
        (page2.status, page2.error_code().as_str()),
        (StatusCode::CONFLICT, "incomplete")
    );
    for missing in ["3", "0", "x", "99999999999"] {
        let r = h
            .get(Some(KEY_ACME), &format!("{uri}/pages/{missing}"))
            .await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (StatusCode::NOT_FOUND, "not_found"),
            "page {missing}"
        );
    }

    // Page 2 fails; the (real) assembly makes the document partial.
    put_json(&h, &keys.page_error(2), &page_error(&id, 2)).await;
    let s = h.get(Some(KEY_ACME), &uri).await.json();
    assert_eq!(
        s["status"], "processing",
        "all pages recorded but not assembled yet"
    );
    assert!(s.get("completed_at").is_none(), "{s}");
    assert!(matches!(
        try_assemble(h.store.as_ref(), "acme", &id).await.unwrap(),
        Completion::Assembled(_)
    ));
    let s = h.get(Some(KEY_ACME), &uri).await.json();
    assert_eq!(s["status"], "partial");
    // The latest page record's time: page 2's error, written after page 1's result.
    assert_eq!(s["completed_at"], "2026-01-01T00:01:02.000Z");
    assert_eq!(
        (s["pages_done"].as_u64(), s["pages_failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(s["pages"][1]["state"], "failed");
    assert_eq!(s["pages"][1]["error"]["code"], "image_undecodable");

    let json = h
        .get(Some(KEY_ACME), &format!("{uri}/result?format=json"))
        .await;
    assert_eq!(json.status, StatusCode::OK);
    assert_eq!(json.header("content-type"), Some("application/json"));
    let doc: DocumentResult = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(doc.status, DocumentStatus::Partial);
    assert_eq!(doc.errors[0].page, 2);
    assert_eq!(
        doc.completed_at.as_deref(),
        Some("2026-01-01T00:01:02.000Z")
    );
    let md = h
        .get(Some(KEY_ACME), &format!("{uri}/result?format=md"))
        .await;
    assert_eq!(md.status, StatusCode::OK);
    assert!(md
        .header("content-type")
        .unwrap()
        .starts_with("text/markdown"));
    assert_eq!(md.text(), doc.markdown);
    let page2 = h.get(Some(KEY_ACME), &format!("{uri}/pages/2")).await;
    assert_eq!(page2.header("x-folio-page-state"), Some("failed"));
    let record: PageError = serde_json::from_slice(&page2.body).unwrap();
    assert_eq!(record.code, "image_undecodable");
    let bad = h
        .get(Some(KEY_ACME), &format!("{uri}/result?format=xml"))
        .await;
    assert_eq!(
        (bad.status, bad.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "bad_format")
    );
}
