//! Multipart upload: create, upload parts, complete; abort on any failure so no orphaned parts
//! are left behind. [`upload`] sends a body that is in memory (a few parts at a time); the
//! streaming writer ([`super::writer`]) uses the same steps one part at a time.

use super::errors::s3_error;
use super::S3Store;
use crate::{ErrorKind, TransportError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

/// Parts in flight at once: enough to overlap round trips, few enough to bound memory per upload
/// (the body is already in memory; parts are slices of it, not copies).
const PARALLEL_PARTS: usize = 4;

pub(crate) async fn upload(
    store: &S3Store,
    key: &str,
    body: Bytes,
    content_type: &str,
) -> Result<(), TransportError> {
    let upload_id = create(store, key, content_type).await?;
    let result = upload_parts(store, key, &upload_id, body).await;
    let completed = match result {
        Ok(parts) => complete(store, key, &upload_id, parts).await,
        Err(e) => Err(e),
    };
    if completed.is_err() {
        abort(store, key, &upload_id).await;
    }
    completed
}

/// `CreateMultipartUpload`: the upload id.
pub(crate) async fn create(
    store: &S3Store,
    key: &str,
    content_type: &str,
) -> Result<String, TransportError> {
    let created = store
        .client
        .create_multipart_upload()
        .bucket(&store.config.bucket)
        .key(key)
        .content_type(content_type)
        .set_checksum_algorithm(store.checksum())
        .send()
        .await
        .map_err(|e| s3_error("create multipart upload", key, e))?;
    created.upload_id().map(str::to_string).ok_or_else(|| {
        TransportError::new(
            ErrorKind::Unavailable,
            format!("S3 create multipart upload `{key}`: no upload id in the answer"),
        )
    })
}

/// `UploadPart` number `number` (1-based).
pub(crate) async fn upload_part(
    store: &S3Store,
    key: &str,
    upload_id: &str,
    number: i32,
    part: Bytes,
) -> Result<CompletedPart, TransportError> {
    let out = store
        .client
        .upload_part()
        .bucket(&store.config.bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .set_checksum_algorithm(store.checksum())
        .body(ByteStream::from(part))
        .send()
        .await
        .map_err(|e| s3_error(&format!("upload part {number} of"), key, e))?;
    Ok(CompletedPart::builder()
        .part_number(number)
        .set_e_tag(out.e_tag().map(str::to_string))
        .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
        .build())
}

/// `CompleteMultipartUpload` with `parts` in order.
pub(crate) async fn complete(
    store: &S3Store,
    key: &str,
    upload_id: &str,
    parts: Vec<CompletedPart>,
) -> Result<(), TransportError> {
    store
        .client
        .complete_multipart_upload()
        .bucket(&store.config.bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| s3_error("complete multipart upload", key, e))
}

/// `AbortMultipartUpload`, best effort (a failure is logged: the parts stay until the bucket's
/// lifecycle rule for incomplete uploads removes them).
pub(crate) async fn abort(store: &S3Store, key: &str, upload_id: &str) {
    let aborted = store
        .client
        .abort_multipart_upload()
        .bucket(&store.config.bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await;
    if let Err(e) = aborted {
        tracing::warn!(key, upload_id, error = %s3_error("abort multipart upload", key, e), "multipart upload left behind");
    }
}

async fn upload_parts(
    store: &S3Store,
    key: &str,
    upload_id: &str,
    body: Bytes,
) -> Result<Vec<CompletedPart>, TransportError> {
    let part_size = store.config.part_size;
    let ranges: Vec<(i32, std::ops::Range<usize>)> = (0..body.len())
        .step_by(part_size)
        .zip(1..)
        .map(|(start, number)| (number, start..(start + part_size).min(body.len())))
        .collect();
    futures_util::stream::iter(ranges)
        .map(|(number, range)| upload_part(store, key, upload_id, number, body.slice(range)))
        .buffered(PARALLEL_PARTS)
        .try_collect()
        .await
}
