//! Folio's transport: the job queue and the object store behind two small traits.
//!
//! Only this crate names broker or storage client types. Implementations:
//! - [`LocalDirStore`]: a local directory as the bucket (embedded mode, tests).
//! - [`InProcessQueue`]: an in-process queue with the broker's semantics that matter to workers
//!   (manual ack, redelivery on retry, a delivery limit with a dead-letter list).
//!
//! Delivery is at-least-once: a job is removed only when its consumer acks it, and consumers ack only
//! after their output is durable. Consumers therefore write to deterministic keys, so that a
//! redelivered job overwrites the same object instead of producing a duplicate.

pub mod amqp;
pub mod amqp_events;
pub mod error;
pub mod local_store;
mod local_writer;
pub mod memory_queue;
pub mod queue;
pub mod s3;
pub mod store;

pub use amqp::{AmqpConfig, AmqpQueue};
pub use error::{ErrorKind, TransportError};
pub use local_store::LocalDirStore;
pub use memory_queue::InProcessQueue;
pub use queue::{Acker, Delivery, JobConsumer, JobQueue};
pub use s3::{S3Config, S3Store};
pub use store::{valid_document_id, valid_tenant, ObjectStore, ObjectWriter};
