//! What happens to a document besides its pages: the progress log that live progress is served
//! from, how a document ends (complete, partial, failed, cancelled), the cancel marker, the
//! completion webhook's registration, notice and delivery records — and the keys of all of them.
//!
//! Under the document's prefix `{tenant}/docs/{id}/`:
//!
//! | key | what |
//! | --- | --- |
//! | `events/{seq:06}.json` | one [`ProgressEvent`] each, `seq` 1, 2, 3 … claimed with `If-None-Match: *` |
//! | `round.json` | [`Round`]: the `seq` of the latest re-processing start (absent: round 0) |
//! | `ends/r{round:06}.json` | written once the document's end is logged (and its notice queued) |
//! | `cancelled.json` | [`CancelRecord`]: workers skip the document's pages |
//! | `callback.json` | [`CallbackRegistration`]: where to POST the end of the document |
//! | `callbacks/r{round:06}-a{attempt:03}.json` | one [`DeliveryAttempt`] per POST |
//!
//! and, outside tenants' prefixes, the webhook outbox `.folio/callbacks/pending/{tenant}/{id}/r{round:06}.json`
//! ([`CallbackNotice`]), removed once delivered or given up.

use crate::keys::DocKeys;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where the webhook outbox starts (one [`CallbackNotice`] per ended document that has a callback).
pub const CALLBACK_OUTBOX_PREFIX: &str = ".folio/callbacks/pending/";

impl DocKeys {
    /// Prefix of the progress log.
    pub fn events_prefix(&self) -> String {
        format!("{}events/", self.prefix())
    }
    /// The progress log entry `seq` (1-based).
    pub fn event(&self, seq: u64) -> String {
        format!("{}events/{seq:06}.json", self.prefix())
    }
    pub fn round(&self) -> String {
        format!("{}round.json", self.prefix())
    }
    /// Written once the end of `round` is logged.
    pub fn end_marker(&self, round: u64) -> String {
        format!("{}ends/r{round:06}.json", self.prefix())
    }
    pub fn cancelled(&self) -> String {
        format!("{}cancelled.json", self.prefix())
    }
    pub fn callback(&self) -> String {
        format!("{}callback.json", self.prefix())
    }
    /// Prefix of the delivery records of `round`'s notice.
    pub fn deliveries_prefix(&self, round: u64) -> String {
        format!("{}callbacks/r{round:06}-", self.prefix())
    }
    pub fn delivery(&self, round: u64, attempt: u32) -> String {
        format!("{}callbacks/r{round:06}-a{attempt:03}.json", self.prefix())
    }
    /// `pages/` (page images).
    pub fn pages_prefix(&self) -> String {
        format!("{}pages/", self.prefix())
    }
}

/// The outbox key of `round`'s notice of a document.
pub fn callback_outbox_key(tenant: &str, document_id: &str, round: u64) -> String {
    format!("{CALLBACK_OUTBOX_PREFIX}{tenant}/{document_id}/r{round:06}.json")
}

/// `seq` of a progress log key (`…/events/000012.json`).
pub fn parse_event_key(key: &str) -> Option<u64> {
    let name = key.rsplit('/').next()?;
    let stem = name.strip_suffix(".json")?;
    (stem.len() >= 6 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// `(tenant, document_id, round)` of an outbox key.
pub fn parse_outbox_key(key: &str) -> Option<(String, String, u64)> {
    let rest = key.strip_prefix(CALLBACK_OUTBOX_PREFIX)?;
    let mut parts = rest.split('/');
    let (tenant, doc, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let round = name
        .strip_prefix('r')?
        .strip_suffix(".json")?
        .parse()
        .ok()?;
    Some((tenant.to_string(), doc.to_string(), round))
}

/// How a document ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndStatus {
    /// Every page has a result.
    Complete,
    /// Some pages have a result, some failed.
    Partial,
    /// Every page failed.
    Failed,
    /// Cancelled (`DELETE /v1/documents/{id}`) before it ended.
    Cancelled,
}

impl EndStatus {
    /// The end of a document whose pages are all recorded.
    pub fn from_counts(done: u32, failed: u32) -> EndStatus {
        match (done, failed) {
            (_, 0) => EndStatus::Complete,
            (0, _) => EndStatus::Failed,
            _ => EndStatus::Partial,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            EndStatus::Complete => "complete",
            EndStatus::Partial => "partial",
            EndStatus::Failed => "failed",
            EndStatus::Cancelled => "cancelled",
        }
    }
}

/// One entry of the progress log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProgressKind {
    /// A page's result (`ok`) or error record was written.
    Page {
        page: u32,
        ok: bool,
        /// The error code of a failed page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    /// The document ended.
    End {
        status: EndStatus,
        pages_total: u32,
        pages_done: u32,
        pages_failed: u32,
    },
    /// Re-processing started: the pages are processed again, and the document will end again.
    Restart,
}

/// `events/{seq:06}.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProgressEvent {
    pub schema_version: String,
    pub seq: u64,
    #[serde(flatten)]
    pub kind: ProgressKind,
    /// RFC 3339 time the entry was written.
    pub at: String,
}

/// `round.json`: which round of processing the document is in (the `seq` of its latest
/// [`ProgressKind::Restart`]; 0, the first round, has no file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Round {
    pub round: u64,
}

