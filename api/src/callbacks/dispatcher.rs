//! The outbox reader: every `poll`, list the webhook outbox, and for each notice that is due,
//! claim its next attempt, POST it signed, and record how it went under the document's prefix.
//!
//! An attempt is claimed by creating its record (`callbacks/r{round}-a{n}.json`, state
//! `sending`) with `If-None-Match: *`: of several API replicas reading the same outbox, one
//! sends attempt `n`. A record still `sending` after `timeout` (its sender died) counts as a
//! failed attempt. Attempt `n + 1` is due `backoff(n)` after attempt `n` finished; none starts
//! later than `give_up_after` after the document ended. The notice leaves the outbox once
//! delivered (2xx), refused (the target is not allowed) or given up.

use super::config::CallbackConfig;
use super::deliver;
use super::sign::{signature, SIGNATURE_HEADER};
use super::target::{Target, TargetError};
use bytes::Bytes;
use folio_results::{clock, to_bytes};
use folio_schemas::lifecycle::{parse_outbox_key, CALLBACK_OUTBOX_PREFIX};
use folio_schemas::{CallbackNotice, DeliveryAttempt, DeliveryOutcome, DocKeys, SCHEMA_VERSION};
use folio_transport::{ObjectStore, TransportError};
use futures_util::StreamExt;
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Notices handled at once.
const CONCURRENCY: usize = 16;

/// Reads the outbox and delivers (see the module docs).
#[derive(Debug, Clone)]
pub struct Dispatcher {
    store: Arc<dyn ObjectStore>,
    config: Arc<CallbackConfig>,
}

/// What a sweep did with one notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Not due yet, or another replica holds the attempt.
    Waiting,
    /// An attempt was made, with this outcome.
    Attempted(DeliveryOutcome),
    /// The notice had already been settled; it left the outbox.
    Settled,
}

impl Dispatcher {
    pub fn new(store: Arc<dyn ObjectStore>, config: CallbackConfig) -> Self {
        Dispatcher {
            store,
            config: Arc::new(config),
        }
    }

