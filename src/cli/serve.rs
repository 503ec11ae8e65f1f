//! `folio serve`: the upload API over RabbitMQ + S3 (routes in `folio_api::http`). With `--rules`
//! and a webhook secret it also serves the event webhooks (`/v1/events/s3`,
//! `/v1/events/seaweedfs`) as `folio trigger --listen` does; without, they answer 404
//! `events_disabled`.

use super::render_pool::RenderPoolArgs;
use super::service::{service_ingestor, shutdown_signal, BrokerArgs, BucketArgs};
use super::trigger::{build_trigger, EventsArgs};
use super::{CliError, Exit};
use crate::runtime::RuntimeLayout;
use clap::Args;
use folio_api::events::EventsEndpoint;
use folio_api::http::{
    self, AllProbes, ApiKeys, AppState, ReadinessProbe, ServeConfig, StoreProbe,
};
use folio_schemas::EngineKind;
use folio_transport::{AmqpQueue, JobQueue};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, env = "FOLIO_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// API keys as comma-separated `key=tenant` pairs.
    #[arg(
        long,
        env = "FOLIO_API_KEYS",
        hide_env_values = true,
        value_delimiter = ',',
        required = true
    )]
    api_keys: Vec<String>,
    /// Largest accepted upload in bytes.
    #[arg(long, env = "FOLIO_MAX_BODY_BYTES", default_value_t = 100 * 1024 * 1024)]
    max_body_bytes: u64,
    /// Most pages one document may have.
    #[arg(long, env = "FOLIO_MAX_PAGES", default_value_t = 2000)]
    max_pages: u32,
    /// Documents of one tenant being received or enqueued at once.
    #[arg(long, env = "FOLIO_MAX_IN_FLIGHT", default_value_t = 8)]
    max_in_flight: usize,
    /// Documents accepted but not yet fully enqueued, over all tenants; past it uploads wait
    /// (body unread) up to --admission-wait-secs, then get 503 `overloaded`.
    #[arg(long, env = "FOLIO_MAX_PENDING_DOCUMENTS", default_value_t = 32)]
    max_pending_documents: usize,
    #[arg(long, env = "FOLIO_ADMISSION_WAIT_SECS", default_value_t = 30)]
    admission_wait_secs: u64,
    /// Documents rasterized at once (one blocking thread each).
    #[arg(long, env = "FOLIO_MAX_RASTERIZATIONS", default_value_t = 2)]
    max_rasterizations: usize,
    /// Attempts to enqueue a document while the broker or store is out (waits 1, 2, 4 … 30 s).
    #[arg(long, env = "FOLIO_ENQUEUE_ATTEMPTS", default_value_t = 12)]
    enqueue_attempts: u32,
    #[arg(long, env = "FOLIO_REQUEST_TIMEOUT_SECS", default_value_t = 120)]
    request_timeout_secs: u64,
    /// Engines that have workers (requests for others get 400).
    #[arg(long, value_delimiter = ',', default_value = "ocr")]
    engines: Vec<EngineKind>,
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    bucket: BucketArgs,
    #[command(flatten)]
    events: EventsArgs,
    #[command(flatten)]
    render: RenderPoolArgs,
}

/// The broker is ready when its connection is up.
struct BrokerProbe(Arc<AmqpQueue>);

#[async_trait::async_trait]
impl ReadinessProbe for BrokerProbe {
    async fn check(&self) -> Result<(), String> {
        self.0
            .queue_depth(EngineKind::Ocr)
            .await
            .map(|_| ())
            .map_err(|e| format!("broker: {e}"))
    }
}

pub fn run(args: ServeArgs, runtime: &RuntimeLayout) -> Result<Exit, CliError> {
    runtime.check(&[runtime.pdfium()])?;
    let mut keys = ApiKeys::new();
    for spec in &args.api_keys {
        keys.insert_spec(spec)
            .map_err(|e| CliError::new(Exit::Usage, e))?;
    }
    let mut config = ServeConfig::new(args.listen, keys);
    config.max_body_bytes = args.max_body_bytes;
    config.max_pages_per_document = args.max_pages;
    config.max_in_flight_per_tenant = args.max_in_flight;
    config.request_timeout = Duration::from_secs(args.request_timeout_secs);
    config.max_pending_documents = args.max_pending_documents;
    config.admission_wait = Duration::from_secs(args.admission_wait_secs);
    config.max_concurrent_rasterizations = args.max_rasterizations;
    config.enqueue_attempts = args.enqueue_attempts;
    config.engines = args.engines.clone();
    config
        .validate()
        .map_err(|e| CliError::new(Exit::Usage, e))?;
    let ingestor = args
        .render
        .attach(service_ingestor(runtime, args.max_pages), runtime)?;
    let rules = events_rules(&args.events)?;

    let rt = super::ocr_engine::tokio_runtime()?;
    rt.block_on(async move {
        let amqp = args.broker.connect().await?;
        let store = args.bucket.connect().await?;
        let queue: Arc<dyn JobQueue> = amqp.clone();
        let events = match rules {
            Some(rules) => {
                let config = args.events.trigger_config(args.max_body_bytes);
                let trigger = build_trigger(
                    &args.bucket,
                    store.clone(),
                    queue.clone(),
                    ingestor.clone(),
                    rules,
                    config,
                );
                tracing::info!(rules = trigger.rules().rules.len(), buckets = ?trigger.rules().buckets(), "event webhooks on");
                Some(
                    EventsEndpoint::new(trigger, args.events.auth())
                        .map_err(|e| CliError::new(Exit::Usage, e))?,
                )
            }
            None => None,
        };
        let readiness: Arc<dyn ReadinessProbe> = Arc::new(AllProbes(vec![
            Arc::new(StoreProbe::new(store.clone())),
            Arc::new(BrokerProbe(amqp)),
        ]));
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            stop.cancel();
        });
        let state = AppState::new(config, store, queue, ingestor, readiness)
            .map_err(|e| CliError::new(Exit::Internal, e))?;
        http::serve(state, events, shutdown)
            .await
            .map_err(|e| CliError::new(Exit::Internal, e))?;
        Ok(Exit::Ok)
    })
}

/// The rules when the webhooks are configured: `--rules` with at least one of `--events-secret`
/// and `--seaweedfs-token`; neither is fine (webhooks off); one without the other is a usage error.
fn events_rules(events: &EventsArgs) -> Result<Option<folio_api::events::RuleSet>, CliError> {
    let secret = events.events_secret.is_some() || events.seaweedfs_token.is_some();
    match (&events.rules, secret) {
        (None, false) => Ok(None),
        (Some(_), true) => events.load_rules().map(Some),
        (Some(_), false) => Err(CliError::new(
            Exit::Usage,
            anyhow::anyhow!("--rules needs --events-secret or --seaweedfs-token: no webhook would be on"),
        )),
        (None, true) => Err(CliError::new(
            Exit::Usage,
            anyhow::anyhow!("--events-secret and --seaweedfs-token need --rules (which buckets go to which tenant)"),
        )),
    }
}
