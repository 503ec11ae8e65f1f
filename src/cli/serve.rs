//! `folio serve`: the upload API over RabbitMQ + S3 (routes in `folio_api::http`). With `--rules`
//! and a webhook secret it also serves the event webhooks (`/v1/events/s3`,
//! `/v1/events/seaweedfs`) as `folio trigger --listen` does; without, they answer 404
//! `events_disabled`. Every replica also delivers completion webhooks from the store's outbox
//! (`folio_api::callbacks`).

use super::render_pool::RenderPoolArgs;
use super::service::{service_ingestor, shutdown_signal, BrokerArgs, BucketArgs};
use super::trigger::{build_trigger, EventsArgs};
use super::{CliError, Exit};
use crate::runtime::RuntimeLayout;
use clap::Args;
use folio_api::callbacks::{CallbackConfig, Dispatcher};
use folio_api::events::EventsEndpoint;
use folio_api::http::links::LinkSigner;
use folio_api::http::{
    self, AllProbes, ApiKeys, AppState, ConfigError, ReadinessProbe, ServeConfig, StoreProbe,
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
    /// Secret that signs viewer links (`/v1/documents/{id}/view-link`): at least 32 bytes, the
    /// same on every instance behind one address. Unset: a random one, so links only work on
    /// this process until it restarts.
    #[arg(long, env = "FOLIO_VIEW_SECRET", hide_env_values = true)]
    view_secret: Option<String>,
    /// Default lifetime of viewer links, in seconds (at most 86400).
    #[arg(long, env = "FOLIO_VIEW_LINK_TTL_SECS", default_value_t = 900)]
    view_link_ttl_secs: u64,
    /// Engines that have workers (requests for others get 400).
    #[arg(long, value_delimiter = ',', default_value = "ocr")]
    engines: Vec<EngineKind>,
    /// Label metrics with tenant names (`FOLIO_METRICS_TENANT_LABELS=1`); off, `/metrics` carries
    /// no tenant name.
    #[arg(long, env = "FOLIO_METRICS_TENANT_LABELS", value_parser = clap::builder::BoolishValueParser::new())]
    metrics_tenant_labels: bool,
    #[command(flatten)]
    callbacks: CallbackArgs,
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    bucket: BucketArgs,
    #[command(flatten)]
    events: EventsArgs,
    #[command(flatten)]
    render: RenderPoolArgs,
}

/// Completion webhooks (`callback_url`): signing secrets, allowed networks, timings.
#[derive(Debug, Args)]
struct CallbackArgs {
    /// Callback signing secrets as comma-separated `tenant=secret` pairs (≥ 16 characters);
    /// a tenant without one cannot ask for callbacks.
    #[arg(
        long,
        env = "FOLIO_CALLBACK_SECRETS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    callback_secrets: Vec<String>,
    /// Networks or addresses callbacks may reach although they are not public (loopback,
    /// private, link-local), comma-separated: `127.0.0.1,10.0.0.0/8`.
    #[arg(long, env = "FOLIO_CALLBACK_ALLOW", value_delimiter = ',')]
    callback_allow: Vec<String>,
    /// Time limit of one delivery attempt.
    #[arg(long, env = "FOLIO_CALLBACK_TIMEOUT_SECS", default_value_t = 10)]
    callback_timeout_secs: u64,
    /// Wait after the first failed attempt (doubled after each, at most 10 minutes).
    #[arg(long, env = "FOLIO_CALLBACK_RETRY_SECS", default_value_t = 10)]
    callback_retry_secs: u64,
    /// No attempt starts later than this after the document ended.
    #[arg(long, env = "FOLIO_CALLBACK_GIVE_UP_SECS", default_value_t = 3600)]
    callback_give_up_secs: u64,
    /// How often the outbox of pending callbacks is read.
    #[arg(long, env = "FOLIO_CALLBACK_POLL_MS", default_value_t = 2000)]
    callback_poll_ms: u64,
}

impl CallbackArgs {
    fn config(&self) -> Result<CallbackConfig, CliError> {
        let mut config = CallbackConfig::default();
        for spec in &self.callback_secrets {
            config
                .insert_spec(spec)
                .map_err(|e| CliError::new(Exit::Usage, e))?;
        }
        config.allow =
            folio_api::callbacks::target::parse_allow(&self.callback_allow).map_err(|e| {
                CliError::new(Exit::Usage, anyhow::anyhow!("FOLIO_CALLBACK_ALLOW: {e}"))
            })?;
        config.timeout = Duration::from_secs(self.callback_timeout_secs);
        config.first_retry = Duration::from_secs(self.callback_retry_secs);
        config.give_up_after = Duration::from_secs(self.callback_give_up_secs);
        config.poll = Duration::from_millis(self.callback_poll_ms);
        Ok(config)
    }
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
    config.view_link_ttl = Duration::from_secs(args.view_link_ttl_secs);
    match &args.view_secret {
        Some(secret) => {
            config.view_links = LinkSigner::new(secret.as_bytes())
                .ok_or_else(|| CliError::new(Exit::Usage, ConfigError::ShortViewSecret))?;
        }
        None => tracing::warn!(
            "no --view-secret (FOLIO_VIEW_SECRET): viewer links are signed with a random key and work on this process only"
        ),
    }
    config.metrics_tenant_labels = args.metrics_tenant_labels;
    config.callbacks = args.callbacks.config()?;
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
        // Completion webhooks: this replica delivers from the store's outbox.
        let dispatcher = Dispatcher::new(store.clone(), config.callbacks.clone());
        let dispatching = tokio::spawn(dispatcher.run(shutdown.clone()));
        let state = AppState::new(config, store, queue, ingestor, readiness)
            .map_err(|e| CliError::new(Exit::Internal, e))?;
        http::serve(state, events, shutdown.clone())
            .await
            .map_err(|e| CliError::new(Exit::Internal, e))?;
        shutdown.cancel();
        let _ = dispatching.await;
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
