//! The object-store trait: a flat key space of immutable-ish blobs, as S3 offers it.

use crate::TransportError;
use async_trait::async_trait;
use bytes::Bytes;

/// A bucket. Keys are `/`-separated relative paths (see `folio_schemas::DocKeys`).
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Write (or overwrite) `key`. Returns once the object is durable.
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), TransportError>;

    /// Write `key` only if it does not exist yet (`If-None-Match: *`). `Ok(false)` when it existed.
    /// Exactly one of several racing writers gets `Ok(true)`.
    async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<bool, TransportError>;

    /// Read `key`; `ErrorKind::NotFound` when absent.
    async fn get(&self, key: &str) -> Result<Bytes, TransportError>;

    /// Whether `key` exists.
    async fn exists(&self, key: &str) -> Result<bool, TransportError>;

    /// Every key that starts with `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, TransportError>;

    /// Remove `key`; removing an absent key is not an error.
    async fn delete(&self, key: &str) -> Result<(), TransportError>;
}
