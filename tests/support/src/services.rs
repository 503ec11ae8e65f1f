//! The test servers: `FOLIO_*` settings from the process environment, over the env file that
//! `scripts/services/start` writes (`$FOLIO_SERVICES_DIR/env`, default `/tmp/folio-services/env`;
//! shell syntax, read with `dotenvy`, so `export` and quoted values mean what the shell makes of
//! them).
//!
//! Without the servers a test fails when `FOLIO_INTEGRATION=1` (as `scripts/test` sets it) and is
//! skipped with a note otherwise, so a plain `cargo test` on a machine without them stays usable.

#[cfg(feature = "transport")]
use folio_transport::{AmqpConfig, S3Config};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

/// `FOLIO_*` settings keyed by name.
pub type Settings = HashMap<String, String>;

const S3_KEYS: [&str; 4] = [
    "FOLIO_S3_ENDPOINT",
    "FOLIO_S3_BUCKET",
    "FOLIO_S3_ACCESS_KEY",
    "FOLIO_S3_SECRET_KEY",
];

/// The settings: the env file first, the process environment's `FOLIO_*` variables over it.
/// An env file that exists but does not parse fails the test.
pub fn settings() -> Settings {
    let dir = std::env::var("FOLIO_SERVICES_DIR").unwrap_or_else(|_| "/tmp/folio-services".into());
    let path = std::path::Path::new(&dir).join("env");
    let mut map = if path.is_file() {
        read_env_file(&path)
    } else {
        Settings::new()
    };
    map.extend(std::env::vars().filter(|(k, _)| k.starts_with("FOLIO_")));
    map
}

/// The variables an env file sets, as `set -a; . FILE` would (comments, `export`, quotes).
pub fn read_env_file(path: &std::path::Path) -> Settings {
    let fail = |e: dotenvy::Error| -> ! { panic!("{}: {e}", path.display()) };
    dotenvy::from_path_iter(path)
        .unwrap_or_else(|e| fail(e))
        .map(|item| item.unwrap_or_else(|e| fail(e)))
        .collect()
}

/// `None` with a note when `what` is not configured, or a panic under `FOLIO_INTEGRATION=1`.
pub fn not_configured<T>(what: &str) -> Option<T> {
    let message = format!(
        "{what} is not configured: run `scripts/services/start` (it writes $FOLIO_SERVICES_DIR/env) or scripts/test"
    );
    if std::env::var("FOLIO_INTEGRATION").as_deref() == Ok("1") {
        panic!("{message}");
    }
    eprintln!("SKIPPED (FOLIO_INTEGRATION is not 1): {message}");
    None
}

/// The settings when both servers are configured (see [`not_configured`] otherwise).
pub fn services() -> Option<Settings> {
    let s = settings();
    if s.contains_key("FOLIO_AMQP_URL") && S3_KEYS.iter().all(|k| s.contains_key(*k)) {
        Some(s)
    } else {
        not_configured("RabbitMQ/S3 (FOLIO_AMQP_URL, FOLIO_S3_*)")
    }
}

/// A name fragment unique to this call within the test run (topology prefixes, tenants, keys).
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("t{}-{n}-{:x}-{tag}", std::process::id(), nanos & 0xfffff)
}

/// A loopback port with nothing listening on it (now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The page-job queue settings of `s` under the topology `prefix`.
#[cfg(feature = "transport")]
pub fn amqp_config(s: &Settings, prefix: &str) -> AmqpConfig {
    let mut cfg = AmqpConfig::new(s["FOLIO_AMQP_URL"].clone());
    cfg.topology_prefix = prefix.to_string();
    cfg
}

/// S3 settings of `s` for `bucket` (created when missing).
#[cfg(feature = "transport")]
pub fn s3_config(s: &Settings, bucket: &str) -> S3Config {
    let mut cfg = S3Config::new(
        Some(s["FOLIO_S3_ENDPOINT"].clone()),
        bucket,
        s["FOLIO_S3_ACCESS_KEY"].clone(),
        s["FOLIO_S3_SECRET_KEY"].clone(),
    );
    if let Some(region) = s.get("FOLIO_S3_REGION") {
        cfg.region = region.clone();
    }
    cfg.create_bucket = true;
    cfg
}

/// An AMQP config with a topology prefix of its own, or `None` (skipped).
#[cfg(feature = "transport")]
pub fn amqp(tag: &str) -> Option<AmqpConfig> {
    let s = settings();
    if !s.contains_key("FOLIO_AMQP_URL") {
        return not_configured("FOLIO_AMQP_URL");
    }
    Some(amqp_config(&s, &unique(tag)))
}

/// An S3 config for the services' bucket, or `None` (skipped).
#[cfg(feature = "transport")]
pub fn s3() -> Option<S3Config> {
    let s = settings();
    if !S3_KEYS.iter().all(|k| s.contains_key(*k)) {
        return not_configured("FOLIO_S3_ENDPOINT / _BUCKET / _ACCESS_KEY / _SECRET_KEY");
    }
    Some(s3_config(&s, &s["FOLIO_S3_BUCKET"]))
}

/// The commands that stop and start `server` (`RABBIT` or `S3`: `FOLIO_{server}_STOP` /
/// `_START`), when the services script wrote them.
pub fn restart_commands(s: &Settings, server: &str) -> Option<(String, String)> {
    let stop = s.get(&format!("FOLIO_{server}_STOP"))?;
    let start = s.get(&format!("FOLIO_{server}_START"))?;
    Some((stop.clone(), start.clone()))
}

/// Run `work` on a fresh current-thread runtime on a thread of its own, and wait for it: for
/// cleanups in `Drop`, where the test's own runtime may be shutting down. `None` when no runtime
/// could be built or the thread panicked.
pub fn block_on_own_thread<F>(work: F) -> Option<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        Some(rt.block_on(work))
    })
    .join()
    .ok()
    .flatten()
}

/// Delete the page-job exchanges and queues of `cfg`'s topology prefix (best effort).
#[cfg(feature = "transport")]
pub async fn delete_topology(cfg: AmqpConfig) {
    if let Ok(q) = folio_transport::AmqpQueue::connect(cfg).await {
        let _ = q.delete_topology().await;
        q.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_quoting_is_the_shell_s() {
        let dir = std::env::temp_dir().join(unique("envfile"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("env");
        std::fs::write(
            &path,
            "# comment\n\nFOLIO_A=plain\nexport FOLIO_B='single quoted'\nFOLIO_C=\"double # not a comment\"\nFOLIO_D=amqp://u:p@127.0.0.1:5672/%2f\n",
        )
        .unwrap();
        let parsed = read_env_file(&path);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(parsed["FOLIO_A"], "plain");
        assert_eq!(parsed["FOLIO_B"], "single quoted");
        assert_eq!(parsed["FOLIO_C"], "double # not a comment");
        assert_eq!(parsed["FOLIO_D"], "amqp://u:p@127.0.0.1:5672/%2f");
        assert_eq!(parsed.len(), 4);
    }
}
