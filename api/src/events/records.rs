//! What the triggers keep in Folio's store, under `{tenant}/triggers/`, and where:
//!
//! | key | record |
//! | --- | --- |
//! | `{tenant}/triggers/seen/{id}.json` | [`Marker`]: the dedup claim of one object version |
//! | `{tenant}/triggers/objects/{key_id}.json` | [`SourceIndex`]: the latest version of a source key and its document |
//! | `{tenant}/triggers/rejected/{id}.json` | [`Rejection`]: why an object was not accepted (unsupported, too large...) |
//!
//! `id` is a digest of bucket, key and version (ETag), `key_id` of bucket and key. The document id
//! of an object version is derived from the same digest, so every instance and every retry that
//! processes a version writes the same document.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One version of one source object, as seen by one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub tenant: String,
    pub bucket: String,
    pub key: String,
    /// The ETag (or another version token, see `ObjectEvent::version`).
    pub version: String,
}

impl ObjectVersion {
    fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [&self.tenant, &self.bucket, &self.key, &self.version] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        h.finalize().into()
    }

    /// 32 hex digits naming this version.
    pub fn id(&self) -> String {
        hex::encode(&self.digest()[..16])
    }

    /// The document id of this version: a UUID (version 8, "custom") made of the digest.
    pub fn document_id(&self) -> String {
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&self.digest()[16..32]);
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    pub fn marker_key(&self) -> String {
        format!("{}/triggers/seen/{}.json", self.tenant, self.id())
    }

    pub fn rejection_key(&self) -> String {
        format!("{}/triggers/rejected/{}.json", self.tenant, self.id())
    }

    pub fn index_key(&self) -> String {
        index_key(&self.tenant, &self.bucket, &self.key)
    }
}

/// Key of the [`SourceIndex`] of `bucket`/`key` for `tenant`.
pub fn index_key(tenant: &str, bucket: &str, key: &str) -> String {
    let mut h = Sha256::new();
    for part in [bucket, key] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let d: [u8; 32] = h.finalize().into();
    format!("{tenant}/triggers/objects/{}.json", hex::encode(&d[..16]))
}

/// The state of a dedup marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerState {
    /// An instance is processing the object; valid while its lease is renewed.
    Claimed,
    /// Submitted: the document exists and its pages are enqueued.
    Done,
    /// Not accepted; a [`Rejection`] says why.
    Rejected,
    /// Fetched but not for this tenant (content type) or gone.
    Ignored,
}

/// The dedup marker, created with `If-None-Match: *` so that exactly one claimant wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub state: MarkerState,
    pub bucket: String,
    pub key: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    pub document_id: String,
    /// The instance holding or having held the claim.
    pub owner: String,
    /// Milliseconds since the Unix epoch of the last claim or renewal.
    pub renewed_at_ms: u64,
    /// Rejection code or ignore reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The latest processed version of a source key, for out-of-order events and `folio reprocess`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceIndex {
    pub bucket: String,
    pub key: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    pub document_id: String,
    pub updated_at: String,
}

/// Why an object was not accepted. Written once per object version; the event is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub tenant: String,
    pub bucket: String,
    pub key: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Stable code: an ingest error code (`unsupported_type`, `corrupt_file`...) or `too_large`.
    pub code: String,
    pub message: String,
    pub event_name: String,
    pub rejected_at: String,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The current time in RFC 3339.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: &str) -> ObjectVersion {
        ObjectVersion {
            tenant: "acme".into(),
            bucket: "inbox".into(),
            key: "scans/a.pdf".into(),
            version: version.into(),
        }
    }

    #[test]
    fn ids_are_stable_and_version_specific() {
        let a = v("e1");
        assert_eq!(a.id(), v("e1").id());
        assert_ne!(a.id(), v("e2").id());
        assert_eq!(a.id().len(), 32);
        assert!(a.marker_key().starts_with("acme/triggers/seen/"));
        let doc = uuid::Uuid::parse_str(&a.document_id()).unwrap();
        assert_eq!(doc.get_version_num(), 8);
        assert_eq!(a.document_id(), v("e1").document_id());
        // Every version of a key shares its index entry.
        assert_eq!(a.index_key(), v("e2").index_key());
        assert_eq!(a.index_key(), index_key("acme", "inbox", "scans/a.pdf"));
        // Separators keep ("ab","c") and ("a","bc") apart.
        assert_ne!(index_key("t", "ab", "c"), index_key("t", "a", "bc"));
    }
}
