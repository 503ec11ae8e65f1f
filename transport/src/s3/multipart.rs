//! Multipart upload of a large body: create, upload parts (a few at a time), complete; abort on any
//! failure so no orphaned parts are left behind.

use super::errors::s3_error;
use super::S3Store;
use crate::{ErrorKind, TransportError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
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
    let cfg = &store.config;
    let checksum = cfg.checksums.then_some(ChecksumAlgorithm::Crc32);
    let created = store
        .client
        .create_multipart_upload()
        .bucket(&cfg.bucket)
        .key(key)
        .content_type(content_type)
        .set_checksum_algorithm(checksum.clone())
        .send()
        .await
        .map_err(|e| s3_error("create multipart upload", key, e))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| {
            TransportError::new(
                ErrorKind::Unavailable,
                format!("S3 create multipart upload `{key}`: no upload id in the answer"),
            )
        })?
        .to_string();

    let result = upload_parts(store, key, &upload_id, body, checksum).await;
    let completed = match result {
        Ok(parts) => store
            .client
            .complete_multipart_upload()
            .bucket(&cfg.bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| s3_error("complete multipart upload", key, e)),
        Err(e) => Err(e),
    };
    if let Err(e) = completed {
        let aborted = store
            .client
            .abort_multipart_upload()
            .bucket(&cfg.bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
        if let Err(abort) = aborted {
            tracing::warn!(key, upload_id, error = %s3_error("abort multipart upload", key, abort), "multipart upload left behind");
        }
        return Err(e);
    }
    Ok(())
}

async fn upload_parts(
    store: &S3Store,
    key: &str,
    upload_id: &str,
    body: Bytes,
    checksum: Option<ChecksumAlgorithm>,
) -> Result<Vec<CompletedPart>, TransportError> {
    let part_size = store.config.part_size;
    let ranges: Vec<(i32, std::ops::Range<usize>)> = (0..body.len())
        .step_by(part_size)
        .zip(1..)
        .map(|(start, number)| (number, start..(start + part_size).min(body.len())))
        .collect();
    futures_util::stream::iter(ranges)
        .map(|(number, range)| {
            let part = body.slice(range);
            let checksum = checksum.clone();
            async move {
                let out = store
                    .client
                    .upload_part()
                    .bucket(&store.config.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .set_checksum_algorithm(checksum)
                    .body(ByteStream::from(part))
                    .send()
                    .await
                    .map_err(|e| s3_error(&format!("upload part {number} of"), key, e))?;
                Ok::<_, TransportError>(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
                        .build(),
                )
            }
        })
        .buffered(PARALLEL_PARTS)
        .try_collect()
        .await
}
