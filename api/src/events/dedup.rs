//! Deduplication of object versions across duplicated events and trigger instances.
//!
//! The first instance to see a version creates its [`Marker`] with `put_if_absent`
//! (`If-None-Match: *`): exactly one wins and processes the object, renewing its claim while it
//! works; the others see the marker and stop. A claim whose lease ran out (its holder crashed) is
//! taken over by the next instance that sees the event. Two instances taking over the same stale
//! claim at once both process it; they write the same document (the id is derived from the
//! version) and enqueue its pages twice, which workers absorb (results have deterministic keys).

use super::records::{now_ms, Marker, MarkerState, ObjectVersion};
use bytes::Bytes;
use folio_transport::{ObjectStore, TransportError};
use std::sync::Arc;
use std::time::Duration;

/// What [`Claims::claim`] found.
#[derive(Debug)]
pub enum ClaimResult {
    /// This instance holds the claim and must process the object, then settle or release it.
    Won(Claim),
    /// Another instance holds a live claim.
    InProgress(Marker),
    /// The version was already handled (done, rejected or ignored).
    Settled(Marker),
}

/// Creates claims; one per process, shared.
#[derive(Debug, Clone)]
pub struct Claims {
    store: Arc<dyn ObjectStore>,
    owner: String,
    lease: Duration,
}

impl Claims {
    /// `owner` names this instance in markers; `lease` is how long a claim stays valid without
    /// renewal (holders renew every third of it).
    pub fn new(store: Arc<dyn ObjectStore>, owner: impl Into<String>, lease: Duration) -> Self {
        Claims {
            store,
            owner: owner.into(),
            lease,
        }
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Claim `version`, or report who has it.
    pub async fn claim(
        &self,
        version: &ObjectVersion,
        sequencer: Option<&str>,
    ) -> Result<ClaimResult, TransportError> {
        let key = version.marker_key();
        let marker = Marker {
            state: MarkerState::Claimed,
            bucket: version.bucket.clone(),
            key: version.key.clone(),
            version: version.version.clone(),
            sequencer: sequencer.map(str::to_string),
            document_id: version.document_id(),
            owner: self.owner.clone(),
            renewed_at_ms: now_ms(),
            detail: None,
        };
        if self
            .store
            .put_if_absent(&key, to_json(&marker), "application/json")
            .await?
        {
            return Ok(ClaimResult::Won(self.claim_handle(key, marker)));
        }
        let existing = match self.store.get(&key).await {
            Ok(bytes) => serde_json::from_slice::<Marker>(&bytes).ok(),
            // Deleted between the two calls (a released claim): try once more from scratch.
            Err(e) if e.is_not_found() => {
                return if self
                    .store
                    .put_if_absent(&key, to_json(&marker), "application/json")
                    .await?
                {
                    Ok(ClaimResult::Won(self.claim_handle(key, marker)))
                } else {
                    Ok(ClaimResult::InProgress(marker))
                };
            }
            Err(e) => return Err(e),
        };
        match existing {
            Some(m) if m.state != MarkerState::Claimed => Ok(ClaimResult::Settled(m)),
            Some(m) if !self.expired(&m) => Ok(ClaimResult::InProgress(m)),
            stale => {
                tracing::warn!(
                    key = %key,
                    previous_owner = stale.as_ref().map(|m| m.owner.as_str()).unwrap_or("<unreadable marker>"),
                    "taking over an expired claim"
                );
                self.store
                    .put(&key, to_json(&marker), "application/json")
                    .await?;
                Ok(ClaimResult::Won(self.claim_handle(key, marker)))
            }
        }
    }

    fn expired(&self, m: &Marker) -> bool {
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        now_ms().saturating_sub(m.renewed_at_ms) > lease_ms
    }

    fn claim_handle(&self, key: String, marker: Marker) -> Claim {
        Claim {
            store: self.store.clone(),
            key,
            marker,
            lease: self.lease,
        }
    }
}

/// A held claim. Settle it when the object is handled, release it to let a retry try again.
#[derive(Debug)]
pub struct Claim {
    store: Arc<dyn ObjectStore>,
    key: String,
    marker: Marker,
    lease: Duration,
}

impl Claim {
    pub fn marker(&self) -> &Marker {
        &self.marker
    }

