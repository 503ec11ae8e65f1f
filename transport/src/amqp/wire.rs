//! lapin glue shared by the job queue and the event consumer (`crate::amqp_events`): checked
//! names, string arguments, the redelivery count of a delivery, and [`Settle`], the one way a
//! delivery is acked, requeued or rejected (and requeued when dropped unsettled).

use super::errors::amqp_error;
use crate::{ErrorKind, TransportError};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection};

/// An exchange or queue name, checked to fit AMQP's 255-byte short strings.
pub(crate) fn short(name: &str) -> Result<ShortString, TransportError> {
    ShortString::try_new(name)
        .map_err(|e| TransportError::new(ErrorKind::Invalid, format!("AMQP name `{name}`: {e}")))
}

/// A string argument value (`x-queue-type`, `x-dead-letter-exchange`).
pub(crate) fn long(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()))
}

/// A new channel on `connection` (`what` names it in the error), in confirm mode when `confirms`.
pub(crate) async fn open_channel(
    connection: &Connection,
    what: &str,
    confirms: bool,
) -> Result<Channel, TransportError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| amqp_error(format!("opening {what}"), e))?;
    if confirms {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| amqp_error("enabling publisher confirms", e))?;
    }
    Ok(channel)
}

/// Consume `queue` on `channel` with manual acks, at most `prefetch` deliveries unacked.
pub(crate) async fn consume(
    channel: &Channel,
    queue: &str,
    prefetch: u16,
) -> Result<lapin::Consumer, TransportError> {
    channel
        .basic_qos(prefetch, BasicQosOptions { global: false })
        .await
        .map_err(|e| amqp_error("setting the prefetch", e))?;
    channel
        .basic_consume(
            short(queue)?,
            ShortString::default(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| amqp_error(format!("consuming {queue}"), e))
}

/// Ready messages in `queue` (a passive declare: a missing queue is `NotFound` and closes the
/// channel).
pub(crate) async fn ready_messages(channel: &Channel, queue: &str) -> Result<u32, TransportError> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(short(queue)?, passive, FieldTable::default())
        .await
        .map_err(|e| amqp_error(format!("queue {queue}"), e))?;
    Ok(declared.message_count())
}

/// Delete `queues` (with their messages), then `exchanges`.
pub(crate) async fn delete_all(
    channel: &Channel,
    queues: &[String],
    exchanges: &[String],
) -> Result<(), TransportError> {
    for queue in queues {
        channel
            .queue_delete(short(queue)?, QueueDeleteOptions::default())
            .await
            .map_err(|e| amqp_error(format!("deleting queue {queue}"), e))?;
    }
    for exchange in exchanges {
        channel
            .exchange_delete(short(exchange)?, ExchangeDeleteOptions::default())
            .await
            .map_err(|e| amqp_error(format!("deleting exchange {exchange}"), e))?;
    }
    Ok(())
}

/// Previous deliveries of a message: the quorum queue's `x-delivery-count` header, else 1 when the
/// broker flags a redelivery (classic queues), else 0.
pub(crate) fn redeliveries(headers: Option<&FieldTable>, redelivered: bool) -> u32 {
    let count = headers
        .and_then(|h| h.inner().get("x-delivery-count"))
        .and_then(|v| match v {
            AMQPValue::ShortShortInt(n) => Some(i64::from(*n)),
            AMQPValue::ShortShortUInt(n) => Some(i64::from(*n)),
            AMQPValue::ShortInt(n) => Some(i64::from(*n)),
            AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
            AMQPValue::LongInt(n) => Some(i64::from(*n)),
            AMQPValue::LongUInt(n) => Some(i64::from(*n)),
            AMQPValue::LongLongInt(n) => Some(*n),
            _ => None,
        });
    match count {
        Some(n) => u32::try_from(n.max(0)).unwrap_or(u32::MAX),
        None => u32::from(redelivered),
    }
}

/// Settles one delivery on the channel it came from, once. Dropped unsettled, the delivery is
/// requeued right away instead of holding a prefetch slot until the channel closes.
#[derive(Debug)]
pub(crate) struct Settle {
    acker: Option<lapin::Acker>,
}

impl Settle {
    pub(crate) fn new(acker: lapin::Acker) -> Self {
        Settle { acker: Some(acker) }
    }

    pub(crate) async fn ack(&mut self) -> Result<(), TransportError> {
        let acker = self.take()?;
        settled("ack", acker.ack(BasicAckOptions::default()).await)
    }

    /// Back to the queue (counts toward the delivery limit).
    pub(crate) async fn requeue(&mut self) -> Result<(), TransportError> {
        let acker = self.take()?;
        settled("requeue", acker.nack(REQUEUE).await)
    }

    /// Rejected without requeue: a quorum queue sends it to its dead-letter exchange.
    pub(crate) async fn dead_letter(&mut self, op: &str) -> Result<(), TransportError> {
        let acker = self.take()?;
        settled(
            op,
            acker.reject(BasicRejectOptions { requeue: false }).await,
        )
    }

    fn take(&mut self) -> Result<lapin::Acker, TransportError> {
        self.acker
            .take()
            .ok_or_else(|| TransportError::new(ErrorKind::Invalid, "delivery already settled"))
    }
}

const REQUEUE: BasicNackOptions = BasicNackOptions {
    multiple: false,
    requeue: true,
};

fn settled(op: &str, result: lapin::Result<bool>) -> Result<(), TransportError> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(TransportError::new(
            ErrorKind::Unavailable,
            format!(
                "cannot {op}: the delivery's channel is closed; the broker returns the message to the queue"
            ),
        )),
        Err(e) => Err(amqp_error(format!("{op} failed"), e)),
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        let Some(acker) = self.acker.take() else {
            return;
        };
        if !acker.usable() {
            return;
        }
        // Without a runtime (process exit) the channel's closing returns the message instead.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = acker.nack(REQUEUE).await {
                    tracing::debug!(error = %e, "requeueing a dropped delivery");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redeliveries_from_header_or_flag() {
        assert_eq!(redeliveries(None, false), 0);
        assert_eq!(redeliveries(None, true), 1);
        let mut h = FieldTable::default();
        h.insert("x-delivery-count".into(), AMQPValue::LongLongInt(3));
        assert_eq!(redeliveries(Some(&h), true), 3);
        let mut h = FieldTable::default();
        h.insert("x-delivery-count".into(), AMQPValue::LongInt(-2));
        assert_eq!(redeliveries(Some(&h), false), 0);
        let mut h = FieldTable::default();
        h.insert("other".into(), AMQPValue::LongInt(7));
        assert_eq!(redeliveries(Some(&h), false), 0);
    }
}
