//! `scripts/bench triggers`: trigger and re-processing benchmarks against the real servers of
//! `scripts/services/start` (BENCHMARKS.md, "Triggers"). A `harness = false` bench target:
//!
//!   set -a; . "$FOLIO_SERVICES_DIR/env"; set +a
//!   cargo bench -p folio --bench triggers -- [--runs 3] [--pages 10000] [--objects 100] [--out bench-out/triggers.md]
//!
//! - re-processing enqueue rate: `folio reprocess` over `--pages` stored pages (documents of a real
//!   4-page PDF rendered at 36 DPI, its page images copied), with the default checkpoint write per
//!   page job and with `--checkpoint-every 100`; page jobs per second of the whole command (listing
//!   included), median of `--runs` runs, each counted on its own queue.
//! - trigger latency: from the start of an object's PUT to its page job delivered by RabbitMQ, one
//!   object at a time (`--objects` per path): through SeaweedFS's filer webhook to `folio trigger
//!   --listen`, and through an AWS-format event published on RabbitMQ right after the PUT; p50/p99.
//!
//! Prints a markdown report (command, machine, medians) and writes it to `--out`.

#[path = "../tests/triggers_support/mod.rs"]
mod triggers_support;

use folio_schemas::EngineKind;
use folio_transport::amqp_events::{AmqpEventsConfig, AmqpEventsPublisher};
use folio_transport::JobQueue;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use triggers_support::*;

const PNG: &str = "tables/pubtabnet_PMC5198506_004_00.png";

struct Options {
    runs: usize,
    pages: usize,
    objects: usize,
    out: PathBuf,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        runs: 3,
        pages: 10_000,
        objects: 100,
        out: repo().join("bench-out/triggers.md"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let number = |v: String, name: &str| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(format!("{name}: a positive number, not {v:?}"))
        };
        match a.as_str() {
            "--runs" => o.runs = number(value("--runs")?, "--runs")?,
            "--pages" => o.pages = number(value("--pages")?, "--pages")?,
            "--objects" => o.objects = number(value("--objects")?, "--objects")?,
            "--out" => o.out = PathBuf::from(value("--out")?),
            "--bench" => {} // what `cargo bench` passes
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.pages % 4 != 0 {
        return Err("--pages: a multiple of 4 (documents of a 4-page PDF)".into());
    }
    Ok(o)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench triggers: {e}");
            std::process::exit(2);
        }
    };
    let Some(s) = services() else {
        eprintln!("bench triggers: run it through scripts/bench triggers (it starts the services)");
        std::process::exit(2);
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let rates = reprocess_rates(&s, dir.path(), &o).await;
    let webhook = webhook_latency(&s, dir.path(), o.objects).await;
    let amqp = amqp_latency(&s, dir.path(), o.objects).await;
    let report = markdown(&o, &rates, &webhook, &amqp);
    println!("{report}");
    if let Some(parent) = o.out.parent() {
        std::fs::create_dir_all(parent).expect("report folder");
    }
    std::fs::write(&o.out, &report).expect("report written");
    eprintln!("bench triggers: report in {}", o.out.display());
}

/// (checkpoint label, page jobs/s of every run).
async fn reprocess_rates(
    s: &HashMap<String, String>,
    dir: &Path,
    o: &Options,
) -> Vec<(&'static str, Vec<f64>)> {
    let tenant = unique("bench");
    let store = bucket(s, &s["FOLIO_S3_BUCKET"]).await;
    let setup = Instant::now();
    store_documents(store.clone(), &tenant, o.pages / 4, 36).await;
    eprintln!(
        "setup: {} page images stored in {:.1} s",
        o.pages,
        setup.elapsed().as_secs_f64()
    );
    let url = format!("s3://{}/{tenant}/docs/", s["FOLIO_S3_BUCKET"]);
    let mut out = Vec::new();
    for (label, every) in [
        ("after every page job (default)", "1"),
        ("`--checkpoint-every 100`", "100"),
    ] {
        let mut rates = Vec::new();
        for run in 0..o.runs {
            let prefix = unique("rate");
            let args = [
                "reprocess",
                &url,
                "--engine",
                "glm45v",
                "--amqp-prefix",
                &prefix,
                "--checkpoint-every",
                every,
                "--restart",
                "-q",
            ];
            let started = Instant::now();
            let (mut p, _) = spawn_folio(&args, s, dir, &format!("every{every}-{run}"), None);
            assert_eq!(p.wait(3600), Some(0), "{}", p.log());
            let secs = started.elapsed().as_secs_f64();
            let queue = page_queue(s, &prefix).await;
            let depth = queue.queue_depth(EngineKind::Glm45v).await.expect("depth");
            assert_eq!(depth as usize, o.pages, "every page enqueued once");
            queue.delete_topology().await.expect("topology deleted");
            let rate = o.pages as f64 / secs;
            eprintln!(
                "checkpoint every {every}, run {}: {secs:.1} s = {rate:.0} pages/s",
                run + 1
            );
            rates.push(rate);
        }
        out.push((label, rates));
    }
    out
}

/// Wait for the next page job on `consumer` and ack it.
async fn next_job(consumer: &mut Box<dyn folio_transport::JobConsumer>) {
    let d = tokio::time::timeout(Duration::from_secs(60), consumer.next())
        .await
        .expect("a page job within 60 s")
        .expect("consumer open")
        .expect("delivery");
    d.ack().await.expect("ack");
}

