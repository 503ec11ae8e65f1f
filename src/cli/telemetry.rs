//! Process-wide Prometheus recorder: every `metrics::` call in the libraries lands here.

use super::CliError;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Install the recorder (once per process) and return the handle that renders `/metrics`.
pub fn install_prometheus() -> Result<PrometheusHandle, CliError> {
    PrometheusBuilder::new().install_recorder().map_err(|e| {
        CliError::internal(anyhow::anyhow!("cannot install the metrics recorder: {e}"))
    })
}
