//! The one shape every notification format is parsed into: [`ObjectEvent`], plus why an event is
//! ignored before any rule is consulted ([`Ignored`]).

/// Which wire format an event came in (also the `format` label of the trigger metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventFormat {
    /// The AWS S3 event notification format (`Records[]`), as AWS, MinIO and Ceph send it.
    Aws,
    /// SeaweedFS's filer webhook (`event_type`, `key`, `message`).
    SeaweedFs,
}

impl EventFormat {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventFormat::Aws => "aws",
            EventFormat::SeaweedFs => "seaweedfs",
        }
    }
}

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A new object (AWS `ObjectCreated:*`, SeaweedFS `create`, or a rename's new path).
    Created,
    /// An existing key written again (SeaweedFS `update`): handled as a new version.
    Updated,
    /// The object was deleted.
    Removed,
    /// Anything else (restore, replication, lifecycle, tagging...).
    Other,
}

/// One object-level event, whatever format it arrived in. Keys are decoded (no URL encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    pub format: EventFormat,
    /// The event's own name (`ObjectCreated:Put`, `create`...), for logs and records.
    pub name: String,
    pub change: Change,
    /// Empty when the path is not inside a bucket (SeaweedFS paths outside the buckets folder).
    pub bucket: String,
    pub key: String,
    pub size: Option<u64>,
    /// The object's ETag without quotes.
    pub etag: Option<String>,
    /// AWS `sequencer`: orders events of one key (hex, compare after left-padding).
    pub sequencer: Option<String>,
    pub version_id: Option<String>,
    /// The content type the event declares (SeaweedFS `mime`, MinIO `contentType`).
    pub content_type: Option<String>,
    /// When the event happened, as the sender wrote it.
    pub event_time: Option<String>,
    /// The entry is a directory (SeaweedFS) or a zero-byte `…/` folder marker (S3).
    pub directory: bool,
    /// SeaweedFS modification time (seconds, nanoseconds): the version when there is no ETag.
    pub mtime: Option<(i64, i64)>,
}

/// Why an event is dropped before rules and deduplication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// `s3:TestEvent`, sent when a notification configuration is saved.
    TestEvent,
    /// A deletion or another change that does not create content.
    NotACreation,
    /// A folder, or a zero-byte `…/` folder marker.
    Directory,
    /// A multipart upload's part under SeaweedFS's `/.uploads/` (the completed object follows).
    MultipartPart,
    /// A SeaweedFS path outside the buckets folder, or a system bucket (`.system`...).
    NotABucketObject,
    /// No rule matches the bucket, prefix and suffix.
    NoRule,
    /// A rule matched the key but not the object's content type.
    ContentType,
    /// An older version of a key whose newer version was already processed (by `sequencer`).
    Stale,
    /// The object was deleted before it could be fetched.
    Gone,
}

impl Ignored {
    /// Stable snake_case name (metrics label, logs, HTTP answers).
    pub fn as_str(&self) -> &'static str {
        match self {
            Ignored::TestEvent => "test_event",
            Ignored::NotACreation => "not_a_creation",
            Ignored::Directory => "directory",
            Ignored::MultipartPart => "multipart_part",
            Ignored::NotABucketObject => "not_a_bucket_object",
            Ignored::NoRule => "no_rule",
            Ignored::ContentType => "content_type",
            Ignored::Stale => "stale",
            Ignored::Gone => "gone",
        }
    }
}

/// A parsed notification body: a test event, or object events (possibly none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    Test,
    Objects(Vec<ObjectEvent>),
}

#[cfg(test)]
impl ObjectEvent {
    /// An AWS `ObjectCreated:Put` of a 10-byte object with ETag `abc`, for unit tests.
    pub(crate) fn put_for_tests(bucket: &str, key: &str) -> ObjectEvent {
        ObjectEvent {
            format: EventFormat::Aws,
            name: "ObjectCreated:Put".into(),
            change: Change::Created,
            bucket: bucket.into(),
            key: key.into(),
            size: Some(10),
            etag: Some("abc".into()),
            sequencer: None,
            version_id: None,
            content_type: None,
            event_time: None,
            directory: false,
            mtime: None,
        }
    }
}

