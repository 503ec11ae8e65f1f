//! The render processes: `RenderPoolArgs`, the flags (and `FOLIO_RENDER_*` variables) of the
//! pool that `serve` and `parse` rasterize PDFs in, and `folio __render`, the hidden subcommand
//! each render process runs (see `folio_ingest::render_pool`).

use super::{CliError, Exit};
use crate::runtime::RuntimeLayout;
use clap::Args;
use folio_ingest::render_pool::{
    run_child, ChildSettings, DEFAULT_MEMORY_LIMIT_MIB, DEFAULT_PAGES_PER_PROCESS,
    DEFAULT_PROCESSES,
};
use folio_ingest::{Ingestor, RenderCommand, RenderLimits, RenderPool};
use std::path::PathBuf;
use std::time::Duration;

/// The hidden subcommand's name.
pub const RENDER_SUBCOMMAND: &str = "__render";

#[derive(Debug, Args)]
pub struct RenderPoolArgs {
    /// Render processes (PDFs validated or rendered at once, each in its own process).
    #[arg(long, env = "FOLIO_RENDER_PROCESSES", default_value_t = DEFAULT_PROCESSES)]
    pub render_processes: usize,
    /// Wall time one document may take to validate, and again to render (past it: `render_timeout`).
    #[arg(long, env = "FOLIO_RENDER_TIMEOUT_SECS", default_value_t = 60)]
    pub render_timeout_secs: u64,
    /// Address space of one render process in MiB (RLIMIT_AS; past it: `render_too_large`).
    #[arg(long, env = "FOLIO_RENDER_MEMORY_MIB", default_value_t = DEFAULT_MEMORY_LIMIT_MIB)]
    pub render_memory_mib: u64,
    /// Pages a render process renders before it is replaced (bounds what PDFium may leak).
    #[arg(long, env = "FOLIO_RENDER_PAGES_PER_PROCESS", default_value_t = DEFAULT_PAGES_PER_PROCESS)]
    pub render_pages_per_process: u64,
}

impl RenderPoolArgs {
    pub fn limits(&self) -> Result<RenderLimits, CliError> {
        let limits = RenderLimits {
            processes: self.render_processes,
            document_timeout: Duration::from_secs(self.render_timeout_secs),
            memory_limit_mib: self.render_memory_mib,
            pages_per_process: self.render_pages_per_process,
        };
        if let Some(name) = limits.zero_setting() {
            return Err(CliError::new(
                Exit::Usage,
                anyhow::anyhow!("the render pool's {name} must be greater than zero"),
            ));
        }
        Ok(limits)
    }

    /// `ingestor`, rasterizing PDFs in a pool of `folio __render` processes.
    pub fn attach(
        &self,
        ingestor: Ingestor,
        runtime: &RuntimeLayout,
    ) -> Result<Ingestor, CliError> {
        let program = std::env::current_exe().map_err(|e| {
            CliError::internal(anyhow::Error::new(e).context("locating the folio binary"))
        })?;
        let command = RenderCommand {
            program,
            args: vec![RENDER_SUBCOMMAND.into()],
            pdfium_lib: runtime.pdfium(),
        };
        Ok(ingestor.with_render_pool(RenderPool::new(command, self.limits()?)))
    }
}

/// `folio __render`: one render process (started by the pool, never by hand).
#[derive(Debug, Args)]
pub struct RenderChildArgs {
    #[arg(long)]
    pdfium: PathBuf,
    #[arg(long, default_value_t = 0)]
    memory_limit_mib: u64,
    #[arg(long, default_value_t = 0)]
    watchdog_secs: u64,
}

pub fn run_render_child(args: RenderChildArgs) -> Result<Exit, CliError> {
    let settings = ChildSettings {
        pdfium_lib: args.pdfium,
        memory_limit_mib: args.memory_limit_mib,
        watchdog_secs: args.watchdog_secs,
    };
    run_child(&settings)
        .map_err(|e| CliError::internal(anyhow::Error::new(e).context("render process")))?;
    Ok(Exit::Ok)
}
