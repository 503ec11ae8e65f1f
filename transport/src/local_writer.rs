//! [`LocalDirStore`]'s streaming writer: pieces go to a temporary file next to the key, which is
//! fsynced and renamed into place by `finish` (the same guarantees as `put`). An aborted or
//! dropped writer removes its temporary file.

use crate::local_store::io_error;
use crate::{LocalDirStore, ObjectWriter, TransportError};
use async_trait::async_trait;
use bytes::Bytes;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;

#[derive(Debug)]
pub(crate) struct LocalWriter {
    /// `(key path, temporary path)`, or why there are none (an invalid key), as kind and message.
    paths: Result<(PathBuf, PathBuf), (crate::ErrorKind, String)>,
    file: Option<tokio::fs::File>,
    written: u64,
}

impl LocalWriter {
    pub(crate) fn new(store: &LocalDirStore, key: &str) -> Self {
        let paths = store
            .path_of(key)
            .and_then(|target| Ok((target.clone(), store.temp_path(&target)?)))
            .map_err(|e| (e.kind, e.message));
        LocalWriter {
            paths,
            file: None,
            written: 0,
        }
    }

    fn paths(&self) -> Result<(PathBuf, PathBuf), TransportError> {
        self.paths
            .clone()
            .map_err(|(kind, message)| TransportError::new(kind, message))
    }

    async fn open(&mut self) -> Result<(), TransportError> {
        if self.file.is_none() {
            let (_, tmp) = self.paths()?;
            let file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| io_error(&tmp, e))?;
            self.file = Some(file);
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectWriter for LocalWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), TransportError> {
        self.open().await?;
        let (_, tmp) = self.paths()?;
        if let Some(file) = &mut self.file {
            file.write_all(&chunk)
                .await
                .map_err(|e| io_error(&tmp, e))?;
        }
        self.written += chunk.len() as u64;
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    async fn finish(mut self: Box<Self>) -> Result<(), TransportError> {
        self.open().await?;
        let (target, tmp) = self.paths()?;
        if let Some(mut file) = self.file.take() {
            let synced = match file.flush().await {
                Ok(()) => file.sync_data().await,
                Err(e) => Err(e),
            };
            drop(file);
            if let Err(e) = synced.and_then(|()| std::fs::rename(&tmp, &target)) {
                let _ = std::fs::remove_file(&tmp);
                return Err(io_error(&target, e));
            }
        }
        Ok(())
    }

    async fn abort(self: Box<Self>) {}
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        // Still open: not finished (abort, error, or dropped mid-way).
        if self.file.take().is_some() {
            if let Ok((_, tmp)) = &self.paths {
                let _ = std::fs::remove_file(tmp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{ErrorKind, LocalDirStore, ObjectStore};
    use bytes::Bytes;

    #[tokio::test]
    async fn pieces_become_one_object_only_at_finish() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path()).unwrap();
        let mut w = store.writer("t/docs/a/source", "application/pdf");
        w.write(Bytes::from_static(b"abc")).await.unwrap();
        w.write(Bytes::from_static(b"def")).await.unwrap();
        assert_eq!(w.written(), 6);
        assert!(!store.exists("t/docs/a/source").await.unwrap());
        assert!(
            store.list("t/").await.unwrap().is_empty(),
            "temp files are not listed"
        );
        w.finish().await.unwrap();
        assert_eq!(
            store.get("t/docs/a/source").await.unwrap(),
            Bytes::from_static(b"abcdef")
        );
        // An empty object is an object too.
        store.writer("t/empty", "").finish().await.unwrap();
        assert_eq!(store.get("t/empty").await.unwrap().len(), 0);
    }

    #[tokio::test]
    async fn aborted_and_dropped_writers_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path()).unwrap();
        store
            .put("t/k", Bytes::from_static(b"old"), "")
            .await
            .unwrap();
        let mut w = store.writer("t/k", "");
        w.write(Bytes::from_static(b"new")).await.unwrap();
        w.abort().await;
        let mut w = store.writer("t/k", "");
        w.write(Bytes::from_static(b"newer")).await.unwrap();
        drop(w);
        assert_eq!(store.get("t/k").await.unwrap(), Bytes::from_static(b"old"));
        let names: Vec<_> = std::fs::read_dir(dir.path().join("t"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["k"], "no temporary file left");
    }

    #[tokio::test]
    async fn an_invalid_key_fails_at_the_first_call() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path()).unwrap();
        let mut w = store.writer("../escape", "");
        let e = w.write(Bytes::from_static(b"x")).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        let e = store.writer("../escape", "").finish().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
    }
}
