//! Helpers shared by the AMQP tests: page jobs, waiting for a delivery, per-test topology cleanup.

use folio_schemas::{EngineKind, JobOptions, PageJob};
use folio_test_support::services::{block_on_own_thread, delete_topology};
use folio_transport::{AmqpConfig, AmqpQueue, Delivery, ErrorKind, JobConsumer, JobQueue};
use std::time::Duration;

/// Deletes a test's exchanges and queues when dropped (also when the test panics).
pub struct Topology(pub AmqpConfig);

impl Drop for Topology {
    fn drop(&mut self) {
        block_on_own_thread(delete_topology(self.0.clone()));
    }
}

/// A queue under a topology prefix of its own (`adjust`ed), connected, with the guard that
/// deletes its topology; `None` when the broker is not configured (skipped).
pub async fn connected(
    tag: &str,
    adjust: impl FnOnce(&mut AmqpConfig),
) -> Option<(Topology, AmqpConfig, AmqpQueue)> {
    let mut cfg = crate::env::amqp(tag)?;
    adjust(&mut cfg);
    let cleanup = Topology(cfg.clone());
    let q = AmqpQueue::connect(cfg.clone()).await.expect("connect");
    Some((cleanup, cfg, q))
}

/// A publish while the broker is unreachable fails at once (under 2 s), as `Unavailable`.
pub async fn assert_publish_fails_fast(q: &AmqpQueue, job: &PageJob) {
    let started = std::time::Instant::now();
    let err = q.publish(job).await.expect_err("the broker is down");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(err.is_transient());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

pub fn job(doc: &str, page: u32, engine: EngineKind) -> PageJob {
    PageJob {
        schema_version: folio_schemas::SCHEMA_VERSION.into(),
        tenant: "t".into(),
        document_id: doc.into(),
        page,
        page_count: 1000,
        image_key: format!("t/docs/{doc}/pages/{page:05}.png"),
        options: JobOptions {
            engine,
            ..JobOptions::default()
        },
        dpi: Some(200),
        traceparent: None,
        submitted_at: "2026-01-01T00:00:00Z".into(),
    }
}

/// The next delivery within `secs`, which must be a decodable job.
pub async fn next(c: &mut Box<dyn JobConsumer>, secs: u64) -> Delivery {
    let item = tokio::time::timeout(Duration::from_secs(secs), c.next())
        .await
        .expect("a delivery in time")
        .expect("consumer open");
    item.expect("delivery, not an error")
}
