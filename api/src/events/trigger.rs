//! [`Trigger`]: from an object event to a submitted document, through the same ingest path as an
//! upload ([`crate::submit::accept`] + [`crate::submit::enqueue_pages`]: same limits, same errors).
//!
//! Per event and matching tenant: skip stale versions (by `sequencer`), claim the version
//! ([`super::dedup`]), fetch the object from its bucket, check size and content type, accept and
//! enqueue. Objects Folio cannot take (unsupported, corrupt, too large, unreadable) get a
//! [`Rejection`] record and are acknowledged: an event never loops on a bad object. Transient
//! failures release the claim and are returned as errors, so the event is retried.

use super::dedup::{ClaimResult, Claims};
use super::metrics;
use super::model::{sequencer_cmp, Ignored, ObjectEvent};
use super::records::{now_rfc3339, MarkerState, ObjectVersion, Rejection, SourceIndex};
use super::rules::{Rule, RuleSet};
use super::sources::SourceBuckets;
use crate::submit::{accept, enqueue_pages, SubmitError, SubmitRequest};
use bytes::Bytes;
use folio_ingest::{sniff, Ingestor, PageRange};
use folio_transport::{JobQueue, ObjectStore, TransportError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Default largest object the triggers fetch: the upload API's default body limit (100 MiB).
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 100 * 1024 * 1024;
/// Default claim lease; holders renew every third of it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Settings of a [`Trigger`].
#[derive(Debug, Clone)]
pub struct TriggerConfig {
    /// Larger objects are rejected (`too_large`) without being fetched when the event says so.
    pub max_object_bytes: u64,
    /// Names this instance in dedup markers (host and process id by default).
    pub owner: String,
    pub lease: Duration,
    /// SeaweedFS's filer buckets folder.
    pub seaweedfs_buckets_dir: String,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            owner: format!(
                "pid-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ),
            lease: DEFAULT_LEASE,
            seaweedfs_buckets_dir: super::seaweedfs::DEFAULT_BUCKETS_DIR.into(),
        }
    }
}

/// What became of one event for one tenant (or for all, when ignored before rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Submitted {
        tenant: String,
        document_id: String,
        pages: u32,
    },
    Rejected {
        tenant: String,
        code: String,
        record_key: String,
    },
    Ignored(Ignored),
    /// This version was handled before (another event, instance or delivery).
    Duplicate {
        tenant: String,
        document_id: String,
    },
    /// Another holder is processing this version right now.
    InProgress {
        tenant: String,
    },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Submitted { .. } => "submitted",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Ignored(_) => "ignored",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::InProgress { .. } => "in_progress",
        }
    }
}

/// A failure that a later retry may not meet (store or broker unavailable...).
#[derive(Debug, thiserror::Error)]
#[error("{context}: {message}")]
pub struct TriggerError {
    pub context: &'static str,
    pub message: String,
}

impl TriggerError {
    fn new(context: &'static str, e: impl std::fmt::Display) -> Self {
        TriggerError {
            context,
            message: e.to_string(),
        }
    }
}

/// What processing a claimed version came to (settles the claim).
enum Processed {
    Submitted { document_id: String, pages: u32 },
    Rejected { code: String, message: String },
    Ignored(Ignored),
}

/// Turns object events into submitted documents. Share one per process.
#[derive(Debug)]
pub struct Trigger {
    store: Arc<dyn ObjectStore>,
    queue: Arc<dyn JobQueue>,
    ingestor: Ingestor,
    sources: Arc<dyn SourceBuckets>,
    rules: RuleSet,
    claims: Claims,
    config: TriggerConfig,
}

