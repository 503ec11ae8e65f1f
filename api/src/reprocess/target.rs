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

/// A `--since` date: `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time.
pub fn parse_date(s: &str) -> Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &format)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates() {
        assert_eq!(
            parse_date("2026-03-01").unwrap(),
            time::macros::datetime!(2026-03-01 00:00 UTC)
        );
        assert_eq!(
            parse_date("2026-03-01T12:30:00+02:00").unwrap(),
            time::macros::datetime!(2026-03-01 10:30 UTC)
        );
        assert!(parse_date("yesterday").is_err());
    }

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
