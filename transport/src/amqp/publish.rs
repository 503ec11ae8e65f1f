//! One confirmed publish on the session's publishing channel: `mandatory` (an unroutable message
//! is an error, not a silent drop), refused early while the broker blocks publishers, and
//! awaited until the broker's publisher confirm (within `publish_timeout`). Page jobs and
//! reasoned dead letters (see [`super::dead_letter`]) go out this way.

use super::errors::{amqp_error, timed_out};
use super::session::Link;
use super::wire::short;
use crate::{ErrorKind, TransportError};
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Confirmation};

/// Publish `body` to `exchange` with `routing_key`; `what` names the message in errors.
pub(crate) async fn confirmed(
    link: &Link,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
    what: &str,
) -> Result<(), TransportError> {
    let options = BasicPublishOptions {
        mandatory: true,
        immediate: false,
    };
    let session = link.try_session().await.map_err(|no| no.error)?;
    if session.connection.status().blocked() {
        // The broker blocks publishers during a memory or disk alarm: fail now, not at the
        // confirm timeout.
        return Err(TransportError::new(
            ErrorKind::Unavailable,
            format!("RabbitMQ is blocking publishers (memory or disk alarm); {what} not published"),
        ));
    }
    let timeout = link.config.publish_timeout;
    let confirmed = async {
        session
            .publish
            .basic_publish(
                short(exchange)?,
                short(routing_key)?,
                options,
                body,
                properties,
            )
            .await
            .map_err(|e| amqp_error(format!("publishing {what}"), e))?
            .await
            .map_err(|e| amqp_error(format!("confirm of {what}"), e))
    };
    let confirmation = tokio::time::timeout(timeout, confirmed)
        .await
        .map_err(|_| timed_out(format!("publishing {what}"), timeout))?
        .map_err(|mut e| {
            // A channel error (say the exchange was deleted) closed the publishing channel; the
            // next publish opens a new one and declares the topology again: transient.
            if e.kind == ErrorKind::NotFound {
                e.kind = ErrorKind::Unavailable;
            }
            e
        })?;
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => Err(TransportError::new(
            ErrorKind::Invalid,
            format!(
                "{what} is unroutable: {exchange} has no queue bound to `{routing_key}` ({} {})",
                returned.reply_code, returned.reply_text
            ),
        )),
        Confirmation::Nack(_) => Err(TransportError::new(
            ErrorKind::Unavailable,
            format!("the broker refused {what} (negative confirm)"),
        )),
        Confirmation::NotRequested => Err(TransportError::new(
            ErrorKind::Unavailable,
            format!("{what} was published without a confirm (channel not in confirm mode)"),
        )),
    }
}
