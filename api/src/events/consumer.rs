//! The `folio trigger` loop: take raw notification messages from a stream (an AMQP queue in
//! production, a channel in tests), process each with the [`Trigger`], and settle it by the
//! report's [`Disposition`]: ack, requeue after a delay, or reject to the dead-letter queue.
//!
//! Messages are processed concurrently up to a limit; a malformed message is logged, counted and
//! rejected, and the loop keeps going. The loop ends when the stream ends or on shutdown, after
//! the messages in progress are settled.

use super::model::EventFormat;
use super::process::Disposition;
use super::trigger::Trigger;
use async_trait::async_trait;
use bytes::Bytes;
use folio_transport::TransportError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Settles one raw message with the queue it came from.
#[async_trait]
pub trait Settle: Send {
    async fn ack(self: Box<Self>) -> Result<(), TransportError>;
    /// Back to the queue for another delivery (counts toward the queue's delivery limit).
    async fn requeue(self: Box<Self>) -> Result<(), TransportError>;
    /// To the dead-letter queue, without requeueing.
    async fn reject(self: Box<Self>) -> Result<(), TransportError>;
}

/// One message as received.
#[derive(custom_debug::Debug)]
pub struct RawMessage {
    #[debug(with = crate::redact::byte_len)]
    pub body: Bytes,
    #[debug(skip)]
    pub settle: Box<dyn Settle>,
}

/// A source of raw messages.
#[async_trait]
pub trait EventStream: Send {
    /// The next message; `None` when the stream is closed for good.
    async fn next(&mut self) -> Option<Result<RawMessage, TransportError>>;
}

/// Settings of [`run`].
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Messages processed at once.
    pub concurrency: usize,
    /// How long a message that must be retried is held before it is requeued (so a busy claim or
    /// an unavailable store is not hammered).
    pub retry_delay: Duration,
    /// Wait after a stream error before asking again.
    pub error_backoff: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            concurrency: 4,
            retry_delay: Duration::from_secs(2),
            error_backoff: Duration::from_secs(1),
        }
    }
}

/// Message counts, shared with the caller while the loop runs.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    pub received: AtomicU64,
    pub acked: AtomicU64,
    pub requeued: AtomicU64,
    pub rejected: AtomicU64,
    pub stream_errors: AtomicU64,
    /// Why the loop stopped on its own: a stream error that retrying cannot fix (a queue declared
    /// with other arguments, refused credentials).
    pub fatal: std::sync::OnceLock<String>,
}

impl ConsumerStats {
    pub fn get(&self, counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Consume `stream` until it ends, `shutdown` is cancelled, or the stream fails in a way retrying
/// cannot fix (recorded in [`ConsumerStats::fatal`]).
pub async fn run(
    trigger: Arc<Trigger>,
    format: EventFormat,
    mut stream: Box<dyn EventStream>,
    config: ConsumerConfig,
    stats: Arc<ConsumerStats>,
    shutdown: CancellationToken,
) {
    let limit = config.concurrency.max(1);
    let mut tasks = JoinSet::new();
    loop {
        while tasks.len() >= limit {
            if let Some(Err(e)) = tasks.join_next().await {
                tracing::error!(error = %e, "event task failed");
            }
        }
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = stream.next() => next,
        };
        let message = match next {
            None => break,
            Some(Ok(m)) => m,
            Some(Err(e)) if !e.is_transient() => {
                stats.stream_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "receiving events failed for good; stopping");
                let _ = stats.fatal.set(e.to_string());
                break;
            }
            Some(Err(e)) => {
                stats.stream_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "receiving events failed; retrying");
                tokio::time::sleep(config.error_backoff).await;
                continue;
            }
        };
        stats.received.fetch_add(1, Ordering::Relaxed);
        let (trigger, stats, config) = (trigger.clone(), stats.clone(), config.clone());
        tasks.spawn(async move { handle(&trigger, format, message, &config, &stats).await });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            tracing::error!(error = %e, "event task failed");
        }
    }
}

async fn handle(
    trigger: &Trigger,
    format: EventFormat,
    message: RawMessage,
    config: &ConsumerConfig,
    stats: &ConsumerStats,
) {
    let report = trigger.process_body(format, &message.body).await;
    let (result, counter) = match report.disposition() {
        Disposition::Ack => (message.settle.ack().await, &stats.acked),
        Disposition::Retry => {
            tokio::time::sleep(config.retry_delay).await;
            (message.settle.requeue().await, &stats.requeued)
        }
        Disposition::Reject => (message.settle.reject().await, &stats.rejected),
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = result {
        // The broker redelivers an unsettled message; its events are then duplicates.
        tracing::warn!(error = %e, "settling the message failed");
    }
}

/// An in-process [`EventStream`] fed by a channel, for tests and embedding. Settlements are
/// reported on a second channel; a requeued message is fed back into the stream.
#[derive(Debug)]
pub struct ChannelStream {
    rx: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
    requeue: tokio::sync::mpsc::WeakUnboundedSender<Bytes>,
    settled: tokio::sync::mpsc::UnboundedSender<(Bytes, Disposition)>,
}

/// The feeding side of a [`ChannelStream`] and the receiver of its `(body, disposition)`
/// settlements (`Retry` stands for a requeue). The stream ends when `feed` is dropped.
#[derive(Debug)]
pub struct ChannelHandles {
    pub feed: tokio::sync::mpsc::UnboundedSender<Bytes>,
    pub settled: tokio::sync::mpsc::UnboundedReceiver<(Bytes, Disposition)>,
}

impl ChannelStream {
    pub fn new() -> (ChannelStream, ChannelHandles) {
        let (feed, rx) = tokio::sync::mpsc::unbounded_channel();
        let (settled, settled_rx) = tokio::sync::mpsc::unbounded_channel();
        let stream = ChannelStream {
            rx,
            requeue: feed.downgrade(),
            settled,
        };
        let handles = ChannelHandles {
            feed,
            settled: settled_rx,
        };
        (stream, handles)
    }
}

#[async_trait]
impl EventStream for ChannelStream {
    async fn next(&mut self) -> Option<Result<RawMessage, TransportError>> {
        let body = self.rx.recv().await?;
        Some(Ok(RawMessage {
            body: body.clone(),
            settle: Box::new(ChannelSettle {
                body,
                settled: self.settled.clone(),
                requeue: self.requeue.clone(),
            }),
        }))
    }
}

struct ChannelSettle {
    body: Bytes,
    settled: tokio::sync::mpsc::UnboundedSender<(Bytes, Disposition)>,
    requeue: tokio::sync::mpsc::WeakUnboundedSender<Bytes>,
}

#[async_trait]
impl Settle for ChannelSettle {
    async fn ack(self: Box<Self>) -> Result<(), TransportError> {
        let _ = self.settled.send((self.body, Disposition::Ack));
        Ok(())
    }
    async fn requeue(self: Box<Self>) -> Result<(), TransportError> {
        if let Some(tx) = self.requeue.upgrade() {
            let _ = tx.send(self.body.clone());
        }
        let _ = self.settled.send((self.body, Disposition::Retry));
        Ok(())
    }
    async fn reject(self: Box<Self>) -> Result<(), TransportError> {
        let _ = self.settled.send((self.body, Disposition::Reject));
        Ok(())
    }
}
