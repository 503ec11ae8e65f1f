//! The end of a document, in one place for every way it ends: the last page recorded (by a
//! worker, or by the API for pages never enqueued) after `document.json` is written, or a
//! cancel. Ending a round of processing:
//!
//! 1. logs [`ProgressKind::End`] in the progress log (live progress ends there);
//! 2. when the document has a `callback.json`, queues a [`CallbackNotice`] in the webhook outbox
//!    (`If-None-Match: *` on a key per document and round: one notice however many writers);
//! 3. writes the round's end marker, after which nothing more is done for this round.
//!
//! Every step is repeated by whoever finds the marker missing (a redelivered last page, two
//! workers finishing the last two pages at once), so a crash between steps loses nothing; two
//! writers racing past the marker check may both log an end (readers take the first), but the
//! outbox holds one notice. A cancelled document ends when it is cancelled: assembling it later
//! (a page that was already in the engine) does not end it again.

use crate::assemble::AssembleError;
use crate::clock;
use crate::json::to_bytes;
use crate::progress;
use folio_schemas::lifecycle::callback_outbox_key;
use folio_schemas::{
    CallbackNotice, CallbackPayload, CallbackRegistration, DocKeys, EndStatus, ProgressKind,
    SCHEMA_VERSION,
};
use folio_transport::ObjectStore;

/// How a document ended, with its page counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    pub status: EndStatus,
    pub pages_total: u32,
    pub pages_done: u32,
    pub pages_failed: u32,
}

/// What [`end_document`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// This call ended the round (or finished what an earlier call started).
    Now { round: u64, notice: bool },
    /// The round had already ended.
    Already,
    /// The document is cancelled; only the cancel ends it.
    Cancelled,
}

/// End the current round of `tenant`'s document `document_id` (see the module docs).
pub async fn end_document(
    store: &dyn ObjectStore,
    tenant: &str,
    document_id: &str,
    ending: Ending,
) -> Result<Ended, AssembleError> {
    let keys = DocKeys::new(tenant, document_id);
    if ending.status != EndStatus::Cancelled && store.exists(&keys.cancelled()).await? {
        return Ok(Ended::Cancelled);
    }
    let round = progress::current_round(store, &keys).await?;
    if store.exists(&keys.end_marker(round)).await? {
        return Ok(Ended::Already);
    }
    let ended_at = clock::now();
    progress::append(
        store,
        &keys,
        ProgressKind::End {
            status: ending.status,
            pages_total: ending.pages_total,
            pages_done: ending.pages_done,
            pages_failed: ending.pages_failed,
        },
    )
    .await?;
    let notice = match registration(store, &keys).await? {
        Some(reg) => {
            let notice = CallbackNotice {
                schema_version: SCHEMA_VERSION.into(),
                url: reg.url,
                round,
                payload: CallbackPayload {
                    event: "document.ended".into(),
                    event_id: format!("{document_id}:r{round}"),
                    tenant: tenant.into(),
                    document_id: document_id.into(),
                    status: ending.status,
                    pages_total: ending.pages_total,
                    pages_done: ending.pages_done,
                    pages_failed: ending.pages_failed,
                    ended_at: ended_at.clone(),
                    result_url: format!("/v1/documents/{document_id}/result"),
                },
            };
            let key = callback_outbox_key(tenant, document_id, round);
            store
                .put_if_absent(&key, to_bytes(&notice), "application/json")
                .await?;
            true
        }
        None => false,
    };
    let marker =
        serde_json::json!({ "round": round, "status": ending.status, "ended_at": ended_at });
    store
        .put(
            &keys.end_marker(round),
            to_bytes(&marker),
            "application/json",
        )
        .await?;
    tracing::info!(
        document_id,
        status = ending.status.as_str(),
        round,
        notice,
        "document ended"
    );
    Ok(Ended::Now { round, notice })
}

/// The document's `callback.json`, when it has one.
pub async fn registration(
    store: &dyn ObjectStore,
    keys: &DocKeys,
) -> Result<Option<CallbackRegistration>, AssembleError> {
    match store.get(&keys.callback()).await {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| AssembleError::Corrupt {
                    key: keys.callback(),
                    source,
                })
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use folio_schemas::CancelRecord;
    use folio_transport::LocalDirStore;

    const ENDING: Ending = Ending {
        status: EndStatus::Complete,
        pages_total: 2,
        pages_done: 2,
        pages_failed: 0,
    };

    #[tokio::test]
    async fn one_end_and_one_notice_per_round() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path()).unwrap();
        let keys = DocKeys::new("t", "d");
        let reg = CallbackRegistration {
            schema_version: SCHEMA_VERSION.into(),
            url: "http://127.0.0.1:9/hook".into(),
        };
        store
            .put(&keys.callback(), to_bytes(&reg), "application/json")
            .await
            .unwrap();
        let first = end_document(&store, "t", "d", ENDING).await.unwrap();
        assert_eq!(
            first,
            Ended::Now {
                round: 0,
                notice: true
            }
        );
        assert_eq!(
            end_document(&store, "t", "d", ENDING).await.unwrap(),
            Ended::Already
        );
        let notice: CallbackNotice =
            serde_json::from_slice(&store.get(&callback_outbox_key("t", "d", 0)).await.unwrap())
                .unwrap();
        assert_eq!(notice.payload.event_id, "d:r0");
        assert_eq!(notice.payload.status, EndStatus::Complete);
        // Re-processing starts round 2 (after entries 1: end); it ends again, with a new notice.
        let round = progress::start_round(&store, &keys).await.unwrap();
        assert_eq!(round, 2);
        assert_eq!(
            end_document(&store, "t", "d", ENDING).await.unwrap(),
            Ended::Now {
                round: 2,
                notice: true
            }
        );
        assert!(store
            .exists(&callback_outbox_key("t", "d", 2))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn a_cancelled_document_is_ended_by_its_cancel_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path()).unwrap();
        let keys = DocKeys::new("t", "d");
        let cancel = CancelRecord {
            schema_version: SCHEMA_VERSION.into(),
            document_id: "d".into(),
            cancelled_at: clock::now(),
            purged: false,
        };
        store
            .put(&keys.cancelled(), to_bytes(&cancel), "application/json")
            .await
            .unwrap();
        assert_eq!(
            end_document(&store, "t", "d", ENDING).await.unwrap(),
            Ended::Cancelled
        );
        let cancelled = Ending {
            status: EndStatus::Cancelled,
            ..ENDING
        };
        assert_eq!(
            end_document(&store, "t", "d", cancelled).await.unwrap(),
            Ended::Now {
                round: 0,
                notice: false
            }
        );
        let log = progress::numbers(&store, &keys).await.unwrap();
        assert_eq!(log, vec![1]);
    }
}
