//! `GET /v1/documents/{id}/events`: live progress as Server-Sent Events, read from the
//! document's progress log in the store (`folio_results::progress`), so any API replica serves
//! it and a reconnect resumes: each event's `id` is its log number, and a client that sends
//! `Last-Event-ID: N` gets the entries after `N`.
//!
//! Events: `page` (a page was recorded: `state` `done` or `failed`), `end` (the document ended:
//! `status` `complete`, `partial`, `failed` or `cancelled`, with the page counts) and `restart`
//! (re-processing started; pages and an end follow again). The stream closes after an `end`
//! that nothing follows; one opened after the end replays the log and closes.

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::state::AppState;
use crate::http::status::{doc_keys, read_manifest};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use folio_results::progress;
use folio_schemas::{DocKeys, ProgressEvent, ProgressKind};
use folio_transport::ObjectStore;
use futures_util::Stream;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How often the log is listed while nothing new is in it.
pub const POLL: Duration = Duration::from_millis(500);
/// A stream is closed after this long (clients reconnect with `Last-Event-ID`).
pub const MAX_STREAM: Duration = Duration::from_secs(3600);

#[utoipa::path(
    get,
    path = "/v1/documents/{id}/events",
    tag = "documents",
    params(
        ("id" = String, Path, description = "Document id"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: `page` events (`data`: `{seq, page, \
            state: done|failed, code?, pages_total, at}`), one `end` event (`{seq, status: \
            complete|partial|failed|cancelled, pages_total, pages_done, pages_failed, at}`), \
            `restart` when re-processing starts. Each `id` is the event's number in the \
            document's progress log.", content_type = "text/event-stream", body = String),
        (status = 400, description = "`Last-Event-ID` is not a number", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such document for this tenant", body = ErrorBody),
        (status = 503, description = "Object store unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn events(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let after = match headers.get("last-event-id") {
        None => 0,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::bad_request("bad_last_event_id", "Last-Event-ID must be a whole number")
            })?,
    };
    let keys = doc_keys(&tenant, &id)?;
    let store = state.store().clone();
    let manifest = read_manifest(store.as_ref(), &keys, &id).await?;
    // Resuming right after an end: the stream has nothing more unless a restart follows.
    let ended = after > 0
        && matches!(
            progress::read(store.as_ref(), &keys, after).await,
            Ok(ProgressEvent {
                kind: ProgressKind::End { .. },
                ..
            })
        );
    let reader = Reader {
        store,
        keys,
        after,
        ended,
        pending: VecDeque::new(),
        pages_total: manifest.pages.len() as u32,
        deadline: Instant::now() + MAX_STREAM,
    };
    let stream = futures_util::stream::unfold(reader, |mut r| async move {
        r.next().await.map(|event| (Ok(event), r))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Where one stream stands in the log.
struct Reader {
    store: Arc<dyn ObjectStore>,
    keys: DocKeys,
    /// The last number sent (or given as `Last-Event-ID`).
    after: u64,
    /// Whether an `end` was the last thing sent in the current round.
    ended: bool,
    pending: VecDeque<ProgressEvent>,
    pages_total: u32,
    deadline: Instant,
}

impl Reader {
    /// The next event to send; `None` closes the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            while let Some(entry) = self.pending.pop_front() {
                self.after = entry.seq;
                match &entry.kind {
                    // A second end of the same round (two writers raced) is not news.
                    ProgressKind::End { .. } if self.ended => continue,
                    ProgressKind::End { .. } => self.ended = true,
                    ProgressKind::Restart => self.ended = false,
                    ProgressKind::Page { .. } => {}
                }
                return Some(self.event(&entry));
            }
            if self.ended || Instant::now() >= self.deadline {
                return None;
            }
            if let Err(e) = self.fill().await {
                tracing::warn!(key = %self.keys.events_prefix(), error = %e, "cannot read the progress log; retrying");
            }
            if self.pending.is_empty() {
                tokio::time::sleep(POLL).await;
            }
        }
    }

    /// Read the entries after `after` into `pending`.
    async fn fill(&mut self) -> Result<(), folio_results::AssembleError> {
        let numbers = progress::numbers(self.store.as_ref(), &self.keys).await?;
        for seq in numbers.into_iter().filter(|&s| s > self.after) {
            let entry = progress::read(self.store.as_ref(), &self.keys, seq).await?;
            self.pending.push_back(entry);
        }
        Ok(())
    }

    fn event(&self, entry: &ProgressEvent) -> Event {
        let (name, data) = match &entry.kind {
            ProgressKind::Page { page, ok, code } => (
                "page",
                serde_json::json!({
                    "seq": entry.seq,
                    "page": page,
                    "state": if *ok { "done" } else { "failed" },
                    "code": code,
                    "pages_total": self.pages_total,
                    "at": entry.at,
                }),
            ),
            ProgressKind::End {
                status,
                pages_total,
                pages_done,
                pages_failed,
            } => (
                "end",
                serde_json::json!({
                    "seq": entry.seq,
                    "status": status,
                    "pages_total": pages_total,
                    "pages_done": pages_done,
                    "pages_failed": pages_failed,
                    "at": entry.at,
                }),
            ),
            ProgressKind::Restart => (
                "restart",
                serde_json::json!({ "seq": entry.seq, "pages_total": self.pages_total, "at": entry.at }),
            ),
        };
        Event::default()
            .id(entry.seq.to_string())
            .event(name)
            .data(data.to_string())
    }
}
