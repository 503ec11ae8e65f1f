//! Raw S3 event notifications on RabbitMQ: what `folio trigger` consumes.
//!
//! Bucket servers publish their notifications (JSON, AWS event format) to an exchange; Folio reads
//! them from its own queue. Unlike page jobs the bodies are not Folio's messages, so the consumer
//! hands out raw bytes and the caller settles each one: `ack`, `requeue` (another delivery later),
//! or `reject` (to the dead-letter queue, for bodies that will never parse).
//!
//! Topology, declared idempotently on every (re)connection (names in [`AmqpEventsConfig`]):
//!
//! | what | default name |
//! | --- | --- |
//! | durable fanout exchange the bucket server publishes to (any routing key) | `folio.events` |
//! | quorum queue bound to it, `x-delivery-limit`, dead-letter exchange | `folio.events` |
//! | dead-letter fanout exchange → its quorum queue | `folio.events.dead` |
//!
//! The consumer reconnects by itself (jittered exponential backoff, no attempt limit); unsettled
//! deliveries of a lost connection are returned by the broker and delivered again.
//! [`AmqpEventsPublisher`] publishes raw bodies with publisher confirms (bridges, tests, benchmarks).

use crate::amqp::backoff::reconnect_delay;
use crate::amqp::errors::amqp_error;
use crate::amqp::wire::{
    consume, delete_all, long, open_channel, ready_messages, redeliveries, short, Settle,
};
use crate::amqp::{check_connection, debug_url, redact_url};
use crate::{ErrorKind, TransportError};
use bytes::Bytes;
use futures_util::StreamExt;
use lapin::options::{
    BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::time::Duration;
use tokio::sync::mpsc;

/// Settings of the event queue. `Debug` hides the password inside `url`.
#[derive(Clone, custom_debug::Debug)]
pub struct AmqpEventsConfig {
    /// `amqp://user:password@host:port/vhost`.
    #[debug(with = debug_url)]
    pub url: String,
    /// Exchange the bucket server publishes to.
    pub exchange: String,
    /// Folio's queue on it.
    pub queue: String,
    /// Dead-letter exchange and queue (same name).
    pub dead_letter: String,
    /// `x-delivery-limit` of the queue: a message requeued more often is dead-lettered. Must
    /// match an existing queue's argument.
    pub delivery_limit: u32,
    /// Unsettled deliveries held at once.
    pub prefetch: u16,
    pub connect_timeout: Duration,
    /// Reconnection delays: the first, and the cap.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl AmqpEventsConfig {
    /// Defaults (`folio.events`, delivery limit 20, prefetch 8) for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        AmqpEventsConfig {
            url: url.into(),
            exchange: "folio.events".into(),
            queue: "folio.events".into(),
            dead_letter: "folio.events.dead".into(),
            delivery_limit: 20,
            prefetch: 8,
            connect_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(5),
        }
    }

    /// The same names with another first segment (`{prefix}.events`, `{prefix}.events.dead`).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.exchange = format!("{prefix}.events");
        self.queue = format!("{prefix}.events");
        self.dead_letter = format!("{prefix}.events.dead");
        self
    }

    pub fn validate(&self) -> Result<(), TransportError> {
        check_connection(&self.url, self.reconnect_min, self.reconnect_max)?;
        for name in [&self.exchange, &self.queue, &self.dead_letter] {
            short(name)?;
        }
        if self.delivery_limit == 0 || self.prefetch == 0 {
            return Err(TransportError::new(
                ErrorKind::Invalid,
                "delivery_limit and prefetch must be at least 1",
            ));
        }
        Ok(())
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

/// One received notification. Settle it exactly once; dropped unsettled, it is requeued.
#[derive(Debug)]
pub struct RawDelivery {
    pub body: Bytes,
    /// Previous deliveries (the quorum queue's `x-delivery-count`).
    pub redeliveries: u32,
    settle: Settle,
}

impl RawDelivery {
    pub async fn ack(mut self) -> Result<(), TransportError> {
        self.settle.ack().await
    }

    /// Back to the queue (counts toward the delivery limit).
    pub async fn requeue(mut self) -> Result<(), TransportError> {
        self.settle.requeue().await
    }

    /// To the dead-letter queue.
    pub async fn reject(mut self) -> Result<(), TransportError> {
        self.settle.dead_letter("reject").await
    }
}

/// Consumer of the event queue; see the module docs.
#[derive(Debug)]
pub struct AmqpEventsConsumer {
    rx: mpsc::Receiver<Result<RawDelivery, TransportError>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl AmqpEventsConsumer {
    /// Start consuming (connecting in the background, reconnecting as needed). Fails only on an
    /// invalid configuration; connection problems arrive as `Unavailable` items.
    pub fn start(config: AmqpEventsConfig) -> Result<Self, TransportError> {
        config.validate()?;
        let (tx, rx) = mpsc::channel(usize::from(config.prefetch));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(pump(config, tx, stopped));
        Ok(AmqpEventsConsumer {
            rx,
            stop: Some(stop),
        })
    }

    /// The next delivery, or a connection error (the consumer keeps reconnecting); `None` once
    /// stopped.
    pub async fn next(&mut self) -> Option<Result<RawDelivery, TransportError>> {
        self.rx.recv().await
    }

    /// Stop consuming; deliveries not yet settled go back to the queue.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn pump(
    config: AmqpEventsConfig,
    tx: mpsc::Sender<Result<RawDelivery, TransportError>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let mut failures = 0u32;
    loop {
        let subscribed = tokio::time::timeout(config.connect_timeout, subscribe(&config))
            .await
            .unwrap_or_else(|_| {
                Err(TransportError::new(
                    ErrorKind::Unavailable,
                    format!("connecting to {} timed out", config.redacted_url()),
                ))
            });
        let (connection, mut consumer) = match subscribed {
            Ok(pair) => pair,
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = reconnect_delay(failures, config.reconnect_min, config.reconnect_max);
                tracing::warn!(error = %e, queue = %config.queue, retry_in_ms = delay.as_millis() as u64, "cannot consume events");
                if tx.send(Err(e)).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(delay) => continue,
                }
            }
        };
        failures = 0;
        tracing::info!(queue = %config.queue, prefetch = config.prefetch, "consuming events");
        let lost = loop {
            tokio::select! {
                _ = &mut stopped => break None,
                _ = tx.closed() => break None,
                item = consumer.next() => match item {
                    Some(Ok(d)) => {
                        let delivery = RawDelivery {
                            redeliveries: redeliveries(d.properties.headers().as_ref(), d.redelivered),
                            body: Bytes::from(d.data),
                            settle: Settle::new(d.acker),
                        };
                        if tx.send(Ok(delivery)).await.is_err() {
                            break None;
                        }
                    }
                    Some(Err(e)) => break Some(amqp_error("event consumer", e)),
                    None => break Some(TransportError::new(ErrorKind::Unavailable, "event consumer cancelled")),
                },
            }
        };
        match lost {
            None => {
                let _ = connection.close(200, "consumer stopped".into()).await;
                return;
            }
            Some(e) => {
                tracing::warn!(error = %e, "event consumer lost; reconnecting");
                if tx.send(Err(e)).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn subscribe(
    config: &AmqpEventsConfig,
) -> Result<(Connection, lapin::Consumer), TransportError> {
    let connection = connect(config).await?;
    let channel = open_channel(&connection, "a channel", false).await?;
    declare(&channel, config).await?;
    let consumer = consume(&channel, &config.queue, config.prefetch).await?;
    Ok((connection, consumer))
}

async fn connect(config: &AmqpEventsConfig) -> Result<Connection, TransportError> {
    let props = ConnectionProperties::default().with_connection_name("folio-trigger".into());
    Connection::connect(&config.url, props)
        .await
        .map_err(|e| amqp_error(format!("connecting to {}", config.redacted_url()), e))
}

/// Declare both exchanges and queues (idempotent).
async fn declare(channel: &Channel, config: &AmqpEventsConfig) -> Result<(), TransportError> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let queue_opts = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long("quorum"));
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(i64::from(config.delivery_limit)),
    );
    args.insert("x-dead-letter-exchange".into(), long(&config.dead_letter));
    let mut dead_args = FieldTable::default();
    dead_args.insert("x-queue-type".into(), long("quorum"));
    for (exchange, queue, arguments) in [
        (&config.exchange, &config.queue, args),
        (&config.dead_letter, &config.dead_letter, dead_args),
    ] {
        channel
            .exchange_declare(
                short(exchange)?,
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp_error(format!("declaring exchange {exchange}"), e))?;
        channel
            .queue_declare(short(queue)?, queue_opts, arguments)
            .await
            .map_err(|e| {
                amqp_error(
                    format!("declaring queue {queue} (does it exist with other arguments?)"),
                    e,
                )
            })?;
        channel
            .queue_bind(
                short(queue)?,
                short(exchange)?,
                ShortString::default(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp_error(format!("binding {queue} to {exchange}"), e))?;
    }
    Ok(())
}

/// Publishes raw notification bodies to the events exchange, each confirmed by the broker. One
/// connection, no reconnection: for bridges, tools and tests.
#[derive(Debug)]
pub struct AmqpEventsPublisher {
    connection: Connection,
    channel: Channel,
    config: AmqpEventsConfig,
}

impl AmqpEventsPublisher {
    /// Connect and declare the topology.
    pub async fn connect(config: AmqpEventsConfig) -> Result<Self, TransportError> {
        config.validate()?;
        let connection = connect(&config).await?;
        let channel = open_channel(&connection, "a channel", true).await?;
        declare(&channel, &config).await?;
        Ok(AmqpEventsPublisher {
            connection,
            channel,
            config,
        })
    }

    /// Publish one body (persistent, `application/json`) and wait for its confirm.
    pub async fn publish(&self, body: &[u8]) -> Result<(), TransportError> {
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        let confirm = self
            .channel
            .basic_publish(
                short(&self.config.exchange)?,
                ShortString::default(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .map_err(|e| amqp_error("publishing an event", e))?
            .await
            .map_err(|e| amqp_error("confirm of an event", e))?;
        if confirm.is_nack() {
            return Err(TransportError::new(
                ErrorKind::Unavailable,
                "the broker refused the event (nack)",
            ));
        }
        Ok(())
    }

    /// Ready messages in the event queue and in its dead-letter queue.
    pub async fn depths(&self) -> Result<(u32, u32), TransportError> {
        let ready = ready_messages(&self.channel, &self.config.queue).await?;
        let dead = ready_messages(&self.channel, &self.config.dead_letter).await?;
        Ok((ready, dead))
    }

    /// Empty both queues (tests).
    pub async fn purge(&self) -> Result<(), TransportError> {
        for queue in [&self.config.queue, &self.config.dead_letter] {
            self.channel
                .queue_purge(short(queue)?, QueuePurgeOptions::default())
                .await
                .map_err(|e| amqp_error(format!("purging {queue}"), e))?;
        }
        Ok(())
    }

    /// Delete both queues (with their messages) and both exchanges. For tests and tooling; a
    /// running consumer declares them again when it reconnects.
    pub async fn delete_topology(&self) -> Result<(), TransportError> {
        let c = &self.config;
        let names = [c.queue.clone(), c.dead_letter.clone()];
        delete_all(
            &self.channel,
            &names,
            &[c.exchange.clone(), c.dead_letter.clone()],
        )
        .await
    }

    pub async fn close(self) {
        let _ = self.connection.close(200, "publisher closed".into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation_and_redaction() {
        let cfg = AmqpEventsConfig::new("amqp://folio:s3cret@127.0.0.1:5672/%2f");
        assert!(cfg.validate().is_ok());
        assert_eq!(cfg.redacted_url(), "amqp://folio:***@127.0.0.1:5672/%2f");
        assert!(!format!("{cfg:?}").contains("s3cret"));
        assert!(AmqpEventsConfig::new("http://x").validate().is_err());
        let t = cfg.clone().with_prefix("t1");
        assert_eq!(
            (t.queue.as_str(), t.dead_letter.as_str()),
            ("t1.events", "t1.events.dead")
        );
        let mut zero = cfg;
        zero.prefetch = 0;
        assert!(zero.validate().is_err());
    }
}
