//! Configuration of the S3 object store.

use crate::{ErrorKind, TransportError};
use std::time::Duration;

/// Settings of [`super::S3Store`]. `Debug` hides the secret key.
#[derive(Clone, custom_debug::Debug)]
pub struct S3Config {
    /// `http(s)://host:port` of an S3-compatible service; `None` for AWS's regional endpoint.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    #[debug(with = debug_secret)]
    pub secret_key: String,
    /// Path-style addressing (`endpoint/bucket/key`), as SeaweedFS, MinIO and Ceph expect.
    pub path_style: bool,
    /// Create the bucket in [`super::S3Store::connect`] when it does not exist.
    pub create_bucket: bool,
    /// Bodies of at least this many bytes are uploaded in parts.
    pub multipart_threshold: usize,
    /// Size of each part but the last (S3's minimum is 5 MiB).
    pub part_size: usize,
    /// Keys asked for per `ListObjectsV2` page (S3's maximum and default is 1000).
    pub list_page_size: i32,
    /// Attempts per request, the first included; the SDK retries transient errors (5xx, throttling,
    /// timeouts, connection failures) with jittered exponential backoff between them.
    pub max_attempts: u32,
    /// Limit for establishing a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Limit for one attempt of one request (a part upload included).
    pub attempt_timeout: Duration,
    /// Send and verify CRC32 checksums (`x-amz-checksum-crc32`) on writes and reads.
    pub checksums: bool,
}

impl S3Config {
    /// Defaults for everything but where the bucket is and who we are.
    pub fn new(
        endpoint: Option<String>,
        bucket: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        S3Config {
            endpoint,
            bucket: bucket.into(),
            region: "us-east-1".into(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            path_style: true,
            create_bucket: false,
            multipart_threshold: 16 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            list_page_size: 1000,
            max_attempts: 4,
            connect_timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(60),
            checksums: true,
        }
    }

    /// Check what S3 would reject late or confusingly.
    pub fn validate(&self) -> Result<(), TransportError> {
        let invalid = |m: String| Err(TransportError::new(ErrorKind::Invalid, m));
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return invalid(format!(
                    "S3 endpoint must start with http:// or https://: {endpoint}"
                ));
            }
        }
        if self.bucket.is_empty() || self.region.is_empty() {
            return invalid("S3 bucket and region must not be empty".into());
        }
        if self.access_key.is_empty() || self.secret_key.is_empty() {
            return invalid("S3 access and secret keys must not be empty".into());
        }
        if self.part_size < 5 * 1024 * 1024 || self.multipart_threshold < self.part_size {
            return invalid(format!(
                "S3 part_size ({}) must be at least 5 MiB and at most multipart_threshold ({})",
                self.part_size, self.multipart_threshold
            ));
        }
        if !(1..=1000).contains(&self.list_page_size) || self.max_attempts == 0 {
            return invalid("S3 list_page_size must be 1..=1000 and max_attempts >= 1".into());
        }
        Ok(())
    }
}

/// `Debug` of a secret: `"***"`.
fn debug_secret<S>(_: &S, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    std::fmt::Debug::fmt("***", f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let cfg = S3Config::new(
            Some("http://127.0.0.1:8333".into()),
            "b",
            "AKID",
            "very-secret",
        );
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("AKID"));
    }

    #[test]
    fn validate_rejects_bad_settings() {
        let ok = S3Config::new(Some("http://h:1".into()), "b", "a", "s");
        assert!(ok.validate().is_ok());
        let mut bad = ok.clone();
        bad.endpoint = Some("h:1".into());
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.part_size = 1024;
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.secret_key.clear();
        assert!(bad.validate().is_err());
        let mut bad = ok;
        bad.list_page_size = 0;
        assert!(bad.validate().is_err());
    }
}
