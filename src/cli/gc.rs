//! `folio gc`: delete documents older than the retention (`FOLIO_RETENTION_DAYS`) from Folio's
//! bucket (logic in `folio_api::retention`). `--dry-run` lists them and deletes nothing. Exit
//! codes: 0 done, 2 usage, 5 the store failed (run it again: it continues where it stopped).

use super::service::BucketArgs;
use super::{CliError, Exit};
use clap::Args;
use folio_api::retention::{collect, GcOptions};
use time::OffsetDateTime;

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Delete documents created more than this many days ago.
    #[arg(long, env = "FOLIO_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=36500))]
    days: u32,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Only this tenant's documents (default: every tenant).
    #[arg(long)]
    tenant: Option<String>,
    #[command(flatten)]
    bucket: BucketArgs,
}

pub fn run(args: GcArgs) -> Result<Exit, CliError> {
    if let Some(t) = args
        .tenant
        .as_deref()
        .filter(|t| !folio_transport::valid_tenant(t))
    {
        return Err(CliError::new(
            Exit::Usage,
            anyhow::anyhow!("--tenant {t:?} is not a tenant name"),
        ));
    }
    let options = GcOptions {
        cutoff: OffsetDateTime::now_utc() - time::Duration::days(i64::from(args.days)),
        tenant: args.tenant.clone(),
        dry_run: args.dry_run,
    };
    let rt = super::ocr_engine::tokio_runtime()?;
    rt.block_on(async move {
        let store = args.bucket.connect().await?;
        let report = collect(store.as_ref(), &options)
            .await
            .map_err(|e| CliError::new(Exit::Unavailable, e))?;
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        for e in &report.expired {
            println!(
                "{verb} {}/docs/{} (created {}, {} objects)",
                e.tenant, e.document_id, e.created_at, e.objects
            );
        }
        for prefix in &report.unknown_age {
            println!("kept {prefix} (no manifest: age unknown)");
        }
        println!(
            "folio gc: {} documents, {} older than {} days{}, {} objects deleted",
            report.documents,
            report.expired.len(),
            args.days,
            if args.dry_run { " (dry run)" } else { "" },
            report.deleted_objects
        );
        Ok(Exit::Ok)
    })
}
