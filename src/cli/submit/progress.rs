//! Where `folio submit` learns how far a document got: [`follow`] reports pages done / total
//! until the document is assembled. It polls `GET /v1/documents/{id}`; the events stream
//! (`GET /v1/documents/{id}/events`) can take its place behind the same signature.

use super::client::{ApiClient, Status};
use crate::cli::{CliError, Exit};
use std::time::{Duration, Instant};

/// Time between two polls.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// How far a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub total: u32,
    /// Pages with a result or an error record.
    pub settled: u32,
    pub failed: u32,
    /// Assembled (`complete` or `partial`).
    pub finished: bool,
}

impl From<&Status> for Progress {
    fn from(s: &Status) -> Self {
        Progress {
            total: s.pages_total,
            settled: s.pages_done + s.pages_failed,
            failed: s.pages_failed,
            finished: s.status != "processing",
        }
    }
}

/// Report `id`'s progress to `report` whenever it changes, until the document is assembled
/// (returned) or `timeout` passes (exit 5: the document goes on on the server).
pub async fn follow(
    client: &ApiClient,
    id: &str,
    timeout: Duration,
    mut report: impl FnMut(Progress),
) -> Result<Progress, CliError> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        let progress = Progress::from(&client.status(id).await?);
        if last != Some(progress) {
            report(progress);
            last = Some(progress);
        }
        if progress.finished {
            return Ok(progress);
        }
        if Instant::now() >= deadline {
            return Err(CliError::new(
                Exit::Unavailable,
                anyhow::anyhow!(
                    "document {id} is still processing after {} s ({} of {} pages); it goes on on the server",
                    timeout.as_secs(),
                    progress.settled,
                    progress.total
                ),
            ));
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
