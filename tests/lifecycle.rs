//! A document's life beyond its pages, through the real `folio serve` and `folio work` binaries
//! on RabbitMQ and SeaweedFS:
//!
//! - a completion webhook: a loopback receiver in the test (allowed by `FOLIO_CALLBACK_ALLOW`)
//!   answers 500 once, then 200; both POSTs carry a valid `Folio-Signature`, and both attempts
//!   are recorded under the document's prefix; re-processing the document calls it again;
//! - live progress: the Server-Sent Events of a document, read while its pages are processed,
//!   then replayed after `Last-Event-ID`;
//! - cancel: pages still queued are acked by the worker without running the engine, the status
//!   and the webhook say `cancelled`, `?purge=true` deletes the stored data; a finished document
//!   cannot be cancelled (409) but can be purged (then 404);
//! - retention: `folio gc` deletes the documents older than `--days` (dry run first).
//!
//! Skipped with a note when the servers are not configured, failed under `FOLIO_INTEGRATION=1`.

mod common;
mod service_support;
mod triggers_support;

use hmac::{Hmac, Mac};
use serde_json::Value;
use service_support::http::{request, Framing, Resp};
use service_support::*;
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use triggers_support::corpus;

const SECRET: &str = "test-callback-secret-0123456789";

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Hook {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Hook {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// A loopback HTTP receiver: answers each POST with the next status of `statuses` (the last
/// one repeated) and keeps what it got.
struct Receiver {
    port: u16,
    hooks: Arc<Mutex<Vec<Hook>>>,
}

impl Receiver {
    async fn start(statuses: Vec<u16>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hooks = Arc::new(Mutex::new(Vec::new()));
        let seen = hooks.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                let (headers, body) = loop {
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break (Vec::new(), Vec::new());
                    }
                    raw.extend_from_slice(&buf[..n]);
                    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&raw[..end]).to_string();
                    let headers: Vec<(String, String)> = head
                        .split("\r\n")
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    let len: usize = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    if raw.len() >= end + 4 + len {
                        break (headers, raw[end + 4..end + 4 + len].to_vec());
                    }
                };
                let index = {
                    let mut hooks = seen.lock().unwrap();
                    hooks.push(Hook { headers, body });
                    hooks.len() - 1
                };
                let status = statuses[index.min(statuses.len() - 1)];
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        Receiver { port, hooks }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// `?callback_url=…` (percent-encoded).
    fn query(&self) -> String {
        let encoded: String = self
            .url()
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        format!("callback_url={encoded}")
    }

    async fn wait(&self, n: usize, secs: u64) -> Vec<Hook> {
        let hooks = self.hooks.clone();
        wait_for(secs, &format!("{n} webhook POSTs"), || {
            let hooks = hooks.clone();
            async move {
                let got = hooks.lock().unwrap().clone();
                (got.len() >= n).then_some(got)
            }
        })
        .await
    }
}

/// The test's own check of a signature: HMAC-SHA256 over `"{t}.{body}"`, fresh timestamp.
fn assert_signed(hook: &Hook) {
    let header = hook.header("folio-signature");
    let (mut t, mut v1) = (None, None);
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1 = Some(x.to_string()),
            _ => {}
        }
    }
    let (t, v1) = (
        t.expect("t= in Folio-Signature"),
        v1.expect("v1= in Folio-Signature"),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - t).abs() < 300,
        "stale signature timestamp {t} (now {now})"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&hook.body);
    let want = hex::encode(mac.finalize().into_bytes());
    assert_eq!(
        v1,
        want,
        "signature of {}",
        String::from_utf8_lossy(&hook.body)
    );
    let mut wrong = Hmac::<Sha256>::new_from_slice(b"another-secret-0123456789").unwrap();
    wrong.update(format!("{t}.").as_bytes());
    wrong.update(&hook.body);
    assert_ne!(v1, hex::encode(wrong.finalize().into_bytes()));
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
struct Sse {
    id: u64,
    event: String,
    data: Value,
}

