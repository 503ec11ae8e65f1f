//! `ServeConfig`: every setting of the upload API, validated once. The binary fills it from its
//! flags; nothing here reads the environment. API keys never appear in `Debug` output.

use crate::http::links::LinkSigner;
use folio_schemas::EngineKind;
use folio_transport::valid_tenant;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default body limit: 100 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 100 * 1024 * 1024;
/// Longest lifetime of a viewer link: one day.
pub const MAX_VIEW_LINK_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default size above which an upload is spooled to a temporary file: 8 MiB.
pub const DEFAULT_MEMORY_THRESHOLD: usize = 8 * 1024 * 1024;

/// Settings of `folio serve`. Build with [`ServeConfig::new`] and adjust fields; [`crate::http::AppState::new`]
/// calls [`ServeConfig::validate`].
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on; port 0 picks a free one (see [`crate::http::Server::local_addr`]).
    pub listen: SocketAddr,
    /// Bearer keys and the tenant each one maps to.
    pub api_keys: ApiKeys,
    /// Largest accepted upload (the file itself); larger ones get 413.
    pub max_body_bytes: u64,
    /// Documents with more pages are refused with 422 `too_many_pages`.
    pub max_pages_per_document: u32,
    /// Documents of one tenant being received, stored or enqueued at once; one more gets 429.
    pub max_in_flight_per_tenant: usize,
    /// Documents rasterized at once (each rasterization holds one blocking thread).
    pub max_concurrent_rasterizations: usize,
    /// Documents accepted (stored, answered 202) whose pages are not all enqueued yet, over all
    /// tenants. An upload past it waits up to [`ServeConfig::admission_wait`] before its body is
    /// read, then gets 503 `overloaded`: the API's memory stays bounded however fast clients send.
    pub max_pending_documents: usize,
    /// How long an upload may wait for a pending-document slot.
    pub admission_wait: Duration,
    /// Whole-request deadline (uploads included); past it the client gets 408.
    pub request_timeout: Duration,
    /// PDF rendering DPI when the request does not ask for one.
    pub default_dpi: u32,
    /// Uploads up to this size are kept in memory while they arrive; larger ones go to a
    /// temporary file first.
    pub memory_threshold: usize,
    /// Where spooled uploads go; the system temporary folder when `None`.
    pub spool_dir: Option<PathBuf>,
    /// Engines that have workers; a request for another engine gets 400.
    pub engines: Vec<EngineKind>,
    /// Attempts to rasterize and enqueue a document when the store or broker fails transiently.
    pub enqueue_attempts: u32,
    /// Wait before the second attempt; doubled for each further one up to `enqueue_backoff_max`.
    pub enqueue_backoff: Duration,
    /// Longest wait between two attempts.
    pub enqueue_backoff_max: Duration,
    /// On shutdown, how long background enqueueing may continue after the listener closes.
    pub shutdown_grace: Duration,
    /// Signs viewer links (`GET /v1/documents/{id}/view-link`). Give every instance behind one
    /// address the same secret; the default is a random one, so links work on this process only.
    pub view_links: LinkSigner,
    /// Lifetime of a viewer link when the request does not ask for one, and of the page-image
    /// links inside a viewer opened with a bearer key.
    pub view_link_ttl: Duration,
    /// Whether `/metrics` may carry tenant names (a `tenant` label); off by default, since
    /// tenant names are customer names and metrics travel to places logs do not.
    pub metrics_tenant_labels: bool,
    /// Completion webhooks: per-tenant secrets, allowed networks, delivery timings.
    pub callbacks: crate::callbacks::CallbackConfig,
}

impl ServeConfig {
    /// Defaults for everything but the address and the keys.
    pub fn new(listen: SocketAddr, api_keys: ApiKeys) -> Self {
        ServeConfig {
            listen,
            api_keys,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_pages_per_document: 2000,
            max_in_flight_per_tenant: 8,
            max_concurrent_rasterizations: 2,
            max_pending_documents: 32,
            admission_wait: Duration::from_secs(30),
            request_timeout: Duration::from_secs(300),
            default_dpi: folio_ingest::DEFAULT_DPI,
            memory_threshold: DEFAULT_MEMORY_THRESHOLD,
            spool_dir: None,
            engines: vec![EngineKind::Ocr, EngineKind::Glm45v],
            // 1 + 2 + 4 + 8 + 16 + 30 × 7 s ≈ 4 minutes: a broker restart or failover fits.
            enqueue_attempts: 12,
            enqueue_backoff: Duration::from_secs(1),
            enqueue_backoff_max: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            view_links: LinkSigner::random(),
            view_link_ttl: Duration::from_secs(15 * 60),
            metrics_tenant_labels: false,
            callbacks: crate::callbacks::CallbackConfig::default(),
        }
    }

