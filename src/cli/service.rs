//! Flags shared by the service subcommands (`serve`, `work`, `trigger`, `reprocess`): the broker and the
//! bucket. Raw clap flags (with `env`) here; `connect_*` turns them into the typed transport configs.
//! Also what those subcommands share to run: their ingestor and the shutdown signal.

use super::{CliError, Exit};
use crate::runtime::RuntimeLayout;
use clap::Args;
use folio_ingest::{IngestConfig, Ingestor};
use folio_transport::{AmqpConfig, AmqpQueue, ObjectStore, S3Config, S3Store};
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// RabbitMQ URL (`amqp://user:password@host:port/vhost`).
    #[arg(
        long,
        env = "FOLIO_AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Deliveries of a page job before it is dead-lettered (the queues' `x-delivery-limit`).
    #[arg(long, env = "FOLIO_DELIVERY_LIMIT", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub delivery_limit: u32,
    /// First segment of the page-job exchanges and queues (`{prefix}.pages.{engine}`); empty means
    /// the production names (`folio`). Set it only when several deployments (or tests) share a broker.
    #[arg(long, env = "FOLIO_AMQP_PREFIX", default_value = "")]
    pub amqp_prefix: String,
}

#[derive(Debug, Args)]
pub struct BucketArgs {
    /// S3 endpoint (for S3-compatible servers such as SeaweedFS or MinIO); AWS when absent.
    #[arg(long, env = "FOLIO_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Bucket that holds sources, page images and results.
    #[arg(long, env = "FOLIO_S3_BUCKET", default_value = "folio")]
    pub s3_bucket: String,
    #[arg(long, env = "FOLIO_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    #[arg(long, env = "FOLIO_S3_ACCESS_KEY", hide_env_values = true)]
    pub s3_access_key: String,
    #[arg(long, env = "FOLIO_S3_SECRET_KEY", hide_env_values = true)]
    pub s3_secret_key: String,
    /// Create the bucket at start when it does not exist (local and test deployments).
    #[arg(long)]
    pub s3_create_bucket: bool,
    /// Path-style addressing (needed by most S3-compatible servers).
    #[arg(long, env = "FOLIO_S3_PATH_STYLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub s3_path_style: bool,
}

impl BrokerArgs {
    pub fn config(&self) -> AmqpConfig {
        let mut cfg = AmqpConfig::new(self.amqp_url.clone());
        cfg.delivery_limit = self.delivery_limit;
        if !self.amqp_prefix.is_empty() {
            cfg.topology_prefix = self.amqp_prefix.clone();
        }
        cfg
    }

    pub async fn connect(&self) -> Result<Arc<AmqpQueue>, CliError> {
        let cfg = self.config();
        cfg.validate().map_err(|e| CliError::new(Exit::Usage, e))?;
        let queue = AmqpQueue::connect(cfg).await.map_err(|e| {
            CliError::new(
                Exit::Internal,
                anyhow::Error::new(e).context("connecting to RabbitMQ"),
            )
        })?;
        Ok(Arc::new(queue))
    }
}

impl BucketArgs {
    pub fn config(&self) -> S3Config {
        let mut cfg = S3Config::new(
            self.s3_endpoint.clone(),
            self.s3_bucket.clone(),
            self.s3_access_key.clone(),
            self.s3_secret_key.clone(),
        );
        cfg.region = self.s3_region.clone();
        cfg.path_style = self.s3_path_style;
        cfg.create_bucket = self.s3_create_bucket;
        cfg
    }

    pub async fn connect(&self) -> Result<Arc<dyn ObjectStore>, CliError> {
        let store = S3Store::connect(self.config()).await.map_err(|e| {
            CliError::new(
                Exit::Internal,
                anyhow::Error::new(e).context("connecting to S3"),
            )
        })?;
        Ok(Arc::new(store))
    }
}

/// The ingestor of the service subcommands: PDFium from the runtime folder, at most `max_pages`
/// pages a document, the other settings at their defaults.
pub fn service_ingestor(runtime: &RuntimeLayout, max_pages: u32) -> Ingestor {
    let mut cfg = IngestConfig::new(runtime.pdfium());
    cfg.max_pages = max_pages;
    Ingestor::new(cfg)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