impl Trigger {
    /// `store` and `queue` are Folio's own (documents, page jobs); `sources` opens the watched
    /// buckets; `ingestor` carries the same limits as the upload API's.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        queue: Arc<dyn JobQueue>,
        ingestor: Ingestor,
        sources: Arc<dyn SourceBuckets>,
        rules: RuleSet,
        config: TriggerConfig,
    ) -> Self {
        let claims = Claims::new(store.clone(), config.owner.clone(), config.lease);
        Trigger {
            store,
            queue,
            ingestor,
            sources,
            rules,
            claims,
            config,
        }
    }

    pub fn config(&self) -> &TriggerConfig {
        &self.config
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Handle one object event: one result per matching tenant, or a single `Ignored`.
    pub async fn handle(&self, event: &ObjectEvent) -> Vec<Result<Outcome, TriggerError>> {
        if let Some(reason) = event.ignore_reason() {
            return vec![Ok(Outcome::Ignored(reason))];
        }
        let rules = self.rules.matching(event);
        if rules.is_empty() {
            return vec![Ok(Outcome::Ignored(Ignored::NoRule))];
        }
        let mut out = Vec::with_capacity(rules.len());
        for rule in rules {
            out.push(self.submit_object(rule, event).await);
        }
        out
    }

    /// Submit the object of `event` for `rule`'s tenant, once per version.
    pub async fn submit_object(
        &self,
        rule: &Rule,
        event: &ObjectEvent,
    ) -> Result<Outcome, TriggerError> {
        if let Some(ct) = event.content_type.as_deref().filter(|ct| !is_generic(ct)) {
            if !rule.accepts_content_type(ct) {
                return Ok(Outcome::Ignored(Ignored::ContentType));
            }
        }
        let version = ObjectVersion {
            tenant: rule.tenant.clone(),
            bucket: event.bucket.clone(),
            key: event.key.clone(),
            version: event.version().unwrap_or_else(|| {
                tracing::warn!(bucket = %event.bucket, key = %event.key, "event without ETag or version; deduplicating by key only");
                "unversioned".into()
            }),
        };
        if self.is_stale(&version, event.sequencer.as_deref()).await? {
            return Ok(Outcome::Ignored(Ignored::Stale));
        }
        let mut claim = match self
            .claims
            .claim(&version, event.sequencer.as_deref())
            .await
            .map_err(|e| TriggerError::new("claiming the object", e))?
        {
            ClaimResult::Won(claim) => claim,
            ClaimResult::InProgress(_) => {
                return Ok(Outcome::InProgress {
                    tenant: rule.tenant.clone(),
                })
            }
            ClaimResult::Settled(marker) => {
                return Ok(Outcome::Duplicate {
                    tenant: rule.tenant.clone(),
                    document_id: marker.document_id,
                })
            }
        };
        let work = self.process(rule, event, &version);
        tokio::pin!(work);
        let mut renew = tokio::time::interval(claim.renew_every());
        renew.tick().await;
        let processed = loop {
            tokio::select! {
                r = &mut work => break r,
                _ = renew.tick() => {
                    if let Err(e) = claim.renew().await {
                        tracing::warn!(error = %e, "renewing the claim failed");
                    }
                }
            }
        };
        let processed = match processed {
            Ok(p) => p,
            Err(e) => {
                if let Err(release) = claim.release().await {
                    tracing::warn!(error = %release, "releasing the claim failed; it expires with its lease");
                }
                return Err(e);
            }
        };
        let settle_err = |e: TransportError| TriggerError::new("recording the outcome", e);
        match processed {
            Processed::Submitted { document_id, pages } => {
                claim
                    .settle(MarkerState::Done, None)
                    .await
                    .map_err(settle_err)?;
                self.write_index(&version, event, &document_id).await?;
                Ok(Outcome::Submitted {
                    tenant: rule.tenant.clone(),
                    document_id,
                    pages,
                })
            }
            Processed::Rejected { code, message } => {
                let record = Rejection {
                    tenant: version.tenant.clone(),
                    bucket: version.bucket.clone(),
                    key: version.key.clone(),
                    version: version.version.clone(),
                    size: event.size,
                    code: code.clone(),
                    message,
                    event_name: event.name.clone(),
                    rejected_at: now_rfc3339(),
                };
                let record_key = version.rejection_key();
                self.store
                    .put(&record_key, json(&record), "application/json")
                    .await
                    .map_err(settle_err)?;
                claim
                    .settle(MarkerState::Rejected, Some(code.clone()))
                    .await
                    .map_err(settle_err)?;
                Ok(Outcome::Rejected {
                    tenant: rule.tenant.clone(),
                    code,
                    record_key,
                })
            }
            Processed::Ignored(reason) => {
                claim
                    .settle(MarkerState::Ignored, Some(reason.as_str().into()))
                    .await
                    .map_err(settle_err)?;
                Ok(Outcome::Ignored(reason))
            }
        }
    }

    /// Fetch, check and submit a claimed version.
    async fn process(
        &self,
        rule: &Rule,
        event: &ObjectEvent,
        version: &ObjectVersion,
    ) -> Result<Processed, TriggerError> {
        let max = self.config.max_object_bytes;
        if let Some(size) = event.size.filter(|&s| s > max) {
            return Ok(too_large(size, max));
        }
        let source = match self.sources.bucket(&event.bucket) {
            Ok(s) => s,
            Err(e) if e.is_transient() => return Err(TriggerError::new("opening the bucket", e)),
            Err(e) => return Ok(unreadable(&e)),
        };
        let bytes = match source.get(&event.key).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(Processed::Ignored(Ignored::Gone)),
            Err(e) if e.is_transient() => return Err(TriggerError::new("fetching the object", e)),
            Err(e) => return Ok(unreadable(&e)),
        };
        if bytes.len() as u64 > max {
            return Ok(too_large(bytes.len() as u64, max));
        }
        let declared = event.content_type.as_deref().filter(|ct| !is_generic(ct));
        if declared.is_none() && !rule.content_types.is_empty() {
            let sniffed = sniff(&bytes).map(|t| t.mime());
            if !sniffed.is_ok_and(|mime| rule.accepts_content_type(mime)) {
                return Ok(Processed::Ignored(Ignored::ContentType));
            }
        }
        let request = SubmitRequest {
            tenant: rule.tenant.clone(),
            document_id: Some(version.document_id()),
            file_name: event.file_name(),
            bytes,
            password: None,
            pages: PageRange::all(),
            options: rule.job_options(),
            metadata: metadata(event, version),
        };
        let accepted = match accept(self.store.as_ref(), &self.ingestor, request).await {
            Ok(a) => a,
            Err(SubmitError::Ingest(e)) if e.is_input_error() => {
                return Ok(Processed::Rejected {
                    code: e.code().into(),
                    message: e.to_string(),
                })
            }
            Err(e) => return Err(TriggerError::new("accepting the object", e)),
        };
        let document_id = accepted.manifest.document_id.clone();
        if let Some(url) = &rule.callback_url {
            crate::callbacks::register(self.store.as_ref(), &rule.tenant, &document_id, url)
                .await
                .map_err(|e| TriggerError::new("registering the callback", e))?;
        }
        let selected = accepted.manifest.pages.len();
        let pages = match enqueue_pages(
            self.store.clone(),
            self.queue.clone(),
            &self.ingestor,
            accepted,
            |_| {},
        )
        .await
        {
            Ok(n) => n,
            // Pages that failed to render have error records; the others are enqueued.
            Err(SubmitError::Ingest(e)) => {
                tracing::warn!(%document_id, error = %e, "some pages could not be rasterized");
                0
            }
            Err(e) => return Err(TriggerError::new("enqueueing the pages", e)),
        };
        metrics::enqueued(event.format, pages, since_event(event));
        tracing::info!(%document_id, pages, selected, tenant = %rule.tenant, bucket = %event.bucket, key = %event.key, "object submitted");
        Ok(Processed::Submitted { document_id, pages })
    }

    /// Whether a newer version of the key was already processed (by `sequencer`).
    async fn is_stale(
        &self,
        version: &ObjectVersion,
        sequencer: Option<&str>,
    ) -> Result<bool, TriggerError> {
        let Some(seq) = sequencer else {
            return Ok(false);
        };
        let index = match self.store.get(&version.index_key()).await {
            Ok(b) => serde_json::from_slice::<SourceIndex>(&b).ok(),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(TriggerError::new("reading the source index", e)),
        };
        Ok(index
            .and_then(|i| i.sequencer)
            .is_some_and(|latest| sequencer_cmp(seq, &latest).is_lt()))
    }

    async fn write_index(
        &self,
        version: &ObjectVersion,
        event: &ObjectEvent,
        document_id: &str,
    ) -> Result<(), TriggerError> {
        let index = SourceIndex {
            bucket: version.bucket.clone(),
            key: version.key.clone(),
            version: version.version.clone(),
            sequencer: event.sequencer.clone(),
            document_id: document_id.to_string(),
            updated_at: now_rfc3339(),
        };
        self.store
            .put(&version.index_key(), json(&index), "application/json")
            .await
            .map_err(|e| TriggerError::new("writing the source index", e))
    }
}

