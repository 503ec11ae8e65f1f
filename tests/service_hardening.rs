//! Hardening of the service (issue #17, parts 1, 4 and 6), through the real `folio serve` and
//! `folio work` binaries on the RabbitMQ and SeaweedFS of `scripts/services/start`:
//!
//! - a forged page job (another tenant's page, a document that does not exist, a page its
//!   manifest does not list, a tenant that is a path) is dead-lettered with reason
//!   `invalid_job` and counted, and nothing is written under either tenant;
//! - the worker's `/readyz` follows its broker connection and the store;
//! - `Idempotency-Key`: a retried upload gets the same document (one stored), another body with
//!   the key 422, keys are per tenant, racing retries make one document;
//! - `/metrics` names no tenant unless `FOLIO_METRICS_TENANT_LABELS=1`.
//!
//! Skipped with a note when the servers are not configured, failed under `FOLIO_INTEGRATION=1`.

mod common;
mod service_support;
mod triggers_support;

use bytes::Bytes;
use folio_schemas::{DocKeys, EngineKind, JobOptions, Manifest, PageJob, SCHEMA_VERSION};
use folio_transport::{JobQueue, ObjectStore};
use service_support::http::{request, Framing, Resp};
use service_support::*;
use std::collections::BTreeMap;

/// A small white PNG of `w`×`h` (a page image, or an upload).
fn png(w: u32, h: u32, shade: u8) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([shade, shade, shade]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

/// Store a one-page document of `tenant` as the API leaves it (manifest + page image), no job.
async fn put_document(store: &dyn ObjectStore, tenant: &str, doc: &str) {
    let keys = DocKeys::new(tenant, doc);
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION.into(),
        tenant: tenant.into(),
        document_id: doc.into(),
        file_name: Some("page.png".into()),
        media_type: "image/png".into(),
        sha256: "00".into(),
        size_bytes: 1,
        pages: vec![1],
        source_page_count: 1,
        options: JobOptions::default(),
        created_at: "2026-01-01T00:00:00Z".into(),
        metadata: Default::default(),
    };
    let body = Bytes::from(serde_json::to_vec(&manifest).expect("json"));
    store
        .put(&keys.manifest(), body, "application/json")
        .await
        .expect("manifest");
    store
        .put(
            &keys.page_image(1),
            Bytes::from(png(40, 30, 250)),
            "image/png",
        )
        .await
        .expect("page");
}

/// Every object under `prefixes`, with its bytes.
async fn snapshot(store: &dyn ObjectStore, prefixes: &[String]) -> BTreeMap<String, Bytes> {
    let mut all = BTreeMap::new();
    for prefix in prefixes {
        for key in store.list(prefix).await.expect("list") {
            let body = store.get(&key).await.expect("get");
            all.insert(key, body);
        }
    }
    all
}

fn job(tenant: &str, doc: &str, page: u32, page_count: u32, image_key: String) -> PageJob {
    PageJob {
        schema_version: SCHEMA_VERSION.into(),
        tenant: tenant.into(),
        document_id: doc.into(),
        page,
        page_count,
        image_key,
        options: JobOptions {
            prompt: Some(SECRET_PROMPT.into()),
            ..JobOptions::default()
        },
        dpi: Some(200),
        traceparent: None,
        submitted_at: "2026-01-01T00:00:00Z".into(),
    }
}

