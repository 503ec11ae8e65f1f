//! SeaweedFS's filer webhook (`notification.toml`, `[notification.webhook]`): one POST per filer
//! change, `{"event_type":"create|update|delete|rename","key":"/buckets/<bucket>/<key>",
//! "message":{"old_entry":…,"new_entry":…,"new_parent_path":…}}` with a bearer token.
//!
//! What the filer sends for S3 traffic (recorded from SeaweedFS 4.48):
//! - a PUT: `create` of the object, plus `create` of each new parent folder (`is_directory`);
//! - a PUT over an existing key: `update` (a new version; same content gives the same ETag);
//! - a multipart upload: folders and parts under `/buckets/<bucket>/.uploads/<id>/`, then a `create`
//!   of the completed object, then `delete`s of the parts;
//! - bucket creation writes under `/buckets/.system/`.
//!
//! The S3 ETag is in the entry's `extended["Seaweed-X-Amz-ETag"]` (base64 of the ETag text); older
//! entries only have `attributes.md5` (base64 of the MD5), and entries with neither are told apart by
//! modification time and size. Keys in filer paths are not URL-encoded.

use super::model::{Change, EventFormat, Notification, ObjectEvent, ParseError};
use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The filer folder that holds the S3 buckets (`weed filer -dir.buckets`, default `/buckets`).
pub const DEFAULT_BUCKETS_DIR: &str = "/buckets";
const ETAG_KEY: &str = "Seaweed-X-Amz-ETag";

#[derive(Debug, Deserialize)]
struct Webhook {
    event_type: String,
    key: String,
    #[serde(default)]
    message: Message,
}

#[derive(Debug, Default, Deserialize)]
struct Message {
    old_entry: Option<Entry>,
    new_entry: Option<Entry>,
    #[serde(default)]
    new_parent_path: String,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(default)]
    name: String,
    #[serde(default)]
    is_directory: bool,
    #[serde(default)]
    chunks: Vec<Chunk>,
    attributes: Option<Attributes>,
    /// Values are bytes, base64-encoded by the filer's JSON encoder.
    #[serde(default)]
    extended: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Attributes {
    file_size: Option<u64>,
    mtime: Option<i64>,
    mtime_ns: Option<i64>,
    mime: Option<String>,
    md5: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Chunk {
    e_tag: Option<String>,
}

/// Parse a webhook body; `buckets_dir` is the filer's buckets folder ([`DEFAULT_BUCKETS_DIR`]).
pub fn parse(body: &[u8], buckets_dir: &str) -> Result<Notification, ParseError> {
    let hook: Webhook = serde_json::from_slice(body)?;
    let shape = |detail: &str| ParseError::Shape {
        format: EventFormat::SeaweedFs.as_str(),
        detail: detail.to_string(),
    };
    let (change, path, entry) = match hook.event_type.as_str() {
        "create" | "update" => {
            let change = if hook.event_type == "create" {
                Change::Created
            } else {
                Change::Updated
            };
            let entry = hook
                .message
                .new_entry
                .ok_or_else(|| shape("a create/update without `new_entry`"))?;
            (change, hook.key, Some(entry))
        }
        // A rename creates the object at its new path.
        "rename" => {
            let entry = hook
                .message
                .new_entry
                .ok_or_else(|| shape("a rename without `new_entry`"))?;
            let parent = hook.message.new_parent_path.trim_end_matches('/');
            (
                Change::Created,
                format!("{parent}/{}", entry.name),
                Some(entry),
            )
        }
        "delete" => (Change::Removed, hook.key, hook.message.old_entry),
        other => return Err(shape(&format!("unknown event_type {other:?}"))),
    };
    if !path.starts_with('/') {
        return Err(shape("`key` is not an absolute filer path"));
    }
    let (bucket, key) = split_bucket_path(&path, buckets_dir);
    let attrs = entry.as_ref().and_then(|e| e.attributes.as_ref());
    Ok(Notification::Objects(vec![ObjectEvent {
        format: EventFormat::SeaweedFs,
        name: hook.event_type.clone(),
        change,
        bucket,
        key,
        size: attrs.and_then(|a| a.file_size),
        etag: entry.as_ref().and_then(entry_etag),
        sequencer: None,
        version_id: None,
        content_type: attrs.and_then(|a| a.mime.clone()).filter(|m| !m.is_empty()),
        event_time: None,
        directory: entry.as_ref().is_some_and(|e| e.is_directory),
        mtime: attrs.and_then(|a| a.mtime.map(|s| (s, a.mtime_ns.unwrap_or(0)))),
    }]))
}

/// `/buckets/inbox/a/b.pdf` → (`inbox`, `a/b.pdf`); a path outside `buckets_dir` has no bucket.
fn split_bucket_path(path: &str, buckets_dir: &str) -> (String, String) {
    let dir = buckets_dir.trim_end_matches('/');
    let Some(rest) = path.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) else {
        return (String::new(), path.to_string());
    };
    match rest.split_once('/') {
        Some((bucket, key)) => (bucket.to_string(), key.to_string()),
        None => (rest.to_string(), String::new()),
    }
}

