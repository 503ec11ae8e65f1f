//! The object-store trait: a flat key space of immutable-ish blobs, as S3 offers it.

use crate::TransportError;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

/// A bucket. Keys are `/`-separated relative paths (see `folio_schemas::DocKeys`).
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Write (or overwrite) `key`. Returns once the object is durable.
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), TransportError>;

    /// Write (or overwrite) `key` from a body that arrives in pieces, without holding it whole
    /// in memory: write the pieces to the returned writer, then [`ObjectWriter::finish`]. Nothing
    /// is visible under `key` before `finish` returns; [`ObjectWriter::abort`] (or dropping the
    /// writer) leaves `key` as it was.
    ///
    /// The default collects the pieces in memory and calls [`ObjectStore::put`] at the end;
    /// [`crate::S3Store`] (multipart upload, one part in memory) and [`crate::LocalDirStore`]
    /// (a temporary file renamed into place) stream.
    fn writer<'a>(&'a self, key: &str, content_type: &str) -> Box<dyn ObjectWriter + 'a> {
        Box::new(BufferedWriter {
            store: self,
            key: key.to_string(),
            content_type: content_type.to_string(),
            buf: BytesMut::new(),
        })
    }

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

/// An object being written piece by piece (see [`ObjectStore::writer`]).
#[async_trait]
pub trait ObjectWriter: Send + Sync + std::fmt::Debug {
    /// Append `chunk`. May upload a part (and then wait for it).
    async fn write(&mut self, chunk: Bytes) -> Result<(), TransportError>;

    /// Bytes written so far.
    fn written(&self) -> u64;

    /// Make the object durable and visible under its key.
    async fn finish(self: Box<Self>) -> Result<(), TransportError>;

    /// Give up: whatever was uploaded so far is discarded. Best effort, never fails.
    async fn abort(self: Box<Self>);
}

/// [`ObjectStore::writer`]'s default: the body in memory, one `put` at the end.
struct BufferedWriter<'a, S: ?Sized> {
    store: &'a S,
    key: String,
    content_type: String,
    buf: BytesMut,
}

impl<S: ?Sized> std::fmt::Debug for BufferedWriter<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferedWriter")
            .field("key", &self.key)
            .field("written", &self.buf.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<S: ObjectStore + ?Sized> ObjectWriter for BufferedWriter<'_, S> {
    async fn write(&mut self, chunk: Bytes) -> Result<(), TransportError> {
        self.buf.extend_from_slice(&chunk);
        Ok(())
    }

    fn written(&self) -> u64 {
        self.buf.len() as u64
    }

    async fn finish(self: Box<Self>) -> Result<(), TransportError> {
        let BufferedWriter {
            store,
            key,
            content_type,
            buf,
        } = *self;
        store.put(&key, buf.freeze(), &content_type).await
    }

    async fn abort(self: Box<Self>) {}
}

/// Whether `tenant` can name a tenant: `[A-Za-z0-9_-]{1,64}`. A tenant is the first segment of
/// every key in the store, so this is the one check for API keys, trigger rules and
/// re-processing filters.
pub fn valid_tenant(tenant: &str) -> bool {
    (1..=64).contains(&tenant.len())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `id` can name a document: `[A-Za-z0-9_-]{1,128}`. Folio makes UUIDs, but ids arrive
/// in URLs and in page jobs from the broker; anything else must never reach a store key (no `/`,
/// no `..`), so this is the one check for the API and the workers.
pub fn valid_document_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tenant_tests {
    use super::{valid_document_id, valid_tenant};

    #[test]
    fn document_ids_are_key_safe() {
        for ok in [
            "0190b4c2-7f4e-7a1b-9c3d-1234567890ab",
            "d1",
            &"d".repeat(128),
        ] {
            assert!(valid_document_id(ok), "{ok}");
        }
        for bad in [
            "",
            "a/b",
            "..",
            "d1/../x",
            "d 1",
            "é",
            "d%2f",
            &"d".repeat(129),
        ] {
            assert!(!valid_document_id(bad), "{bad}");
        }
    }

    #[test]
    fn tenants_are_short_safe_names() {
        for ok in ["acme", "a", "Beta_2-x", &"t".repeat(64)] {
            assert!(valid_tenant(ok), "{ok}");
        }
        for bad in ["", "a/b", "a b", "é", "../x", &"t".repeat(65)] {
            assert!(!valid_tenant(bad), "{bad}");
        }
    }
}
