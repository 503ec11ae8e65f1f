//! `folio trigger`: submit the objects that land in watched buckets.
//!
//! Consumes AWS-format S3 event notifications from the RabbitMQ queue `{prefix}.events` (what
//! MinIO and Ceph publish, and AWS through an SNS/SQS bridge) and, with `--listen`, also serves the
//! webhooks `POST /v1/events/s3` and `POST /v1/events/seaweedfs` with `/metrics` and `/healthz`.
//! Which buckets and prefixes belong to which tenant comes from the rules file (see
//! `folio_api::events::rules`). Runs until SIGTERM or Ctrl-C, then finishes the events in hand.
//!
//! Exit codes: 0 stopped by a signal; 1 broker, store or listener failure at start, or an event
//! queue that cannot be consumed (declared with other arguments, refused credentials); 2 bad flags or
//! rules file; 4 PDFium missing.

use super::service::{shutdown_signal, BrokerArgs, BucketArgs};
use super::{CliError, Exit};
use crate::runtime::RuntimeLayout;
use anyhow::Context;
use clap::Args;
use folio_api::events::consumer::{self, ConsumerConfig, ConsumerStats};
use folio_api::events::http::trigger_ops_router;
use folio_api::events::{
    events_router, BucketFactory, EventFormat, EventsAuth, EventsEndpoint, RuleSet, Trigger,
    TriggerConfig,
};
use folio_ingest::Ingestor;
use folio_transport::amqp_events::{AmqpEventsConfig, AmqpEventsConsumer};
use folio_transport::{JobQueue, ObjectStore, S3Store};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The rules and the webhook secrets, shared by `folio trigger` and `folio serve` (which serves
/// the webhooks on its own listener when `--rules` is given).
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Rules file (YAML or JSON): which bucket/prefix/suffix/content type goes to which tenant.
    #[arg(long, env = "FOLIO_TRIGGER_RULES", value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Shared secret of `POST /v1/events/s3` (header `X-Folio-Events-Secret`); the route is off without it.
    #[arg(long, env = "FOLIO_EVENTS_SECRET", hide_env_values = true)]
    pub events_secret: Option<String>,
    /// Bearer token of `POST /v1/events/seaweedfs` (`bearer_token` in SeaweedFS's notification.toml).
    #[arg(long, env = "FOLIO_SEAWEEDFS_TOKEN", hide_env_values = true)]
    pub seaweedfs_token: Option<String>,
    /// Seconds a dedup claim stays valid without renewal (a crashed holder's objects are taken over after it).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(3..=3600))]
    pub lease_secs: u64,
    /// SeaweedFS filer folder holding the buckets.
    #[arg(long, default_value = "/buckets")]
    pub seaweedfs_buckets_dir: String,
}

impl EventsArgs {
    /// The rules file's rules (`--rules` is then required).
    pub fn load_rules(&self) -> Result<RuleSet, CliError> {
        let path = self.rules.as_ref().ok_or_else(|| {
            CliError::new(Exit::Usage, anyhow::anyhow!("--rules FILE is required"))
        })?;
        RuleSet::load(path).map_err(|e| CliError::new(Exit::Usage, e))
    }

    pub fn auth(&self) -> EventsAuth {
        EventsAuth {
            s3_secret: self.events_secret.clone(),
            seaweedfs_token: self.seaweedfs_token.clone(),
            respond_within: Duration::ZERO,
        }
    }

    pub fn trigger_config(&self, max_object_bytes: u64) -> TriggerConfig {
        TriggerConfig {
            max_object_bytes,
            lease: Duration::from_secs(self.lease_secs),
            seaweedfs_buckets_dir: self.seaweedfs_buckets_dir.clone(),
            ..TriggerConfig::default()
        }
    }
}

/// A trigger on Folio's `store` and `queue` that opens the watched buckets with `bucket`'s
/// endpoint and credentials.
pub fn build_trigger(
    bucket: &BucketArgs,
    store: Arc<dyn ObjectStore>,
    queue: Arc<dyn JobQueue>,
    ingestor: Ingestor,
    rules: RuleSet,
    config: TriggerConfig,
) -> Arc<Trigger> {
    let source_config = bucket.config();
    let sources = Arc::new(BucketFactory::new(move |name: &str| {
        let mut cfg = source_config.clone();
        cfg.bucket = name.to_string();
        cfg.create_bucket = false;
        S3Store::new(cfg).map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
    }));
    Arc::new(Trigger::new(store, queue, ingestor, sources, rules, config))
}

