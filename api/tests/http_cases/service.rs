//! Operations routes, a real OCR worker completing an uploaded document, the socket server with
//! graceful shutdown, and the committed OpenAPI file.

use crate::http_support::*;
use axum::http::StatusCode;
use folio_schemas::{DocumentResult, DocumentStatus, PageResult};
use folio_transport::ObjectStore;

#[tokio::test]
async fn operations_routes() {
    let h = Harness::new();
    let health = h.get(None, "/healthz").await;
    assert_eq!(
        (health.status, health.json()["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let ready = h.get(None, "/readyz").await;
    assert_eq!(
        (ready.status, ready.json()["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );

    h.upload_ok(KEY_ACME, corpus(PDF_3P), "?dpi=72&pages=1-2")
        .await;
    let metrics = h.get(None, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text();
    for needle in [
        r#"folio_http_requests_total{method="POST",route="/v1/documents",status="202"}"#,
        r#"folio_http_request_duration_seconds_bucket{method="POST",route="/v1/documents""#,
        r#"folio_uploads_total{result="accepted"}"#,
        r#"folio_pages_enqueued_total{engine="ocr"}"#,
        "folio_upload_bytes_bucket",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(!text.contains(KEY_ACME));

    let openapi = h.get(None, "/openapi.json").await;
    assert_eq!(openapi.status, StatusCode::OK);
    assert_eq!(openapi.json(), *folio_api::http::openapi::document());

    let unknown = h.get(None, "/v2/nothing").await;
    assert_eq!(
        (unknown.status, unknown.error_code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let wrong_method = h
        .send(
            axum::http::Request::delete("/healthz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        (wrong_method.status, wrong_method.error_code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

/// Distinct words of 5+ letters of a page's ground truth found in `text`, as a fraction.
fn word_recall(text: &str, truth: &str) -> f64 {
    let words = |s: &str| -> std::collections::BTreeSet<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() >= 5)
            .map(str::to_lowercase)
            .collect()
    };
    let (found, truth) = (words(text), words(truth));
    truth.iter().filter(|w| found.contains(*w)).count() as f64 / truth.len().max(1) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_ocr_worker_completes_an_uploaded_document() {
    use folio_workers::engines::OcrAdapter;
    use folio_workers::{Worker, WorkerConfig};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let h = Harness::new();
    let rt = runtime_dir();
    let engine = tokio::task::spawn_blocking(move || {
        folio_ocr::OcrEngine::load(&folio_ocr::OcrConfig::from_runtime_dir(&rt))
    })
    .await
    .unwrap()
    .expect("the OCR models load (run scripts/setup)");
    let worker = Worker::new(
        h.store.clone(),
        h.queue.clone(),
        Arc::new(OcrAdapter::new(engine)),
        WorkerConfig::default(),
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { worker.run(shutdown).await }
    });

    let reply = h
        .upload(KEY_ACME, corpus(PDF_3P), "?dpi=150&pages=1-2")
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let id = reply.json()["document_id"].as_str().unwrap().to_string();
    let uri = format!("/v1/documents/{id}");

    // Poll like a client: done counts never go down, and the document ends complete.
    let started = Instant::now();
    let mut last_done = 0;
    let status = loop {
        let s = h.get(Some(KEY_ACME), &uri).await.json();
        let done = s["pages_done"].as_u64().unwrap();
        assert!(done >= last_done, "pages_done went backwards: {s}");
        last_done = done;
        if s["status"] != "processing" {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "not complete in time: {s}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(status["status"], "complete", "{status}");
    assert_eq!(
        (
            status["pages_done"].as_u64(),
            status["pages_failed"].as_u64()
        ),
        (Some(2), Some(0))
    );

    let json = h.get(Some(KEY_ACME), &format!("{uri}/result")).await;
    assert_eq!(json.status, StatusCode::OK);
    let doc: DocumentResult = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(doc.status, DocumentStatus::Complete);
    assert_eq!(
        doc.pages.iter().map(|p| p.page).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let truth: serde_json::Value =
        serde_json::from_slice(&corpus("multipage_pdf/tapus_catalogue_1962_3p.gt.json")).unwrap();
    for page in &doc.pages {
        let text: Vec<&str> = page
            .blocks
            .iter()
            .filter_map(|b| b.text.as_deref())
            .collect();
        let text = text.join(" ");
        let gt = truth["pages"][(page.page - 1) as usize]["text"]
            .as_str()
            .unwrap();
        let recall = word_recall(&text, gt);
        println!(
            "page {}: {} blocks, word recall {:.2}",
            page.page,
            page.blocks.len(),
            recall
        );
        assert!(
            recall > 0.6,
            "page {}: OCR found {recall:.2} of the words: {text}",
            page.page
        );
    }
    let md = h
        .get(Some(KEY_ACME), &format!("{uri}/result?format=md"))
        .await;
    assert_eq!(md.text(), doc.markdown);
    let page2: PageResult =
        serde_json::from_slice(&h.get(Some(KEY_ACME), &format!("{uri}/pages/2")).await.body)
            .unwrap();
    assert_eq!(page2, doc.pages[1]);

    shutdown.cancel();
    worker_task.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_server_binds_port_0_serves_and_shuts_down_gracefully() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let bucket = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(folio_transport::LocalDirStore::new(bucket.path()).unwrap());
    let queue = Arc::new(folio_transport::InProcessQueue::new(3));
    let ingestor =
        folio_ingest::Ingestor::new(folio_ingest::IngestConfig::from_runtime_dir(&runtime_dir()));
    let probe = Arc::new(folio_api::http::StoreProbe::new(store.clone()));
    let state = folio_api::http::AppState::new(config(), store, queue, ingestor, probe).unwrap();
    let server = folio_api::http::Server::bind(state).await.unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(server.run(shutdown.clone()));

    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /readyz HTTP/1.1\r\nHost: folio\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"ready\""), "{answer}");

    shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(10), running)
        .await
        .expect("shutdown is prompt")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the port is closed"
    );
}

/// `schemas/json/openapi.json` must equal the generated document.
/// Regenerate with `FOLIO_UPDATE_SCHEMAS=1 cargo test -p folio-api --test http_api openapi`.
#[test]
fn committed_openapi_matches_generated() {
    let path =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/json/openapi.json");
    let generated = folio_api::http::openapi::document_text();
    let doc = folio_api::http::openapi::document();
    assert!(
        doc.get("error").is_none(),
        "the document failed to build: {doc}"
    );
    assert!(doc["paths"]["/v1/documents"]["post"].is_object());
    assert!(doc["components"]["schemas"]["PageResult"]["properties"]["blocks"].is_object());
    if std::env::var_os("FOLIO_UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date; run FOLIO_UPDATE_SCHEMAS=1 cargo test -p folio-api --test http_api openapi",
        path.display()
    );
}
