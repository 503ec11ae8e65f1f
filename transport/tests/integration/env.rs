//! Where the test servers are: `FOLIO_AMQP_URL` / `FOLIO_S3_*` from the environment, else the env
//! file that `scripts/services/start` writes (`$FOLIO_SERVICES_DIR/env`, default
//! `/tmp/folio-services/env`).
//!
//! With neither, a test fails when `FOLIO_INTEGRATION=1` (as `scripts/test` sets it) and is skipped
//! with a note otherwise, so a plain `cargo test` on a machine without the servers stays usable.

use folio_transport::{AmqpConfig, S3Config};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

/// The settings, from the process environment first and the env file second.
pub fn settings() -> HashMap<String, String> {
    let dir = std::env::var("FOLIO_SERVICES_DIR").unwrap_or_else(|_| "/tmp/folio-services".into());
    let mut map = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(format!("{dir}/env")) {
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            if let Some((k, v)) = line.split_once('=') {
                map.insert(k.to_string(), v.trim_matches('\'').to_string());
            }
        }
    }
    for (k, v) in std::env::vars() {
        if k.starts_with("FOLIO_") {
            map.insert(k, v);
        }
    }
    map
}

fn missing<T>(what: &str) -> Option<T> {
    let message = format!(
        "{what} is not configured: run `scripts/services/start` (it writes $FOLIO_SERVICES_DIR/env) or set it in the environment"
    );
    if std::env::var("FOLIO_INTEGRATION").as_deref() == Ok("1") {
        panic!("{message}");
    }
    eprintln!("SKIPPED (FOLIO_INTEGRATION is not 1): {message}");
    None
}

/// A unique name fragment per call within this test run.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("t{}-{n}-{:x}-{tag}", std::process::id(), nanos & 0xfffff)
}

/// An AMQP config with a topology prefix of its own, or `None` (skipped).
pub fn amqp(tag: &str) -> Option<AmqpConfig> {
    let Some(url) = settings().get("FOLIO_AMQP_URL").cloned() else {
        return missing("FOLIO_AMQP_URL");
    };
    let mut cfg = AmqpConfig::new(url);
    cfg.topology_prefix = unique(tag);
    Some(cfg)
}

/// An S3 config for the services' bucket, or `None` (skipped).
pub fn s3() -> Option<S3Config> {
    let s = settings();
    let get = |k: &str| s.get(k).cloned();
    let (Some(endpoint), Some(bucket), Some(access), Some(secret)) = (
        get("FOLIO_S3_ENDPOINT"),
        get("FOLIO_S3_BUCKET"),
        get("FOLIO_S3_ACCESS_KEY"),
        get("FOLIO_S3_SECRET_KEY"),
    ) else {
        return missing("FOLIO_S3_ENDPOINT / _BUCKET / _ACCESS_KEY / _SECRET_KEY");
    };
    let mut cfg = S3Config::new(Some(endpoint), bucket, access, secret);
    if let Some(region) = get("FOLIO_S3_REGION") {
        cfg.region = region;
    }
    cfg.create_bucket = true;
    Some(cfg)
}

/// The commands that stop and start a server the tests may restart, when the env names them.
pub fn restart_commands(stop: &str, start: &str) -> Option<(String, String)> {
    let s = settings();
    Some((s.get(stop)?.clone(), s.get(start)?.clone()))
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}
