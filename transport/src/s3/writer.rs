//! [`S3Store`]'s streaming writer: pieces are gathered into `part_size` parts; the first full
//! part starts a multipart upload and each further full part is uploaded as soon as it is
//! complete, so at most one part (plus the piece being added) is in memory. A body that never
//! fills a part goes up in one `PutObject` at `finish`. Aborting, failing or dropping the writer
//! aborts the multipart upload (a dropped writer does so on a spawned task).

use super::multipart;
use super::S3Store;
use crate::{ObjectWriter, TransportError};
use async_trait::async_trait;
use aws_sdk_s3::types::CompletedPart;
use bytes::{Bytes, BytesMut};

#[derive(Debug)]
pub(crate) struct S3Writer {
    store: S3Store,
    key: String,
    content_type: String,
    buf: BytesMut,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    written: u64,
    done: bool,
}

impl S3Writer {
    pub(crate) fn new(store: &S3Store, key: &str, content_type: &str) -> Self {
        S3Writer {
            store: store.clone(),
            key: key.to_string(),
            content_type: content_type.to_string(),
            buf: BytesMut::new(),
            upload_id: None,
            parts: Vec::new(),
            written: 0,
            done: false,
        }
    }

    /// Upload `part` as the next part, starting the multipart upload if needed.
    async fn send_part(&mut self, part: Bytes) -> Result<(), TransportError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = multipart::create(&self.store, &self.key, &self.content_type).await?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = self.parts.len() as i32 + 1;
        let done = multipart::upload_part(&self.store, &self.key, &upload_id, number, part).await?;
        self.parts.push(done);
        Ok(())
    }

    async fn finish_inner(&mut self) -> Result<(), TransportError> {
        let rest = self.buf.split().freeze();
        let Some(upload_id) = self.upload_id.clone() else {
            return crate::ObjectStore::put(&self.store, &self.key, rest, &self.content_type).await;
        };
        // The last part may be smaller than the minimum; an empty one is left out.
        if !rest.is_empty() {
            self.send_part(rest).await?;
        }
        let parts = std::mem::take(&mut self.parts);
        multipart::complete(&self.store, &self.key, &upload_id, parts).await
    }

    async fn abort_upload(&mut self) {
        self.done = true;
        if let Some(upload_id) = self.upload_id.take() {
            multipart::abort(&self.store, &self.key, &upload_id).await;
        }
    }
}

#[async_trait]
impl ObjectWriter for S3Writer {
    async fn write(&mut self, chunk: Bytes) -> Result<(), TransportError> {
        self.buf.extend_from_slice(&chunk);
        self.written += chunk.len() as u64;
        let part_size = self.store.config.part_size;
        while self.buf.len() >= part_size {
            let part = self.buf.split_to(part_size).freeze();
            if let Err(e) = self.send_part(part).await {
                self.abort_upload().await;
                return Err(e);
            }
        }
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    async fn finish(mut self: Box<Self>) -> Result<(), TransportError> {
        let result = self.finish_inner().await;
        if result.is_err() {
            self.abort_upload().await;
        }
        self.done = true;
        result
    }

    async fn abort(mut self: Box<Self>) {
        self.abort_upload().await;
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let (store, key) = (self.store.clone(), std::mem::take(&mut self.key));
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { multipart::abort(&store, &key, &upload_id).await });
            }
            Err(_) => {
                tracing::warn!(
                    key,
                    upload_id,
                    "writer dropped outside a runtime; multipart upload left behind"
                )
            }
        }
    }
}
