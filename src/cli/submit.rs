//! `folio submit FILE... --server URL [--api-key K] [--wait] [-o DIR]`: the API's client. Uploads
//! each file to a `folio serve` and prints its document id; with `--wait` (or `-o`) follows each
//! document with a progress bar (pages done / total) and writes its results in `folio parse`'s
//! layout (`DIR/<stem>/document.json`, `pages/`, `document.md`, `document.html`). Exit codes
//! as `folio parse`: 0 ok, 1 internal, 2 usage (or the key refused), 3 a file refused or a page
//! failed, and 5 when the server cannot be reached or is unavailable.

mod client;
mod progress;

use super::files::{
    output_dir, read_input, report_partial, worst, write_outputs, OutputFormat, RecordSource,
};
use super::{CliError, Exit};
use clap::Args;
use client::ApiClient;
use folio_schemas::{DocumentResult, DocumentStatus};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::Instrument;

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// PDFs or images (PNG, JPEG, TIFF, WebP, BMP).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The API's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "FOLIO_SERVER", value_name = "URL")]
    server: String,
    /// API key (sent as `Authorization: Bearer`).
    #[arg(
        long,
        env = "FOLIO_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    api_key: Option<String>,
    /// Wait for every document and write its results (to `-o`, default `folio-out`).
    #[arg(long)]
    wait: bool,
    /// Output folder; each input gets DIR/<stem>/. Implies --wait.
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Both)]
    format: OutputFormat,
    /// Engine of the pages (`ocr`, `glm45v`); the server's default when absent.
    #[arg(long)]
    engine: Option<String>,
    /// Prompt profile (see `folio parse --help`).
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Pages to process, e.g. `1-3,7`.
    #[arg(long, value_name = "RANGE")]
    pages: Option<String>,
    /// PDF rendering resolution.
    #[arg(long)]
    dpi: Option<u32>,
    /// Give up waiting for one document after this many seconds (it goes on on the server).
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    timeout_secs: u64,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: SubmitArgs) -> Result<Exit, CliError> {
    let client = ApiClient::new(&args.server, args.api_key.clone())?;
    let rt = super::ocr_engine::tokio_runtime()?;
    rt.block_on(run_async(&args, &client))
}

async fn run_async(args: &SubmitArgs, client: &ApiClient) -> Result<Exit, CliError> {
    let options: Vec<(&str, String)> = [
        ("engine", args.engine.clone()),
        ("profile", args.profile.clone()),
        ("pages", args.pages.clone()),
        ("dpi", args.dpi.map(|d| d.to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let mut exit = Exit::Ok;
    let mut uploaded = Vec::new();
    for file in &args.files {
        match upload_one(client, file, &options).await {
            Ok((id, pages)) => {
                println!("{id}");
                eprintln!("{}: document {id}, {pages} page(s)", file.display());
                uploaded.push((file, id));
            }
            Err(e) if e.code == Exit::InputRejected => {
                eprintln!("folio: {}: {:#}", file.display(), e.error);
                exit = worst(exit, e.code);
            }
            // The server or the key fails every following file the same way.
            Err(e) => return Err(e),
        }
    }
    if !(args.wait || args.output.is_some()) {
        return Ok(exit);
    }
    let root = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("folio-out"));
    let mut used = HashSet::new();
    for (file, id) in uploaded {
        let out_dir = output_dir(&root, file, &mut used);
        let span = tracing::info_span!("submit", document_id = %id);
        let doc = wait_and_write(client, args, file, &id, &out_dir)
            .instrument(span)
            .await?;
        if doc.status == DocumentStatus::Complete {
            eprintln!(
                "{}: {} page(s) -> {}",
                file.display(),
                doc.pages.len(),
                out_dir.display()
            );
            continue;
        }
        exit = worst(exit, report_partial(file, &doc, &out_dir));
    }
    Ok(exit)
}

async fn upload_one(
    client: &ApiClient,
    file: &Path,
    options: &[(&str, String)],
) -> Result<(String, u32), CliError> {
    let bytes = read_input(file)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "document".into());
    let up = client.upload(bytes.into(), &name, options).await?;
    Ok((up.document_id, up.pages))
}

/// Follow `id` with a progress bar until it is assembled, then write its results.
async fn wait_and_write(
    client: &ApiClient,
    args: &SubmitArgs,
    file: &Path,
    id: &str,
    out_dir: &Path,
) -> Result<DocumentResult, CliError> {
    let bar = progress_bar(args.quiet, file);
    let followed = progress::follow(client, id, Duration::from_secs(args.timeout_secs), |p| {
        bar.set_length(u64::from(p.total));
        bar.set_position(u64::from(p.settled));
    })
    .await;
    bar.finish_and_clear();
    followed?;
    let json = client
        .bytes(&format!("v1/documents/{id}/result?format=json"))
        .await?;
    let doc: DocumentResult = serde_json::from_slice(&json).map_err(|e| {
        CliError::internal(anyhow::anyhow!(
            "the server's document.json does not parse: {e}"
        ))
    })?;
    let records = ApiRecords { client, id };
    write_outputs(&records, &json, &doc, args.format, out_dir).await?;
    Ok(doc)
}

/// A document's records read through the API.
struct ApiRecords<'a> {
    client: &'a ApiClient,
    id: &'a str,
}

#[async_trait::async_trait]
impl RecordSource for ApiRecords<'_> {
    async fn page_record(&self, page: u32, _failed: bool) -> Result<Vec<u8>, CliError> {
        // The page route answers with the result, or the error record of a failed page.
        let path = format!("v1/documents/{}/pages/{page}", self.id);
        Ok(self.client.bytes(&path).await?.to_vec())
    }

    async fn page_image(&self, page: u32) -> Result<Option<Vec<u8>>, CliError> {
        let path = format!("v1/documents/{}/pages/{page}/image", self.id);
        Ok(self.client.bytes_if_found(&path).await?.map(|b| b.to_vec()))
    }
}

fn progress_bar(quiet: bool, file: &Path) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} pages {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    bar
}
