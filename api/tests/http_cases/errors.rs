//! Every refusal with its status and code: authentication, tenant isolation, bad files, bad
//! options, body limits, the per-tenant limit, outages (503, never 500), enqueue retries, timeouts.

use crate::http_support::*;
use axum::body::Bytes;
use axum::http::StatusCode;
use folio_schemas::EngineKind;
use std::sync::atomic::Ordering;

#[tokio::test]
async fn authentication_and_tenant_isolation() {
    let h = Harness::new();
    let id = h
        .upload_ok(KEY_ACME, corpus(PDF_3P), "?dpi=72&pages=1")
        .await;
    let uri = format!("/v1/documents/{id}");

    let none = h.get(None, &uri).await;
    assert_eq!(
        (none.status, none.error_code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert!(none
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    let wrong = h.get(Some("test-key-wrong-0123456789"), &uri).await;
    assert_eq!(
        (wrong.status, wrong.error_code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let upload = h
        .upload("nope-nope-nope-nope-nope", corpus(PDF_3P), "")
        .await;
    assert_eq!(upload.status, StatusCode::UNAUTHORIZED);

    // Another tenant sees nothing: 404, never 403 (which would confirm the id exists).
    for path in [
        uri.clone(),
        format!("{uri}/result"),
        format!("{uri}/pages/1"),
    ] {
        let other = h.get(Some(KEY_BETA), &path).await;
        assert_eq!(
            (other.status, other.error_code().as_str()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    assert_eq!(h.get(Some(KEY_ACME), &uri).await.status, StatusCode::OK);
    let traversal = h
        .get(
            Some(KEY_BETA),
            &format!("/v1/documents/..%2F..%2Facme%2Fdocs%2F{id}"),
        )
        .await;
    assert_eq!(traversal.status, StatusCode::NOT_FOUND);
    let unknown = h
        .get(
            Some(KEY_ACME),
            "/v1/documents/0190b4c2-7f4e-7a1b-9c3d-1234567890ab",
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.error_code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn file_errors_have_their_status_and_ingest_code() {
    let h = Harness::with(|c| c.max_pages_per_document = 2);
    let pdf = corpus(PDF_3P);
    let half = pdf[..pdf.len() / 2].to_vec();
    let cases: Vec<(Vec<u8>, &str, StatusCode, &str)> = vec![
        (
            b"Hello, this is plain text.\n".to_vec(),
            "",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
        ),
        (
            b"PK\x03\x04\x14\x00\x06\x00word/document.xml".to_vec(),
            "",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
        ),
        (half, "", StatusCode::UNPROCESSABLE_ENTITY, "corrupt_file"),
        (
            fixture("encrypted_aes256.pdf"),
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            "encrypted_pdf",
        ),
        (
            fixture("encrypted_aes256.pdf"),
            "?password=wrong",
            StatusCode::BAD_REQUEST,
            "password_in_query",
        ),
        (
            fixture("zero_pages.pdf"),
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_pages",
        ),
        (
            Vec::new(),
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_file",
        ),
        (
            pdf.clone(),
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_pages",
        ),
        (
            fixture("encrypted_aes256.pdf"),
            "?pages=9",
            StatusCode::UNPROCESSABLE_ENTITY,
            "encrypted_pdf",
        ),
        (
            fixture("rotated.pdf"),
            "?pages=9",
            StatusCode::UNPROCESSABLE_ENTITY,
            "page_out_of_range",
        ),
        (
            fixture("rotated.pdf"),
            "?pages=3-1",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_page_range",
        ),
    ];
    for (bytes, query, status, code) in cases {
        let reply = h.upload(KEY_ACME, bytes, query).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (status, code),
            "{code} {query}: {}",
            reply.text()
        );
    }
    // The password goes in a header: a wrong one is 422, the right one opens it.
    let with_password = |password: &str| {
        raw_upload_with(
            KEY_ACME,
            fixture("encrypted_aes256.pdf"),
            "?dpi=72",
            &[("X-Folio-Pdf-Password", password)],
        )
    };
    let wrong = h.send(with_password("wrong")).await;
    assert_eq!(
        (wrong.status, wrong.error_code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "wrong_password")
    );
    let right = h.send(with_password(FIXTURE_PASSWORD)).await;
    assert_eq!(right.status, StatusCode::ACCEPTED, "{}", right.text());
    h.state.wait_background().await;
    // Nothing refused left anything in flight.
    assert_eq!(h.state.in_flight().count("acme"), 0);
}

#[tokio::test]
async fn bad_options_are_400_before_the_body_is_used() {
    let h = Harness::new();
    for (query, code) in [
        ("?engine=tesseract", "bad_engine"),
        ("?dpi=abc", "bad_dpi"),
        ("?dpi=0", "bad_dpi"),
        ("?colour=red", "bad_query"),
        ("?profile=table", "bad_profile"),
        ("?engine=glm45v&profile=poem", "bad_profile"),
        ("?prompt=hello", "bad_prompt"),
    ] {
        let reply = h.upload(KEY_ACME, corpus(PDF_3P), query).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{query}"
        );
    }
    let only_ocr = Harness::with(|c| c.engines = vec![EngineKind::Ocr]);
    let reply = only_ocr
        .upload(KEY_ACME, corpus(PDF_3P), "?engine=glm45v")
        .await;
    assert_eq!(reply.error_code(), "engine_unavailable");
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let h = Harness::with(|c| c.max_body_bytes = 64 * 1024);
    let pdf = corpus(PDF_3P);
    // Declared too large: refused before reading.
    let reply = h.upload(KEY_ACME, pdf.clone(), "").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    // Chunked, no length: refused once the count passes the limit.
    let (mut tx, request) = streamed_upload(KEY_ACME, "");
    let body = pdf.clone();
    let sender = tokio::spawn(async move {
        for chunk in body.chunks(16 * 1024) {
            if tx.send_data(Bytes::copy_from_slice(chunk)).await.is_err() {
                break;
            }
        }
    });
    let reply = h.send(request).await;
    sender.await.unwrap();
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    // Multipart: the file part counts.
    let reply = h
        .send(multipart_upload(KEY_ACME, Some(("a.pdf", pdf)), &[], ""))
        .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    assert_eq!(h.state.in_flight().count("acme"), 0);
}

#[tokio::test]
async fn a_tenant_over_its_in_flight_limit_gets_429_others_do_not() {
    let h = Harness::with(|c| c.max_in_flight_per_tenant = 1);
    h.queue.hold();
    let first = h.upload(KEY_ACME, corpus(PDF_3P), "?dpi=72&pages=1").await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    let second = h.upload(KEY_ACME, corpus(PDF_3P), "?dpi=72&pages=1").await;
    assert_eq!(
        (second.status, second.error_code().as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "tenant_busy")
    );
    assert_eq!(second.header("retry-after"), Some("1"));
    let other = h.upload(KEY_BETA, corpus(PDF_3P), "?dpi=72&pages=1").await;
    assert_eq!(
        other.status,
        StatusCode::ACCEPTED,
        "the limit is per tenant"
    );
    h.queue.release();
    h.state.wait_background().await;
    let third = h.upload(KEY_ACME, corpus(PDF_3P), "?dpi=72&pages=1").await;
    assert_eq!(
        third.status,
        StatusCode::ACCEPTED,
        "the slot is free once the pages are enqueued"
    );
}

#[tokio::test]
async fn past_the_pending_bound_uploads_wait_then_get_503_overloaded() {
    let wait = std::time::Duration::from_millis(300);
    let h = Harness::with(|c| {
        c.max_pending_documents = 1;
        c.admission_wait = wait;
    });
    h.queue.hold();
    let first = h.upload(KEY_ACME, corpus(PDF_3P), "?dpi=72&pages=1").await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    assert_eq!(h.state.admission().pending(), 1);

    // Another tenant, so the per-tenant limit is not what refuses it.
    let start = std::time::Instant::now();
    let second = h.upload(KEY_BETA, corpus(PDF_3P), "?dpi=72&pages=1").await;
    assert_eq!(
        (second.status, second.error_code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
    );
    assert!(
        start.elapsed() >= wait,
        "refused only after the admission wait"
    );
    assert_eq!(second.header("retry-after"), Some("5"));

    // An upload waiting for a slot is admitted as soon as the pending document is enqueued.
    let release_soon = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        h.queue.release();
    };
    let (third, ()) = tokio::join!(
        h.upload(KEY_BETA, corpus(PDF_3P), "?dpi=72&pages=1"),
        release_soon
    );
    assert_eq!(third.status, StatusCode::ACCEPTED, "{}", third.text());
    h.state.wait_background().await;
    assert_eq!(h.state.admission().pending(), 0, "every slot is given back");
}

#[tokio::test]
async fn an_unavailable_store_is_503_never_500() {
    let h = Harness::new();
    let id = h
        .upload_ok(KEY_ACME, corpus(PDF_3P), "?dpi=72&pages=1")
        .await;
    h.store.down.store(true, Ordering::SeqCst);
    let upload = h.upload(KEY_ACME, corpus(PDF_3P), "?pages=1").await;
    assert_eq!(
        (upload.status, upload.error_code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    assert_eq!(upload.header("retry-after"), Some("5"));
    assert!(
        !upload.text().contains("test: the store is down"),
        "outage details stay in the logs"
    );
    for path in [
        format!("/v1/documents/{id}"),
        format!("/v1/documents/{id}/result"),
        format!("/v1/documents/{id}/pages/1"),
    ] {
        let r = h.get(Some(KEY_ACME), &path).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            "{path}"
        );
    }
    let ready = h.get(None, "/readyz").await;
    assert_eq!(
        (ready.status, ready.error_code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    assert_eq!(
        h.get(None, "/healthz").await.status,
        StatusCode::OK,
        "liveness does not depend on S3"
    );
    h.store.down.store(false, Ordering::SeqCst);
    assert_eq!(h.get(None, "/readyz").await.status, StatusCode::OK);
    assert_eq!(
        h.get(Some(KEY_ACME), &format!("/v1/documents/{id}"))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn enqueueing_retries_when_the_broker_fails_transiently() {
    let h = Harness::new();
    h.queue.fail_next.store(2, Ordering::SeqCst);
    let id = h.upload_ok(KEY_ACME, corpus(PDF_3P), "?dpi=72").await;
    let mut pages: Vec<u32> = h.drain_jobs().await.iter().map(|j| j.page).collect();
    pages.sort_unstable();
    pages.dedup();
    assert_eq!(
        pages,
        vec![1, 2, 3],
        "every page reaches the queue after the broker recovers"
    );
    let s = h
        .get(Some(KEY_ACME), &format!("/v1/documents/{id}"))
        .await
        .json();
    assert_eq!(s["pages_failed"], 0);
}

#[tokio::test]
async fn enqueueing_gives_up_with_error_records_after_its_attempts() {
    let h = Harness::with(|c| c.enqueue_attempts = 2);
    h.queue.fail_next.store(100, Ordering::SeqCst);
    let id = h
        .upload_ok(KEY_ACME, corpus(PDF_3P), "?dpi=72&pages=1-2")
        .await;
    let s = h
        .get(Some(KEY_ACME), &format!("/v1/documents/{id}"))
        .await
        .json();
    assert_eq!(s["pages_failed"], 2, "{s}");
    assert_eq!(s["pages"][0]["error"]["code"], "enqueue_failed");
    // No worker will ever see these pages: the API assembles the document itself.
    assert_eq!(s["status"], "partial", "{s}");
    assert!(s["completed_at"].is_string(), "{s}");
    let doc = h
        .get(Some(KEY_ACME), &format!("/v1/documents/{id}/result"))
        .await
        .json();
    assert_eq!(doc["status"], "partial");
    assert_eq!(doc["errors"].as_array().map(Vec::len), Some(2));
    assert_eq!(doc["completed_at"], s["completed_at"]);
}

#[tokio::test]
async fn slow_requests_time_out_with_408() {
    let h = Harness::with(|c| c.request_timeout = std::time::Duration::from_millis(300));
    let (mut tx, request) = streamed_upload(KEY_ACME, "");
    tx.send_data(Bytes::from_static(b"%PDF-1.7\n"))
        .await
        .unwrap();
    let reply = h.send(request).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::REQUEST_TIMEOUT, "timeout")
    );
    drop(tx);
    assert_eq!(
        h.state.in_flight().count("acme"),
        0,
        "a timed-out upload frees its slot"
    );
}
