//! `AmqpQueue` against a real RabbitMQ: topology, confirms, acks, redeliveries, the delivery limit,
//! dead-lettering, unroutable jobs, fast failure when the broker is down.
//!
//! Every test has its own topology prefix (exchanges and queues), deleted when the test ends.

use crate::env;
use crate::support::{assert_publish_fails_fast, connected, job, next};
use folio_schemas::EngineKind;
use folio_transport::{AmqpConfig, AmqpQueue, ErrorKind, JobQueue};
use std::time::{Duration, Instant};

/// Poll `f` until it returns `want` (within 10 s): quorum queue counters settle asynchronously.
async fn eventually<F, Fut>(want: u32, mut f: F) -> u32
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u32>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = f().await;
        if got == want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_consume_ack_in_order_with_prefetch() {
    let Some((_cleanup, _, q)) = connected("order", |_| {}).await else {
        return;
    };
    assert!(q.is_connected());
    for page in 1..=3 {
        q.publish(&job("d1", page, EngineKind::Ocr))
            .await
            .expect("publish");
    }
    let depth = eventually(3, || async {
        q.queue_depth(EngineKind::Ocr).await.unwrap()
    })
    .await;
    assert_eq!(depth, 3);
    assert_eq!(q.queue_depth(EngineKind::Glm45v).await.unwrap(), 0);

    let mut c = q.consume(EngineKind::Ocr, 2).await.unwrap();
    let a = next(&mut c, 10).await;
    let b = next(&mut c, 10).await;
    assert_eq!(a.job.as_ref().unwrap(), &job("d1", 1, EngineKind::Ocr));
    assert_eq!(b.job.as_ref().unwrap().page, 2);
    assert_eq!((a.redeliveries, b.redeliveries), (0, 0));
    // Prefetch 2: the broker holds the third job back until one of the two is settled.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        c.try_next().is_none(),
        "prefetch 2 must hold back the third job"
    );
    a.ack().await.expect("ack");
    let third = next(&mut c, 10).await;
    assert_eq!(third.job.as_ref().unwrap().page, 3);
    b.ack().await.unwrap();
    third.ack().await.unwrap();
    drop(c);
    close_drained(q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_counts_redeliveries_until_the_dead_letter_queue() {
    let Some((_cleanup, _, q)) = connected("limit", |cfg| {
        cfg.delivery_limit = 2;
    })
    .await
    else {
        return;
    };
    q.publish(&job("d2", 7, EngineKind::Ocr)).await.unwrap();
    let mut c = q.consume(EngineKind::Ocr, 1).await.unwrap();
    // x-delivery-limit 2: delivered 3 times (redeliveries 0, 1, 2), then dead-lettered.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = next(&mut c, 10).await;
        assert_eq!(d.job.as_ref().unwrap().page, 7);
        seen.push(d.redeliveries);
        d.requeue().await.expect("requeue");
    }
    assert_eq!(seen, vec![0, 1, 2]);
    let dead = eventually(1, || async {
        q.dead_letter_depth(EngineKind::Ocr).await.unwrap()
    })
    .await;
    assert_eq!(
        dead, 1,
        "past the limit the job is in the dead-letter queue"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(700), c.next())
            .await
            .is_err(),
        "a dead-lettered job is not delivered again"
    );
    assert_eq!(q.queue_depth(EngineKind::Ocr).await.unwrap(), 0);
    q.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_and_dropped_deliveries() {
    let Some((_cleanup, _, q)) = connected("dead", |_| {}).await else {
        return;
    };
    q.publish(&job("d3", 1, EngineKind::Glm45v)).await.unwrap();
    q.publish(&job("d3", 2, EngineKind::Glm45v)).await.unwrap();
    let mut c = q.consume(EngineKind::Glm45v, 1).await.unwrap();
    let first = next(&mut c, 10).await;
    assert_eq!(first.job.as_ref().unwrap().page, 1);
    first.dead_letter().await.expect("dead-letter");
    let dead = eventually(1, || async {
        q.dead_letter_depth(EngineKind::Glm45v).await.unwrap()
    })
    .await;
    assert_eq!(dead, 1);
    // A delivery dropped unsettled (a crashed handler) comes back, counted as a redelivery.
    let second = next(&mut c, 10).await;
    assert_eq!(
        (second.job.as_ref().unwrap().page, second.redeliveries),
        (2, 0)
    );
    drop(second);
    let again = next(&mut c, 10).await;
    assert_eq!(
        (again.job.as_ref().unwrap().page, again.redeliveries),
        (2, 1)
    );
    again.ack().await.unwrap();
    assert_eq!(q.dead_letter_depth(EngineKind::Ocr).await.unwrap(), 0);
    q.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_job_is_an_error() {
    let Some((_cleanup, _, q)) = connected("unroutable", |cfg| {
        // Only the OCR queue is declared under this prefix: a glm45v job has nowhere to go.
        cfg.engines = vec![EngineKind::Ocr];
    })
    .await
    else {
        return;
    };
    let err = q
        .publish(&job("d4", 1, EngineKind::Glm45v))
        .await
        .expect_err("mandatory publish without a queue");
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
    assert!(err.message.contains("unroutable"), "{err}");
    // The channel survives: the next routable publish is confirmed.
    q.publish(&job("d4", 1, EngineKind::Ocr)).await.unwrap();
    let err = q
        .queue_depth(EngineKind::Glm45v)
        .await
        .expect_err("no such queue");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    q.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_message_is_delivered_as_a_poison_job() {
    use lapin::options::BasicPublishOptions;
    use lapin::{BasicProperties, Connection, ConnectionProperties};
    let Some((_cleanup, cfg, q)) = connected("poison", |_| {}).await else {
        return;
    };
    let conn = Connection::connect(&cfg.url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.basic_publish(
        cfg.exchange().as_str().into(),
        "ocr".into(),
        BasicPublishOptions::default(),
        b"{not json",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let mut c = q.consume(EngineKind::Ocr, 4).await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(10), c.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let why = d.job.as_ref().expect_err("not a page job");
    assert!(why.contains("not a page job"), "{why}");
    d.dead_letter().await.unwrap();
    let _ = conn.close(200, "done".into()).await;
    q.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatched_delivery_limit_is_invalid() {
    let Some((_cleanup, cfg, q)) = connected("mismatch", |_| {}).await else {
        return;
    };
    let mut other = cfg.clone();
    other.delivery_limit = 3;
    let err = AmqpQueue::connect(other)
        .await
        .expect_err("inequivalent args");
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
    assert!(err.message.contains("x-delivery-limit"), "{err}");
    // The same arguments again are fine (idempotent declaration).
    AmqpQueue::connect(cfg).await.unwrap().close().await;
    q.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_fails_fast_as_unavailable() {
    let Some(_) = env::amqp("down") else { return };
    let mut cfg = AmqpConfig::new(format!(
        "amqp://guest:guest@127.0.0.1:{}/%2f",
        env::free_port()
    ));
    cfg.topology_prefix = env::unique("down");
    let q = AmqpQueue::new(cfg).unwrap();
    for _ in 0..3 {
        assert_publish_fails_fast(&q, &job("d5", 1, EngineKind::Ocr)).await;
    }
    let err = q.queue_depth(EngineKind::Ocr).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(
        !format!("{q:?}").contains("guest:guest"),
        "Debug must hide the password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_reported() {
    let Some(cfg) = env::amqp("auth") else { return };
    let Some(rest) = cfg.url.split_once('@').map(|(_, rest)| rest.to_string()) else {
        panic!("FOLIO_AMQP_URL without credentials: {}", cfg.redacted_url())
    };
    let mut bad = cfg.clone();
    bad.url = format!("amqp://guest:not-the-password@{rest}");
    let err = AmqpQueue::connect(bad).await.expect_err("refused");
    assert!(!err.message.contains("not-the-password"), "{err}");
    assert_eq!(
        err.kind,
        ErrorKind::Invalid,
        "refused credentials are not transient: {err}"
    );
    assert!(err.message.contains("ACCESS_REFUSED"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_publishes_are_all_confirmed_and_consumed() {
    let Some((_cleanup, _, q)) = connected("many", |_| {}).await else {
        return;
    };
    const N: u32 = 500;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for page in 1..=N {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            q.publish(&job("d6", page, EngineKind::Ocr)).await
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("confirmed");
    }
    let published = started.elapsed();
    let mut c = q.consume(EngineKind::Ocr, 32).await.unwrap();
    let mut pages = Vec::new();
    let started = Instant::now();
    while pages.len() < N as usize {
        let d = next(&mut c, 10).await;
        pages.push(d.job.as_ref().unwrap().page);
        d.ack().await.unwrap();
    }
    eprintln!(
        "{N} confirmed publishes in {published:?}; consumed and acked in {:?}",
        started.elapsed()
    );
    pages.sort_unstable();
    assert_eq!(pages, (1..=N).collect::<Vec<_>>());
    close_drained(q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_consumers() {
    let Some((_cleanup, _, q)) = connected("close", |_| {}).await else {
        return;
    };
    let mut c = q.consume(EngineKind::Ocr, 1).await.unwrap();
    let waiter = tokio::spawn(async move { c.next().await.is_none() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    q.close().await;
    let ended = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("consumer ends")
        .unwrap();
    assert!(ended);
}

/// Wait until the OCR queue is empty (every job acked), then close the queue.
async fn close_drained(q: AmqpQueue) {
    let depth = eventually(0, || async {
        q.queue_depth(EngineKind::Ocr).await.unwrap()
    })
    .await;
    assert_eq!(depth, 0);
    q.close().await;
}
