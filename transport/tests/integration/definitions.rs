//! `deploy/rabbitmq/definitions.json` must declare exactly the topology `AmqpQueue` declares, with
//! the same queue arguments: RabbitMQ refuses a redeclaration with different ones, so a mismatch
//! would stop every worker at start.

use crate::env;
use folio_schemas::EngineKind;
use folio_transport::{AmqpConfig, AmqpQueue};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::{json, Value};

const ENGINES: [EngineKind; 2] = [EngineKind::Ocr, EngineKind::Glm45v];

fn definitions() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/rabbitmq/definitions.json"
    );
    let text = std::fs::read_to_string(path).expect("read definitions.json");
    serde_json::from_str(&text).expect("definitions.json is JSON")
}

fn find<'a>(defs: &'a Value, section: &str, name: &str) -> &'a Value {
    defs[section]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["name"] == name))
        .unwrap_or_else(|| panic!("{section} has no `{name}`"))
}

#[test]
fn definitions_match_the_declared_topology() {
    let defs = definitions();
    let cfg = AmqpConfig::new("amqp://unused");
    for exchange in [cfg.exchange(), cfg.dead_exchange()] {
        let e = find(&defs, "exchanges", &exchange);
        assert_eq!(
            (&e["type"], &e["durable"]),
            (&json!("direct"), &json!(true)),
            "{exchange}"
        );
    }
    assert_eq!(defs["exchanges"].as_array().unwrap().len(), 2);
    assert_eq!(defs["queues"].as_array().unwrap().len(), 2 * ENGINES.len());
    for engine in ENGINES {
        let q = find(&defs, "queues", &cfg.queue(engine));
        assert_eq!(q["durable"], json!(true));
        assert_eq!(
            q["arguments"],
            json!({
                "x-queue-type": "quorum",
                "x-delivery-limit": cfg.delivery_limit,
                "x-dead-letter-exchange": cfg.dead_exchange(),
            }),
            "{}",
            cfg.queue(engine)
        );
        let dead = find(&defs, "queues", &cfg.dead_queue(engine));
        assert_eq!(dead["arguments"], json!({"x-queue-type": "quorum"}));
        for (source, destination) in [
            (cfg.exchange(), cfg.queue(engine)),
            (cfg.dead_exchange(), cfg.dead_queue(engine)),
        ] {
            let bound = defs["bindings"].as_array().unwrap().iter().any(|b| {
                b["source"] == source.as_str()
                    && b["destination"] == destination.as_str()
                    && b["destination_type"] == "queue"
                    && b["routing_key"] == engine.as_str()
            });
            assert!(
                bound,
                "no binding {source} -> {destination} with key {engine}"
            );
        }
    }
}

/// Load the definitions (renamed under a unique prefix) into a private broker with `rabbitmqctl
/// import_definitions`, as the broker does at boot, then let `AmqpQueue` declare the same topology.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_accepts_our_declarations_over_imported_definitions() {
    let Some(mut cfg) = env::amqp("defs") else {
        return;
    };
    let Some((_, start)) = env::restart_commands(&env::settings(), "RABBIT") else {
        eprintln!("SKIPPED: needs the private broker's rabbitmqctl (FOLIO_PRIVATE_RABBIT=1 scripts/services/start)");
        return;
    };
    let rabbit_dir = std::path::Path::new(&start)
        .parent()
        .expect("rabbit dir")
        .to_path_buf();
    let _cleanup = crate::support::Topology(cfg.clone());
    let rename = |v: &Value| -> Value {
        let text = v
            .to_string()
            .replace("\"folio.", &format!("\"{}.", cfg.topology_prefix));
        serde_json::from_str(&text).expect("renamed JSON")
    };
    let defs = definitions();
    let topology = json!({
        "exchanges": rename(&defs["exchanges"]),
        "queues": rename(&defs["queues"]),
        "bindings": rename(&defs["bindings"]),
    });
    let file = rabbit_dir.join(format!("{}.json", cfg.topology_prefix));
    std::fs::write(&file, topology.to_string()).unwrap();
    let script = format!(
        ". '{}/env.sh' && timeout 60 /usr/lib/rabbitmq/bin/rabbitmqctl -q -n \"$RABBITMQ_NODENAME\" import_definitions '{}'",
        rabbit_dir.display(),
        file.display()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The import is asynchronous: wait (with a raw connection that declares nothing) until the
    // imported queues exist, then let `AmqpQueue` declare its topology over them.
    let conn = Connection::connect(&cfg.url, ConnectionProperties::default())
        .await
        .unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let last = cfg.dead_queue(EngineKind::Glm45v);
    let mut imported = false;
    for _ in 0..100 {
        let ch = conn.create_channel().await.unwrap();
        if ch
            .queue_declare(last.as_str().into(), passive, FieldTable::default())
            .await
            .is_ok()
        {
            imported = true;
            let _ = ch.close(200, "ok".into()).await;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = conn.close(200, "done".into()).await;
    assert!(imported, "the imported queues did not appear");
    let q = AmqpQueue::connect(cfg.clone())
        .await
        .expect("our declarations match the imported ones");
    assert_eq!(q.queue_depth(EngineKind::Ocr).await.unwrap(), 0);
    cfg.delivery_limit += 1;
    let err = AmqpQueue::connect(cfg)
        .await
        .expect_err("a different limit is refused");
    assert!(err.message.contains("x-delivery-limit"), "{err}");
    q.close().await;
}
