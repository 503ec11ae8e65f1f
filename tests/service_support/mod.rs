//! Harness of the service fault tests (`tests/service_faults.rs`): the real `folio serve` and
//! `folio work` binaries against the RabbitMQ and SeaweedFS of `scripts/services/start`.
//!
//! Each test gets a [`Stack`]: its own tenants (so its own key prefix in the bucket) and its own
//! AMQP topology prefix, both removed when it is dropped. Tests run one at a time (a [`Stack`]
//! holds a lock): they stop and restart the servers, which must not hit a neighbour mid-run.
//! The checks every fault test ends with are here too: every page exactly once, schema-valid.

#![allow(dead_code)]

pub mod http;

pub use crate::triggers_support::wait_for;
use crate::triggers_support::{free_port, metric, s3_config, services, spawn_folio, unique, Proc};
use folio_schemas::{DocKeys, EngineKind};
use folio_test_support::assert_valid;
use folio_test_support::services::{block_on_own_thread, delete_topology};
use folio_transport::{AmqpConfig, AmqpQueue, ObjectStore, S3Store};
use http::{request, Framing, Resp};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A three-page scanned PDF (typed catalogue pages; small at 50 dpi).
pub const PDF_3P: &str = "multipage_pdf/tapus_catalogue_1962_3p.pdf";
/// Low resolution keeps OCR at a few seconds a page on two cores.
pub const DPI: &str = "dpi=50";
/// The queues' `x-delivery-limit`, the same for the binaries and the test's own connection.
pub const DELIVERY_LIMIT: u32 = 5;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One test's view of the servers.
pub struct Stack {
    /// `FOLIO_*` settings for the binaries (servers, bucket, keys).
    pub env: HashMap<String, String>,
    pub tenant: String,
    /// API key of `tenant`.
    pub key: String,
    /// A second tenant and its API key.
    pub other_tenant: String,
    pub other_key: String,
    /// AMQP topology prefix of this test.
    pub prefix: String,
    /// Logs of the processes.
    pub dir: tempfile::TempDir,
    /// The bucket the binaries use.
    pub store: Arc<dyn ObjectStore>,
    /// This test's page-job topology (depths, dead letters).
    pub queue: AmqpQueue,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Stack {
    /// `None` (test skipped with a note) when the servers are not configured; a failure under
    /// `FOLIO_INTEGRATION=1`.
    pub async fn new(tag: &str) -> Option<Stack> {
        let mut env = services()?;
        let serial = SERIAL.lock().await;
        let prefix = format!("ft-{}", unique(tag));
        let tenant = format!("acme-{}", unique(tag));
        let other = format!("beta-{}", unique(tag));
        let key = format!("key-{tenant}-0123456789");
        let other_key = format!("key-{other}-0123456789");
        env.insert(
            "FOLIO_API_KEYS".into(),
            format!("{key}={tenant},{other_key}={other}"),
        );
        env.insert("FOLIO_DELIVERY_LIMIT".into(), DELIVERY_LIMIT.to_string());
        let bucket = env["FOLIO_S3_BUCKET"].clone();
        let store: Arc<dyn ObjectStore> = Arc::new(
            S3Store::connect(s3_config(&env, &bucket))
                .await
                .expect("S3 (is SeaweedFS running?)"),
        );
        let queue = AmqpQueue::connect(amqp_config(&env, &prefix))
            .await
            .expect("RabbitMQ (is it running?)");
        Some(Stack {
            env,
            tenant,
            key,
            other_tenant: other,
            other_key,
            prefix,
            dir: tempfile::tempdir().expect("temp dir"),
            store,
            queue,
            _serial: serial,
        })
    }

    /// `folio serve` on a free port, with `extra` settings.
    pub fn serve(&self, extra: &[(&str, &str)]) -> Api {
        let mut env = self.env.clone();
        env.insert("FOLIO_LISTEN".into(), "127.0.0.1:0".into());
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        let (proc, addr) = spawn_folio(
            &["serve", "--amqp-prefix", &self.prefix],
            &env,
            self.dir.path(),
            "serve",
            Some("folio serve: listening on http://"),
        );
        Api {
            proc,
            addr,
            key: self.key.clone(),
        }
    }

    /// `folio work --engine ocr`, returned once its engine is loaded and it consumes
    /// (`/readyz` on its metrics port answers 200).
    pub async fn worker(&self, name: &str) -> Work {
        let mut env = self.env.clone();
        let addr = format!("127.0.0.1:{}", free_port());
        env.insert("FOLIO_METRICS_LISTEN".into(), addr.clone());
        let (mut proc, _) = spawn_folio(
            &["work", "--engine", "ocr", "--amqp-prefix", &self.prefix],
            &env,
            self.dir.path(),
            name,
            None,
        );
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(status) = proc.child.try_wait().expect("wait") {
                panic!("folio work ({name}) exited with {status}:\n{}", proc.log());
            }
            let ready = request(&addr, "GET", "/readyz", &[], b"", Framing::Length).await;
            if ready.is_ok_and(|r| r.status == 200) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "folio work ({name}) not ready after 180 s:\n{}",
                proc.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Work { proc, addr }
    }

    /// Page jobs ready on this test's queue.
    pub async fn depth(&self) -> u32 {
        self.queue
            .queue_depth(EngineKind::Ocr)
            .await
            .expect("queue depth")
    }

    pub async fn dead_letters(&self) -> u32 {
        self.queue
            .dead_letter_depth(EngineKind::Ocr)
            .await
            .expect("dead-letter depth")
    }

    pub fn keys(&self, id: &str) -> DocKeys {
        DocKeys::new(&self.tenant, id)
    }

    /// The commands that stop and start a server (`FOLIO_RABBIT_STOP`/`_START`,
    /// `FOLIO_S3_STOP`/`_START`), when the services script wrote them.
    pub fn restart_commands(&self, server: &str) -> Option<(String, String)> {
        folio_test_support::services::restart_commands(&self.env, server)
    }

    /// Every page of `pages` exactly once: a result, or an error record for those in `failed`,
    /// in `document.json` (fetched through the API, schema-valid, `complete` or `partial`) and
    /// in the store's `results/` listing. Returns the document.
    pub async fn assert_every_page_once(
        &self,
        api: &Api,
        id: &str,
        pages: &[u32],
        failed: &[u32],
    ) -> Value {
        let r = api
            .get(&format!("/v1/documents/{id}/result?format=json"))
            .await;
        assert_eq!(r.status, 200, "result of {id}: {}", r.text());
        let doc = r.json();
        assert_valid("document_result.schema.json", &doc);
        let want_status = if failed.is_empty() {
            "complete"
        } else {
            "partial"
        };
        assert_eq!(doc["status"], want_status, "{doc}");
        let done: Vec<u32> = pages
            .iter()
            .copied()
            .filter(|p| !failed.contains(p))
            .collect();
        let numbers = |field: &str| -> Vec<u32> {
            doc[field]
                .as_array()
                .unwrap_or_else(|| panic!("document.{field} is not an array"))
                .iter()
                .map(|p| p["page"].as_u64().expect("page number") as u32)
                .collect()
        };
        assert_eq!(numbers("pages"), done, "page results, once each, in order");
        assert_eq!(numbers("errors"), failed, "page errors, once each");
        for page in doc["pages"].as_array().into_iter().flatten() {
            assert_valid("page_result.schema.json", page);
        }
        for error in doc["errors"].as_array().into_iter().flatten() {
            assert_valid("page_error.schema.json", error);
        }
        let keys = self.keys(id);
        let listed: BTreeSet<String> = self
            .store
            .list(&format!("{}/docs/{id}/results/", self.tenant))
            .await
            .expect("list results")
            .into_iter()
            .collect();
        let expected: BTreeSet<String> = done
            .iter()
            .map(|&p| keys.page_result(p))
            .chain(failed.iter().map(|&p| keys.page_error(p)))
            .collect();
        assert_eq!(listed, expected, "one stored record per page");
        doc
    }
}

impl Drop for Stack {
    /// Delete the test's topology and objects (fresh connections on a thread of their own: the
    /// test's runtime may be shutting down).
    fn drop(&mut self) {
        let cfg = amqp_config(&self.env, &self.prefix);
        let s3 = s3_config(&self.env, &self.env["FOLIO_S3_BUCKET"]);
        let prefixes = [
            format!("{}/", self.tenant),
            format!("{}/", self.other_tenant),
        ];
        block_on_own_thread(async move {
            delete_topology(cfg).await;
            let store = S3Store::connect(s3).await.ok()?;
            for prefix in prefixes {
                for key in store.list(&prefix).await.unwrap_or_default() {
                    let _ = store.delete(&key).await;
                }
            }
            Some(())
        });
    }
}

fn amqp_config(env: &HashMap<String, String>, prefix: &str) -> AmqpConfig {
    let mut cfg = folio_test_support::services::amqp_config(env, prefix);
    cfg.delivery_limit = DELIVERY_LIMIT;
    cfg.reconnect_max = Duration::from_secs(2);
    cfg
}

/// A running `folio serve` and the key of the stack's tenant.
pub struct Api {
    pub proc: Proc,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub key: String,
}

impl Api {
    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        self.proc.child.try_wait().expect("wait").is_none()
    }