    /// Sweep every `poll` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(config = ?self.config, "callback dispatcher started");
        loop {
            if let Err(e) = self.sweep().await {
                tracing::warn!(error = %e, "cannot read the callback outbox; retrying");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.poll) => {}
            }
        }
    }

    /// One pass over the outbox.
    pub async fn sweep(&self) -> Result<Vec<Step>, TransportError> {
        let keys = self.store.list(CALLBACK_OUTBOX_PREFIX).await?;
        let steps = futures_util::stream::iter(keys)
            .map(|key| async move {
                let (tenant, document_id, round) = parse_outbox_key(&key)?;
                let span = tracing::info_span!("callback", %tenant, %document_id, round);
                match self
                    .handle(&key, &tenant, &document_id, round)
                    .instrument(span.clone())
                    .await
                {
                    Ok(step) => Some(step),
                    Err(e) => {
                        span.in_scope(|| tracing::warn!(error = %e, "callback not handled; next sweep retries"));
                        None
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .filter_map(|s| async move { s })
            .collect()
            .await;
        Ok(steps)
    }

    async fn handle(
        &self,
        outbox_key: &str,
        tenant: &str,
        document_id: &str,
        round: u64,
    ) -> Result<Step, TransportError> {
        let notice: CallbackNotice = match self.store.get(outbox_key).await {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(key = outbox_key, error = %e, "unreadable callback notice; dropped");
                    self.store.delete(outbox_key).await?;
                    return Ok(Step::Settled);
                }
            },
            Err(e) if e.is_not_found() => return Ok(Step::Settled),
            Err(e) => return Err(e),
        };
        let keys = DocKeys::new(tenant, document_id);
        let last = self.last_attempt(&keys, round).await?;
        let now = OffsetDateTime::now_utc();
        let ended = parse_time(&notice.payload.ended_at).unwrap_or(now);
        let attempt = match &last {
            None => 1,
            Some(a) => {
                let started = parse_time(&a.started_at).unwrap_or(now);
                let finished = a.finished_at.as_deref().and_then(parse_time);
                let due = match a.outcome {
                    DeliveryOutcome::Delivered
                    | DeliveryOutcome::Refused
                    | DeliveryOutcome::GaveUp => {
                        self.store.delete(outbox_key).await?;
                        return Ok(Step::Settled);
                    }
                    // A sender that died mid-attempt: its attempt failed when its time ran out.
                    DeliveryOutcome::Sending => started + self.config.timeout * 2,
                    DeliveryOutcome::Failed => {
                        finished.unwrap_or(started) + self.config.backoff(a.attempt)
                    }
                };
                if now < due {
                    return Ok(Step::Waiting);
                }
                if now > ended + self.config.give_up_after {
                    tracing::error!(
                        attempts = a.attempt,
                        "callback not delivered within the retry window; given up"
                    );
                    super::metrics::delivery("gave_up");
                    self.store.delete(outbox_key).await?;
                    return Ok(Step::Settled);
                }
                a.attempt + 1
            }
        };
        let mut record = DeliveryAttempt {
            schema_version: SCHEMA_VERSION.into(),
            event_id: notice.payload.event_id.clone(),
            attempt,
            url: notice.url.clone(),
            outcome: DeliveryOutcome::Sending,
            started_at: clock::now(),
            finished_at: None,
            http_status: None,
            error: None,
        };
        let record_key = keys.delivery(round, attempt);
        if !self
            .store
            .put_if_absent(&record_key, to_bytes(&record), "application/json")
            .await?
        {
            return Ok(Step::Waiting);
        }
        let (outcome, http_status, error) = self.attempt(tenant, &notice, attempt).await;
        let retry_at = OffsetDateTime::now_utc() + self.config.backoff(attempt);
        record.outcome = match outcome {
            DeliveryOutcome::Failed if retry_at > ended + self.config.give_up_after => {
                DeliveryOutcome::GaveUp
            }
            other => other,
        };
        record.finished_at = Some(clock::now());
        record.http_status = http_status;
        record.error = error;
        self.store
            .put(&record_key, to_bytes(&record), "application/json")
            .await?;
        super::metrics::delivery(outcome_label(record.outcome));
        match record.outcome {
            DeliveryOutcome::Delivered => {
                tracing::info!(attempt, status = ?http_status, "callback delivered");
            }
            DeliveryOutcome::Failed => {
                tracing::warn!(attempt, status = ?http_status, error = ?record.error, "callback failed; will retry");
            }
            other => {
                tracing::error!(attempt, outcome = ?other, error = ?record.error, "callback not delivered; not retried");
            }
        }
        if record.outcome != DeliveryOutcome::Failed {
            self.store.delete(outbox_key).await?;
        }
        Ok(Step::Attempted(record.outcome))
    }

    /// The latest attempt record of `round`, if any.
    async fn last_attempt(
        &self,
        keys: &DocKeys,
        round: u64,
    ) -> Result<Option<DeliveryAttempt>, TransportError> {
        let listed = self.store.list(&keys.deliveries_prefix(round)).await?;
        let Some(key) = listed.iter().max() else {
            return Ok(None);
        };
        let bytes = self.store.get(key).await?;
        Ok(serde_json::from_slice(&bytes).ok())
    }

    /// Check the target again (DNS may have changed), sign and POST: the outcome, the
    /// receiver's status and an error message.
    async fn attempt(
        &self,
        tenant: &str,
        notice: &CallbackNotice,
        attempt: u32,
    ) -> (DeliveryOutcome, Option<u16>, Option<String>) {
        let Some(secret) = self.config.secret(tenant) else {
            // A configuration fixed within the retry window still delivers.
            return (
                DeliveryOutcome::Failed,
                None,
                Some(format!(
                    "no callback secret is configured for tenant {tenant:?}"
                )),
            );
        };
        let target = match Target::parse(&notice.url) {
            Ok(t) => t,
            Err(e) => return (DeliveryOutcome::Refused, None, Some(e.to_string())),
        };
        let addrs = match target.resolve(&self.config.allow).await {
            Ok(a) => a,
            Err(e @ TargetError::Unresolved { .. }) => {
                return (DeliveryOutcome::Failed, None, Some(e.to_string()))
            }
            Err(e) => return (DeliveryOutcome::Refused, None, Some(e.to_string())),
        };
        let body = Bytes::from(serde_json::to_vec(&notice.payload).unwrap_or_default());
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let headers = [
            (SIGNATURE_HEADER, signature(secret, timestamp, &body)),
            ("folio-event-id", notice.payload.event_id.clone()),
            ("folio-delivery-attempt", attempt.to_string()),
        ];
        match deliver::post(&target, &addrs, &headers, body, self.config.timeout).await {
            Ok(status) if (200..300).contains(&status) => {
                (DeliveryOutcome::Delivered, Some(status), None)
            }
            Ok(status) => (
                DeliveryOutcome::Failed,
                Some(status),
                Some(format!("the receiver answered HTTP {status}")),
            ),
            Err(e) => (DeliveryOutcome::Failed, None, Some(e)),
        }
    }
}

fn parse_time(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &Rfc3339).ok()
}

fn outcome_label(o: DeliveryOutcome) -> &'static str {
    match o {
        DeliveryOutcome::Sending => "sending",
        DeliveryOutcome::Delivered => "delivered",
        DeliveryOutcome::Failed => "failed",
        DeliveryOutcome::Refused => "refused",
        DeliveryOutcome::GaveUp => "gave_up",
    }
}
