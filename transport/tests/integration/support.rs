//! Helpers shared by the AMQP tests: page jobs, waiting for a delivery, per-test topology cleanup.

use folio_schemas::{EngineKind, JobOptions, PageJob};
use folio_transport::{AmqpConfig, AmqpQueue, Delivery, JobConsumer};
use std::time::Duration;

/// Deletes a test's exchanges and queues when dropped (also when the test panics).
pub struct Topology(pub AmqpConfig);

impl Drop for Topology {
    fn drop(&mut self) {
        let cfg = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let q = AmqpQueue::new(cfg).ok()?;
                let deleted = q.delete_topology().await;
                q.close().await;
                deleted.ok()
            })
        })
        .join();
    }
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
