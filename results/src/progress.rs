//! The progress log of a document: `events/{seq:06}.json`, one [`ProgressEvent`] per page
//! recorded, per end and per re-processing start, numbered 1, 2, 3 … in the order they were
//! written. Each entry's number is claimed with `If-None-Match: *`, so two writers racing for the
//! same number cannot both win: the loser takes the next one. The log is the durable source of
//! live progress (`GET /v1/documents/{id}/events`): any API replica serves it, and a client
//! that reconnects with the last number it saw resumes after it.
//!
//! Writers append after the record the entry describes is durable (a page result, an error
//! record, `document.json`), so an entry never announces something a reader cannot find. A
//! worker that dies between the two leaves no entry; the redelivered page writes it. A page
//! redelivered after its entry was written logs a second entry for it (at-least-once); readers
//! tolerate repeats.

use crate::assemble::AssembleError;
use crate::clock;
use crate::json::to_bytes;
use folio_schemas::lifecycle::parse_event_key;
use folio_schemas::{DocKeys, ProgressEvent, ProgressKind, Round, SCHEMA_VERSION};
use folio_transport::{ErrorKind, ObjectStore, TransportError};

/// Numbers tried after the listed end before listing again.
const CLAIM_TRIES: u64 = 64;

/// Append `kind` to the log; returns its number.
pub async fn append(
    store: &dyn ObjectStore,
    keys: &DocKeys,
    kind: ProgressKind,
) -> Result<u64, TransportError> {
    for _ in 0..3 {
        let listed = store.list(&keys.events_prefix()).await?;
        let last = listed.iter().filter_map(|k| parse_event_key(k)).max();
        let first = last.unwrap_or(0) + 1;
        for seq in first..first + CLAIM_TRIES {
            let event = ProgressEvent {
                schema_version: SCHEMA_VERSION.into(),
                seq,
                kind: kind.clone(),
                at: clock::now(),
            };
            if store
                .put_if_absent(&keys.event(seq), to_bytes(&event), "application/json")
                .await?
            {
                return Ok(seq);
            }
        }
    }
    Err(TransportError::new(
        ErrorKind::Unavailable,
        format!(
            "cannot claim a progress log number under {}",
            keys.events_prefix()
        ),
    ))
}

/// The numbers of the log's entries, in order.
pub async fn numbers(store: &dyn ObjectStore, keys: &DocKeys) -> Result<Vec<u64>, TransportError> {
    let mut seqs: Vec<u64> = store
        .list(&keys.events_prefix())
        .await?
        .iter()
        .filter_map(|k| parse_event_key(k))
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Entry `seq`.
pub async fn read(
    store: &dyn ObjectStore,
    keys: &DocKeys,
    seq: u64,
) -> Result<ProgressEvent, AssembleError> {
    let key = keys.event(seq);
    let bytes = store.get(&key).await?;
    serde_json::from_slice(&bytes).map_err(|source| AssembleError::Corrupt { key, source })
}

/// The document's current round: 0, or the number of its latest [`ProgressKind::Restart`].
pub async fn current_round(store: &dyn ObjectStore, keys: &DocKeys) -> Result<u64, AssembleError> {
    match store.get(&keys.round()).await {
        Ok(bytes) => serde_json::from_slice::<Round>(&bytes)
            .map(|r| r.round)
            .map_err(|source| AssembleError::Corrupt {
                key: keys.round(),
                source,
            }),
        Err(e) if e.is_not_found() => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Start a new round (re-processing): log a [`ProgressKind::Restart`] and make it the round.
pub async fn start_round(store: &dyn ObjectStore, keys: &DocKeys) -> Result<u64, TransportError> {
    let round = append(store, keys, ProgressKind::Restart).await?;
    store
        .put(
            &keys.round(),
            to_bytes(&Round { round }),
            "application/json",
        )
        .await?;
    Ok(round)
}

#[cfg(test)]
mod tests {
    use super::*;
    use folio_transport::LocalDirStore;

    #[tokio::test]
    async fn numbers_are_claimed_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path()).unwrap();
        let keys = DocKeys::new("t", "d");
        let page = |page| ProgressKind::Page {
            page,
            ok: true,
            code: None,
        };
        let (a, b) = tokio::join!(
            append(&store, &keys, page(1)),
            append(&store, &keys, page(2))
        );
        let mut got = vec![a.unwrap(), b.unwrap()];
        got.sort_unstable();
        assert_eq!(got, vec![1, 2]);
        assert_eq!(current_round(&store, &keys).await.unwrap(), 0);
        assert_eq!(start_round(&store, &keys).await.unwrap(), 3);
        assert_eq!(current_round(&store, &keys).await.unwrap(), 3);
        assert_eq!(numbers(&store, &keys).await.unwrap(), vec![1, 2, 3]);
        assert_eq!(
            read(&store, &keys, 3).await.unwrap().kind,
            ProgressKind::Restart
        );
    }
}