const SECRET_PROMPT: &str = "payload-secret-7f3a";
const VICTIM_DOC: &str = "0190b4c2-7f4e-7a1b-9c3d-00000000v1c7";
const OWN_DOC: &str = "0190b4c2-7f4e-7a1b-9c3d-0000000000a1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_job_naming_another_tenants_page_is_dead_lettered_as_invalid_job() {
    let Some(stack) = Stack::new("forged").await else {
        return;
    };
    let s = &stack;
    let store = stack.store.as_ref();
    let (attacker, victim) = (stack.tenant.clone(), stack.other_tenant.clone());
    put_document(store, &victim, VICTIM_DOC).await;
    put_document(store, &attacker, OWN_DOC).await;
    let prefixes = [format!("{attacker}/"), format!("{victim}/")];
    let before = snapshot(store, &prefixes).await;
    let victim_page = DocKeys::new(&victim, VICTIM_DOC).page_image(1);

    let forged = [
        // The attacker's own document, reading the victim's page image.
        job(&attacker, OWN_DOC, 1, 1, victim_page.clone()),
        // The victim's document id under the attacker's tenant: no such document.
        job(
            &attacker,
            VICTIM_DOC,
            1,
            1,
            DocKeys::new(&attacker, VICTIM_DOC).page_image(1),
        ),
        // A tenant that is a path out of its prefix.
        job(
            &format!("{attacker}/../{victim}"),
            VICTIM_DOC,
            1,
            1,
            victim_page.clone(),
        ),
        // The victim's own document, a page its manifest does not list.
        job(
            &victim,
            VICTIM_DOC,
            2,
            2,
            DocKeys::new(&victim, VICTIM_DOC).page_image(2),
        ),
    ];
    for j in &forged {
        stack.queue.publish(j).await.expect("publish");
    }

    let worker = stack.worker("worker").await;
    wait_for(60, "the four forged jobs dead-lettered", || async move {
        (s.dead_letters().await == 4 && s.depth().await == 0).then_some(())
    })
    .await;
    let letters = stack
        .queue
        .peek_dead_letters(EngineKind::Ocr, 10)
        .await
        .expect("dead letters");
    assert_eq!(letters.len(), 4);
    for letter in &letters {
        assert_eq!(letter.reason, "invalid_job", "{letter:?}");
        assert!(letter.job.is_ok(), "the body is kept as it was: {letter:?}");
    }
    for (check, n) in [
        ("image_key", 1.0),
        ("no_manifest", 1.0),
        ("tenant", 1.0),
        ("page_not_in_manifest", 1.0),
    ] {
        let label = format!("check=\"{check}\"");
        assert_eq!(
            worker
                .metric("folio_invalid_jobs_total", &[label.as_str()])
                .await,
            n,
            "{check}"
        );
    }
    // Nothing written, changed or removed under either tenant; no result anywhere.
    assert_eq!(snapshot(store, &prefixes).await, before);
    let log = worker.proc.log();
    assert!(log.contains("invalid_job"), "{log}");
    assert!(!log.contains(SECRET_PROMPT), "the prompt is logged:\n{log}");
    assert!(
        !log.contains(&victim_page),
        "a forged key is logged:\n{log}"
    );
}

