//! `s3://bucket/prefix`: what `folio reprocess` walks.

/// A bucket and a key prefix (possibly empty: the whole bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub prefix: String,
}

impl std::str::FromStr for S3Url {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{s:?} is not an s3://bucket/prefix URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(format!(
                "{bucket:?} is not a bucket name (3-63 characters of a-z, 0-9, '-' and '.')"
            ));
        }
        Ok(S3Url {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_prefix() {
        let u: S3Url = "s3://folio-data/acme/docs/".parse().unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.prefix.as_str()),
            ("folio-data", "acme/docs/")
        );
        assert_eq!(u.to_string(), "s3://folio-data/acme/docs/");
        let whole: S3Url = "s3://inbox".parse().unwrap();
        assert_eq!(whole.prefix, "");
        for bad in ["inbox/x", "s3://", "s3://UPPER/x", "s3://a/x", "http://b/x"] {
            assert!(bad.parse::<S3Url>().is_err(), "{bad}");
        }
    }
}
