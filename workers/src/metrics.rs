//! Every metric the workers emit, declared in one place (Prometheus names).

use std::time::Duration;

/// Page outcomes: `ok`, `failed`, `retried`, `cancelled` (skipped: its document was cancelled).
pub fn page_finished(engine: &'static str, outcome: &'static str) {
    metrics::counter!("folio_pages_total", "engine" => engine, "outcome" => outcome).increment(1);
}

/// Time of the engine call for one page.
pub fn page_engine_time(engine: &'static str, elapsed: Duration) {
    metrics::histogram!("folio_page_engine_seconds", "engine" => engine)
        .record(elapsed.as_secs_f64());
}

/// Messages whose body was not a page job.
pub fn poison_message(engine: &'static str) {
    metrics::counter!("folio_poison_messages_total", "engine" => engine).increment(1);
}

pub fn document_assembled(engine: &'static str) {
    metrics::counter!("folio_documents_assembled_total", "engine" => engine).increment(1);
}

/// Page jobs dead-lettered as `invalid_job`, by the check they failed (see `job_check`; the
/// label set is fixed, never a tenant or document).
pub fn invalid_job(engine: &'static str, check: &'static str) {
    metrics::counter!("folio_invalid_jobs_total", "engine" => engine, "check" => check)
        .increment(1);
}