    /// Check every setting; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_body_bytes", self.max_body_bytes == 0),
            ("max_pages_per_document", self.max_pages_per_document == 0),
            (
                "max_in_flight_per_tenant",
                self.max_in_flight_per_tenant == 0,
            ),
            (
                "max_concurrent_rasterizations",
                self.max_concurrent_rasterizations == 0,
            ),
            ("max_pending_documents", self.max_pending_documents == 0),
            ("request_timeout", self.request_timeout.is_zero()),
            ("enqueue_attempts", self.enqueue_attempts == 0),
            ("view_link_ttl", self.view_link_ttl.is_zero()),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, zero)| *zero) {
            return Err(ConfigError::Zero(name));
        }
        if !(crate::http::options::DPI_RANGE).contains(&self.default_dpi) {
            return Err(ConfigError::Dpi(self.default_dpi));
        }
        if self.api_keys.is_empty() {
            return Err(ConfigError::NoKeys);
        }
        if self.engines.is_empty() {
            return Err(ConfigError::NoEngines);
        }
        if self.view_link_ttl > MAX_VIEW_LINK_TTL {
            return Err(ConfigError::ViewLinkTtl(self.view_link_ttl.as_secs()));
        }
        self.callbacks.validate()?;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error("default DPI {0} is outside 36..=1200")]
    Dpi(u32),
    #[error("no API keys: give at least one `KEY=TENANT`")]
    NoKeys,
    #[error("no engines enabled")]
    NoEngines,
    #[error("tenant name {0:?} must be 1-64 characters of a-z, A-Z, 0-9, '-' or '_'")]
    BadTenant(String),
    #[error("an API key must be at least {MIN_KEY_LEN} characters")]
    ShortKey,
    #[error("the same API key is given twice")]
    DuplicateKey,
    #[error("{0:?} is not `KEY=TENANT`")]
    BadKeySpec(String),
    #[error("a viewer link lifetime of {0} s is longer than the most allowed ({max} s)", max = MAX_VIEW_LINK_TTL.as_secs())]
    ViewLinkTtl(u64),
    #[error(
        "the view secret must be at least {} bytes",
        crate::http::links::MIN_SECRET_LEN
    )]
    ShortViewSecret,
    #[error(transparent)]
    Callbacks(#[from] crate::callbacks::CallbackConfigError),
}

/// Shortest accepted API key.
pub const MIN_KEY_LEN: usize = 16;

/// API keys mapped to tenants. Keys are kept only as SHA-256 digests: lookups compare digests,
/// so timing reveals nothing about a key, and `Debug` shows tenants only.
#[derive(Clone, Default)]
pub struct ApiKeys {
    by_digest: BTreeMap<[u8; 32], String>,
}

impl ApiKeys {
    pub fn new() -> Self {
        ApiKeys::default()
    }

    /// Add `key` for `tenant`. Tenants become key prefixes in the store, so their names are
    /// restricted to `[A-Za-z0-9_-]{1,64}`.
    pub fn insert(&mut self, key: &str, tenant: &str) -> Result<(), ConfigError> {
        if !valid_tenant(tenant) {
            return Err(ConfigError::BadTenant(tenant.to_string()));
        }
        if key.len() < MIN_KEY_LEN {
            return Err(ConfigError::ShortKey);
        }
        if self
            .by_digest
            .insert(digest(key), tenant.to_string())
            .is_some()
        {
            return Err(ConfigError::DuplicateKey);
        }
        Ok(())
    }

    /// Parse `KEY=TENANT` (the form the binary's flag takes) and add it.
    pub fn insert_spec(&mut self, spec: &str) -> Result<(), ConfigError> {
        // The key is never echoed back in the error.
        let (key, tenant) = spec
            .rsplit_once('=')
            .ok_or_else(|| ConfigError::BadKeySpec("<redacted>".into()))?;
        self.insert(key, tenant)
    }

    /// The tenant of `key`, if it is one of ours.
    pub fn tenant(&self, key: &str) -> Option<&str> {
        self.by_digest.get(&digest(key)).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_digest.len()
    }
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut tenants: Vec<&str> = self.by_digest.values().map(String::as_str).collect();
        tenants.sort_unstable();
        tenants.dedup();
        f.debug_struct("ApiKeys")
            .field("keys", &format_args!("<{} redacted>", self.by_digest.len()))
            .field("tenants", &tenants)
            .finish()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "k-0123456789abcdef-secret";

    #[test]
    fn debug_redacts_keys() {
        let mut keys = ApiKeys::new();
        keys.insert(KEY, "acme").unwrap();
        keys.insert_spec("another-very-secret-key=beta").unwrap();
        let cfg = ServeConfig::new("127.0.0.1:0".parse().unwrap(), keys);
        let shown = format!("{cfg:?} {cfg:#?}");
        assert!(!shown.contains(KEY) && !shown.contains("another-very-secret-key"));
        assert!(shown.contains("acme") && shown.contains("beta") && shown.contains("2 redacted"));
    }

    #[test]
    fn keys_map_to_tenants() {
        let mut keys = ApiKeys::new();
        keys.insert(KEY, "acme").unwrap();
        assert_eq!(keys.tenant(KEY), Some("acme"));
        assert_eq!(keys.tenant("k-0123456789abcdef-secreT"), None);
        assert_eq!(keys.insert(KEY, "other"), Err(ConfigError::DuplicateKey));
        assert_eq!(keys.insert("short", "acme"), Err(ConfigError::ShortKey));
        assert!(matches!(
            keys.insert("long-enough-key-000", "../etc"),
            Err(ConfigError::BadTenant(_))
        ));
        let err = keys.insert_spec("no-separator-secret-key").unwrap_err();
        assert!(!err.to_string().contains("no-separator"));
    }

    #[test]
    fn validation_names_the_setting() {
        let mut keys = ApiKeys::new();
        keys.insert(KEY, "acme").unwrap();
        let mut cfg = ServeConfig::new("127.0.0.1:0".parse().unwrap(), keys);
        assert_eq!(cfg.validate(), Ok(()));
        cfg.max_in_flight_per_tenant = 0;
        assert_eq!(
            cfg.validate(),
            Err(ConfigError::Zero("max_in_flight_per_tenant"))
        );
        cfg.max_in_flight_per_tenant = 1;
        cfg.default_dpi = 5000;
        assert_eq!(cfg.validate(), Err(ConfigError::Dpi(5000)));
        let empty = ServeConfig::new("127.0.0.1:0".parse().unwrap(), ApiKeys::new());
        assert_eq!(empty.validate(), Err(ConfigError::NoKeys));
    }
}