/// Read `/v1/documents/{id}/events` until the server closes it (after `end`); HTTP/1.0, so the
/// body is not chunked.
async fn read_events(api: &Api, id: &str, last_event_id: Option<u64>, secs: u64) -> Vec<Sse> {
    let mut stream = tokio::net::TcpStream::connect(&api.addr)
        .await
        .expect("connect");
    let mut head = format!(
        "GET /v1/documents/{id}/events HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n",
        api.addr, api.key
    );
    if let Some(n) = last_event_id {
        head.push_str(&format!("Last-Event-ID: {n}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(secs), stream.read_to_end(&mut raw)).await;
    assert!(
        read.is_ok(),
        "the event stream did not end within {secs} s: {}",
        String::from_utf8_lossy(&raw)
    );
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("text/event-stream"),
        "{head}"
    );
    body.split("\n\n")
        .filter_map(|block| {
            let (mut id, mut event, mut data) = (None, None, None);
            for line in block.lines() {
                match line.split_once(':') {
                    Some(("id", v)) => id = v.trim().parse().ok(),
                    Some(("event", v)) => event = Some(v.trim().to_string()),
                    Some(("data", v)) => data = serde_json::from_str(v.trim()).ok(),
                    _ => {}
                }
            }
            Some(Sse {
                id: id?,
                event: event?,
                data: data?,
            })
        })
        .collect()
}

async fn delete(api: &Api, path: &str) -> Resp {
    let auth = format!("Bearer {}", api.key);
    request(
        &api.addr,
        "DELETE",
        path,
        &[("Authorization", &auth)],
        b"",
        Framing::Length,
    )
    .await
    .expect("DELETE")
}

fn callback_env(stack: &Stack) -> Vec<(String, String)> {
    vec![
        (
            "FOLIO_CALLBACK_SECRETS".into(),
            format!("{}={SECRET}", stack.tenant),
        ),
        ("FOLIO_CALLBACK_ALLOW".into(), "127.0.0.1".into()),
        ("FOLIO_CALLBACK_RETRY_SECS".into(), "1".into()),
        ("FOLIO_CALLBACK_POLL_MS".into(), "200".into()),
    ]
}

fn serve_with_callbacks(stack: &Stack) -> Api {
    let env = callback_env(stack);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    stack.serve(&pairs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_is_signed_retried_and_recorded_and_progress_streams() {
    let Some(stack) = Stack::new("hook").await else {
        return;
    };
    let receiver = Receiver::start(vec![500, 200]).await;
    let api = serve_with_callbacks(&stack);

    // Refused at upload: no secret for the other tenant, a private target, a bad scheme.
    let pdf = corpus(PDF_3P);
    let refused = |key: String, query: String| {
        let (api, pdf) = (&api, pdf.clone());
        async move {
            let r = api
                .upload_as(
                    Some(&key),
                    &pdf,
                    "application/pdf",
                    &format!("?{query}"),
                    Framing::Length,
                )
                .await;
            assert_eq!(r.status, 400, "{}", r.text());
            r.error_code()
        }
    };
    assert_eq!(
        refused(stack.other_key.clone(), receiver.query()).await,
        "callback_unavailable"
    );
    assert_eq!(
        refused(
            stack.key.clone(),
            "callback_url=http%3A%2F%2F10.1.2.3%2Fh".into()
        )
        .await,
        "callback_forbidden"
    );
    assert_eq!(
        refused(
            stack.key.clone(),
            "callback_url=http%3A%2F%2F127.0.0.2%3A9%2Fh".into()
        )
        .await,
        "callback_forbidden",
        "only the allowed address, not all of loopback"
    );
    assert_eq!(
        refused(
            stack.key.clone(),
            "callback_url=ftp%3A%2F%2Fexample.com%2F".into()
        )
        .await,
        "bad_callback_url"
    );

    let _worker = stack.worker("worker").await;
    let id = api
        .upload_pdf(&pdf, &format!("?{DPI}&{}", receiver.query()))
        .await;
    // Live: opened right away, the stream ends by itself after the document's end.
    let live = read_events(&api, &id, None, 300).await;
    let names: Vec<&str> = live.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["page", "page", "page", "end"], "{live:?}");
    let ids: Vec<u64> = live.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let mut pages: Vec<u64> = live[..3]
        .iter()
        .map(|e| e.data["page"].as_u64().unwrap())
        .collect();
    pages.sort_unstable();
    assert_eq!(pages, [1, 2, 3]);
    assert!(live[..3]
        .iter()
        .all(|e| e.data["state"] == "done" && e.data["pages_total"] == 3));
    let end = &live[3].data;
    assert_eq!(
        (end["status"].as_str(), end["pages_done"].as_u64()),
        (Some("complete"), Some(3))
    );
    // Resumed: only what follows the given id.
    let resumed = read_events(&api, &id, Some(ids[1]), 60).await;
    assert_eq!(
        resumed.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[2..].to_vec()
    );
    let after_end = read_events(&api, &id, Some(ids[3]), 60).await;
    assert!(after_end.is_empty(), "{after_end:?}");

    // The webhook: 500 first, retried after the backoff, then delivered.
    let hooks = receiver.wait(2, 120).await;
    for hook in &hooks {
        assert_signed(hook);
    }
    let body = hooks[1].json();
    assert_eq!(body["event"], "document.ended");
    assert_eq!(body["document_id"], id.as_str());
    assert_eq!(body["status"], "complete");
    assert_eq!(
        (body["pages_total"].as_u64(), body["pages_done"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(hooks[0].json(), body, "a retry sends the same payload");
    assert_eq!(
        hooks[0].header("folio-event-id"),
        hooks[1].header("folio-event-id")
    );
    assert_eq!(
        (
            hooks[0].header("folio-delivery-attempt"),
            hooks[1].header("folio-delivery-attempt")
        ),
        ("1", "2")
    );
    // Both attempts recorded under the document's prefix; the outbox is empty.
    let keys = stack.keys(&id);
    let record = |attempt| {
        let (store, key) = (stack.store.clone(), keys.delivery(0, attempt));
        async move {
            serde_json::from_slice::<Value>(&store.get(&key).await.expect("delivery record"))
                .expect("JSON")
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let (first, second) = loop {
        let (a, b) = (record(1).await, record(2).await);
        if b["outcome"] != "sending" || Instant::now() > deadline {
            break (a, b);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (first["outcome"].as_str(), first["http_status"].as_u64()),
        (Some("failed"), Some(500))
    );
    assert_eq!(
        (second["outcome"].as_str(), second["http_status"].as_u64()),
        (Some("delivered"), Some(200))
    );
    let outbox = format!(".folio/callbacks/pending/{}/{id}/", stack.tenant);
    wait_for(30, "the delivered notice to leave the outbox", || {
        let (store, outbox) = (stack.store.clone(), outbox.clone());
        async move {
            store
                .list(&outbox)
                .await
                .ok()
                .filter(|l| l.is_empty())
                .map(|_| ())
        }
    })
    .await;
    assert_eq!(
        receiver.hooks.lock().unwrap().len(),
        2,
        "delivered once, not again"
    );

    // Re-processing the document ends it again: a second round, a second notice.
    let bucket = stack.env["FOLIO_S3_BUCKET"].clone();
    let target = format!("s3://{bucket}/{}/docs/{id}/", stack.tenant);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_folio"))
        .args(["reprocess", &target, "--amqp-prefix", &stack.prefix])
        .envs(stack.env.iter())
        .current_dir(stack.dir.path())
        .output()
        .expect("folio reprocess runs");
    assert!(
        out.status.success(),
        "reprocess: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Generous: on a loaded two-core machine one OCR page has taken minutes.
    let hooks = receiver.wait(3, 600).await;
    assert_signed(&hooks[2]);
    let again = hooks[2].json();
    assert_eq!(again["status"], "complete");
    assert_ne!(
        again["event_id"], body["event_id"],
        "a new round has a new event id"
    );
    let replay = read_events(&api, &id, None, 60).await;
    let names: Vec<&str> = replay.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        ["page", "page", "page", "end", "restart", "page", "page", "page", "end"],
        "{replay:?}"
    );

    // A finished document cannot be cancelled, but it can be purged: then it is gone.
    let r = delete(&api, &format!("/v1/documents/{id}")).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "document_finished")
    );
    let r = delete(&api, &format!("/v1/documents/{id}?purge=true")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["purged"], true);
    assert_eq!(api.get(&format!("/v1/documents/{id}")).await.status, 404);
    assert!(stack.store.list(&keys.prefix()).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_skips_queued_pages_ends_the_document_and_purges() {
    let Some(stack) = Stack::new("cancel").await else {
        return;
    };
    let s = &stack;
    let receiver = Receiver::start(vec![200]).await;
    let api = serve_with_callbacks(&stack);
    let id = api
        .upload_pdf(&corpus(PDF_3P), &format!("?{DPI}&{}", receiver.query()))
        .await;
    wait_for(60, "the three jobs on the queue", || async move {
        (s.depth().await == 3).then_some(())
    })
    .await;

    let r = delete(&api, &format!("/v1/documents/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (r.json()["status"].as_str(), r.json()["purged"].as_bool()),
        (Some("cancelled"), Some(false))
    );
    let again = delete(&api, &format!("/v1/documents/{id}")).await;
    assert_eq!(
        again.status,
        200,
        "cancelling twice is fine: {}",
        again.text()
    );
    let status = api.status(&id).await.expect("status");
    assert_eq!(status["status"], "cancelled");
    assert!(status["cancelled_at"].is_string());
    assert!(
        status["pages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["state"] == "skipped"),
        "{status}"
    );

    // The worker settles the queued pages without the engine: no result is written.
    let worker = stack.worker("worker").await;
    wait_for(
        120,
        "the cancelled pages to leave the queue",
        || async move { (s.depth().await == 0).then_some(()) },
    )
    .await;
    let skipped = wait_for(60, "three skipped pages in the worker's metrics", || {
        let w = &worker;
        async move {
            let n = w
                .metric("folio_pages_total", &["outcome=\"cancelled\""])
                .await;
            (n >= 3.0).then_some(n)
        }
    })
    .await;
    assert_eq!(skipped, 3.0);
    assert_eq!(
        worker
            .metric("folio_pages_total", &["outcome=\"ok\""])
            .await,
        0.0
    );
    let keys = stack.keys(&id);
    assert!(stack
        .store
        .list(&keys.results_prefix())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(stack.dead_letters().await, 0);

    // The webhook and the event stream say cancelled, once.
    let hooks = receiver.wait(1, 60).await;
    assert_signed(&hooks[0]);
    let body = hooks[0].json();
    assert_eq!(
        (body["status"].as_str(), body["pages_done"].as_u64()),
        (Some("cancelled"), Some(0))
    );
    let events = read_events(&api, &id, None, 60).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].event.as_str(), events[0].data["status"].as_str()),
        ("end", Some("cancelled"))
    );

    // Purge: the pages and the source go; the status stays, marked purged.
    assert!(!stack
        .store
        .list(&keys.pages_prefix())
        .await
        .unwrap()
        .is_empty());
    let r = delete(&api, &format!("/v1/documents/{id}?purge=true")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.json()["deleted_objects"].as_u64().unwrap() >= 4,
        "3 pages + source: {}",
        r.text()
    );
    assert!(stack
        .store
        .list(&keys.pages_prefix())
        .await
        .unwrap()
        .is_empty());
    assert!(!stack.store.exists(&keys.source()).await.unwrap());
    let status = api.status(&id).await.expect("status");
    assert_eq!(
        (status["status"].as_str(), status["purged"].as_bool()),
        (Some("cancelled"), Some(true))
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        receiver.hooks.lock().unwrap().len(),
        1,
        "purging does not end it again"
    );

    // Bad requests.
    let r = delete(&api, "/v1/documents/no-such-document").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    let r = delete(&api, &format!("/v1/documents/{id}?purge=maybe")).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_query"));
    let auth = format!("Bearer {}", api.key);
    let r = request(
        &api.addr,
        "GET",
        &format!("/v1/documents/{id}/events"),
        &[("Authorization", &auth), ("Last-Event-ID", "abc")],
        b"",
        Framing::Length,
    )
    .await
    .expect("GET");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "bad_last_event_id")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_deletes_documents_past_the_retention() {
    let Some(stack) = Stack::new("gc").await else {
        return;
    };
    let manifest = |id: &str, created_at: &str| {
        serde_json::json!({
            "schema_version": "1.0", "tenant": stack.tenant, "document_id": id,
            "media_type": "application/pdf", "sha256": "00", "size_bytes": 1, "pages": [1],
            "source_page_count": 1, "options": {"engine": "ocr", "dpi": 200},
            "created_at": created_at,
        })
        .to_string()
    };
    let put = |key: String, body: String| {
        let store = stack.store.clone();
        async move {
            store
                .put(&key, body.into(), "application/json")
                .await
                .expect("put")
        }
    };
    let old = stack.keys("old-doc");
    let recent = stack.keys("recent-doc");
    put(old.manifest(), manifest("old-doc", "2020-01-01T00:00:00Z")).await;
    put(old.page_result(1), "{}".into()).await;
    put(old.event(1), "{}".into()).await;
    put(recent.manifest(), manifest("recent-doc", &utc_now())).await;
    put(recent.page_result(1), "{}".into()).await;

    let gc = |extra: &[&str]| {
        let mut args = vec!["gc", "--tenant", &stack.tenant];
        args.extend_from_slice(extra);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_folio"))
            .args(&args)
            .envs(stack.env.iter())
            .env("FOLIO_RETENTION_DAYS", "30")
            .output()
            .expect("folio gc runs");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "folio gc {extra:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let dry = gc(&["--dry-run"]);
    assert!(
        dry.contains("would delete") && dry.contains("old-doc"),
        "{dry}"
    );
    assert!(!dry.contains("recent-doc"), "{dry}");
    assert_eq!(
        stack.store.list(&old.prefix()).await.unwrap().len(),
        3,
        "dry run deletes nothing"
    );

    let run = gc(&[]);
    assert!(run.contains("3 objects deleted"), "{run}");
    assert!(stack.store.list(&old.prefix()).await.unwrap().is_empty());
    assert_eq!(stack.store.list(&recent.prefix()).await.unwrap().len(), 2);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_folio"))
        .args(["gc", "--days", "0"])
        .envs(stack.env.iter())
        .output()
        .expect("folio gc runs");
    assert_eq!(out.status.code(), Some(2), "--days 0 is a usage error");
}