#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// Also serve the webhooks (`/v1/events/s3`, `/v1/events/seaweedfs`), `/metrics` and
    /// `/healthz` here; port 0 picks one (printed on stdout).
    #[arg(long, env = "FOLIO_TRIGGER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Do not consume the AMQP event queue (webhooks only).
    #[arg(long)]
    no_amqp: bool,
    /// RabbitMQ URL of the event queue, when not the page-job broker's.
    #[arg(long, env = "FOLIO_EVENTS_AMQP_URL", hide_env_values = true)]
    events_amqp_url: Option<String>,
    /// First segment of the event exchange and queues (`{prefix}.events`, `{prefix}.events.dead`).
    #[arg(long, env = "FOLIO_EVENTS_PREFIX", default_value = "folio")]
    events_prefix: String,
    /// Deliveries of an event message before it is dead-lettered (the queue's `x-delivery-limit`).
    #[arg(long, env = "FOLIO_EVENTS_DELIVERY_LIMIT", default_value_t = 20)]
    events_delivery_limit: u32,
    /// Event messages processed at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Largest object accepted, in bytes (the upload API's limit).
    #[arg(long, env = "FOLIO_MAX_BODY_BYTES", default_value_t = 100 * 1024 * 1024)]
    max_object_bytes: u64,
    /// Most pages one document may have (the upload API's limit).
    #[arg(long, env = "FOLIO_MAX_PAGES", default_value_t = 2000)]
    max_pages: u32,
    #[command(flatten)]
    events: EventsArgs,
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    bucket: BucketArgs,
    #[command(flatten)]
    render: super::render_pool::RenderPoolArgs,
}

pub fn run(args: TriggerArgs, runtime: &RuntimeLayout) -> Result<Exit, CliError> {
    runtime.check(&[runtime.pdfium()])?;
    let usage = |e: anyhow::Error| CliError::new(Exit::Usage, e);
    let rules = args.events.load_rules()?;
    if args.no_amqp && args.listen.is_none() {
        return Err(usage(anyhow::anyhow!(
            "--no-amqp needs --listen: there would be nothing to receive events from"
        )));
    }
    let mut events = AmqpEventsConfig::new(
        args.events_amqp_url
            .clone()
            .unwrap_or_else(|| args.broker.amqp_url.clone()),
    )
    .with_prefix(&args.events_prefix);
    events.delivery_limit = args.events_delivery_limit;
    events.prefetch = args.concurrency;
    events.validate().map_err(|e| usage(e.into()))?;
    let auth = args.events.auth();
    let config = args.events.trigger_config(args.max_object_bytes);
    let ingestor = args.render.attach(
        super::service::service_ingestor(runtime, args.max_pages),
        runtime,
    )?;

    let rt = super::ocr_engine::tokio_runtime()?;
    rt.block_on(async move {
        let amqp = args.broker.connect().await?;
        let store = args.bucket.connect().await?;
        let queue: Arc<dyn JobQueue> = amqp.clone();
        let trigger = build_trigger(&args.bucket, store, queue, ingestor, rules, config);
        tracing::info!(rules = trigger.rules().rules.len(), buckets = ?trigger.rules().buckets(), "trigger starting");
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            stop.cancel();
        });
        let endpoint = EventsEndpoint::new(trigger.clone(), auth).map_err(|e| usage(e.into()))?;
        let http = match args.listen {
            Some(addr) => Some(serve_webhooks(addr, endpoint.clone(), shutdown.clone()).await?),
            None => None,
        };
        let stats = Arc::new(ConsumerStats::default());
        if !args.no_amqp {
            let stream = AmqpEventsConsumer::start(events).map_err(|e| usage(e.into()))?;
            let cfg = ConsumerConfig {
                concurrency: usize::from(args.concurrency),
                ..ConsumerConfig::default()
            };
            consumer::run(
                trigger,
                EventFormat::Aws,
                Box::new(stream),
                cfg,
                stats.clone(),
                shutdown.clone(),
            )
            .await;
            // The consumer stops on its own only for good: take the webhooks down with it.
            shutdown.cancel();
        } else {
            shutdown.cancelled().await;
        }
        if let Some(server) = http {
            let _ = server.await;
        }
        // Webhook events that outlived their request finish before the process ends.
        if tokio::time::timeout(Duration::from_secs(30), endpoint.wait_background())
            .await
            .is_err()
        {
            tracing::warn!("webhook events still in progress at exit; their claims expire with the lease");
        }
        eprintln!(
            "folio trigger: stopped ({} messages: {} acked, {} requeued, {} dead-lettered)",
            stats.get(&stats.received),
            stats.get(&stats.acked),
            stats.get(&stats.requeued),
            stats.get(&stats.rejected)
        );
        match stats.fatal.get() {
            Some(reason) => Err(CliError::internal(anyhow::anyhow!(
                "the event queue cannot be consumed: {reason}"
            ))),
            None => Ok(Exit::Ok),
        }
    })
}

/// Bind and serve the webhook and ops routes in the background until `shutdown`.
async fn serve_webhooks(
    addr: SocketAddr,
    endpoint: EventsEndpoint,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, CliError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
        .map_err(CliError::internal)?;
    let local = listener.local_addr().map_err(CliError::internal)?;
    println!("folio trigger: listening on http://{local}");
    let app = events_router(endpoint).merge(trigger_ops_router());
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "the webhook server failed");
        }
    }))
}
