//! The job-queue trait: publish page jobs, consume them with manual settlement.
//!
//! A delivery must be settled exactly once: `ack` after the job's output is durable, `requeue` to try
//! again later (counts toward the queue's delivery limit), `dead_letter` to park it. A delivery dropped
//! without settlement goes back to the queue, as an unacked message does when a broker connection dies.

use crate::TransportError;
use async_trait::async_trait;
use folio_schemas::{EngineKind, PageJob};

#[async_trait]
pub trait JobQueue: Send + Sync + std::fmt::Debug {
    /// Publish one job; returns once the queue has taken responsibility for it (publisher confirm).
    async fn publish(&self, job: &PageJob) -> Result<(), TransportError>;

    /// Consume the queue of `engine`, holding at most `prefetch` unsettled deliveries.
    async fn consume(
        &self,
        engine: EngineKind,
        prefetch: u16,
    ) -> Result<Box<dyn JobConsumer>, TransportError>;
}

#[async_trait]
pub trait JobConsumer: Send {
    /// Wait for the next delivery. `None` when the consumer is closed.
    async fn next(&mut self) -> Option<Result<Delivery, TransportError>>;

    /// A delivery that is ready right now, without waiting (used to fill a batch).
    fn try_next(&mut self) -> Option<Delivery>;
}

/// Settles one delivery with the queue it came from.
#[async_trait]
pub trait Acker: Send + Sync {
    async fn ack(self: Box<Self>) -> Result<(), TransportError>;
    async fn requeue(self: Box<Self>) -> Result<(), TransportError>;
    async fn dead_letter(self: Box<Self>) -> Result<(), TransportError>;
    /// Park it with a reason the dead-letter queue keeps (see [`Delivery::dead_letter_because`]).
    async fn dead_letter_because(self: Box<Self>, reason: &str) -> Result<(), TransportError>;
}

/// One received message.
#[derive(custom_debug::Debug)]
pub struct Delivery {
    /// The job, or why the message body could not be decoded (a poison message).
    pub job: Result<PageJob, String>,
    /// How many times this message was delivered before (0 on the first delivery).
    pub redeliveries: u32,
    #[debug(skip)]
    acker: Box<dyn Acker>,
}

impl Delivery {
    pub fn new(job: Result<PageJob, String>, redeliveries: u32, acker: Box<dyn Acker>) -> Self {
        Delivery {
            job,
            redeliveries,
            acker,
        }
    }

    /// Attempts so far including this one.
    pub fn attempt(&self) -> u32 {
        self.redeliveries + 1
    }

    pub async fn ack(self) -> Result<(), TransportError> {
        self.acker.ack().await
    }

    pub async fn requeue(self) -> Result<(), TransportError> {
        self.acker.requeue().await
    }

    pub async fn dead_letter(self) -> Result<(), TransportError> {
        self.acker.dead_letter().await
    }

    /// Park the message in the dead-letter queue with `reason` (a short code such as
    /// `invalid_job`) kept beside it: on RabbitMQ the header `x-folio-reason`, where a plain
    /// [`Delivery::dead_letter`] only gets the broker's `x-first-death-reason: rejected`.
    pub async fn dead_letter_because(self, reason: &str) -> Result<(), TransportError> {
        self.acker.dead_letter_because(reason).await
    }
}
