//! RabbitMQ as the job queue (lapin on tokio).
//!
//! Topology (names in [`AmqpConfig`]'s docs), declared idempotently on every (re)connection: a
//! durable direct exchange `{prefix}.pages` routes each job by engine name to the quorum queue
//! `{prefix}.pages.{engine}`, whose `x-delivery-limit` sends a message returned too often to the
//! dead-letter exchange `{prefix}.dead` and from there to `{prefix}.pages.{engine}.dead`.
//!
//! Publishing: JSON body, `content_type: application/json`, persistent (`delivery_mode` 2), message
//! id `{document_id}:{page}`, `mandatory` (an unroutable job is an error, not a silent drop), and
//! every publish awaits its publisher confirm. Consuming: one channel per consumer with
//! `basic_qos(prefetch)` and manual acks; `requeue` is `nack(requeue)`, `dead_letter` is
//! `reject(no requeue)`; `Delivery::redeliveries` comes from the quorum queue's `x-delivery-count`.
//!
//! With `x-delivery-limit = N` a message is delivered at most `N + 1` times: the broker counts
//! returns (requeues and deliveries unacked when a consumer's channel died), and dead-letters the
//! message when a return would make that count exceed `N`.
//!
//! Outages: see [`session`] (reconnection, fail-fast publishing) and [`consumer`] (resubscription).
//!
//! `backoff`, `errors`, `wire` and URL redaction serve the event consumer
//! (`crate::amqp_events`) too: one reconnection policy, one error mapping, one way to settle.

pub(crate) mod backoff;
mod config;
mod consumer;
mod dead_letter;
pub(crate) mod errors;
mod publish;
mod session;
pub(crate) mod wire;

pub use config::AmqpConfig;
pub(crate) use config::{check_connection, debug_url, redact_url};
pub use dead_letter::{DeadLetter, REASON_HEADER};

use crate::queue::{JobConsumer, JobQueue};
use crate::{ErrorKind, TransportError};
use async_trait::async_trait;
use errors::timed_out;
use folio_schemas::{EngineKind, PageJob};
use lapin::BasicProperties;
use session::Link;
use std::sync::Arc;
use tokio::sync::watch;
use wire::{delete_all, open_channel, ready_messages, short};

/// A RabbitMQ-backed [`JobQueue`]. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct AmqpQueue {
    link: Arc<Link>,
    shutdown: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for AmqpQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpQueue")
            .field("config", &self.link.config)
            .field("connected", &self.link.is_connected())
            .finish()
    }
}

impl AmqpQueue {
    /// A queue that connects on first use (no I/O here). Fails only on an invalid configuration.
    pub fn new(config: AmqpConfig) -> Result<Self, TransportError> {
        config.validate()?;
        Ok(AmqpQueue {
            link: Arc::new(Link::new(config)),
            shutdown: Arc::new(watch::channel(false).0),
        })
    }

    /// Connect now and declare the topology; fails with `Unavailable` when the broker is down.
    pub async fn connect(config: AmqpConfig) -> Result<Self, TransportError> {
        let queue = Self::new(config)?;
        queue.link.try_session().await.map_err(|no| no.error)?;
        Ok(queue)
    }

    pub fn config(&self) -> &AmqpConfig {
        &self.link.config
    }

    /// Whether the connection is up right now (for readiness probes; never connects).
    pub fn is_connected(&self) -> bool {
        self.link.is_connected()
    }

    /// Whether at least one consumer of this queue is subscribed right now (for a worker's
    /// readiness: connected, topology declared, `basic.consume` answered, not lost since).
    pub fn is_consuming(&self) -> bool {
        self.link
            .consumers
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
    }

    /// Ready messages in the engine's queue (passive declare; unacked deliveries are not counted).
    pub async fn queue_depth(&self, engine: EngineKind) -> Result<u32, TransportError> {
        self.depth(&self.link.config.queue(engine)).await
    }

    /// Ready messages in the engine's dead-letter queue.
    pub async fn dead_letter_depth(&self, engine: EngineKind) -> Result<u32, TransportError> {
        self.depth(&self.link.config.dead_queue(engine)).await
    }

    async fn depth(&self, queue: &str) -> Result<u32, TransportError> {
        let session = self.link.try_session().await.map_err(|no| no.error)?;
        let timeout = self.link.config.publish_timeout;
        let work = async {
            // A passive declare of a missing queue closes its channel: use a throwaway one.
            let channel = open_channel(&session.connection, "a channel", false).await?;
            let ready = ready_messages(&channel, queue).await;
            if channel.status().connected() {
                let _ = channel.close(200, "depth read".into()).await;
            }
            ready
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| timed_out(format!("reading the depth of {queue}"), timeout))?
    }

    /// Up to `max` messages of the engine's dead-letter queue, each with why it is there; they
    /// stay in the queue (read, then returned). For operators' tools and tests.
    pub async fn peek_dead_letters(
        &self,
        engine: EngineKind,
        max: usize,
    ) -> Result<Vec<DeadLetter>, TransportError> {
        dead_letter::peek(&self.link, engine, max).await
    }

    /// Delete this prefix's exchanges and queues (with their messages). For tests and tooling;
    /// running workers would recreate them on their next reconnection.
    pub async fn delete_topology(&self) -> Result<(), TransportError> {
        let cfg = &self.link.config;
        let session = self.link.try_session().await.map_err(|no| no.error)?;
        let channel = open_channel(&session.connection, "a channel", false).await?;
        let queues: Vec<String> = cfg
            .engines
            .iter()
            .flat_map(|engine| [cfg.queue(*engine), cfg.dead_queue(*engine)])
            .collect();
        delete_all(&channel, &queues, &[cfg.exchange(), cfg.dead_exchange()]).await?;
        let _ = channel.close(200, "topology deleted".into()).await;
        Ok(())
    }

    /// Stop every consumer of this queue (their `next()` returns `None`) and close the connection.
    /// A later publish or depth read connects again.
    pub async fn close(&self) {
        self.shutdown.send_replace(true);
        self.link.close().await;
    }
}

#[async_trait]
impl JobQueue for AmqpQueue {
    async fn publish(&self, job: &PageJob) -> Result<(), TransportError> {
        let body = serde_json::to_vec(job).map_err(|e| {
            TransportError::with_source(ErrorKind::Invalid, "encoding the page job", e)
        })?;
        let cfg = &self.link.config;
        let engine = job.options.engine;
        let message_id = format!("{}:{}", job.document_id, job.page);
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(short(&message_id)?);
        publish::confirmed(
            &self.link,
            &cfg.exchange(),
            engine.as_str(),
            &body,
            properties,
            &format!("job {message_id}"),
        )
        .await
    }

    async fn consume(
        &self,
        engine: EngineKind,
        prefetch: u16,
    ) -> Result<Box<dyn JobConsumer>, TransportError> {
        Ok(Box::new(consumer::AmqpConsumer::start(
            self.link.clone(),
            engine,
            prefetch,
            self.shutdown.subscribe(),
        )))
    }
}
