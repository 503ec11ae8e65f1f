//! An S3 bucket as the object store (aws-sdk-s3; SeaweedFS, MinIO, Ceph RGW or AWS).
//!
//! Static credentials, a custom endpoint with path-style addressing, the SDK's standard retry mode
//! (jittered exponential backoff over transient errors, `max_attempts` in all) and connect and
//! per-attempt timeouts. Bodies below `multipart_threshold` go up in one `PutObject`, larger ones
//! in `part_size` parts (see [`multipart`]); [`ObjectStore::writer`] streams a body in parts as
//! it arrives (see [`writer`]). With `checksums` on, writes carry a CRC32
//! (`x-amz-checksum-crc32`) that the server checks, and reads ask for it back and the SDK checks it.
//!
//! `put_if_absent` is `PutObject` with `If-None-Match: *`: the server lets exactly one writer create
//! the key (412 for the others). A `409 ConditionalRequestConflict` (AWS, while a racing write is in
//! flight) is retried until the race is decided.

mod config;
mod errors;
mod multipart;
mod writer;

pub use config::S3Config;

use crate::{ErrorKind, ObjectStore, ObjectWriter, TransportError};
use async_trait::async_trait;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls;
use bytes::Bytes;
use errors::{s3_error, status_of};
use std::time::Duration;

/// An S3-backed [`ObjectStore`]. Cheap to clone (the client is shared).
#[derive(Clone, custom_debug::Debug)]
pub struct S3Store {
    #[debug(skip)]
    client: Client,
    config: S3Config,
}

impl S3Store {
    /// A store that talks to S3 on first use (no I/O here). Fails only on an invalid configuration.
    pub fn new(config: S3Config) -> Result<Self, TransportError> {
        config.validate()?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let credentials = Credentials::new(
            &config.access_key,
            &config.secret_key,
            None,
            None,
            "folio-config",
        );
        let retry = RetryConfig::standard()
            .with_max_attempts(config.max_attempts)
            .with_initial_backoff(Duration::from_millis(200))
            .with_max_backoff(Duration::from_secs(5));
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.connect_timeout)
            .operation_attempt_timeout(config.attempt_timeout)
            .build();
        let (calculation, validation) = if config.checksums {
            (
                RequestChecksumCalculation::WhenSupported,
                ResponseChecksumValidation::WhenSupported,
            )
        } else {
            (
                RequestChecksumCalculation::WhenRequired,
                ResponseChecksumValidation::WhenRequired,
            )
        };
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(config.path_style)
            .http_client(http)
            .retry_config(retry)
            .timeout_config(timeouts)
            .request_checksum_calculation(calculation)
            .response_checksum_validation(validation);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Ok(S3Store {
            client: Client::from_conf(builder.build()),
            config,
        })
    }

    /// [`S3Store::new`], then create the bucket if `create_bucket` (an existing one is fine) or
    /// check that it is reachable.
    pub async fn connect(config: S3Config) -> Result<Self, TransportError> {
        let store = Self::new(config)?;
        if store.config.create_bucket {
            store.create_bucket().await?;
        } else {
            store.check().await?;
        }
        Ok(store)
    }

    pub fn config(&self) -> &S3Config {
        &self.config
    }

    pub fn bucket(&self) -> &str {
        &self.config.bucket
    }

    /// `HeadBucket`: the service answers and the bucket exists with our credentials (readiness).
    pub async fn check(&self) -> Result<(), TransportError> {
        self.client
            .head_bucket()
            .bucket(&self.config.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let mut err = s3_error("head bucket", &self.config.bucket, e);
                if err.kind == ErrorKind::NotFound {
                    // A missing bucket is a configuration error, not a missing object.
                    err.kind = ErrorKind::Invalid;
                }
                err
            })
    }

    /// Create the bucket; one that already exists (ours) is not an error.
    pub async fn create_bucket(&self) -> Result<(), TransportError> {
        let bucket = &self.config.bucket;
        match self.client.create_bucket().bucket(bucket).send().await {
            Ok(_) => {
                tracing::info!(bucket, "created bucket");
                Ok(())
            }
            Err(e) => {
                let exists = e.as_service_error().is_some_and(|s| {
                    s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
                });
                if exists {
                    Ok(())
                } else {
                    Err(s3_error("create bucket", bucket, e))
                }
            }
        }
    }

    fn checksum(&self) -> Option<ChecksumAlgorithm> {
        self.config.checksums.then_some(ChecksumAlgorithm::Crc32)
    }

    async fn put_once(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        if_none_match: bool,
    ) -> Result<(), aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::put_object::PutObjectError>>
    {
        self.client
            .put_object()
            .bucket(&self.config.bucket)
            .key(key)
            .content_type(content_type)
            .set_checksum_algorithm(self.checksum())
            .set_if_none_match(if_none_match.then(|| "*".to_string()))
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
    }
}

