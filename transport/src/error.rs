//! One error type for queues and stores; the kind tells callers whether to retry.

/// What went wrong, as far as a caller's retry policy is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object does not exist.
    NotFound,
    /// A conditional write lost: the object already exists.
    AlreadyExists,
    /// The server or connection is unavailable or timed out; retrying later may succeed.
    Unavailable,
    /// The request itself is wrong (bad key, bad message); retrying will not help.
    Invalid,
    /// A local I/O failure.
    Io,
}

/// An error from a queue or a store, with its kind and the original cause.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    pub kind: ErrorKind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl TransportError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        TransportError {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// True when the same operation may succeed later (broker/S3 down, timeouts, local I/O hiccups).
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::Io)
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}