/// Content types that say nothing (sniff the bytes instead).
fn is_generic(ct: &str) -> bool {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "" | "application/octet-stream"
            | "binary/octet-stream"
            | "application/x-www-form-urlencoded"
    )
}

fn too_large(size: u64, max: u64) -> Processed {
    Processed::Rejected {
        code: "too_large".into(),
        message: format!("the object is {size} bytes, above the {max}-byte limit"),
    }
}

fn unreadable(e: &TransportError) -> Processed {
    Processed::Rejected {
        code: "unreadable".into(),
        message: format!("the object cannot be read: {e}"),
    }
}

fn metadata(event: &ObjectEvent, version: &ObjectVersion) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(
        "source".into(),
        format!("s3://{}/{}", event.bucket, event.key),
    );
    m.insert("source_version".into(), version.version.clone());
    m.insert(
        "trigger_event".into(),
        format!("{}:{}", event.format.as_str(), event.name),
    );
    if let Some(seq) = &event.sequencer {
        m.insert("source_sequencer".into(), seq.clone());
    }
    m
}

/// Time since the event's own timestamp, when it has one we can read.
fn since_event(event: &ObjectEvent) -> Option<Duration> {
    let at = event.event_time.as_deref().and_then(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    })?;
    let elapsed = time::OffsetDateTime::now_utc() - at;
    elapsed.try_into().ok()
}

fn json<T: serde::Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(value).unwrap_or_default())
}