fn check_key(key: &str) -> Result<(), TransportError> {
    if key.is_empty() || key.len() > 1024 {
        return Err(TransportError::new(
            ErrorKind::Invalid,
            format!("invalid object key `{key}` (1 to 1024 bytes)"),
        ));
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), TransportError> {
        check_key(key)?;
        if body.len() >= self.config.multipart_threshold {
            return multipart::upload(self, key, body, content_type).await;
        }
        self.put_once(key, body, content_type, false)
            .await
            .map_err(|e| s3_error("put", key, e))
    }

    fn writer<'a>(&'a self, key: &str, content_type: &str) -> Box<dyn ObjectWriter + 'a> {
        Box::new(writer::S3Writer::new(self, key, content_type))
    }

    async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<bool, TransportError> {
        check_key(key)?;
        // A 409 means another conditional write of this key is in flight: wait for it to settle
        // (then the next attempt gets 412, or wins if that write failed).
        let mut conflicts = 0u32;
        loop {
            match self.put_once(key, body.clone(), content_type, true).await {
                Ok(()) => return Ok(true),
                Err(e) => match status_of(&e) {
                    Some(412) => return Ok(false),
                    Some(409) if conflicts < 8 => {
                        conflicts += 1;
                        tokio::time::sleep(Duration::from_millis(50 * u64::from(conflicts))).await;
                    }
                    _ => return Err(s3_error("put if absent", key, e)),
                },
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, TransportError> {
        check_key(key)?;
        let mut request = self
            .client
            .get_object()
            .bucket(&self.config.bucket)
            .key(key);
        if self.config.checksums {
            request = request.checksum_mode(ChecksumMode::Enabled);
        }
        let out = request.send().await.map_err(|e| s3_error("get", key, e))?;
        let body = out.body.collect().await.map_err(|e| {
            TransportError::with_source(
                ErrorKind::Unavailable,
                format!("S3 get `{key}`: reading the body failed: {e}"),
                e,
            )
        })?;
        Ok(body.into_bytes())
    }

    async fn exists(&self, key: &str) -> Result<bool, TransportError> {
        check_key(key)?;
        let head = self
            .client
            .head_object()
            .bucket(&self.config.bucket)
            .key(key)
            .send()
            .await;
        match head {
            Ok(_) => Ok(true),
            Err(e) => {
                let err = s3_error("head", key, e);
                if err.kind == ErrorKind::NotFound {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, TransportError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.config.bucket)
                .prefix(prefix)
                .max_keys(self.config.list_page_size)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| s3_error("list", prefix, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            if page.is_truncated() != Some(true) {
                break;
            }
            match page.next_continuation_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => {
                    return Err(TransportError::new(
                        ErrorKind::Unavailable,
                        format!("S3 list `{prefix}`: truncated page without a continuation token"),
                    ))
                }
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), TransportError> {
        check_key(key)?;
        let deleted = self
            .client
            .delete_object()
            .bucket(&self.config.bucket)
            .key(key)
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = s3_error("delete", key, e);
                if err.kind == ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }
}
