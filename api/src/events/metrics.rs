//! Every metric the triggers and `folio reprocess` emit, in one place. Each is emitted with its
//! log line by the caller. Rendered by the process's Prometheus recorder
//! (`crate::http::metrics::install`), whose `_seconds` buckets apply to the latency histogram.

use super::model::EventFormat;
use std::time::Duration;

/// Object events by format and outcome (`submitted`, `rejected`, `duplicate`, `in_progress`,
/// `ignored`, `failed`); ignored ones carry a `reason`.
pub const EVENTS: &str = "folio_trigger_events_total";
/// Notification bodies that could not be parsed (dead-lettered / answered 400).
pub const MALFORMED: &str = "folio_trigger_malformed_total";
/// From the event's time (as the sender stamped it) to the document's last page enqueued.
pub const LATENCY: &str = "folio_trigger_event_to_enqueued_seconds";
/// Page jobs published by the triggers.
pub const PAGES: &str = "folio_trigger_pages_enqueued_total";
/// Page jobs published by `folio reprocess`.
pub const REPROCESS_PAGES: &str = "folio_reprocess_pages_enqueued_total";

pub fn event(format: EventFormat, outcome: &'static str) {
    metrics::counter!(EVENTS, "format" => format.as_str(), "outcome" => outcome).increment(1);
}

pub fn ignored(format: EventFormat, reason: &'static str) {
    metrics::counter!(EVENTS, "format" => format.as_str(), "outcome" => "ignored", "reason" => reason)
        .increment(1);
}

pub fn malformed(format: EventFormat) {
    metrics::counter!(MALFORMED, "format" => format.as_str()).increment(1);
}

pub fn enqueued(format: EventFormat, pages: u32, since_event: Option<Duration>) {
    metrics::counter!(PAGES, "format" => format.as_str()).increment(u64::from(pages));
    if let Some(d) = since_event {
        metrics::histogram!(LATENCY, "format" => format.as_str()).record(d.as_secs_f64());
    }
}

pub fn reprocess_pages(pages: u64) {
    metrics::counter!(REPROCESS_PAGES).increment(pages);
}
