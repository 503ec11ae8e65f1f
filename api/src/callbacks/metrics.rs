//! Metrics of completion webhooks (Prometheus names).

/// Delivery attempts by outcome: `delivered`, `failed`, `refused`, `gave_up`.
pub fn delivery(outcome: &'static str) {
    metrics::counter!("folio_callback_deliveries_total", "outcome" => outcome).increment(1);
}
