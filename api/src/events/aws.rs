//! The AWS S3 event notification format, as AWS, MinIO and Ceph RGW publish it:
//! `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":…},"object":{"key":…,
//! "size":…,"eTag":…,"sequencer":…}}}]}`.
//!
//! Also accepted: the `s3:TestEvent` AWS sends when a configuration is saved, MinIO's `s3:`-prefixed
//! event names and its extra top-level fields, and an SNS envelope (`{"Type":"Notification",
//! "Message":"<the S3 event as a string>"}`), which is what an SNS → SQS bridge delivers when raw
//! message delivery is off. Object keys arrive URL-encoded (`+` for a space) and are decoded here.

use super::model::{Change, EventFormat, Notification, ObjectEvent, ParseError};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "Records")]
    records: Option<Vec<Record>>,
    /// `s3:TestEvent` in a test notification.
    #[serde(rename = "Event")]
    event: Option<String>,
    /// `Notification` in an SNS envelope.
    #[serde(rename = "Type")]
    sns_type: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    event_name: String,
    event_time: Option<String>,
    s3: S3Entity,
}

#[derive(Debug, Deserialize)]
struct S3Entity {
    bucket: Bucket,
    object: Object,
}

#[derive(Debug, Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Object {
    key: String,
    size: Option<u64>,
    #[serde(rename = "eTag", alias = "etag")]
    e_tag: Option<String>,
    version_id: Option<String>,
    sequencer: Option<String>,
    /// MinIO only.
    content_type: Option<String>,
}

/// Parse an AWS-format notification body.
pub fn parse(body: &[u8]) -> Result<Notification, ParseError> {
    parse_depth(body, 0)
}

fn parse_depth(body: &[u8], depth: u8) -> Result<Notification, ParseError> {
    let envelope: Envelope = serde_json::from_slice(body)?;
    if let Some(records) = envelope.records {
        let events = records
            .into_iter()
            .map(record_event)
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Notification::Objects(events));
    }
    if envelope.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Notification::Test);
    }
    if let (Some("Notification"), Some(message), 0) = (
        envelope.sns_type.as_deref(),
        envelope.message.as_deref(),
        depth,
    ) {
        return parse_depth(message.as_bytes(), depth + 1);
    }
    Err(ParseError::Shape {
        format: EventFormat::Aws.as_str(),
        detail: "neither `Records`, an `s3:TestEvent` nor an SNS notification".into(),
    })
}

fn record_event(r: Record) -> Result<ObjectEvent, ParseError> {
    let name = r.event_name.strip_prefix("s3:").unwrap_or(&r.event_name);
    let change = if name.starts_with("ObjectCreated:") {
        Change::Created
    } else if name.starts_with("ObjectRemoved:") {
        Change::Removed
    } else {
        Change::Other
    };
    let key = decode_key(&r.s3.object.key)?;
    Ok(ObjectEvent {
        format: EventFormat::Aws,
        name: name.to_string(),
        change,
        bucket: r.s3.bucket.name,
        directory: false,
        key,
        size: r.s3.object.size,
        etag: r.s3.object.e_tag.map(|e| e.trim_matches('"').to_string()),
        sequencer: r.s3.object.sequencer,
        version_id: r.s3.object.version_id,
        content_type: r.s3.object.content_type,
        event_time: r.event_time,
        mtime: None,
    })
}

/// Decode a key as S3 events encode it: form encoding, `+` is a space and `%XX` a byte; the bytes
/// must form UTF-8.
pub fn decode_key(raw: &str) -> Result<String, ParseError> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| ParseError::BadKey(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUT: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"eu-west-1",
        "eventTime":"2026-03-01T10:00:00.000Z","eventName":"ObjectCreated:Put",
        "userIdentity":{"principalId":"AWS:X"},"requestParameters":{"sourceIPAddress":"10.0.0.1"},
        "responseElements":{"x-amz-request-id":"R","x-amz-id-2":"I"},
        "s3":{"s3SchemaVersion":"1.0","configurationId":"folio","bucket":{"name":"inbox",
        "ownerIdentity":{"principalId":"P"},"arn":"arn:aws:s3:::inbox"},
        "object":{"key":"scans/Invoice+March+%282026%29%2B%C3%A9.pdf","size":1024,
        "eTag":"d41d8cd98f00b204e9800998ecf8427e","sequencer":"0055AED6DCD90281E5"}}}]}"#;

    #[test]
    fn parses_an_aws_put_and_decodes_the_key() {
        let Notification::Objects(events) = parse(PUT.as_bytes()).unwrap() else {
            panic!("not objects")
        };
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.change, Change::Created);
        assert_eq!(e.bucket, "inbox");
        assert_eq!(e.key, "scans/Invoice March (2026)+é.pdf");
        assert_eq!(e.size, Some(1024));
        assert_eq!(e.etag.as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
        assert_eq!(e.sequencer.as_deref(), Some("0055AED6DCD90281E5"));
        assert_eq!(e.event_time.as_deref(), Some("2026-03-01T10:00:00.000Z"));
        assert_eq!(e.ignore_reason(), None);
    }

    #[test]
    fn minio_names_and_quoted_etags() {
        let body = r#"{"EventName":"s3:ObjectCreated:CompleteMultipartUpload","Key":"inbox/a.pdf",
            "Records":[{"eventName":"s3:ObjectCreated:CompleteMultipartUpload","s3":{"bucket":{"name":"inbox"},
            "object":{"key":"a.pdf","size":5,"eTag":"\"abc-2\"","contentType":"application/pdf",
            "sequencer":"17A"}}},
            {"eventName":"s3:ObjectRemoved:Delete","s3":{"bucket":{"name":"inbox"},"object":{"key":"b.pdf","sequencer":"17B"}}}]}"#;
        let Notification::Objects(events) = parse(body.as_bytes()).unwrap() else {
            panic!("not objects")
        };
        assert_eq!(events[0].name, "ObjectCreated:CompleteMultipartUpload");
        assert_eq!(events[0].etag.as_deref(), Some("abc-2"));
        assert_eq!(events[0].content_type.as_deref(), Some("application/pdf"));
        assert_eq!(events[1].change, Change::Removed);
    }

    #[test]
    fn test_events_and_sns_envelopes() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-03-01T10:00:00.000Z",
            "Bucket":"inbox","RequestId":"R","HostId":"H"}"#;
        assert_eq!(parse(test.as_bytes()).unwrap(), Notification::Test);
        let sns = serde_json::json!({
            "Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:eu-west-1:1:t",
            "Message": PUT, "Timestamp": "2026-03-01T10:00:01.000Z"
        });
        let Notification::Objects(events) = parse(sns.to_string().as_bytes()).unwrap() else {
            panic!("not objects")
        };
        assert_eq!(events[0].key, "scans/Invoice March (2026)+é.pdf");
        let sns_test = serde_json::json!({"Type": "Notification", "Message": test});
        assert_eq!(
            parse(sns_test.to_string().as_bytes()).unwrap(),
            Notification::Test
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for body in [
            &b"not json"[..],
            b"{}",
            b"[1,2]",
            br#"{"Records":[{"eventName":"ObjectCreated:Put"}]}"#,
            br#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%FF%FE"}}}]}"#,
            br#"{"Type":"Notification","Message":"{\"Type\":\"Notification\",\"Message\":\"{}\"}"}"#,
        ] {
            assert!(parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        assert!(matches!(decode_key("%E9"), Err(ParseError::BadKey(_))));
        assert_eq!(decode_key("100%25+done").unwrap(), "100% done");
    }
}
