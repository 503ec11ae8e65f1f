//! `Idempotency-Key` on `POST /v1/documents`: a retried upload (same tenant, same key, within
//! [`KEY_TTL`]) is answered with the document the first one made, instead of a second one.
//!
//! The record lives in the object store, so every API replica sees it:
//! `{tenant}/idempotency/{sha256(key)}.json` holds the document id, a fingerprint of the request
//! and when it was made. The fingerprint is the SHA-256 of the body's SHA-256 and the resolved
//! options (engine, profile, prompt, DPI, pages, file name; never the password).
//!
//! Order of an upload with a key: the body is read (a large one streams to the store under the
//! new document's key, as usual), then the key is claimed with `If-None-Match: *` before the
//! document is stored or enqueued. Exactly one of several racing requests wins the claim:
//!
//! | record found | answer |
//! | --- | --- |
//! | none, or older than [`KEY_TTL`] | claim it, process the upload (202); if the upload then fails, the claim is removed so a retry can go on |
//! | another fingerprint | 422 `idempotency_key_reused` |
//! | same fingerprint, document stored | 200 with the same `document_id` (header `Idempotent-Replayed: true`) |
//! | same fingerprint, no manifest yet, younger than the request timeout | 409 `idempotency_key_in_use` (the first request is still running; retry) |
//! | same fingerprint, no manifest, older | the first request died: claimed again, processed |
//!
//! Expired records are overwritten when their key comes back; a bucket lifecycle rule on
//! `*/idempotency/` (older than a day) keeps their number bounded.

use crate::http::error::ApiError;
use crate::http::options::UploadOptions;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use folio_schemas::{DocKeys, Manifest};
use folio_transport::ObjectStore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Header set on a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// How long a key names its document.
pub const KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest accepted key (as Stripe's).
pub const MAX_KEY_BYTES: usize = 255;

/// A checked `Idempotency-Key` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The header's key, `None` without the header; 400 `bad_idempotency_key` when it is empty,
    /// longer than [`MAX_KEY_BYTES`], not visible ASCII, or given twice.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        let mut values = headers.get_all(HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        let bad = |why: &str| {
            ApiError::bad_request(
                "bad_idempotency_key",
                format!("the Idempotency-Key header {why}; send 1 to {MAX_KEY_BYTES} visible ASCII characters (a UUID is a good key)"),
            )
        };
        if values.next().is_some() {
            return Err(bad("is given more than once"));
        }
        let bytes = value.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_KEY_BYTES {
            return Err(bad("has the wrong length"));
        }
        if !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return Err(bad("has characters other than visible ASCII"));
        }
        Ok(Some(IdempotencyKey(
            String::from_utf8_lossy(bytes).into_owned(),
        )))
    }

    /// The record's key: `{tenant}/idempotency/{sha256(key)}.json`.
    pub fn record_key(&self, tenant: &str) -> String {
        let digest = hex::encode(Sha256::digest(self.0.as_bytes()));
        format!("{tenant}/idempotency/{digest}.json")
    }
}

/// The fingerprint of an upload: its body's SHA-256 and its options, without the password.
pub fn fingerprint(body_sha256: &str, options: &UploadOptions) -> String {
    let mut h = Sha256::new();
    h.update(body_sha256.as_bytes());
    let job = serde_json::to_vec(&options.job).unwrap_or_default();
    h.update([0u8]);
    h.update(&job);
    h.update([0u8]);
    h.update(format!("{:?}", options.pages).as_bytes());
    h.update([0u8]);
    h.update(options.file_name.as_deref().unwrap_or_default().as_bytes());
    h.update([0u8]);
    h.update(
        options
            .callback_url
            .as_deref()
            .unwrap_or_default()
            .as_bytes(),
    );
    hex::encode(h.finalize())
}

/// The stored record of a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub document_id: String,
    pub fingerprint: String,
    /// Seconds since the Unix epoch when the key was claimed.
    pub created_unix: u64,
}

/// What the claim found.
#[derive(Debug)]
pub enum Claim {
    /// This request holds the key: process the upload, then [`Claimed::release`] on failure.
    Claimed(Claimed),
    /// An earlier request with this key made this document.
    Replay(Box<Manifest>),
}

/// A key this request holds.
#[derive(Debug)]
pub struct Claimed {
    record_key: String,
}

impl Claimed {
    /// The upload failed: remove the claim so a retry with the key can go on. Best effort.
    pub async fn release(self, store: &dyn ObjectStore) {
        if let Err(e) = store.delete(&self.record_key).await {
            tracing::warn!(error = %e, "cannot release the idempotency key; a retry within 24 h gets 409 until the request timeout passes");
        }
    }
}