/// SeaweedFS: PUT → filer webhook → `folio trigger --listen` → page job (ms per object).
async fn webhook_latency(base: &HashMap<String, String>, dir: &Path, n: usize) -> Vec<f64> {
    let png = corpus(PNG);
    let port = free_port();
    let token = "bench-webhook-token-0123456789";
    let weed = Seaweed::start(
        &dir.join("weed"),
        &format!("http://127.0.0.1:{port}/v1/events/seaweedfs"),
        token,
        "/buckets/inbox/",
    );
    let s = weed.settings(base, "folio");
    let prefix = unique("latw");
    let rules = dir.join("rules-webhook.yaml");
    std::fs::write(&rules, "rules:\n  - tenant: acme\n    bucket: inbox\n").expect("rules");
    let rules = rules.display().to_string();
    let (_trigger, _) =
        spawn_webhook_trigger(&s, token, &rules, port, &prefix, dir, "trigger-webhook");
    let inbox = bucket(&s, "inbox").await;
    let queue = page_queue(&s, &prefix).await;
    let mut consumer = queue.consume(EngineKind::Ocr, 1).await.expect("consumer");
    let mut ms = Vec::new();
    for i in 0..n {
        let t0 = Instant::now();
        inbox
            .put(&format!("lat/{i:04}.png"), png.clone(), "image/png")
            .await
            .expect("put");
        next_job(&mut consumer).await;
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    drop(consumer);
    queue.delete_topology().await.expect("topology deleted");
    ms
}

/// RabbitMQ: PUT, then an AWS-format event published → `folio trigger` → page job (ms per object).
async fn amqp_latency(base: &HashMap<String, String>, dir: &Path, n: usize) -> Vec<f64> {
    let png = corpus(PNG);
    let prefix = unique("lata");
    let source = unique("src");
    let rules = dir.join("rules-amqp.yaml");
    std::fs::write(
        &rules,
        format!("rules:\n  - tenant: acme\n    bucket: {source}\n"),
    )
    .expect("rules");
    let rules = rules.display().to_string();
    let (_trigger, _) = spawn_folio(
        &[
            "trigger",
            "--rules",
            &rules,
            "--listen",
            "127.0.0.1:0",
            "--amqp-prefix",
            &prefix,
            "--events-prefix",
            &prefix,
        ],
        base,
        dir,
        "trigger-amqp",
        Some("folio trigger: listening on http://"),
    );
    let src = bucket(base, &source).await;
    let publisher = AmqpEventsPublisher::connect(
        AmqpEventsConfig::new(base["FOLIO_AMQP_URL"].clone()).with_prefix(&prefix),
    )
    .await
    .expect("publisher");
    let queue = page_queue(base, &prefix).await;
    let mut consumer = queue.consume(EngineKind::Ocr, 1).await.expect("consumer");
    let mut ms = Vec::new();
    for i in 0..n {
        let key = format!("lat/{i:04}.png");
        let t0 = Instant::now();
        src.put(&key, png.clone(), "image/png").await.expect("put");
        let event = serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put",
            "eventTime": folio_api::events::records::now_rfc3339(),
            "s3": {"bucket": {"name": source}, "object": {"key": key, "size": png.len(), "eTag": format!("e{i}")}}}]});
        publisher
            .publish(event.to_string().as_bytes())
            .await
            .expect("publish");
        next_job(&mut consumer).await;
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    drop(consumer);
    queue.delete_topology().await.expect("topology deleted");
    publisher.delete_topology().await.expect("topology deleted");
    ms
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, load average {load} at the end")
}

fn markdown(o: &Options, rates: &[(&str, Vec<f64>)], webhook: &[f64], amqp: &[f64]) -> String {
    let command = std::env::var("BENCH_COMMAND")
        .unwrap_or_else(|_| "cargo bench -p folio --bench triggers".into());
    let profile = std::env::var("BENCH_PROFILE").unwrap_or_else(|_| "bench".into());
    let mut md = format!(
        "# Triggers benchmark\n\n- command: `{command}` (cargo profile `{profile}`)\n- machine: {}\n\n",
        machine()
    );
    md.push_str(&format!(
        "**Re-processing enqueue rate**: `folio reprocess --engine glm45v` over {} stored pages, median of {} runs\n\n| checkpoint writes | median page jobs/s | runs (page jobs/s) |\n| --- | ---: | --- |\n",
        o.pages, o.runs
    ));
    for (label, r) in rates {
        let runs: Vec<String> = r.iter().map(|x| format!("{x:.0}")).collect();
        md.push_str(&format!(
            "| {label} | **{:.0}** | {} |\n",
            percentile(&sorted(r), 0.5),
            runs.join(", ")
        ));
    }
    md.push_str(&format!(
        "\n**Trigger latency**: object PUT start → page job delivered, one object at a time, {} objects per path\n\n| path | p50 ms | p99 ms | min ms | max ms |\n| --- | ---: | ---: | ---: | ---: |\n",
        o.objects
    ));
    for (path, ms) in [
        (
            "SeaweedFS filer webhook → `folio trigger --listen`",
            webhook,
        ),
        ("AWS-format event on RabbitMQ → `folio trigger`", amqp),
    ] {
        let s = sorted(ms);
        md.push_str(&format!(
            "| {path} | **{:.0}** | **{:.0}** | {:.0} | {:.0} |\n",
            percentile(&s, 0.5),
            percentile(&s, 0.99),
            s[0],
            s[s.len() - 1]
        ));
    }
    md
}
