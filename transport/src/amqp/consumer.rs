//! Consuming an engine's queue: a pump task per consumer that survives reconnections.
//!
//! The pump opens a channel on the shared connection, sets `basic_qos(prefetch)`, (re)declares the
//! engine's topology and subscribes with manual acks. Deliveries go to the [`AmqpConsumer`] through
//! a channel bounded by `prefetch` (the broker never has more unacked deliveries out). When the
//! channel or connection dies the pump reports one `Unavailable` error, waits for the connection to
//! come back (see [`super::session`]) and subscribes again; the broker has meanwhile returned every
//! unacked message to the queue, so deliveries still held by the worker fail to settle with
//! `Unavailable` and are delivered again. The pump ends when the consumer is dropped or the queue
//! is closed.

use super::backoff::reconnect_delay;
use super::dead_letter;
use super::errors::amqp_error;
use super::session::{declare_topology, Link};
use super::wire::{consume, open_channel, redeliveries, Settle};
use crate::queue::{Acker, Delivery, JobConsumer};
use crate::{ErrorKind, TransportError};
use async_trait::async_trait;
use folio_schemas::{EngineKind, PageJob};
use futures_util::StreamExt;
use lapin::types::ShortString;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

type Item = Result<Delivery, TransportError>;

/// The [`JobConsumer`] of [`super::AmqpQueue`].
pub(crate) struct AmqpConsumer {
    rx: mpsc::Receiver<Item>,
    /// An error met by `try_next`, handed out by the next `next`.
    pending_error: Option<TransportError>,
}

impl AmqpConsumer {
    pub(crate) fn start(
        link: Arc<Link>,
        engine: EngineKind,
        prefetch: u16,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let prefetch = prefetch.max(1);
        let (tx, rx) = mpsc::channel(usize::from(prefetch));
        tokio::spawn(pump(link, engine, prefetch, tx, shutdown));
        AmqpConsumer {
            rx,
            pending_error: None,
        }
    }
}

#[async_trait]
impl JobConsumer for AmqpConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, TransportError>> {
        if let Some(e) = self.pending_error.take() {
            return Some(Err(e));
        }
        self.rx.recv().await
    }

    fn try_next(&mut self) -> Option<Delivery> {
        if self.pending_error.is_some() {
            return None;
        }
        match self.rx.try_recv() {
            Ok(Ok(delivery)) => Some(delivery),
            Ok(Err(e)) => {
                self.pending_error = Some(e);
                None
            }
            Err(_) => None,
        }
    }
}

/// Resolves when the queue is closed with `AmqpQueue::close`. Dropping every queue handle does not
/// close it: a consumer lives as long as its owner keeps it.
async fn closed(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|closed| *closed).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn pump(
    link: Arc<Link>,
    engine: EngineKind,
    prefetch: u16,
    tx: mpsc::Sender<Item>,
    mut shutdown: watch::Receiver<bool>,
) {
    let queue = link.config.queue(engine);
    let mut failures = 0u32;
    loop {
        let session = tokio::select! {
            _ = tx.closed() => return,
            _ = closed(&mut shutdown) => return,
            s = link.wait_session() => s,
        };
        let subscribed = async {
            let channel = open_channel(&session.connection, "a consumer channel", false).await?;
            declare_topology(&channel, &link.config, engine).await?;
            let consumer = consume(&channel, &queue, prefetch).await?;
            Ok::<_, TransportError>((channel, consumer))
        }
        .await;
        let (channel, mut consumer) = match subscribed {
            Ok(pair) => pair,
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = reconnect_delay(
                    failures,
                    link.config.reconnect_min,
                    link.config.reconnect_max,
                );
                tracing::warn!(error = %e, queue, retry_in_ms = delay.as_millis() as u64, "could not subscribe");
                let _ = tx.try_send(Err(e));
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = closed(&mut shutdown) => return,
                    _ = tokio::time::sleep(delay) => continue,
                }
            }
        };
        failures = 0;
        tracing::info!(queue, prefetch, connection = session.id, "consuming");
        let counted = Subscribed::new(&link);
        let lost = loop {
            tokio::select! {
                _ = tx.closed() => break None,
                _ = closed(&mut shutdown) => break None,
                item = consumer.next() => match item {
                    Some(Ok(d)) => {
                        if tx.send(Ok(to_delivery(d, &queue, &link, engine))).await.is_err() {
                            break None;
                        }
                    }
                    Some(Err(e)) => break Some(amqp_error(format!("consumer of {queue}"), e)),
                    None => break Some(TransportError::new(
                        ErrorKind::Unavailable,
                        format!("consumer of {queue} was cancelled (channel closed or queue deleted)"),
                    )),
                },
            }
        };
        drop(counted);
        match lost {
            None => {
                // Closing the channel returns the deliveries nobody will settle to the queue.
                if channel.status().connected() {
                    if let Err(e) = channel.close(200, "consumer closed".into()).await {
                        tracing::debug!(error = %e, queue, "closing consumer channel");
                    }
                }
                return;
            }
            Some(e) => {
                tracing::warn!(error = %e, queue, "consumer lost; resubscribing");
                let _ = tx.try_send(Err(e));
            }
        }
    }
}

/// Counts this consumer as subscribed (see `AmqpQueue::is_consuming`) while it lives.
struct Subscribed<'a>(&'a Link);

impl<'a> Subscribed<'a> {
    fn new(link: &'a Link) -> Self {
        link.consumers.fetch_add(1, Ordering::SeqCst);
        Subscribed(link)
    }
}

impl Drop for Subscribed<'_> {
    fn drop(&mut self) {
        self.0.consumers.fetch_sub(1, Ordering::SeqCst);
    }
}

fn to_delivery(
    d: lapin::message::Delivery,
    queue: &str,
    link: &Arc<Link>,
    engine: EngineKind,
) -> Delivery {
    let job = serde_json::from_slice::<PageJob>(&d.data).map_err(|e| {
        format!(
            "message {} on {queue} is not a page job ({} bytes): {e}",
            d.delivery_tag,
            d.data.len()
        )
    });
    let redeliveries = redeliveries(d.properties.headers().as_ref(), d.redelivered);
    let acker = AmqpAcker {
        settle: Settle::new(d.acker),
        link: link.clone(),
        engine,
        message_id: d.properties.message_id().clone(),
        body: d.data,
    };
    Delivery::new(job, redeliveries, Box::new(acker))
}

/// Settles one delivery on the channel it came from (dropped unsettled: requeued). Keeps the
/// body for a dead letter with a reason (see [`super::dead_letter`]).
struct AmqpAcker {
    settle: Settle,
    link: Arc<Link>,
    engine: EngineKind,
    message_id: Option<ShortString>,
    body: Vec<u8>,
}

#[async_trait]
impl Acker for AmqpAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), TransportError> {
        self.settle.ack().await
    }

    async fn requeue(mut self: Box<Self>) -> Result<(), TransportError> {
        self.settle.requeue().await
    }

    async fn dead_letter(mut self: Box<Self>) -> Result<(), TransportError> {
        self.settle.dead_letter("dead-letter").await
    }

    async fn dead_letter_because(mut self: Box<Self>, reason: &str) -> Result<(), TransportError> {
        let parked = dead_letter::republish(
            &self.link,
            self.engine,
            &self.body,
            self.message_id.as_ref(),
            reason,
        )
        .await;
        match parked {
            Ok(()) => self.settle.ack().await,
            Err(e) => {
                tracing::warn!(error = %e, reason, "cannot park the dead letter with its reason; rejecting it plainly");
                self.settle.dead_letter("dead-letter").await
            }
        }
    }
}