    /// GET with the tenant's key.
    pub async fn get(&self, path: &str) -> Resp {
        self.get_as(Some(&self.key), path).await
    }

    /// GET with `key` (none: no `Authorization` header).
    pub async fn get_as(&self, key: Option<&str>, path: &str) -> Resp {
        let auth = key.map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        request(&self.addr, "GET", path, &headers, b"", Framing::Length)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.proc.log()))
    }

    /// `POST /v1/documents{query}` with `body` as the raw upload.
    pub async fn upload_as(
        &self,
        key: Option<&str>,
        body: &[u8],
        content_type: &str,
        query: &str,
        framing: Framing,
    ) -> Resp {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("Content-Type", content_type)];
        if let Some(a) = auth.as_deref() {
            headers.push(("Authorization", a));
        }
        let path = format!("/v1/documents{query}");
        request(&self.addr, "POST", &path, &headers, body, framing)
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", self.proc.log()))
    }

    /// Upload a PDF as the tenant; 202 required. Returns the document id.
    pub async fn upload_pdf(&self, body: &[u8], query: &str) -> String {
        let r = self
            .upload_as(
                Some(&self.key),
                body,
                "application/pdf",
                query,
                Framing::Length,
            )
            .await;
        assert_eq!(r.status, 202, "upload: {}", r.text());
        r.json()["document_id"]
            .as_str()
            .expect("document_id")
            .to_string()
    }

    /// The document's status; `None` while the API answers 503 (an outage). Any other
    /// failure, a 500 above all, fails the test.
    pub async fn status(&self, id: &str) -> Option<Value> {
        let r = self.get(&format!("/v1/documents/{id}")).await;
        match r.status {
            200 => Some(r.json()),
            503 => {
                assert_eq!(r.error_code(), "unavailable");
                None
            }
            s => panic!("status of {id}: HTTP {s}: {}", r.text()),
        }
    }

    /// Poll the status until `done(status)` holds; panics after `secs`.
    pub async fn wait_status(
        &self,
        id: &str,
        secs: u64,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = Value::Null;
        loop {
            if let Some(s) = self.status(id).await {
                if done(&s) {
                    return s;
                }
                last = s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {secs} s waiting for {what}; last status: {last}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Wait until the document is assembled (`complete` or `partial`).
    pub async fn wait_assembled(&self, id: &str, secs: u64) -> Value {
        self.wait_status(id, secs, "the document to be assembled", |s| {
            s["status"] != "processing"
        })
        .await
    }

    /// Pages with a result or an error record, per the status.
    pub async fn settled_pages(&self, id: &str) -> Option<u64> {
        let s = self.status(id).await?;
        Some(s["pages_done"].as_u64()? + s["pages_failed"].as_u64()?)
    }
}

/// A running `folio work` and its health/metrics address.
pub struct Work {
    pub proc: Proc,
    pub addr: String,
}

impl Work {
    /// A Prometheus sample of this worker (summed over the series that carry every `label`).
    pub async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let r = request(&self.addr, "GET", "/metrics", &[], b"", Framing::Length)
            .await
            .unwrap_or_else(|e| panic!("worker metrics: {e}\n{}", self.proc.log()));
        metric(&r.text(), name, labels)
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        self.proc.child.try_wait().expect("wait").is_none()
    }
}

/// Run a stop/start command of the services script (blocking, on a blocking thread).
pub async fn run_command(command: &str) {
    let command = command.to_string();
    tokio::task::spawn_blocking(move || {
        let status = std::process::Command::new(&command)
            .status()
            .unwrap_or_else(|e| panic!("running {command}: {e}"));
        assert!(status.success(), "{command} failed: {status}");
    })
    .await
    .expect("join");
}

/// Now as the workers write `finished_at`: RFC 3339 UTC with three fractional digits, which
/// sorts as text.
pub fn utc_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}