/// `cancelled.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CancelRecord {
    pub schema_version: String,
    pub document_id: String,
    pub cancelled_at: String,
    /// Whether the stored pages and results were deleted too.
    pub purged: bool,
}

/// `callback.json`: written when the document is accepted, before any page is enqueued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CallbackRegistration {
    pub schema_version: String,
    pub url: String,
}

/// The JSON body POSTed to a callback URL when a document ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CallbackPayload {
    /// Always `document.ended`.
    pub event: String,
    /// Unique per document end (`{document_id}:r{round}`): the same in every retry of it.
    pub event_id: String,
    pub tenant: String,
    pub document_id: String,
    pub status: EndStatus,
    pub pages_total: u32,
    pub pages_done: u32,
    pub pages_failed: u32,
    /// RFC 3339 time the document ended.
    pub ended_at: String,
    /// `/v1/documents/{id}/result` (relative to the API).
    pub result_url: String,
}

/// An outbox entry: a payload waiting to be delivered to `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CallbackNotice {
    pub schema_version: String,
    pub url: String,
    pub round: u64,
    pub payload: CallbackPayload,
}

/// How one delivery attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// Claimed, the POST is under way (or its sender died).
    Sending,
    /// The receiver answered 2xx.
    Delivered,
    /// Another status, a timeout or a connection error: retried later.
    Failed,
    /// The target resolved to an address that is not allowed: not retried.
    Refused,
    /// Failed, and the retry window (an hour) is over: not retried.
    GaveUp,
}

/// `callbacks/r{round:06}-a{attempt:03}.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryAttempt {
    pub schema_version: String,
    pub event_id: String,
    /// 1-based.
    pub attempt: u32,
    pub url: String,
    pub outcome: DeliveryOutcome,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The receiver's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_parsers_agree() {
        let k = DocKeys::new("acme", "d1");
        assert_eq!(k.event(12), "acme/docs/d1/events/000012.json");
        assert_eq!(parse_event_key(&k.event(12)), Some(12));
        assert_eq!(parse_event_key("acme/docs/d1/events/x.json"), None);
        assert_eq!(k.delivery(3, 2), "acme/docs/d1/callbacks/r000003-a002.json");
        assert!(k.delivery(3, 2).starts_with(&k.deliveries_prefix(3)));
        let outbox = callback_outbox_key("acme", "d1", 7);
        assert_eq!(
            parse_outbox_key(&outbox),
            Some(("acme".into(), "d1".into(), 7))
        );
        assert_eq!(
            parse_outbox_key(".folio/callbacks/pending/a/b/c/r1.json"),
            None
        );
    }

    #[test]
    fn events_serialise_flat() {
        let e = ProgressEvent {
            schema_version: "1.0".into(),
            seq: 2,
            kind: ProgressKind::Page {
                page: 3,
                ok: false,
                code: Some("engine_failed".into()),
            },
            at: "2026-01-01T00:00:00.000Z".into(),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "page");
        assert_eq!(v["page"], 3);
        let back: ProgressEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn end_status_from_counts() {
        assert_eq!(EndStatus::from_counts(3, 0), EndStatus::Complete);
        assert_eq!(EndStatus::from_counts(2, 1), EndStatus::Partial);
        assert_eq!(EndStatus::from_counts(0, 3), EndStatus::Failed);
    }
}
