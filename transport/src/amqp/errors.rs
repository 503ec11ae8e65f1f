//! Mapping of lapin's errors to [`ErrorKind`]: what a caller may retry and what it may not.

use crate::{ErrorKind, TransportError};
use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};

/// The kind of a lapin error.
///
/// - socket and heartbeat failures, a closed channel or connection, a broker shutting down
///   (`CONNECTION_FORCED`), a full broker (`RESOURCE_ERROR`) or a locked queue → `Unavailable`;
/// - `NOT_FOUND` (a passive declare of a missing queue) → `NotFound`;
/// - refused credentials or permissions, arguments that differ from an existing queue's
///   (`PRECONDITION_FAILED`) and other protocol misuse → `Invalid`.
pub(crate) fn kind_of(error: &lapin::Error) -> ErrorKind {
    use lapin::ErrorKind as L;
    match error.kind() {
        L::IOError(_)
        | L::RuntimeShutdownError(_)
        | L::MissingHeartbeatError
        | L::InvalidChannelState(..)
        | L::InvalidConnectionState(_)
        | L::InvalidChannel(_)
        | L::ChannelsLimitReached => ErrorKind::Unavailable,
        L::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => ErrorKind::NotFound,
            AMQPErrorKind::Soft(AMQPSoftError::RESOURCELOCKED)
            | AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED)
            | AMQPErrorKind::Hard(AMQPHardError::RESOURCEERROR)
            | AMQPErrorKind::Hard(AMQPHardError::INTERNALERROR) => ErrorKind::Unavailable,
            _ => ErrorKind::Invalid,
        },
        _ => ErrorKind::Invalid,
    }
}

/// Wrap a lapin error with what was being done.
pub(crate) fn amqp_error(context: impl std::fmt::Display, error: lapin::Error) -> TransportError {
    let kind = kind_of(&error);
    TransportError::with_source(kind, format!("{context}: {error}"), error)
}

/// The error for an operation that ran out of time.
pub(crate) fn timed_out(
    context: impl std::fmt::Display,
    after: std::time::Duration,
) -> TransportError {
    TransportError::new(
        ErrorKind::Unavailable,
        format!("{context}: no answer from the broker within {after:?}"),
    )
}
