//! An in-process job queue with the broker semantics workers rely on.
//!
//! One FIFO per engine; a consumer holds at most `prefetch` unsettled deliveries; `requeue` puts the
//! job back at the tail with its redelivery count raised; past `delivery_limit` deliveries a requeued
//! job is dead-lettered instead (kept in a list for inspection, with why: `delivery_limit`,
//! `rejected`, or the reason given to `dead_letter_because`). A delivery dropped unsettled is
//! requeued, as a broker does for a dead consumer. Used by embedded mode (`folio parse`) and tests.

use crate::queue::{Acker, Delivery, JobConsumer, JobQueue};
use crate::TransportError;
use async_trait::async_trait;
use folio_schemas::{EngineKind, PageJob};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Default)]
struct EngineQueue {
    ready: VecDeque<(PageJob, u32)>,
    dead: Vec<(PageJob, String)>,
}

#[derive(Debug)]
struct Shared {
    queues: Mutex<HashMap<EngineKind, EngineQueue>>,
    notify: Notify,
    delivery_limit: u32,
    closed: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<EngineKind, EngineQueue>> {
        // A panic while holding this lock cannot leave the maps inconsistent (single push/pop).
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn return_job(&self, engine: EngineKind, job: PageJob, redeliveries: u32) {
        let mut queues = self.lock();
        let q = queues.entry(engine).or_default();
        if redeliveries + 1 >= self.delivery_limit {
            tracing::warn!(document_id = %job.document_id, page = job.page, "delivery limit reached; dead-lettered");
            q.dead.push((job, "delivery_limit".into()));
        } else {
            q.ready.push_back((job, redeliveries + 1));
        }
        drop(queues);
        self.notify.notify_waiters();
    }
}

/// See the module docs. Cheap to clone; clones share the queues.
#[derive(Debug, Clone)]
pub struct InProcessQueue {
    shared: Arc<Shared>,
}

impl InProcessQueue {
    /// `delivery_limit`: deliveries after which a requeued job is dead-lettered (≥ 1).
    pub fn new(delivery_limit: u32) -> Self {
        InProcessQueue {
            shared: Arc::new(Shared {
                queues: Mutex::new(HashMap::new()),
                notify: Notify::new(),
                delivery_limit: delivery_limit.max(1),
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Jobs waiting for a consumer.
    pub fn ready_len(&self, engine: EngineKind) -> usize {
        self.shared.lock().get(&engine).map_or(0, |q| q.ready.len())
    }

    /// Jobs that were dead-lettered.
    pub fn dead_letters(&self, engine: EngineKind) -> Vec<PageJob> {
        self.dead_letter_reasons(engine)
            .into_iter()
            .map(|(job, _)| job)
            .collect()
    }

    /// Jobs that were dead-lettered, each with why.
    pub fn dead_letter_reasons(&self, engine: EngineKind) -> Vec<(PageJob, String)> {
        self.shared
            .lock()
            .get(&engine)
            .map_or_else(Vec::new, |q| q.dead.clone())
    }

    /// Stop every consumer: their `next()` returns `None` from now on.
    pub fn close(&self) {
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.notify.notify_waiters();
    }
}

#[async_trait]
impl JobQueue for InProcessQueue {
    async fn publish(&self, job: &PageJob) -> Result<(), TransportError> {
        let engine = job.options.engine;
        self.shared
            .lock()
            .entry(engine)
            .or_default()
            .ready
            .push_back((job.clone(), 0));
        self.shared.notify.notify_waiters();
        Ok(())
    }

    async fn consume(
        &self,
        engine: EngineKind,
        prefetch: u16,
    ) -> Result<Box<dyn JobConsumer>, TransportError> {
        Ok(Box::new(MemoryConsumer {
            shared: self.shared.clone(),
            engine,
            permits: Arc::new(Semaphore::new(usize::from(prefetch.max(1)))),
        }))
    }
}

struct MemoryConsumer {
    shared: Arc<Shared>,
    engine: EngineKind,
    permits: Arc<Semaphore>,
}

impl MemoryConsumer {
    fn take(&self, permit: OwnedSemaphorePermit) -> Result<Delivery, OwnedSemaphorePermit> {
        let popped = self
            .shared
            .lock()
            .get_mut(&self.engine)
            .and_then(|q| q.ready.pop_front());
        match popped {
            Some((job, redeliveries)) => {
                let acker = MemoryAcker {
                    shared: self.shared.clone(),
                    engine: self.engine,
                    job: Some((job.clone(), redeliveries)),
                    _permit: permit,
                };
                Ok(Delivery::new(Ok(job), redeliveries, Box::new(acker)))
            }
            None => Err(permit),
        }
    }

    fn is_closed(&self) -> bool {
        self.shared.closed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl JobConsumer for MemoryConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, TransportError>> {
        let mut permit = self.permits.clone().acquire_owned().await.ok()?;
        loop {
            // Register interest before checking, so a publish in between is not missed.
            let notified = self.shared.notify.notified();
            if self.is_closed() {
                return None;
            }
            match self.take(permit) {
                Ok(delivery) => return Some(Ok(delivery)),
                Err(p) => permit = p,
            }
            notified.await;
        }
    }

    fn try_next(&mut self) -> Option<Delivery> {
        if self.is_closed() {
            return None;
        }
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        self.take(permit).ok()
    }
}

struct MemoryAcker {
    shared: Arc<Shared>,
    engine: EngineKind,
    /// `Some` until settled; an unsettled acker requeues on drop.
    job: Option<(PageJob, u32)>,
    _permit: OwnedSemaphorePermit,
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), TransportError> {
        self.job = None;
        Ok(())
    }

    async fn requeue(mut self: Box<Self>) -> Result<(), TransportError> {
        if let Some((job, redeliveries)) = self.job.take() {
            self.shared.return_job(self.engine, job, redeliveries);
        }
        Ok(())
    }

    async fn dead_letter(self: Box<Self>) -> Result<(), TransportError> {
        self.dead_letter_because("rejected").await
    }

    async fn dead_letter_because(mut self: Box<Self>, reason: &str) -> Result<(), TransportError> {
        if let Some((job, _)) = self.job.take() {
            self.shared
                .lock()
                .entry(self.engine)
                .or_default()
                .dead
                .push((job, reason.to_string()));
        }
        Ok(())
    }
}

impl Drop for MemoryAcker {
    fn drop(&mut self) {
        if let Some((job, redeliveries)) = self.job.take() {
            self.shared.return_job(self.engine, job, redeliveries);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use folio_schemas::JobOptions;

    fn job(page: u32) -> PageJob {
        PageJob {
            schema_version: folio_schemas::SCHEMA_VERSION.into(),
            tenant: "t".into(),
            document_id: "d".into(),
            page,
            page_count: 3,
            image_key: format!("t/docs/d/pages/{page:05}.png"),
            options: JobOptions::default(),
            dpi: Some(200),
            traceparent: None,
            submitted_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn fifo_ack_and_prefetch() {
        let q = InProcessQueue::new(5);
        for p in 1..=3 {
            q.publish(&job(p)).await.unwrap();
        }
        let mut c = q.consume(EngineKind::Ocr, 2).await.unwrap();
        let a = c.next().await.unwrap().unwrap();
        let b = c.try_next().unwrap();
        assert!(
            c.try_next().is_none(),
            "prefetch 2 must hold back the third job"
        );
        assert_eq!(a.job.as_ref().unwrap().page, 1);
        assert_eq!(b.job.as_ref().unwrap().page, 2);
        a.ack().await.unwrap();
        let third = c.try_next().unwrap();
        assert_eq!(third.job.as_ref().unwrap().page, 3);
        b.ack().await.unwrap();
        third.ack().await.unwrap();
        assert_eq!(q.ready_len(EngineKind::Ocr), 0);
    }

    #[tokio::test]
    async fn dropped_delivery_is_redelivered_then_dead_lettered() {
        let q = InProcessQueue::new(3);
        q.publish(&job(1)).await.unwrap();
        let mut c = q.consume(EngineKind::Ocr, 1).await.unwrap();
        for expected in 0..3 {
            let d = c.try_next().expect("redelivered");
            assert_eq!(d.redeliveries, expected);
            drop(d); // a crashed worker: never settled
        }
        assert!(c.try_next().is_none());
        assert_eq!(q.dead_letters(EngineKind::Ocr).len(), 1);
        assert_eq!(
            q.dead_letter_reasons(EngineKind::Ocr)[0].1,
            "delivery_limit"
        );
    }

    #[tokio::test]
    async fn dead_letters_keep_their_reason() {
        let q = InProcessQueue::new(3);
        q.publish(&job(1)).await.unwrap();
        q.publish(&job(2)).await.unwrap();
        let mut c = q.consume(EngineKind::Ocr, 2).await.unwrap();
        c.try_next().unwrap().dead_letter().await.unwrap();
        let d = c.try_next().unwrap();
        d.dead_letter_because("invalid_job").await.unwrap();
        let reasons: Vec<(u32, String)> = q
            .dead_letter_reasons(EngineKind::Ocr)
            .into_iter()
            .map(|(j, r)| (j.page, r))
            .collect();
        assert_eq!(
            reasons,
            [(1, "rejected".to_string()), (2, "invalid_job".to_string())]
        );
    }

    #[tokio::test]
    async fn close_ends_waiting_consumers() {
        let q = InProcessQueue::new(3);
        let mut c = q.consume(EngineKind::Ocr, 1).await.unwrap();
        let waiter = tokio::spawn(async move { c.next().await.is_none() });
        tokio::task::yield_now().await;
        q.close();
        assert!(waiter.await.unwrap());
    }
}
