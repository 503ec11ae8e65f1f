//! S3 bucket events → documents: the `folio trigger` consumer and the webhook routes.
//!
//! Two wire formats are understood and parsed into one [`ObjectEvent`]:
//! - [`aws`]: the AWS S3 event notification (`Records[]`), which AWS (through an SNS/SQS bridge),
//!   MinIO and Ceph publish to AMQP or webhooks; keys URL-decoded; `s3:TestEvent` ignored.
//! - [`seaweedfs`]: SeaweedFS's filer webhook; multipart parts under `/.uploads/`, folders and
//!   system paths ignored; `update` of a key handled as a new version.
//!
//! [`rules`] map bucket + prefix/suffix/content type to a tenant and job options. [`dedup`]
//! claims each object version once with a marker created by `If-None-Match: *`, so duplicated
//! events and several trigger instances process an object once. [`Trigger::submit_object`]
//! fetches the object and submits it through the upload path ([`crate::submit`]); objects Folio
//! cannot take get a [`records::Rejection`] instead of a retry loop. [`consumer`] runs the queue
//! loop, [`http`] the webhook handlers. Everything the triggers store is listed in [`records`].

pub mod amqp;
pub mod aws;
pub mod consumer;
pub mod dedup;
pub mod http;
pub mod metrics;
pub mod model;
pub mod process;
pub mod records;
pub mod rules;
pub mod seaweedfs;
pub mod sources;
pub mod trigger;

pub use consumer::{ConsumerConfig, ConsumerStats, EventStream, RawMessage, Settle};
pub use http::{events_router, EventsAuth, EventsEndpoint};
pub use model::{Change, EventFormat, Ignored, Notification, ObjectEvent, ParseError};
pub use process::{Disposition, Report};
pub use rules::{Rule, RuleSet};
pub use sources::{BucketFactory, LocalBuckets, SourceBuckets};
pub use trigger::{Outcome, Trigger, TriggerConfig, TriggerError};
