//! The failure policy, as one pure function.
//!
//! | failure | attempts left | what happens |
//! | --- | --- | --- |
//! | transient (store/broker down, timeout, engine busy) | yes | requeue after a backoff |
//! | transient | no (delivery limit reached) | error record, then dead-letter |
//! | permanent (undecodable image, engine error) | — | error record, then dead-letter |
//!
//! The error record (`results/{page}.error.json`) is written before the message is settled, so the
//! document can complete as `partial`; if writing the record fails, the message is requeued instead
//! (never settle a page whose outcome is not durable).

/// How a page failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Transient(String),
    Permanent { code: &'static str, message: String },
}

/// What to do with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Put the message back for a later attempt.
    Retry,
    /// Write the page's error record, then dead-letter the message.
    RecordAndDeadLetter,
}

/// `attempt` counts this delivery (1 = first); `delivery_limit` is the queue's.
pub fn disposition(failure: &Failure, attempt: u32, delivery_limit: u32) -> Disposition {
    match failure {
        Failure::Permanent { .. } => Disposition::RecordAndDeadLetter,
        Failure::Transient(_) if attempt >= delivery_limit => Disposition::RecordAndDeadLetter,
        Failure::Transient(_) => Disposition::Retry,
    }
}

/// The error code recorded for a failure.
pub fn error_code(failure: &Failure, attempt: u32, delivery_limit: u32) -> &'static str {
    match failure {
        Failure::Permanent { code, .. } => code,
        Failure::Transient(_) if attempt >= delivery_limit => "delivery_limit",
        Failure::Transient(_) => "transient",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_retry_until_the_limit() {
        let f = Failure::Transient("s3 down".into());
        assert_eq!(disposition(&f, 1, 5), Disposition::Retry);
        assert_eq!(disposition(&f, 4, 5), Disposition::Retry);
        assert_eq!(disposition(&f, 5, 5), Disposition::RecordAndDeadLetter);
        assert_eq!(error_code(&f, 5, 5), "delivery_limit");
    }

    #[test]
    fn permanent_failures_are_recorded_at_once() {
        let f = Failure::Permanent {
            code: "image_undecodable",
            message: "bad png".into(),
        };
        assert_eq!(disposition(&f, 1, 5), Disposition::RecordAndDeadLetter);
        assert_eq!(error_code(&f, 1, 5), "image_undecodable");
    }
}
