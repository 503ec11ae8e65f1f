//! `AppState`: what every handler shares — configuration, store, queue, ingestor, readiness
//! probe, the per-tenant in-flight counter, the rasterization semaphore and background tasks.

use crate::http::config::{ConfigError, ServeConfig};
use crate::http::metrics;
use crate::http::ops::ReadinessProbe;
use folio_ingest::{IngestConfig, Ingestor};
use folio_transport::{JobQueue, ObjectStore};
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

/// Shared state of the router. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: ServeConfig,
    store: Arc<dyn ObjectStore>,
    queue: Arc<dyn JobQueue>,
    ingestor: Ingestor,
    readiness: Arc<dyn ReadinessProbe>,
    in_flight: InFlight,
    rasterizations: Arc<Semaphore>,
    admission: Admission,
    background: TaskTracker,
    prometheus: PrometheusHandle,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.inner.config)
            .field("store", &self.inner.store)
            .field("queue", &self.inner.queue)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Validate `config` and build the state. The ingestor's page limit and default DPI are
    /// replaced by the configuration's (its render pool, if any, is kept). Installs the Prometheus recorder on first use.
    pub fn new(
        config: ServeConfig,
        store: Arc<dyn ObjectStore>,
        queue: Arc<dyn JobQueue>,
        ingestor: Ingestor,
        readiness: Arc<dyn ReadinessProbe>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let ingestor = ingestor.with_config(IngestConfig {
            max_pages: config.max_pages_per_document,
            dpi: config.default_dpi,
            ..ingestor.config().clone()
        });
        let in_flight = InFlight::new(
            config.max_in_flight_per_tenant,
            config.metrics_tenant_labels,
        );
        let rasterizations = Arc::new(Semaphore::new(config.max_concurrent_rasterizations));
        let admission = Admission::new(config.max_pending_documents);
        Ok(AppState {
            inner: Arc::new(Inner {
                config,
                store,
                queue,
                ingestor,
                readiness,
                in_flight,
                rasterizations,
                admission,
                background: TaskTracker::new(),
                prometheus: metrics::install(),
            }),
        })
    }

    pub fn config(&self) -> &ServeConfig {
        &self.inner.config
    }
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }
    pub fn queue(&self) -> &Arc<dyn JobQueue> {
        &self.inner.queue
    }
    pub fn ingestor(&self) -> &Ingestor {
        &self.inner.ingestor
    }
    pub fn readiness(&self) -> &Arc<dyn ReadinessProbe> {
        &self.inner.readiness
    }
    pub fn in_flight(&self) -> &InFlight {
        &self.inner.in_flight
    }
    pub(crate) fn rasterizations(&self) -> &Arc<Semaphore> {
        &self.inner.rasterizations
    }
    /// The bound on documents accepted but not yet enqueued.
    pub fn admission(&self) -> &Admission {
        &self.inner.admission
    }
    pub(crate) fn background(&self) -> &TaskTracker {
        &self.inner.background
    }
    pub(crate) fn prometheus(&self) -> &PrometheusHandle {
        &self.inner.prometheus
    }

    /// Wait until every background enqueue started so far has finished (shutdown, tests).
    pub async fn wait_background(&self) {
        self.inner.background.close();
        self.inner.background.wait().await;
        self.inner.background.reopen();
    }
}

/// Slots for documents accepted but not yet fully enqueued, over all tenants: taken before an
/// upload's body is read, given back when its background enqueueing ends.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    limit: usize,
}

/// One pending document's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct AdmissionSlot {
    permit: OwnedSemaphorePermit,
    limit: usize,
}

impl Drop for AdmissionSlot {
    fn drop(&mut self) {
        // The permit is released after this body; count it as released already.
        let pending = self.limit - self.permit.semaphore().available_permits() - 1;
        metrics::documents_pending(pending);
    }
}

impl Admission {
    fn new(limit: usize) -> Self {
        Admission {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// Wait up to `wait` for a slot; `None` when every slot stayed taken.
    pub async fn acquire(&self, wait: std::time::Duration) -> Option<AdmissionSlot> {
        let start = std::time::Instant::now();
        let permit = tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await;
        let waited = start.elapsed().as_secs_f64();
        match permit {
            // The semaphore is never closed.
            Ok(Ok(permit)) => {
                metrics::admission_wait("admitted", waited);
                metrics::documents_pending(self.pending());
                Some(AdmissionSlot {
                    permit,
                    limit: self.limit,
                })
            }
            Ok(Err(_)) | Err(_) => {
                metrics::admission_wait("overloaded", waited);
                None
            }
        }
    }

    /// Documents holding a slot now.
    pub fn pending(&self) -> usize {
        self.limit - self.slots.available_permits()
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Documents each tenant has in flight: from the start of the upload until its last page is
/// enqueued (or enqueueing gave up). Bounded per tenant by [`ServeConfig::max_in_flight_per_tenant`].
#[derive(Debug)]
pub struct InFlight {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    limit: usize,
    /// Whether the gauge is per tenant ([`crate::http::ServeConfig::metrics_tenant_labels`]);
    /// otherwise it is the total, without a tenant name.
    tenant_labels: bool,
}

impl InFlight {
    fn new(limit: usize, tenant_labels: bool) -> Self {
        InFlight {
            counts: Arc::new(Mutex::new(HashMap::new())),
            limit,
            tenant_labels,
        }
    }

    /// A slot for one more document of `tenant`, or `None` when the tenant is at its limit.
    pub fn try_acquire(&self, tenant: &str) -> Option<InFlightGuard> {
        let mut counts = lock(&self.counts);
        let count = counts.entry(tenant.to_string()).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        report(&counts, tenant, self.tenant_labels);
        Some(InFlightGuard {
            counts: self.counts.clone(),
            tenant: tenant.to_string(),
            tenant_labels: self.tenant_labels,
        })
    }

    /// Documents `tenant` has in flight now.
    pub fn count(&self, tenant: &str) -> usize {
        lock(&self.counts).get(tenant).copied().unwrap_or(0)
    }
}

/// Releases its tenant's slot when dropped.
#[derive(Debug)]
pub struct InFlightGuard {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    tenant: String,
    tenant_labels: bool,
}

/// The in-flight gauge after `tenant`'s count changed: that tenant's, or the total.
fn report(counts: &HashMap<String, usize>, tenant: &str, tenant_labels: bool) {
    if tenant_labels {
        metrics::documents_in_flight(Some(tenant), counts.get(tenant).copied().unwrap_or(0));
    } else {
        metrics::documents_in_flight(None, counts.values().sum());
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(count) = counts.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.tenant);
            }
            report(&counts, &self.tenant, self.tenant_labels);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters stay consistent even if a holder panicked (single increments/decrements).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_is_bounded_per_tenant_and_released_on_drop() {
        let f = InFlight::new(2, false);
        let a = f.try_acquire("a").unwrap();
        let _b = f.try_acquire("a").unwrap();
        assert!(f.try_acquire("a").is_none());
        let _other = f.try_acquire("b").unwrap();
        assert_eq!(f.count("a"), 2);
        drop(a);
        assert_eq!(f.count("a"), 1);
        assert!(f.try_acquire("a").is_some());
    }
}
