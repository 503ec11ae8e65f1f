//! The checkpoint of a `folio reprocess` run: an object in Folio's bucket at
//! `.folio/reprocess/{run_id}.json` (`.` keeps it out of every tenant's prefix).
//!
//! The run id is a digest of what selects and shapes the work (the URL, tenant, engine, profile,
//! `--since`, `--only-failed`), so `--resume` with the same arguments finds it. Items are handled in
//! key order; the checkpoint records the last item fully handled and, for the item in progress,
//! whether it was prepared and how many of its page jobs were published. It is written after
//! every `checkpoint_every` page jobs, at least once a second while publishing, and whenever the
//! run stops (Ctrl-C, SIGTERM, an error). On a graceful stop it is exact, so `--resume` enqueues
//! nothing twice; after a hard kill at most the jobs published since the last write are published
//! again (workers absorb them: result keys are deterministic).

use super::Summary;
use bytes::Bytes;
use folio_transport::{ObjectStore, TransportError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const FORMAT_VERSION: u32 = 1;

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub run_id: String,
    /// The URL and options, as the user gave them (for the messages).
    pub source: String,
    pub options: String,
    /// Key of the last item fully handled (items are handled in key order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_through: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<InProgress>,
    pub counts: Summary,
    pub started_at: String,
    pub updated_at: String,
    pub finished: bool,
}

/// The item being handled when the checkpoint was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InProgress {
    pub key: String,
    /// A known document's old outputs are cleared and its manifest updated (done once).
    pub prepared: bool,
    /// Page jobs of this item already published.
    pub published: u32,
}

/// `run_id` of a run: a digest of its selecting arguments.
pub fn run_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..12])
}

pub fn key(run_id: &str) -> String {
    format!(".folio/reprocess/{run_id}.json")
}

/// The checkpoint of `run_id`, if one exists (an unreadable one is an error, not ignored: resuming
/// from nothing could enqueue everything twice).
pub async fn load(
    store: &dyn ObjectStore,
    run_id: &str,
) -> Result<Option<Checkpoint>, CheckpointError> {
    match store.get(&key(run_id)).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CheckpointError::Corrupt(key(run_id), e.to_string())),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(CheckpointError::Store(e)),
    }
}

pub async fn save(store: &dyn ObjectStore, cp: &Checkpoint) -> Result<(), TransportError> {
    let body = serde_json::to_vec_pretty(cp).unwrap_or_default();
    store
        .put(&key(&cp.run_id), Bytes::from(body), "application/json")
        .await
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("the checkpoint {0} cannot be read ({1}); delete it or pass --restart")]
    Corrupt(String, String),
    #[error(transparent)]
    Store(TransportError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use folio_transport::LocalDirStore;

    #[tokio::test]
    async fn round_trip_and_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path()).unwrap();
        let id = run_id(&["s3://b/p", "ocr"]);
        assert_ne!(id, run_id(&["s3://b/p", "glm45v"]));
        assert_ne!(run_id(&["ab", "c"]), run_id(&["a", "bc"]));
        assert_eq!(load(&store, &id).await.unwrap(), None);
        let cp = Checkpoint {
            version: FORMAT_VERSION,
            run_id: id.clone(),
            source: "s3://b/p".into(),
            options: "engine=ocr".into(),
            done_through: Some("a/docs/1/".into()),
            current: Some(InProgress {
                key: "a/docs/2/".into(),
                prepared: true,
                published: 3,
            }),
            counts: Summary::default(),
            started_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:01Z".into(),
            finished: false,
        };
        save(&store, &cp).await.unwrap();
        assert_eq!(load(&store, &id).await.unwrap(), Some(cp));
        store
            .put(&key(&id), Bytes::from_static(b"{"), "")
            .await
            .unwrap();
        assert!(matches!(
            load(&store, &id).await,
            Err(CheckpointError::Corrupt(..))
        ));
    }
}
