//! Server restarts mid-run. RabbitMQ: publishing fails fast while it is down and recovers after; a
//! consumer resumes by itself and gets back the job it held unacked when the connection died.
//! SeaweedFS: requests fail as `Unavailable` while it is down and succeed again after.
//!
//! A test binary of its own: a restart must not overlap the other tests that use the servers, and
//! cargo runs test binaries one after another.
//!
//! Needs servers the tests may restart: `FOLIO_PRIVATE_RABBIT=1 scripts/services/start` writes
//! `FOLIO_RABBIT_STOP` / `FOLIO_RABBIT_START` (and always `FOLIO_S3_STOP` / `FOLIO_S3_START`).
//! Without them a test says so and returns.

#[allow(dead_code)]
#[path = "../integration/support.rs"]
mod support;

use bytes::Bytes;
use folio_schemas::EngineKind;
use folio_test_support::services as env;
use folio_transport::{AmqpQueue, ErrorKind, JobQueue, ObjectStore, S3Store};
use std::time::{Duration, Instant};
use support::{assert_publish_fails_fast, job, next, Topology};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_and_consumer_survive_a_broker_restart() {
    let Some(mut cfg) = env::amqp("restart") else {
        return;
    };
    let Some((stop, start)) = env::restart_commands(&env::settings(), "RABBIT") else {
        eprintln!(
            "SKIPPED: no restartable broker (run `FOLIO_PRIVATE_RABBIT=1 scripts/services/start`)"
        );
        return;
    };
    cfg.reconnect_max = Duration::from_secs(2);
    let _cleanup = Topology(cfg.clone());
    let q = AmqpQueue::connect(cfg).await.unwrap();
    q.publish(&job("r1", 1, EngineKind::Ocr)).await.unwrap();
    let mut c = q.consume(EngineKind::Ocr, 4).await.unwrap();
    let held = next(&mut c, 10).await;
    assert_eq!((held.job.as_ref().unwrap().page, held.redeliveries), (1, 0));

    let stopper = stop.clone();
    tokio::task::spawn_blocking(move || run(&stopper))
        .await
        .unwrap();

    // Down: every publish fails quickly, as Unavailable.
    for _ in 0..5 {
        assert_publish_fails_fast(&q, &job("r1", 2, EngineKind::Ocr)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!q.is_connected());
    // The consumer reports the loss once, then waits.
    let lost = tokio::time::timeout(Duration::from_secs(10), c.next())
        .await
        .expect("loss reported")
        .expect("consumer open");
    assert_eq!(lost.expect_err("an error").kind, ErrorKind::Unavailable);
    // Settling a delivery of the dead channel fails; the broker kept the message.
    let err = held.ack().await.expect_err("channel is gone");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");

    let starter = start.clone();
    tokio::task::spawn_blocking(move || run(&starter))
        .await
        .unwrap();

    // Back: publishing recovers within the reconnect backoff.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match q.publish(&job("r1", 2, EngineKind::Ocr)).await {
            Ok(()) => break,
            Err(e) if e.kind == ErrorKind::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("publishing did not recover: {e}"),
        }
    }
    // The consumer resumed: the unacked job comes again (a redelivery), then the new one.
    let mut got = Vec::new();
    while got.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(30), c.next()).await {
            Ok(Some(Ok(d))) => {
                got.push((d.job.as_ref().unwrap().page, d.redeliveries));
                d.ack().await.unwrap();
            }
            Ok(Some(Err(e))) => assert_eq!(e.kind, ErrorKind::Unavailable, "{e}"),
            Ok(None) => panic!("consumer closed"),
            Err(_) => panic!("consumer did not resume; got {got:?}"),
        }
    }
    got.sort_unstable();
    eprintln!("after the restart: (page, redeliveries) = {got:?}");
    assert_eq!(got[0].0, 1);
    assert!(
        got[0].1 >= 1,
        "the held job comes back as a redelivery: {got:?}"
    );
    assert_eq!(got[1], (2, 0));
    q.close().await;
}

/// Run one of those commands and require success.
pub fn run(command: &str) {
    let status = std::process::Command::new(command)
        .status()
        .unwrap_or_else(|e| panic!("running {command}: {e}"));
    assert!(status.success(), "{command} failed: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_recovers_after_a_seaweedfs_restart() {
    let Some(mut cfg) = env::s3() else { return };
    let Some((stop, start)) = env::restart_commands(&env::settings(), "S3") else {
        eprintln!("SKIPPED: no restartable S3 server (run `scripts/services/start`)");
        return;
    };
    cfg.max_attempts = 2;
    let store = S3Store::connect(cfg).await.unwrap();
    let key = format!("{}/before", env::unique("s3restart"));
    store
        .put(&key, Bytes::from_static(b"kept"), "text/plain")
        .await
        .unwrap();

    let stopper = stop.clone();
    tokio::task::spawn_blocking(move || run(&stopper))
        .await
        .unwrap();
    let started = Instant::now();
    let err = store.get(&key).await.expect_err("S3 is down");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    let err = store
        .put(&key, Bytes::from_static(b"x"), "")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );

    let starter = start.clone();
    tokio::task::spawn_blocking(move || run(&starter))
        .await
        .unwrap();
    // The same client (its connection pool had only dead connections) works again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        match store.get(&key).await {
            Ok(bytes) => break bytes,
            Err(e) if e.kind == ErrorKind::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("S3 did not recover: {e}"),
        }
    };
    assert_eq!(
        got,
        Bytes::from_static(b"kept"),
        "data survives the restart"
    );
    store.delete(&key).await.unwrap();
}
