//! `S3Store` against a real SeaweedFS (or any S3): round trips, `NotFound`, listing across pages,
//! the `If-None-Match: *` race, multipart (whole and streamed), checksums, outages and refused
//! credentials.
//!
//! Each test works under a prefix of its own in the services' bucket.

use crate::env;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use bytes::Bytes;
use folio_test_support::built::crc32;
use folio_transport::{ErrorKind, ObjectStore, S3Config, S3Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Deterministic, incompressible-looking bytes (a simple LCG), so a misplaced part shows.
fn pattern(len: usize, seed: u64) -> Bytes {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// A raw SDK client with the same settings, to look at what the server stored.
fn raw_client(cfg: &S3Config) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .credentials_provider(Credentials::new(
            &cfg.access_key,
            &cfg.secret_key,
            None,
            None,
            "test",
        ))
        .force_path_style(true)
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https(),
        )
        .endpoint_url(cfg.endpoint.clone().unwrap_or_default())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// What the server says of `key` (HEAD), read with a raw client.
async fn head_of(
    cfg: &S3Config,
    key: &str,
) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    raw_client(cfg)
        .head_object()
        .bucket(&cfg.bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("HEAD {key}: {e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_exists_delete_and_not_found() {
    let Some(cfg) = env::s3() else { return };
    let store = S3Store::connect(cfg).await.expect("connect");
    let p = env::unique("basic");
    let key = format!("{p}/docs/a/results/00001.json");
    assert!(!store.exists(&key).await.unwrap());
    let err = store.get(&key).await.expect_err("absent");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert!(err.is_not_found());

    store
        .put(
            &key,
            Bytes::from_static(b"{\"page\":1}"),
            "application/json",
        )
        .await
        .unwrap();
    assert!(store.exists(&key).await.unwrap());
    assert_eq!(
        store.get(&key).await.unwrap(),
        Bytes::from_static(b"{\"page\":1}")
    );
    // Overwrite (a redelivered job writes the same key again).
    store
        .put(&key, Bytes::from_static(b"{}"), "application/json")
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Bytes::from_static(b"{}"));
    // Empty objects are objects.
    let empty = format!("{p}/empty");
    store
        .put(&empty, Bytes::new(), "application/octet-stream")
        .await
        .unwrap();
    assert_eq!(store.get(&empty).await.unwrap().len(), 0);

    store.delete(&key).await.unwrap();
    store
        .delete(&key)
        .await
        .expect("deleting an absent key is fine");
    assert!(!store.exists(&key).await.unwrap());
    assert_eq!(store.get(&key).await.unwrap_err().kind, ErrorKind::NotFound);
    store.delete(&empty).await.unwrap();
    let err = store.put("", Bytes::new(), "").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_follows_continuation_across_pages() {
    let Some(mut cfg) = env::s3() else { return };
    cfg.list_page_size = 7;
    let store = Arc::new(S3Store::connect(cfg).await.unwrap());
    let p = env::unique("list");
    let mut expected = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..53u32 {
        let key = format!("{p}/docs/d/pages/{i:05}.png");
        expected.push(key.clone());
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put(&key, Bytes::from(i.to_string()), "image/png")
                .await
        }));
    }
    let other = format!("{p}/docs/e/pages/00000.png");
    store
        .put(&other, Bytes::from_static(b"x"), "image/png")
        .await
        .unwrap();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    expected.sort();
    let listed = store.list(&format!("{p}/docs/d/")).await.unwrap();
    assert_eq!(
        listed, expected,
        "53 keys over 8 pages of 7, sorted, nothing else"
    );
    assert_eq!(store.list(&format!("{p}/docs/")).await.unwrap().len(), 54);
    assert_eq!(
        store
            .list(&format!("{p}/docs/d/pages/0001"))
            .await
            .unwrap()
            .len(),
        10
    );
    assert!(store
        .list(&format!("{p}/nothing/"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_beyond_a_thousand_keys() {
    let Some(cfg) = env::s3() else { return };
    let store = Arc::new(S3Store::connect(cfg).await.unwrap());
    let p = env::unique("list1k");
    let n = 1105u32;
    let mut tasks = Vec::new();
    for chunk in 0..8u32 {
        let store = store.clone();
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            for i in (chunk..n).step_by(8) {
                store
                    .put(&format!("{p}/k/{i:05}"), Bytes::new(), "text/plain")
                    .await?;
            }
            Ok::<_, folio_transport::TransportError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let listed = store.list(&format!("{p}/k/")).await.unwrap();
    assert_eq!(
        listed.len(),
        n as usize,
        "default page size 1000: two pages"
    );
    assert_eq!(listed.first().unwrap(), &format!("{p}/k/00000"));
    assert_eq!(listed.last().unwrap(), &format!("{p}/k/{:05}", n - 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_if_absent_has_exactly_one_winner_among_16() {
    let Some(cfg) = env::s3() else { return };
    let store = Arc::new(S3Store::connect(cfg).await.unwrap());
    let key = format!("{}/docs/x/document.lock", env::unique("race"));
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let (store, key, barrier) = (store.clone(), key.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let won = store
                .put_if_absent(&key, Bytes::from(vec![i; 64]), "text/plain")
                .await?;
            Ok::<_, folio_transport::TransportError>((i, won))
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, won) = t.await.unwrap().expect("no errors in the race");
        if won {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        store.get(&key).await.unwrap(),
        Bytes::from(vec![winners[0]; 64])
    );
    // Later attempts lose too.
    assert!(!store
        .put_if_absent(&key, Bytes::from_static(b"late"), "")
        .await
        .unwrap());
    store.delete(&key).await.unwrap();
    assert!(store
        .put_if_absent(&key, Bytes::from_static(b"again"), "")
        .await
        .unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_of_20_mib_round_trips() {
    let Some(cfg) = env::s3() else { return };
    let store = S3Store::connect(cfg.clone()).await.unwrap();
    let key = format!("{}/docs/big/source", env::unique("multipart"));
    let body = pattern(20 * 1024 * 1024 + 123, 7);
    let started = Instant::now();
    store
        .put(&key, body.clone(), "application/pdf")
        .await
        .expect("multipart put");
    let put = started.elapsed();
    let got = store.get(&key).await.unwrap();
    eprintln!(
        "20 MiB: multipart put {put:?}, get {:?}",
        started.elapsed() - put
    );
    assert_eq!(got.len(), body.len());
    assert!(got == body, "bytes differ after the multipart round trip");
    // It really went up in parts: a multipart object's ETag ends in `-<parts>`.
    let head = head_of(&cfg, &key).await;
    let etag = head.e_tag().unwrap_or_default().trim_matches('"');
    assert!(
        etag.ends_with("-3"),
        "3 parts of 8 MiB expected, etag {etag}"
    );
    assert_eq!(head.content_length(), Some(body.len() as i64));
    store.delete(&key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_writer_uploads_parts_as_they_fill_and_round_trips() {
    let Some(cfg) = env::s3() else { return };
    let store = S3Store::connect(cfg.clone()).await.unwrap();
    let p = env::unique("writer");
    let body = pattern(20 * 1024 * 1024 + 777, 11);
    let key = format!("{p}/docs/streamed/source");
    let mut w = store.writer(&key, "application/pdf");
    // Odd-sized pieces, as an HTTP body arrives: parts never line up with them.
    for piece in body.chunks(1_000_003) {
        w.write(Bytes::copy_from_slice(piece)).await.expect("write");
    }
    assert_eq!(w.written(), body.len() as u64);
    assert!(
        !store.exists(&key).await.unwrap(),
        "nothing is visible before finish"
    );
    w.finish().await.expect("finish");
    let got = store.get(&key).await.unwrap();
    assert!(got == body, "bytes differ after the streamed upload");
    let head = head_of(&cfg, &key).await;
    let etag = head.e_tag().unwrap_or_default().trim_matches('"');
    assert!(etag.ends_with("-3"), "3 parts expected, etag {etag}");

    // A body smaller than a part goes up in one PutObject.
    let small_key = format!("{p}/docs/small/source");
    let mut w = store.writer(&small_key, "application/pdf");
    w.write(pattern(5000, 3)).await.unwrap();
    w.finish().await.unwrap();
    assert_eq!(store.get(&small_key).await.unwrap(), pattern(5000, 3));

    // An aborted writer leaves neither the object nor an open multipart upload behind.
    let aborted = format!("{p}/docs/aborted/source");
    let mut w = store.writer(&aborted, "application/pdf");
    w.write(pattern(9 * 1024 * 1024, 5)).await.unwrap();
    w.abort().await;
    assert!(!store.exists(&aborted).await.unwrap());
    let uploads = raw_client(&cfg)
        .list_multipart_uploads()
        .bucket(&cfg.bucket)
        .prefix(&aborted)
        .send()
        .await
        .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "multipart upload left open: {:?}",
        uploads.uploads()
    );
    for k in [&key, &small_key] {
        store.delete(k).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_are_stored_and_checked() {
    let Some(cfg) = env::s3() else { return };
    let store = S3Store::connect(cfg.clone()).await.unwrap();
    let key = format!("{}/checked.json", env::unique("crc"));
    store
        .put(&key, Bytes::from_static(b"hello folio"), "application/json")
        .await
        .unwrap();
    // The server kept the CRC32 our write carried and returns it when asked.
    let raw = raw_client(&cfg);
    let head = raw
        .head_object()
        .bucket(&cfg.bucket)
        .key(&key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    // CRC32 of "hello folio", base64 of the big-endian value.
    let crc = crc32(b"hello folio");
    assert_eq!(head.checksum_crc32(), Some(base64_be(crc).as_str()));
    // And it refuses a body that does not match the checksum sent with it.
    let err = raw
        .put_object()
        .bucket(&cfg.bucket)
        .key(format!("{key}.bad"))
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .checksum_crc32(base64_be(crc ^ 1))
        .body(ByteStream::from_static(b"hello folio"))
        .send()
        .await
        .expect_err("bad digest");
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(400), "{err:?}");
    // Without checksums the store works the same.
    let mut plain = cfg.clone();
    plain.checksums = false;
    let plain = S3Store::new(plain).unwrap();
    plain
        .put(&key, Bytes::from_static(b"plain"), "text/plain")
        .await
        .unwrap();
    assert_eq!(plain.get(&key).await.unwrap(), Bytes::from_static(b"plain"));
    assert_eq!(store.get(&key).await.unwrap(), Bytes::from_static(b"plain"));
}

fn base64_be(v: u32) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = v.to_be_bytes();
    let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
    let m = u32::from(b[3]) << 16;
    let idx = [
        n >> 18,
        (n >> 12) & 63,
        (n >> 6) & 63,
        n & 63,
        m >> 18,
        (m >> 12) & 63,
    ];
    let mut s: String = idx.iter().map(|&i| A[i as usize] as char).collect();
    s.push_str("==");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_is_unavailable() {
    let Some(mut cfg) = env::s3() else { return };
    cfg.endpoint = Some(format!("http://127.0.0.1:{}", env::free_port()));
    cfg.max_attempts = 2;
    let store = S3Store::new(cfg.clone()).unwrap();
    let started = Instant::now();
    let err = store.get("k").await.expect_err("nothing listens");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let err = store
        .put("k", Bytes::from_static(b"x"), "")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    let err = S3Store::connect(cfg).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_and_missing_bucket_are_invalid() {
    let Some(cfg) = env::s3() else { return };
    let mut bad = cfg.clone();
    bad.secret_key = "wrong-secret".into();
    bad.create_bucket = false;
    let store = S3Store::new(bad.clone()).unwrap();
    let err = store.get("k").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
    assert!(!format!("{bad:?}").contains("wrong-secret"));
    let mut missing = cfg.clone();
    missing.bucket = format!("no-such-{}", env::unique("bucket").to_lowercase());
    missing.create_bucket = false;
    let err = S3Store::connect(missing.clone()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
    let err = S3Store::new(missing).unwrap().get("k").await.unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Invalid,
        "a missing bucket is not a missing object: {err}"
    );
    // Creating an existing bucket is fine.
    S3Store::connect(cfg.clone()).await.unwrap();
    S3Store::connect(cfg).await.unwrap();
}
