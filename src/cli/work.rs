//! `folio work --engine ocr|glm45v`: consume page jobs from RabbitMQ, run the engine, write results to S3.
//!
//! Serves `/healthz` (alive), `/readyz` (consuming, broker and store answering; see
//! [`super::work_health`]) and `/metrics` (Prometheus) on `--metrics-listen`.
//! SIGTERM: stop taking jobs, finish the pages in hand within `--shutdown-grace-secs`, exit; whatever
//! is unsettled returns to the queue by itself when the connection closes.

use super::service::{shutdown_signal, BrokerArgs, BucketArgs};
use super::{CliError, Exit};
use crate::runtime::RuntimeLayout;
use clap::Args;
use folio_schemas::EngineKind;
use folio_workers::{Worker, WorkerConfig};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub struct WorkArgs {
    /// Engine to run; the worker consumes that engine's queue.
    #[arg(long, env = "FOLIO_ENGINE", default_value = "ocr")]
    engine: EngineKind,
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    bucket: BucketArgs,
    /// Address of the health and metrics endpoints.
    #[arg(long, env = "FOLIO_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    metrics_listen: SocketAddr,
    /// On SIGTERM, how long the pages in hand may take before the worker exits anyway.
    #[arg(long, env = "FOLIO_SHUTDOWN_GRACE_SECS", default_value_t = 50)]
    shutdown_grace_secs: u64,
    /// Intra-op threads of the models (0 = all cores). With several workers on one machine, give
    /// each its share of the cores (ONNX Runtime's threads spin while they wait).
    #[arg(long, env = "FOLIO_THREADS", default_value_t = 0)]
    threads: usize,
    #[command(flatten)]
    glm: super::glm_engine::GlmArgs,
}

pub fn run(args: WorkArgs, runtime: &RuntimeLayout) -> Result<Exit, CliError> {
    let rt = match args.engine {
        EngineKind::Ocr => super::ocr_engine::ocr_tokio_runtime(runtime)?,
        EngineKind::Glm45v => super::ocr_engine::tokio_runtime()?,
    };
    rt.block_on(run_async(args, runtime))
}

async fn run_async(args: WorkArgs, runtime: &RuntimeLayout) -> Result<Exit, CliError> {
    let metrics = super::telemetry::install_prometheus()?;
    // The engine first: a bad model directory is reported before any connection is tried.
    let engine =
        super::ocr_engine::load_engine(args.engine, &args.glm, runtime, args.threads, false)
            .await?;
    let queue = args.broker.connect().await?;
    let store = args.bucket.connect().await?;
    let config = WorkerConfig {
        delivery_limit: args.broker.delivery_limit,
        ..WorkerConfig::default()
    };
    let running = Arc::new(AtomicBool::new(false));
    let readiness = super::work_health::Readiness {
        queue: queue.clone(),
        store: store.clone(),
        engine: args.engine,
        running: running.clone(),
    };
    let worker = Worker::new(store, queue, engine, config);
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .map_err(|e| {
            CliError::new(
                Exit::Usage,
                anyhow::anyhow!("cannot listen on {}: {e}", args.metrics_listen),
            )
        })?;
    tracing::info!(addr = %listener.local_addr().map_err(CliError::internal)?, "health and metrics endpoints");
    let health = {
        let app = super::work_health::router(readiness, metrics);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        })
    };

    let mut worker_task = {
        let shutdown = shutdown.clone();
        running.store(true, Ordering::SeqCst);
        tokio::spawn(async move { worker.run(shutdown).await })
    };
    eprintln!("folio work: consuming engine `{}`", args.engine);
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutdown requested; finishing the pages in hand"),
        ended = &mut worker_task => {
            // The loop only ends by itself when consuming failed for good.
            shutdown.cancel();
            let _ = health.await;
            return match ended {
                Ok(Ok(())) => Ok(Exit::Ok),
                Ok(Err(e)) => Err(CliError::internal(e)),
                Err(join) => Err(CliError::internal(join)),
            };
        }
    }
    running.store(false, Ordering::SeqCst);
    shutdown.cancel();
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    let outcome = match tokio::time::timeout(grace, worker_task).await {
        Ok(Ok(Ok(()))) => Exit::Ok,
        Ok(Ok(Err(e))) => return Err(CliError::internal(e)),
        Ok(Err(join)) => return Err(CliError::internal(join)),
        Err(_) => {
            tracing::warn!(
                "grace period over; exiting with work in hand (it returns to the queue)"
            );
            Exit::Ok
        }
    };
    let _ = health.await;
    Ok(outcome)
}
