//! One notification body in, a [`Report`] out: parse it in its format, handle every object event,
//! count and log each outcome, and say what the transport should do with the message.

use super::metrics;
use super::model::{EventFormat, Ignored, Notification, ParseError};
use super::trigger::{Outcome, Trigger};

/// What to do with the message that carried the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Every event was handled (submitted, rejected with a record, ignored or a duplicate).
    Ack,
    /// Something failed transiently, or another instance holds a claim: deliver it again later.
    /// Events already handled are duplicates on the next delivery.
    Retry,
    /// The body cannot be parsed: dead-letter it (HTTP 400). Retrying cannot help.
    Reject,
}

/// The result of one body.
#[derive(Debug)]
pub struct Report {
    pub format: EventFormat,
    pub outcomes: Vec<Outcome>,
    /// Transient failures, as messages.
    pub errors: Vec<String>,
    /// Why the body was rejected, when it was.
    pub malformed: Option<String>,
}

impl Report {
    pub fn disposition(&self) -> Disposition {
        if self.malformed.is_some() {
            Disposition::Reject
        } else if !self.errors.is_empty() || self.in_progress() {
            Disposition::Retry
        } else {
            Disposition::Ack
        }
    }

    /// Whether some event waits on another holder's claim (and nothing failed).
    pub fn in_progress(&self) -> bool {
        self.outcomes
            .iter()
            .any(|o| matches!(o, Outcome::InProgress { .. }))
    }

    /// Documents this body submitted.
    pub fn submitted(&self) -> impl Iterator<Item = &str> {
        self.outcomes.iter().filter_map(|o| match o {
            Outcome::Submitted { document_id, .. } => Some(document_id.as_str()),
            _ => None,
        })
    }
}

/// Parse `body` as `format`.
pub fn parse(
    trigger: &Trigger,
    format: EventFormat,
    body: &[u8],
) -> Result<Notification, ParseError> {
    match format {
        EventFormat::Aws => super::aws::parse(body),
        EventFormat::SeaweedFs => {
            super::seaweedfs::parse(body, &trigger.config().seaweedfs_buckets_dir)
        }
    }
}

impl Trigger {
    /// Handle a whole notification body.
    pub async fn process_body(&self, format: EventFormat, body: &[u8]) -> Report {
        let mut report = Report {
            format,
            outcomes: Vec::new(),
            errors: Vec::new(),
            malformed: None,
        };
        let events = match parse(self, format, body) {
            Ok(Notification::Test) => {
                tracing::info!(format = format.as_str(), "test event ignored");
                metrics::ignored(format, Ignored::TestEvent.as_str());
                report.outcomes.push(Outcome::Ignored(Ignored::TestEvent));
                return report;
            }
            Ok(Notification::Objects(events)) => events,
            Err(e) => {
                tracing::error!(format = format.as_str(), error = %e, bytes = body.len(), "malformed event notification");
                metrics::malformed(format);
                report.malformed = Some(e.to_string());
                return report;
            }
        };
        for event in &events {
            for result in self.handle(event).await {
                match result {
                    Ok(outcome) => {
                        log_outcome(event, &outcome);
                        report.outcomes.push(outcome);
                    }
                    Err(e) => {
                        tracing::warn!(bucket = %event.bucket, key = %event.key, error = %e, "event failed; it will be retried");
                        metrics::event(format, "failed");
                        report.errors.push(e.to_string());
                    }
                }
            }
        }
        report
    }
}

fn log_outcome(event: &super::model::ObjectEvent, outcome: &Outcome) {
    let format = event.format;
    match outcome {
        Outcome::Ignored(reason) => {
            tracing::debug!(bucket = %event.bucket, key = %event.key, event = %event.name, reason = reason.as_str(), "event ignored");
            metrics::ignored(format, reason.as_str());
        }
        Outcome::Rejected {
            tenant,
            code,
            record_key,
        } => {
            tracing::warn!(%tenant, bucket = %event.bucket, key = %event.key, %code, %record_key, "object rejected");
            metrics::event(format, outcome.label());
        }
        Outcome::Duplicate {
            tenant,
            document_id,
        } => {
            tracing::info!(%tenant, bucket = %event.bucket, key = %event.key, %document_id, "duplicate event");
            metrics::event(format, outcome.label());
        }
        Outcome::InProgress { tenant } => {
            tracing::info!(%tenant, bucket = %event.bucket, key = %event.key, "object being processed by another holder");
            metrics::event(format, outcome.label());
        }
        Outcome::Submitted { .. } => metrics::event(format, outcome.label()),
    }
}
