//! Command-line interface: flags (clap, with `env`) and dispatch to one module per subcommand.

mod ask;
mod exit;
mod files;
mod gc;
mod glm_engine;
mod ocr_engine;
mod parse;
mod render;
mod render_pool;
mod reprocess;
mod serve;
mod service;
mod submit;
mod telemetry;
mod trigger;
mod work;
mod work_health;

pub use exit::{CliError, Exit};

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "folio",
    version,
    about = "Scanned PDFs and images to structured JSON and Markdown"
)]
pub struct Cli {
    /// Folder holding the native libraries and models fetched by `scripts/setup`.
    #[arg(long, global = true, env = "FOLIO_RUNTIME_DIR", value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,

    /// More logging (-v: debug, -vv: trace). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask GLM-4.5V about images: `--model DIR IMAGE... "prompt"` (answer, reasoning, boxes).
    Ask(ask::AskArgs),
    /// Parse documents on this machine (no broker, no S3): FILE... to DIR/<stem>/document.{json,md,html}.
    Parse(parse::ParseArgs),
    /// Rasterize a document's pages to PNG files DIR/00001.png… (what the service stores per page).
    Render(render::RenderArgs),
    /// Run the upload API: store documents in S3, enqueue one job per page on RabbitMQ.
    Serve(serve::ServeArgs),
    /// Upload documents to a `folio serve`; with --wait, follow them and write their results.
    Submit(submit::SubmitArgs),
    /// Run a worker: consume page jobs from RabbitMQ, run the engine, write results to S3.
    Work(work::WorkArgs),
    /// Submit objects that land in watched buckets (S3 events from RabbitMQ and webhooks).
    Trigger(trigger::TriggerArgs),
    /// Process a whole prefix again (new engine or profile), resumably: s3://BUCKET/PREFIX.
    Reprocess(reprocess::ReprocessArgs),
    /// Delete documents older than the retention (--days / FOLIO_RETENTION_DAYS); --dry-run lists them.
    Gc(gc::GcArgs),
    /// A render process of the pool (started by `serve` and `parse`, not by hand).
    #[command(name = "__render", hide = true)]
    RenderProcess(render_pool::RenderChildArgs),
}

pub fn run(cli: Cli) -> Result<Exit, CliError> {
    let runtime = crate::runtime::RuntimeLayout::new(cli.runtime_dir);
    match cli.command {
        Command::Ask(args) => ask::run(args, &runtime),
        Command::Parse(args) => parse::run(args, &runtime),
        Command::Render(args) => render::run(args, &runtime),
        Command::Serve(args) => serve::run(args, &runtime),
        Command::Submit(args) => submit::run(args),
        Command::Work(args) => work::run(args, &runtime),
        Command::Trigger(args) => trigger::run(args, &runtime),
        Command::Reprocess(args) => reprocess::run(args, &runtime),
        Command::Gc(args) => gc::run(args),
        Command::RenderProcess(args) => render_pool::run_render_child(args),
    }
}

pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,ort=warn",
        2 => "debug,ort=warn",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
