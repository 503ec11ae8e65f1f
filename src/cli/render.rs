//! `folio render FILE [-o DIR]`: the page images the service would store, as DIR/00001.png…

use super::exit::ingest_exit;
use super::{CliError, Exit};
use crate::runtime::RuntimeLayout;
use clap::Args;
use folio_ingest::png::encode_png;
use folio_ingest::{IngestConfig, IngestError, Ingestor, PageRange};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[arg(short, long, default_value = "folio-pages", value_name = "DIR")]
    output: PathBuf,
    #[command(flatten)]
    raster: RasterArgs,
    #[command(flatten)]
    render: super::render_pool::RenderPoolArgs,
}

/// How pages are rasterized: shared by `render` and `parse`.
#[derive(Debug, Args)]
pub struct RasterArgs {
    /// PDF rendering resolution.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(36..=1200))]
    pub dpi: u32,
    /// Pages to process: `3`, `2-5` or `2-` (1-based).
    #[arg(long, value_name = "A-B")]
    pub pages: Option<PageRange>,
    /// Password of encrypted PDFs.
    #[arg(long, env = "FOLIO_PDF_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

pub fn run(args: RenderArgs, runtime: &RuntimeLayout) -> Result<Exit, CliError> {
    runtime.check(&[runtime.pdfium()])?;
    let rejected = |msg: String| CliError::new(Exit::InputRejected, anyhow::anyhow!(msg));
    if args.file.is_dir() {
        return Err(rejected(format!(
            "{}: is a directory, not a document",
            args.file.display()
        )));
    }
    let bytes = std::fs::read(&args.file)
        .map_err(|e| rejected(format!("{}: cannot read: {e}", args.file.display())))?;
    let mut cfg = IngestConfig::new(runtime.pdfium());
    cfg.dpi = args.raster.dpi;
    let ingestor = args.render.attach(Ingestor::new(cfg), runtime)?;
    let ingest_err = |e: IngestError| CliError::new(ingest_exit(&e), e);
    let summary = ingestor
        .inspect(&bytes, args.raster.password.as_deref())
        .map_err(ingest_err)?;
    let pages = args
        .raster
        .pages
        .unwrap_or_else(PageRange::all)
        .select(summary.page_count)
        .map_err(ingest_err)?;
    std::fs::create_dir_all(&args.output).map_err(CliError::internal)?;
    let mut written = 0u32;
    ingestor
        .rasterize(
            &bytes,
            args.raster.password.as_deref(),
            &pages,
            &mut |page| {
                let png = encode_png(&page.image)?;
                let path = args.output.join(format!("{:05}.png", page.page));
                std::fs::write(&path, &png)
                    .map_err(|e| IngestError::Sink(format!("{}: {e}", path.display())))?;
                written += 1;
                Ok(())
            },
        )
        .map_err(ingest_err)?;
    eprintln!(
        "{}: {written} page(s) -> {}",
        args.file.display(),
        args.output.display()
    );
    Ok(Exit::Ok)
}