/// The S3 ETag of an entry: `Seaweed-X-Amz-ETag`, else the MD5 attribute, else a single chunk's.
fn entry_etag(entry: &Entry) -> Option<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).ok();
    if let Some(text) = entry
        .extended
        .get(ETAG_KEY)
        .and_then(|v| b64(v))
        .and_then(|bytes| String::from_utf8(bytes).ok())
    {
        let text = text.trim_matches('"');
        if !text.is_empty() {
            return Some(text.to_string());
        }
    }
    let md5 = entry
        .attributes
        .as_ref()
        .and_then(|a| a.md5.as_deref())
        .or(match entry.chunks.as_slice() {
            [only] => only.e_tag.as_deref(),
            _ => None,
        })?;
    b64(md5).filter(|d| d.len() == 16).map(hex::encode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::Ignored;

    fn one(body: &str) -> ObjectEvent {
        match parse(body.as_bytes(), DEFAULT_BUCKETS_DIR).unwrap() {
            Notification::Objects(mut v) if v.len() == 1 => v.remove(0),
            other => panic!("{other:?}"),
        }
    }

    // Recorded from `weed mini` 4.48 for `put_object(Bucket="inbox", Key="scans/a b+c%.pdf")`.
    const CREATE: &str = r#"{"event_type":"create","key":"/buckets/inbox/scans/a b+c%.pdf","message":{
        "new_entry":{"name":"a b+c%.pdf","chunks":[{"size":14,"modified_ts_ns":1795923361839587618,
        "e_tag":"GDsUip2ulKeESoNRsfwtWQ==","fid":{"volume_id":1,"file_key":1,"cookie":3238330109}}],
        "attributes":{"file_size":14,"mtime":1795923361,"file_mode":432,"crtime":1795923361,
        "mime":"application/pdf","md5":"GDsUip2ulKeESoNRsfwtWQ==","inode":13872310578334893541,
        "ctime":1795923361,"atime":1795923361},
        "extended":{"Seaweed-X-Amz-ETag":"MTgzYjE0OGE5ZGFlOTRhNzg0NGE4MzUxYjFmYzJkNTk=",
        "Seaweed-X-Amz-Owner":"YWRtaW4="}},
        "delete_chunks":true,"new_parent_path":"/buckets/inbox/scans","signatures":[1742018323]}}"#;

    #[test]
    fn create_of_an_object() {
        let e = one(CREATE);
        assert_eq!(
            (e.bucket.as_str(), e.key.as_str()),
            ("inbox", "scans/a b+c%.pdf")
        );
        assert_eq!(e.change, Change::Created);
        assert_eq!(e.etag.as_deref(), Some("183b148a9dae94a7844a8351b1fc2d59"));
        assert_eq!(e.size, Some(14));
        assert_eq!(e.content_type.as_deref(), Some("application/pdf"));
        assert_eq!(e.ignore_reason(), None);
    }

    #[test]
    fn etag_falls_back_to_md5_then_mtime() {
        let no_ext = CREATE.replace(
            r#""Seaweed-X-Amz-ETag":"MTgzYjE0OGE5ZGFlOTRhNzg0NGE4MzUxYjFmYzJkNTk=","#,
            "",
        );
        // base64 "GDsUip2ulKeESoNRsfwtWQ==" is the MD5 18 3b 14 8a ...
        assert_eq!(
            one(&no_ext).etag.as_deref(),
            Some("183b148a9dae94a7844a8351b1fc2d59")
        );
        let bare = r#"{"event_type":"create","key":"/buckets/b/k.png","message":{"new_entry":{"name":"k.png",
            "chunks":[{"e_tag":"x"},{"e_tag":"y"}],"attributes":{"file_size":7,"mtime":100,"mtime_ns":5}}}}"#;
        let e = one(bare);
        assert_eq!(e.etag, None);
        assert_eq!(e.version().as_deref(), Some("mtime:100.000000005:7"));
    }

    #[test]
    fn folders_parts_system_paths_and_deletes_are_ignored() {
        let folder = r#"{"event_type":"create","key":"/buckets/inbox/scans","message":{"new_entry":
            {"name":"scans","is_directory":true,"attributes":{"mtime":1,"ctime":-62135596800}},
            "new_parent_path":"/buckets/inbox"}}"#;
        assert_eq!(one(folder).ignore_reason(), Some(Ignored::Directory));
        let bucket = r#"{"event_type":"create","key":"/buckets/inbox","message":{"new_entry":{"name":"inbox","is_directory":true}}}"#;
        assert_eq!(one(bucket).ignore_reason(), Some(Ignored::Directory));
        let part = r#"{"event_type":"create","key":"/buckets/inbox/.uploads/0b92_1f9c/0001_02a9.part",
            "message":{"new_entry":{"name":"0001_02a9.part","attributes":{"file_size":5242880}}}}"#;
        assert_eq!(one(part).ignore_reason(), Some(Ignored::MultipartPart));
        let system = r#"{"event_type":"create","key":"/buckets/.system/owners/.complete","message":{"new_entry":{"name":".complete"}}}"#;
        assert_eq!(one(system).ignore_reason(), Some(Ignored::NotABucketObject));
        let outside = r#"{"event_type":"create","key":"/home/x.pdf","message":{"new_entry":{"name":"x.pdf"}}}"#;
        assert_eq!(
            one(outside).ignore_reason(),
            Some(Ignored::NotABucketObject)
        );
        let delete = r#"{"event_type":"delete","key":"/buckets/inbox/scans/a.pdf","message":{"old_entry":{"name":"a.pdf"}}}"#;
        assert_eq!(one(delete).ignore_reason(), Some(Ignored::NotACreation));
    }

    #[test]
    fn update_is_a_new_version_and_rename_a_creation() {
        let update = CREATE.replace(r#""event_type":"create""#, r#""event_type":"update""#);
        let e = one(&update);
        assert_eq!(e.change, Change::Updated);
        assert_eq!(e.ignore_reason(), None);
        let rename = r#"{"event_type":"rename","key":"/buckets/inbox/old.pdf","message":{
            "old_entry":{"name":"old.pdf"},"new_entry":{"name":"new.pdf","attributes":{"file_size":3}},
            "new_parent_path":"/buckets/inbox/done/"}}"#;
        let e = one(rename);
        assert_eq!(
            (e.change, e.key.as_str()),
            (Change::Created, "done/new.pdf")
        );
    }

    #[test]
    fn malformed_webhooks_are_errors() {
        for body in [
            "",
            "{}",
            r#"{"event_type":"create","key":"/buckets/b/k"}"#,
            r#"{"event_type":"explode","key":"/buckets/b/k","message":{}}"#,
            r#"{"event_type":"create","key":"buckets/b/k","message":{"new_entry":{"name":"k"}}}"#,
        ] {
            assert!(
                parse(body.as_bytes(), DEFAULT_BUCKETS_DIR).is_err(),
                "{body}"
            );
        }
    }
}