    /// How often the holder must [`Claim::renew`].
    pub fn renew_every(&self) -> Duration {
        self.lease / 3
    }

    /// Extend the lease.
    pub async fn renew(&mut self) -> Result<(), TransportError> {
        self.marker.renewed_at_ms = now_ms();
        self.store
            .put(&self.key, to_json(&self.marker), "application/json")
            .await
    }

    /// Record the final state; later events of this version are duplicates.
    pub async fn settle(
        mut self,
        state: MarkerState,
        detail: Option<String>,
    ) -> Result<Marker, TransportError> {
        self.marker.state = state;
        self.marker.detail = detail;
        self.marker.renewed_at_ms = now_ms();
        self.store
            .put(&self.key, to_json(&self.marker), "application/json")
            .await?;
        Ok(self.marker)
    }

    /// Give the claim up (a transient failure): the next delivery of the event claims it afresh.
    pub async fn release(self) -> Result<(), TransportError> {
        self.store.delete(&self.key).await
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Bytes {
    // Serialising these plain structs cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use folio_transport::LocalDirStore;

    fn version() -> ObjectVersion {
        ObjectVersion {
            tenant: "acme".into(),
            bucket: "inbox".into(),
            key: "a.pdf".into(),
            version: "etag1".into(),
        }
    }

    fn store() -> (tempfile::TempDir, Arc<dyn ObjectStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalDirStore::new(dir.path()).unwrap());
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_of_many_racing_instances_wins() {
        let (_dir, store) = store();
        let mut tasks = Vec::new();
        for i in 0..12 {
            let claims = Claims::new(store.clone(), format!("i{i}"), Duration::from_secs(60));
            tasks.push(tokio::spawn(async move {
                claims.claim(&version(), None).await.unwrap()
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            if let ClaimResult::Won(c) = t.await.unwrap() {
                won.push(c);
            }
        }
        assert_eq!(won.len(), 1);
        let claim = won.pop().unwrap();
        let claims = Claims::new(store.clone(), "late", Duration::from_secs(60));
        assert!(matches!(
            claims.claim(&version(), None).await.unwrap(),
            ClaimResult::InProgress(_)
        ));
        let settled = claim.settle(MarkerState::Done, None).await.unwrap();
        assert_eq!(settled.document_id, version().document_id());
        assert!(matches!(
            claims.claim(&version(), None).await.unwrap(),
            ClaimResult::Settled(m) if m.state == MarkerState::Done
        ));
    }

    #[tokio::test]
    async fn released_claims_are_claimed_again_and_stale_ones_taken_over() {
        let (_dir, store) = store();
        let lease = Duration::from_millis(200);
        let a = Claims::new(store.clone(), "a", lease);
        let b = Claims::new(store.clone(), "b", lease);
        let ClaimResult::Won(claim) = a.claim(&version(), None).await.unwrap() else {
            panic!("first claim must win")
        };
        claim.release().await.unwrap();
        let ClaimResult::Won(mut claim) = b.claim(&version(), Some("0A")).await.unwrap() else {
            panic!("a released claim is free")
        };
        assert_eq!(claim.marker().sequencer.as_deref(), Some("0A"));
        // Renewed within the lease: still b's.
        tokio::time::sleep(Duration::from_millis(120)).await;
        claim.renew().await.unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(
            matches!(a.claim(&version(), None).await.unwrap(), ClaimResult::InProgress(m) if m.owner == "b")
        );
        // b "crashes": after the lease, a takes over.
        drop(claim);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let ClaimResult::Won(taken) = a.claim(&version(), None).await.unwrap() else {
            panic!("an expired claim is taken over")
        };
        assert_eq!(taken.marker().owner, "a");
    }
}
