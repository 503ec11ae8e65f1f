//! Where the triggers read new objects from: one [`ObjectStore`] per source bucket.

use folio_transport::{ErrorKind, LocalDirStore, ObjectStore, TransportError};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Opens source buckets by name.
pub trait SourceBuckets: Send + Sync + std::fmt::Debug {
    fn bucket(&self, name: &str) -> Result<Arc<dyn ObjectStore>, TransportError>;
}

/// Buckets as the sub-folders of a local folder (`root/<bucket>/<key>`): embedded mode and tests.
#[derive(Debug)]
pub struct LocalBuckets {
    root: PathBuf,
    open: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl LocalBuckets {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBuckets {
            root: root.into(),
            open: Mutex::new(HashMap::new()),
        }
    }
}

impl SourceBuckets for LocalBuckets {
    fn bucket(&self, name: &str) -> Result<Arc<dyn ObjectStore>, TransportError> {
        let valid = !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\']);
        if !valid {
            return Err(TransportError::new(
                ErrorKind::Invalid,
                format!("invalid bucket name {name:?}"),
            ));
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = open.get(name) {
            return Ok(store.clone());
        }
        let store: Arc<dyn ObjectStore> = Arc::new(LocalDirStore::new(self.root.join(name))?);
        open.insert(name.to_string(), store.clone());
        Ok(store)
    }
}

/// Buckets opened by a function (e.g. an S3 client per bucket), each opened once.
pub struct BucketFactory<F> {
    open: F,
    cache: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl<F> BucketFactory<F>
where
    F: Fn(&str) -> Result<Arc<dyn ObjectStore>, TransportError> + Send + Sync,
{
    pub fn new(open: F) -> Self {
        BucketFactory {
            open,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl<F> std::fmt::Debug for BucketFactory<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("BucketFactory")
            .field("open_buckets", &cache.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<F> SourceBuckets for BucketFactory<F>
where
    F: Fn(&str) -> Result<Arc<dyn ObjectStore>, TransportError> + Send + Sync,
{
    fn bucket(&self, name: &str) -> Result<Arc<dyn ObjectStore>, TransportError> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = cache.get(name) {
            return Ok(store.clone());
        }
        let store = (self.open)(name)?;
        cache.insert(name.to_string(), store.clone());
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn local_buckets_are_folders() {
        let dir = tempfile::tempdir().unwrap();
        let buckets = LocalBuckets::new(dir.path());
        let inbox = buckets.bucket("inbox").unwrap();
        inbox
            .put("a/b.pdf", Bytes::from_static(b"x"), "")
            .await
            .unwrap();
        assert!(dir.path().join("inbox/a/b.pdf").is_file());
        for bad in ["", "../x", ".hidden", "a/b"] {
            assert!(buckets.bucket(bad).is_err(), "{bad}");
        }
    }
}