/// `GET /readyz` of a worker: status and body.
async fn readyz(worker: &Work) -> (u16, String) {
    match request(&worker.addr, "GET", "/readyz", &[], b"", Framing::Length).await {
        Ok(r) => (r.status, r.text()),
        Err(e) => (0, e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_readyz_follows_the_broker_and_the_store() {
    let Some(stack) = Stack::new("ready").await else {
        return;
    };
    let (Some((s3_stop, s3_start)), Some((mq_stop, mq_start))) = (
        stack.restart_commands("S3"),
        stack.restart_commands("RABBIT"),
    ) else {
        eprintln!(
            "SKIPPED: the servers are shared ones, which this test may not restart; run it \
             under scripts/test (FOLIO_PRIVATE_RABBIT=1 scripts/services/start)"
        );
        return;
    };
    // `stack.worker` returns once /readyz answers 200: subscribed, broker and store answering.
    let worker = stack.worker("worker").await;
    let w = &worker;
    for (stop, start, names) in [
        (&s3_stop, &s3_start, "object store"),
        (&mq_stop, &mq_start, "broker"),
    ] {
        run_command(stop).await;
        let body = wait_for(60, "/readyz to answer 503", || async move {
            let (status, body) = readyz(w).await;
            (status == 503).then_some(body)
        })
        .await;
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
        assert_eq!(v["error"]["code"], "unavailable", "{body}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(names)),
            "the reason names the {names}: {body}"
        );
        run_command(start).await;
        wait_for(120, "/readyz to answer 200 again", || async move {
            (readyz(w).await.0 == 200).then_some(())
        })
        .await;
    }
}

/// `POST /v1/documents` with a raw PNG body and `headers` on top of the API key.
async fn upload(api: &Api, key: &str, body: &[u8], headers: &[(&str, &str)]) -> Resp {
    let auth = format!("Bearer {key}");
    let mut all = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "image/png"),
    ];
    all.extend_from_slice(headers);
    request(
        &api.addr,
        "POST",
        "/v1/documents",
        &all,
        body,
        Framing::Length,
    )
    .await
    .unwrap_or_else(|e| panic!("upload: {e}\n{}", api.proc.log()))
}

/// The document ids stored under `tenant`.
async fn documents(store: &dyn ObjectStore, tenant: &str) -> Vec<String> {
    let mut ids: Vec<String> = store
        .list(&format!("{tenant}/docs/"))
        .await
        .expect("list")
        .iter()
        .filter_map(|k| k.strip_suffix("/manifest.json"))
        .filter_map(|k| k.rsplit('/').next())
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_makes_one_document_per_tenant_on_seaweedfs() {
    let Some(stack) = Stack::new("idem").await else {
        return;
    };
    let api = stack.serve(&[]);
    let store = stack.store.as_ref();
    let body = png(64, 48, 255);
    let key = [("Idempotency-Key", "order-42")];

    let first = upload(&api, &stack.key, &body, &key).await;
    assert_eq!(first.status, 202, "{}", first.text());
    let id = first.json()["document_id"].as_str().unwrap().to_string();
    let again = upload(&api, &stack.key, &body, &key).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["document_id"], id.as_str());
    assert_eq!(again.json()["pages"], 1);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        again.header("location"),
        Some(format!("/v1/documents/{id}").as_str())
    );

    let other_body = png(64, 48, 200);
    let reused = upload(&api, &stack.key, &other_body, &key).await;
    assert_eq!(
        (reused.status, reused.error_code().as_str()),
        (422, "idempotency_key_reused"),
        "{}",
        reused.text()
    );
    // Keys are per tenant: the same key of another tenant is another document.
    let theirs = upload(&api, &stack.other_key, &body, &key).await;
    assert_eq!(theirs.status, 202, "{}", theirs.text());
    assert_ne!(theirs.json()["document_id"], id.as_str());
    assert_eq!(documents(store, &stack.tenant).await, vec![id.clone()]);
    let records = store
        .list(&format!("{}/idempotency/", stack.tenant))
        .await
        .expect("list");
    assert_eq!(records.len(), 1, "{records:?}");

    // Two racing uploads with a fresh key: one document, the other answer a replay or 409.
    let race = [("Idempotency-Key", "order-43")];
    let (a, b) = tokio::join!(
        upload(&api, &stack.key, &other_body, &race),
        upload(&api, &stack.key, &other_body, &race)
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert!(
        statuses == [200, 202] || statuses == [202, 409],
        "{statuses:?}: {} / {}",
        a.text(),
        b.text()
    );
    assert_eq!(documents(store, &stack.tenant).await.len(), 2);
    // A malformed key is refused before anything is stored.
    let bad = upload(&api, &stack.key, &body, &[("Idempotency-Key", "")]).await;
    assert_eq!(bad.error_code(), "bad_idempotency_key");
    assert_eq!(documents(store, &stack.tenant).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_name_no_tenant_unless_asked() {
    let Some(stack) = Stack::new("labels").await else {
        return;
    };
    let body = png(32, 32, 255);
    for (labels, extra) in [
        (false, vec![]),
        (true, vec![("FOLIO_METRICS_TENANT_LABELS", "1")]),
    ] {
        let api = stack.serve(&extra);
        let r = upload(&api, &stack.key, &body, &[]).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let text = api.get_as(None, "/metrics").await.text();
        assert!(text.contains("folio_documents_in_flight"), "{text}");
        assert_eq!(
            text.contains(&stack.tenant),
            labels,
            "tenant labels {labels}:\n{text}"
        );
    }
}
