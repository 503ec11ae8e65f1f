//! Secrets and retries of uploads: the PDF password travels in a header or a multipart field,
//! never the query; an `Idempotency-Key` makes a retried upload answer with the same document
//! (the same behaviour against SeaweedFS, through the binary: `tests/service_hardening.rs`).

use crate::http_support::*;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use bytes::Bytes;
use folio_api::http::idempotency::{now_unix, IdempotencyKey, KeyRecord};
use folio_transport::ObjectStore;

fn png(shade: u8) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(40, 30, image::Rgb([shade, shade, shade]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn record_key(key: &str) -> String {
    let mut headers = HeaderMap::new();
    headers.insert("idempotency-key", HeaderValue::from_str(key).unwrap());
    IdempotencyKey::from_headers(&headers)
        .unwrap()
        .unwrap()
        .record_key("acme")
}

/// Stored documents of tenant `acme`.
async fn documents(h: &Harness) -> usize {
    h.store
        .list("acme/docs/")
        .await
        .unwrap()
        .iter()
        .filter(|k| k.ends_with("/manifest.json"))
        .count()
}

#[tokio::test]
async fn the_pdf_password_goes_in_a_header_or_field_never_the_query() {
    let h = Harness::new();
    let pdf = || fixture("encrypted_aes256.pdf");
    let query = h
        .upload(KEY_ACME, pdf(), &format!("?password={FIXTURE_PASSWORD}"))
        .await;
    assert_eq!(
        (query.status, query.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "password_in_query")
    );
    assert!(
        query.text().contains("X-Folio-Pdf-Password"),
        "the answer says where it goes: {}",
        query.text()
    );
    // Refused before anything is stored.
    assert_eq!(documents(&h).await, 0);

    let field = h
        .send(multipart_upload(
            KEY_ACME,
            Some(("e.pdf", pdf())),
            &[("password", FIXTURE_PASSWORD), ("dpi", "72")],
            "",
        ))
        .await;
    assert_eq!(field.status, StatusCode::ACCEPTED, "{}", field.text());
    let twice = h
        .send({
            let mut r = multipart_upload(
                KEY_ACME,
                Some(("e.pdf", pdf())),
                &[("password", FIXTURE_PASSWORD)],
                "",
            );
            r.headers_mut().insert(
                "x-folio-pdf-password",
                HeaderValue::from_static(FIXTURE_PASSWORD),
            );
            r
        })
        .await;
    assert_eq!(
        (twice.status, twice.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "conflicting_option")
    );
    h.state.wait_background().await;
}

#[tokio::test]
async fn a_retried_upload_with_its_key_is_the_same_document() {
    let h = Harness::new();
    let send = |body: Vec<u8>, key: &str| {
        h.send(raw_upload_with(
            KEY_ACME,
            body,
            "",
            &[("Idempotency-Key", key)],
        ))
    };
    let first = send(png(255), "k-1").await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    let id = first.json()["document_id"].as_str().unwrap().to_string();
    h.state.wait_background().await;
    let again = send(png(255), "k-1").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json()["document_id"], id.as_str());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    // Other options are another request too.
    let dpi = h
        .send(raw_upload_with(
            KEY_ACME,
            png(255),
            "?pages=1&engine=ocr&profile=document",
            &[("Idempotency-Key", "k-1")],
        ))
        .await;
    assert_eq!(dpi.error_code(), "idempotency_key_reused");
    let other = send(png(100), "k-1").await;
    assert_eq!(
        (other.status, other.error_code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    assert_eq!(documents(&h).await, 1);
    // One page job only: the replay enqueued nothing.
    assert_eq!(h.drain_jobs().await.len(), 1);
}

#[tokio::test]
async fn a_failed_upload_releases_its_key() {
    let h = Harness::new();
    let corrupt = png(255)[..60].to_vec();
    let bad = h
        .send(raw_upload_with(
            KEY_ACME,
            corrupt,
            "",
            &[("Idempotency-Key", "k-2")],
        ))
        .await;
    assert_eq!(
        bad.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad.text()
    );
    assert!(!h.store.exists(&record_key("k-2")).await.unwrap());
    let good = h
        .send(raw_upload_with(
            KEY_ACME,
            png(255),
            "",
            &[("Idempotency-Key", "k-2")],
        ))
        .await;
    assert_eq!(good.status, StatusCode::ACCEPTED, "{}", good.text());
    h.state.wait_background().await;
}

#[tokio::test]
async fn claims_in_progress_abandoned_or_expired() {
    let h = Harness::new();
    let put = |key: &str, record: KeyRecord| {
        let store = h.store.clone();
        let at = record_key(key);
        async move {
            let body = Bytes::from(serde_json::to_vec(&record).unwrap());
            store.put(&at, body, "application/json").await.unwrap();
        }
    };
    let upload = |key: &str| {
        h.send(raw_upload_with(
            KEY_ACME,
            png(255),
            "",
            &[("Idempotency-Key", key)],
        ))
    };
    // First, learn the fingerprint of this upload from a real claim.
    assert_eq!(upload("probe").await.status, StatusCode::ACCEPTED);
    h.state.wait_background().await;
    let probe: KeyRecord =
        serde_json::from_slice(&h.store.get(&record_key("probe")).await.unwrap()).unwrap();
    let claim = |age: u64| KeyRecord {
        document_id: "0190b4c2-7f4e-7a1b-9c3d-0000000000dd".into(),
        fingerprint: probe.fingerprint.clone(),
        created_unix: now_unix() - age,
    };

    // Claimed a moment ago, no document yet: the first request is still running.
    put("busy", claim(1)).await;
    let busy = upload("busy").await;
    assert_eq!(
        (busy.status, busy.error_code().as_str()),
        (StatusCode::CONFLICT, "idempotency_key_in_use")
    );
    // Claimed longer ago than the request timeout, no document: that request died.
    put("dead", claim(3600)).await;
    let retaken = upload("dead").await;
    assert_eq!(retaken.status, StatusCode::ACCEPTED, "{}", retaken.text());
    // Older than 24 h, even with another fingerprint: the key is free again.
    let mut old = claim(25 * 3600);
    old.fingerprint = "another".into();
    put("old", old).await;
    let fresh = upload("old").await;
    assert_eq!(fresh.status, StatusCode::ACCEPTED, "{}", fresh.text());
    h.state.wait_background().await;
}