/// Claim `key` of `tenant` for `document_id` (see the module docs). `now_unix`: the time now;
/// `in_use_for`: how long a claim without a stored document is taken as a request still running.
pub async fn claim(
    store: &dyn ObjectStore,
    tenant: &str,
    key: &IdempotencyKey,
    record: KeyRecord,
    in_use_for: Duration,
) -> Result<Claim, ApiError> {
    let record_key = key.record_key(tenant);
    let body = Bytes::from(serde_json::to_vec(&record).map_err(internal)?);
    // Two passes at most: the second after an expired or abandoned record was replaced.
    for _ in 0..2 {
        if store
            .put_if_absent(&record_key, body.clone(), "application/json")
            .await?
        {
            return Ok(Claim::Claimed(Claimed { record_key }));
        }
        let existing = match store.get(&record_key).await {
            Ok(bytes) => serde_json::from_slice::<KeyRecord>(&bytes).ok(),
            // Released between our write and our read: try again.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let Some(existing) = existing else {
            // Unreadable (not ours): replace it.
            store.delete(&record_key).await?;
            continue;
        };
        let age = record.created_unix.saturating_sub(existing.created_unix);
        if age >= KEY_TTL.as_secs() {
            store.delete(&record_key).await?;
            continue;
        }
        if existing.fingerprint != record.fingerprint {
            return Err(ApiError::Idempotency {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "idempotency_key_reused",
                message: "this Idempotency-Key was used within 24 h for an upload with another \
                    body or other options; use a new key for a new upload"
                    .into(),
            });
        }
        let manifest_key = DocKeys::new(tenant, &existing.document_id).manifest();
        match store.get(&manifest_key).await {
            Ok(bytes) => {
                let manifest: Manifest = serde_json::from_slice(&bytes).map_err(internal)?;
                return Ok(Claim::Replay(Box::new(manifest)));
            }
            Err(e) if e.is_not_found() && age < in_use_for.as_secs() => {
                return Err(ApiError::Idempotency {
                    status: StatusCode::CONFLICT,
                    code: "idempotency_key_in_use",
                    message: "an upload with this Idempotency-Key is still being processed; \
                        retry in a few seconds"
                        .into(),
                });
            }
            // The request that claimed it died before storing the document.
            Err(e) if e.is_not_found() => {
                store.delete(&record_key).await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Idempotency {
        status: StatusCode::CONFLICT,
        code: "idempotency_key_in_use",
        message: "another upload with this Idempotency-Key is claiming it right now; retry".into(),
    })
}

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::Internal(format!("idempotency record: {e}"))
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    fn code(r: Result<Option<IdempotencyKey>, ApiError>) -> &'static str {
        match r {
            Ok(Some(_)) => "ok",
            Ok(None) => "none",
            Err(e) => e.status_and_code().1,
        }
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(code(IdempotencyKey::from_headers(&headers(&[]))), "none");
        assert_eq!(
            code(IdempotencyKey::from_headers(&headers(&[b"0190b4c2-7f4e"]))),
            "ok"
        );
        let long = vec![b'k'; MAX_KEY_BYTES + 1];
        for bad in [&[][..], b"a b", "é".as_bytes(), long.as_slice()] {
            assert_eq!(
                code(IdempotencyKey::from_headers(&headers(&[bad]))),
                "bad_idempotency_key",
                "{bad:?}"
            );
        }
        assert_eq!(
            code(IdempotencyKey::from_headers(&headers(&[b"a", b"b"]))),
            "bad_idempotency_key"
        );
    }

    #[test]
    fn records_are_per_tenant_and_hide_the_key() {
        let k = IdempotencyKey("order-42".into());
        let a = k.record_key("acme");
        assert!(a.starts_with("acme/idempotency/") && a.ends_with(".json"));
        assert!(!a.contains("order-42"));
        assert_eq!(
            a.trim_start_matches("acme/"),
            k.record_key("beta").trim_start_matches("beta/")
        );
    }

    #[test]
    fn the_fingerprint_covers_body_and_options_but_not_the_password() {
        let options = |dpi: u32, password: Option<&str>| UploadOptions {
            job: folio_schemas::JobOptions {
                dpi,
                ..Default::default()
            },
            pages: folio_ingest::PageRange::all(),
            password: password.map(str::to_string),
            file_name: Some("a.pdf".into()),
            callback_url: None,
        };
        let base = fingerprint("aa", &options(200, None));
        let with_callback = UploadOptions {
            callback_url: Some("https://hooks.example.com/folio".into()),
            ..options(200, None)
        };
        assert_ne!(base, fingerprint("aa", &with_callback));
        assert_eq!(base, fingerprint("aa", &options(200, Some("pw"))));
        assert_ne!(base, fingerprint("ab", &options(200, None)));
        assert_ne!(base, fingerprint("aa", &options(300, None)));
    }
}
