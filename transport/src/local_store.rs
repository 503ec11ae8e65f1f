//! A local directory as the bucket: each key is a file below the root.
//!
//! Writes go to a temporary file in the same directory, are fsynced, then renamed into place, so a
//! reader never sees a half-written object and a crash leaves either the old or the new bytes.
//! `put_if_absent` links the finished temporary file to the key with `hard_link`, which fails if the
//! key exists: exactly one racing writer wins.

use crate::local_writer::LocalWriter;
use crate::{ErrorKind, ObjectStore, ObjectWriter, TransportError};
use async_trait::async_trait;
use bytes::Bytes;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct LocalDirStore {
    root: PathBuf,
    tmp_counter: AtomicU64,
}

impl LocalDirStore {
    /// Use (and create) `root` as the bucket.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, TransportError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| io_error(&root, e))?;
        Ok(LocalDirStore {
            root,
            tmp_counter: AtomicU64::new(0),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn path_of(&self, key: &str) -> Result<PathBuf, TransportError> {
        let rel = Path::new(key);
        let valid = !key.is_empty()
            && !key.ends_with('/')
            && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !valid {
            return Err(TransportError::new(
                ErrorKind::Invalid,
                format!("invalid object key `{key}`"),
            ));
        }
        Ok(self.root.join(rel))
    }

    /// A fresh temporary file name next to `path` (its directory created), which `list` skips.
    pub(crate) fn temp_path(&self, path: &Path) -> Result<PathBuf, TransportError> {
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        Ok(dir.join(format!(".tmp-{}-{n}", std::process::id())))
    }

    /// Write `body` to a fresh temporary file next to `path` and fsync it.
    fn write_temp(&self, path: &Path, body: &[u8]) -> Result<PathBuf, TransportError> {
        let tmp = self.temp_path(path)?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
        f.write_all(body)
            .and_then(|_| f.sync_data())
            .map_err(|e| io_error(&tmp, e))?;
        Ok(tmp)
    }
}

pub(crate) fn io_error(path: &Path, e: std::io::Error) -> TransportError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
        _ => ErrorKind::Io,
    };
    TransportError::with_source(kind, format!("{}: {e}", path.display()), e)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TransportError> + Send + 'static,
) -> Result<T, TransportError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TransportError::new(ErrorKind::Io, format!("store task failed: {e}")))?
}

#[async_trait]
impl ObjectStore for LocalDirStore {
    async fn put(&self, key: &str, body: Bytes, _content_type: &str) -> Result<(), TransportError> {
        let path = self.path_of(key)?;
        let tmp = self.write_temp(&path, &body)?;
        blocking(move || std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))).await
    }

    fn writer<'a>(&'a self, key: &str, _content_type: &str) -> Box<dyn ObjectWriter + 'a> {
        Box::new(LocalWriter::new(self, key))
    }

    async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        _content_type: &str,
    ) -> Result<bool, TransportError> {
        let path = self.path_of(key)?;
        let tmp = self.write_temp(&path, &body)?;
        blocking(move || {
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(io_error(&path, e)),
            }
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Bytes, TransportError> {
        let path = self.path_of(key)?;
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| io_error(&path, e))?;
        Ok(Bytes::from(bytes))
    }

    async fn exists(&self, key: &str) -> Result<bool, TransportError> {
        let path = self.path_of(key)?;
        tokio::fs::try_exists(&path)
            .await
            .map_err(|e| io_error(&path, e))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, TransportError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        blocking(move || {
            // Walk only the deepest directory the prefix names fully.
            let dir_part = prefix.rfind('/').map(|i| &prefix[..i]).unwrap_or("");
            let start = if dir_part.is_empty() {
                root.clone()
            } else {
                root.join(dir_part)
            };
            let mut keys = Vec::new();
            let mut stack = vec![start];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_error(&dir, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| io_error(&dir, e))?;
                    let path = entry.path();
                    let name = entry.file_name();
                    if name.to_string_lossy().starts_with(".tmp-") {
                        continue;
                    }
                    let ft = entry.file_type().map_err(|e| io_error(&path, e))?;
                    if ft.is_dir() {
                        stack.push(path);
                    } else if let Ok(rel) = path.strip_prefix(&root) {
                        let key = rel
                            .to_string_lossy()
                            .replace(std::path::MAIN_SEPARATOR, "/");
                        if key.starts_with(&prefix) {
                            keys.push(key);
                        }
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), TransportError> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path()).unwrap();
        store
            .put(
                "t/docs/a/x.json",
                Bytes::from_static(b"1"),
                "application/json",
            )
            .await
            .unwrap();
        store
            .put("t/docs/a/results/00001.json", Bytes::from_static(b"2"), "")
            .await
            .unwrap();
        store
            .put("t/docs/b/x.json", Bytes::from_static(b"3"), "")
            .await
            .unwrap();
        assert_eq!(
            store.get("t/docs/a/x.json").await.unwrap(),
            Bytes::from_static(b"1")
        );
        assert_eq!(
            store.list("t/docs/a/").await.unwrap(),
            vec![
                "t/docs/a/results/00001.json".to_string(),
                "t/docs/a/x.json".to_string()
            ]
        );
        assert_eq!(store.list("t/docs/a/res").await.unwrap().len(), 1);
        store.delete("t/docs/a/x.json").await.unwrap();
        store.delete("t/docs/a/x.json").await.unwrap();
        let err = store.get("t/docs/a/x.json").await.unwrap_err();
        assert!(err.is_not_found());
    }

    #[tokio::test]
    async fn rejects_escaping_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path()).unwrap();
        for key in ["../x", "/etc/passwd", "a/../../b", "", "a/"] {
            let err = store.put(key, Bytes::new(), "").await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Invalid, "{key}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn put_if_absent_has_exactly_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalDirStore::new(dir.path()).unwrap());
        let mut tasks = Vec::new();
        for i in 0..16u8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .put_if_absent("k/marker", Bytes::from(vec![i]), "")
                    .await
                    .unwrap()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            winners += t.await.unwrap() as u32;
        }
        assert_eq!(winners, 1);
        assert_eq!(
            store.list("k/").await.unwrap(),
            vec!["k/marker".to_string()]
        );
    }
}
