//! The RabbitMQ event queue as an [`EventStream`]: `folio trigger`'s production source.

use super::consumer::{EventStream, RawMessage, Settle};
use async_trait::async_trait;
use folio_transport::amqp_events::{AmqpEventsConsumer, RawDelivery};
use folio_transport::TransportError;

#[async_trait]
impl EventStream for AmqpEventsConsumer {
    async fn next(&mut self) -> Option<Result<RawMessage, TransportError>> {
        let delivery = AmqpEventsConsumer::next(self).await?;
        Some(delivery.map(|d| RawMessage {
            body: d.body.clone(),
            settle: Box::new(AmqpSettle(d)),
        }))
    }
}

struct AmqpSettle(RawDelivery);

#[async_trait]
impl Settle for AmqpSettle {
    async fn ack(self: Box<Self>) -> Result<(), TransportError> {
        self.0.ack().await
    }
    async fn requeue(self: Box<Self>) -> Result<(), TransportError> {
        self.0.requeue().await
    }
    async fn reject(self: Box<Self>) -> Result<(), TransportError> {
        self.0.reject().await
    }
}
