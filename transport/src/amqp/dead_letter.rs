//! Dead letters with a reason, and reading the dead-letter queue.
//!
//! AMQP 0-9-1 cannot attach a reason to `basic.reject`: RabbitMQ records only `rejected` (or
//! `delivery_limit`) in the `x-death` headers. A delivery parked with
//! [`crate::Delivery::dead_letter_because`] is therefore published again, body unchanged, to the
//! dead-letter exchange with the header [`REASON_HEADER`] (publisher-confirmed), and only then
//! acked on its queue. If that publish fails the delivery is rejected plainly instead, so it
//! still leaves the work queue. A crash between the confirm and the ack leaves a second copy in
//! the dead-letter queue, never a lost one.

use super::errors::amqp_error;
use super::publish;
use super::session::Link;
use super::wire::{long, open_channel, short};
use crate::TransportError;
use folio_schemas::{EngineKind, PageJob};
use lapin::options::BasicGetOptions;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::BasicProperties;

/// Header that carries the reason of a dead letter parked by Folio (`invalid_job`, …).
pub const REASON_HEADER: &str = "x-folio-reason";

/// One message of a dead-letter queue.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The job, or why the body is not one.
    pub job: Result<PageJob, String>,
    /// [`REASON_HEADER`] when Folio gave one, else the broker's `x-first-death-reason`
    /// (`rejected`, `delivery_limit`, …), else `unknown`.
    pub reason: String,
}

/// Publish `body` (the original message) to the dead-letter exchange of `engine` with `reason`.
pub(crate) async fn republish(
    link: &Link,
    engine: EngineKind,
    body: &[u8],
    message_id: Option<&ShortString>,
    reason: &str,
) -> Result<(), TransportError> {
    let cfg = &link.config;
    let mut headers = FieldTable::default();
    headers.insert(REASON_HEADER.into(), long(reason));
    headers.insert("x-folio-queue".into(), long(&cfg.queue(engine)));
    let mut properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_headers(headers);
    if let Some(id) = message_id {
        properties = properties.with_message_id(id.clone());
    }
    let what = format!("a dead letter ({reason})");
    publish::confirmed(
        link,
        &cfg.dead_exchange(),
        engine.as_str(),
        body,
        properties,
        &what,
    )
    .await
}

/// Read up to `max` messages of `engine`'s dead-letter queue without removing them: they are
/// fetched unacked on a channel of their own, whose closing returns them to the queue.
pub(crate) async fn peek(
    link: &Link,
    engine: EngineKind,
    max: usize,
) -> Result<Vec<DeadLetter>, TransportError> {
    let session = link.try_session().await.map_err(|no| no.error)?;
    let queue = link.config.dead_queue(engine);
    let channel = open_channel(&session.connection, "a channel", false).await?;
    let mut letters = Vec::new();
    let read = async {
        while letters.len() < max {
            let got = channel
                .basic_get(short(&queue)?, BasicGetOptions { no_ack: false })
                .await
                .map_err(|e| amqp_error(format!("reading {queue}"), e))?;
            let Some(message) = got else { break };
            let d = message.delivery;
            letters.push(DeadLetter {
                job: serde_json::from_slice::<PageJob>(&d.data)
                    .map_err(|e| format!("not a page job ({} bytes): {e}", d.data.len())),
                reason: reason_of(d.properties.headers().as_ref()),
            });
        }
        Ok::<_, TransportError>(())
    }
    .await;
    if channel.status().connected() {
        let _ = channel.close(200, "dead letters read".into()).await;
    }
    read.map(|()| letters)
}

/// See [`DeadLetter::reason`].
fn reason_of(headers: Option<&FieldTable>) -> String {
    let text = |name: &str| {
        headers
            .and_then(|h| h.inner().get(name))
            .and_then(|v| match v {
                AMQPValue::LongString(s) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
                _ => None,
            })
    };
    text(REASON_HEADER)
        .or_else(|| text("x-first-death-reason"))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folio_reason_first_then_the_brokers() {
        assert_eq!(reason_of(None), "unknown");
        let mut h = FieldTable::default();
        h.insert("x-first-death-reason".into(), long("rejected"));
        assert_eq!(reason_of(Some(&h)), "rejected");
        h.insert(REASON_HEADER.into(), long("invalid_job"));
        assert_eq!(reason_of(Some(&h)), "invalid_job");
    }
}
