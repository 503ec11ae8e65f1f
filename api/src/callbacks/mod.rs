//! Completion webhooks: an upload (or a trigger rule) names a `callback_url`; when the document
//! ends — `complete`, `partial`, `failed` or `cancelled` — Folio POSTs a small JSON
//! ([`folio_schemas::CallbackPayload`]) there, signed with the tenant's secret
//! ([`sign`]: header `Folio-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`),
//! retried with exponential backoff for up to an hour, every attempt recorded under the
//! document's prefix (`callbacks/r{round}-a{n}.json`).
//!
//! # Who delivers, and why it survives a restart
//!
//! Delivery is split in two, with the object store between them:
//!
//! 1. **Whoever ends the document queues a notice.** The worker that records the last page (or
//!    the API, for pages never enqueued, or for a cancel) calls `folio_results::end_document`
//!    after `document.json` is written, which writes the notice to the outbox
//!    (`.folio/callbacks/pending/…`) before the page's message is acked. A worker that dies
//!    before that has its message redelivered, and the redelivery ends the document again.
//! 2. **An API-side task delivers.** [`Dispatcher`], run by every `folio serve`, reads the
//!    outbox, claims each attempt with a conditional write and records it. A notice stays in the
//!    outbox until it is delivered, refused or given up, so a restarted (or another) replica
//!    carries on where a stopped one left off.
//!
//! Not the worker itself: workers are sized for engines (GPU, scaled to zero by KEDA), a
//! receiver that is down for an hour would hold one for that hour, and the signing secrets
//! and the outbound network policy stay with the API. Not a task of the API that accepted the
//! upload: the document may end after that process is gone.
//!
//! # Which targets
//!
//! [`target`]: `http`/`https` only; the host is resolved and every address checked — loopback,
//! private, link-local and other non-public addresses are refused unless `FOLIO_CALLBACK_ALLOW`
//! lists their network. Checked at upload (400) and again before each attempt, and the
//! connection goes to the addresses just checked, so DNS rebinding cannot redirect it.

pub mod config;
pub mod deliver;
pub mod dispatcher;
pub mod metrics;
pub mod sign;
pub mod target;

pub use config::{CallbackConfig, CallbackConfigError};
pub use dispatcher::{Dispatcher, Step};
pub use target::{Target, TargetError};

use folio_results::to_bytes;
use folio_schemas::{CallbackRegistration, DocKeys, SCHEMA_VERSION};
use folio_transport::{ObjectStore, TransportError};

/// Why a callback cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error(
        "callbacks are not enabled for tenant {0:?} (no signing secret in FOLIO_CALLBACK_SECRETS)"
    )]
    NoSecret(String),
    #[error(transparent)]
    Target(#[from] TargetError),
}

impl RegisterError {
    /// The API's error code.
    pub fn code(&self) -> &'static str {
        match self {
            RegisterError::NoSecret(_) => "callback_unavailable",
            RegisterError::Target(TargetError::Forbidden { .. }) => "callback_forbidden",
            RegisterError::Target(TargetError::Unresolved { .. }) => "callback_unresolvable",
            RegisterError::Target(_) => "bad_callback_url",
        }
    }
}

/// Check that `tenant` may have its documents call `url`: a secret is configured, the URL is
/// well formed, and its host resolves to allowed addresses only.
pub async fn check(config: &CallbackConfig, tenant: &str, url: &str) -> Result<(), RegisterError> {
    if config.secret(tenant).is_none() {
        return Err(RegisterError::NoSecret(tenant.into()));
    }
    Target::parse(url)?.resolve(&config.allow).await?;
    Ok(())
}

/// Record that the document calls `url` when it ends (`callback.json`); written before any of
/// its pages is enqueued.
pub async fn register(
    store: &dyn ObjectStore,
    tenant: &str,
    document_id: &str,
    url: &str,
) -> Result<(), TransportError> {
    let reg = CallbackRegistration {
        schema_version: SCHEMA_VERSION.into(),
        url: url.into(),
    };
    let key = DocKeys::new(tenant, document_id).callback();
    store.put(&key, to_bytes(&reg), "application/json").await
}