impl ObjectEvent {
    /// Why this event is dropped whatever the rules say, if it is.
    pub fn ignore_reason(&self) -> Option<Ignored> {
        if !matches!(self.change, Change::Created | Change::Updated) {
            return Some(Ignored::NotACreation);
        }
        if self.bucket.is_empty() || self.bucket.starts_with('.') {
            return Some(Ignored::NotABucketObject);
        }
        if self.format == EventFormat::SeaweedFs
            && (self.key.starts_with(".uploads/") || self.key == ".uploads")
        {
            return Some(Ignored::MultipartPart);
        }
        let folder_marker = self.key.ends_with('/') && self.size.unwrap_or(0) == 0;
        if self.directory || self.key.is_empty() || folder_marker {
            return Some(Ignored::Directory);
        }
        None
    }

    /// What tells two versions of the key apart: the ETag, else the version id, else (SeaweedFS
    /// without an ETag) modification time and size. `None` when the event carries none of them.
    pub fn version(&self) -> Option<String> {
        if let Some(etag) = self.etag.as_deref().filter(|e| !e.is_empty()) {
            return Some(etag.to_string());
        }
        if let Some(v) = self.version_id.as_deref().filter(|v| !v.is_empty()) {
            return Some(format!("version:{v}"));
        }
        self.mtime
            .map(|(s, ns)| format!("mtime:{s}.{ns:09}:{}", self.size.unwrap_or(0)))
    }

    /// The last path segment of the key (the file name given to the manifest).
    pub fn file_name(&self) -> Option<String> {
        self.key
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .map(str::to_string)
    }
}

/// A notification body that cannot be understood: rejected (dead-lettered, HTTP 400), never retried.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("the body is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the body is not a {format} notification: {detail}")]
    Shape {
        format: &'static str,
        detail: String,
    },
    #[error("object key {0:?} is not URL-encoded UTF-8")]
    BadKey(String),
}

/// Compare two AWS sequencers: hex strings of possibly different lengths, compared as numbers
/// after left-padding the shorter one with zeros (as AWS documents).
pub fn sequencer_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.trim().to_ascii_uppercase(), b.trim().to_ascii_uppercase());
    let width = a.len().max(b.len());
    format!("{a:0>width$}").cmp(&format!("{b:0>width$}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    fn event(bucket: &str, key: &str) -> ObjectEvent {
        ObjectEvent::put_for_tests(bucket, key)
    }

    #[test]
    fn sequencers_compare_as_padded_hex() {
        assert_eq!(sequencer_cmp("0A", "9"), Ordering::Greater);
        assert_eq!(
            sequencer_cmp("0055AED6DCD90281E5", "55aed6dcd90281e5"),
            Ordering::Equal
        );
        assert_eq!(
            sequencer_cmp("0055AED6DCD90281E5", "0055AED6DCD90281E6"),
            Ordering::Less
        );
    }

    #[test]
    fn ignore_reasons() {
        assert_eq!(event("b", "a.pdf").ignore_reason(), None);
        let mut removed = event("b", "a.pdf");
        removed.change = Change::Removed;
        assert_eq!(removed.ignore_reason(), Some(Ignored::NotACreation));
        let mut folder = event("b", "scans/");
        folder.size = Some(0);
        assert_eq!(folder.ignore_reason(), Some(Ignored::Directory));
        assert_eq!(
            event(".system", "x").ignore_reason(),
            Some(Ignored::NotABucketObject)
        );
        assert_eq!(
            event("", "x").ignore_reason(),
            Some(Ignored::NotABucketObject)
        );
        // `.uploads/` is only SeaweedFS's multipart staging area; on S3 it is an ordinary prefix.
        assert_eq!(event("b", ".uploads/x/0001.part").ignore_reason(), None);
        let mut part = event("b", ".uploads/x/0001.part");
        part.format = EventFormat::SeaweedFs;
        assert_eq!(part.ignore_reason(), Some(Ignored::MultipartPart));
    }

    #[test]
    fn version_prefers_etag_then_version_id_then_mtime() {
        let mut e = event("b", "k");
        assert_eq!(e.version().as_deref(), Some("abc"));
        e.etag = None;
        e.version_id = Some("v1".into());
        assert_eq!(e.version().as_deref(), Some("version:v1"));
        e.version_id = None;
        e.mtime = Some((1_700_000_000, 5));
        assert_eq!(
            e.version().as_deref(),
            Some("mtime:1700000000.000000005:10")
        );
        e.mtime = None;
        assert_eq!(e.version(), None);
        assert_eq!(
            event("b", "a/b/c.pdf").file_name().as_deref(),
            Some("c.pdf")
        );
    }
}
