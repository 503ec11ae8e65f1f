//! RabbitMQ: definitions.json declares the topology the code declares (exchanges, quorum queues
//! with delivery limit and dead-lettering, bindings), with the delivery limit the services are
//! given, and the user compose connects as (loading definitions at boot skips the default user).

use crate::docs::*;
use crate::env::variables_set;
use crate::formats::*;
use serde_json::Value as Json;
use std::collections::BTreeSet;

#[test]
fn rabbitmq_definitions_declare_the_topology_the_code_uses() {
    let docs = load_docs();
    let Some(defs) = docs.iter().find(|d| d.file == "rabbitmq/definitions.json") else {
        eprintln!("deploy/rabbitmq/definitions.json not written yet: nothing to check");
        return;
    };
    let defs = &defs.value;
    let exchange = |name: &str| {
        find(&defs["exchanges"], |e| e["name"] == name)
            .unwrap_or_else(|| panic!("definitions.json: no exchange {name}"))
    };
    let queue = |name: &str| {
        find(&defs["queues"], |q| q["name"] == name)
            .unwrap_or_else(|| panic!("definitions.json: no queue {name}"))
    };
    let binding = |from: &str, to: &str| {
        find(&defs["bindings"], |b| {
            b["source"] == from && b["destination"] == to
        })
        .unwrap_or_else(|| panic!("definitions.json: no binding {from} -> {to}"))
    };
    assert_eq!(exchange("folio.pages")["type"], "direct");
    let dead_type = exchange("folio.dead")["type"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        ["direct", "topic"].contains(&dead_type.as_str()),
        "folio.dead is {dead_type}: dead letters of every engine would mix"
    );
    let mut limits = BTreeSet::new();
    let mut vhosts = BTreeSet::new();
    for engine in ENGINES {
        let name = format!("folio.pages.{engine}");
        let (q, args) = (queue(&name), &queue(&name)["arguments"]);
        assert_eq!(q["durable"], true, "{name} must be durable");
        assert_eq!(args["x-queue-type"], "quorum", "{name}");
        assert_eq!(args["x-dead-letter-exchange"], "folio.dead", "{name}");
        let limit = args["x-delivery-limit"].as_u64().filter(|l| *l > 0);
        limits.insert(
            limit.unwrap_or_else(|| panic!("{name}: x-delivery-limit must be a positive integer")),
        );
        let key = binding("folio.pages", &name)["routing_key"].clone();
        // A dead-lettered message keeps its routing key unless the queue sets another one.
        let dl_key = match &args["x-dead-letter-routing-key"] {
            Json::Null => key,
            k => k.clone(),
        };
        let dead = format!("{name}.dead");
        assert_eq!(queue(&dead)["durable"], true, "{dead} must be durable");
        let dead_binding = binding("folio.dead", &dead);
        if dead_type == "direct" {
            assert_eq!(
                dead_binding["routing_key"], dl_key,
                "dead letters of {name} would not reach {dead}"
            );
        }
        vhosts.extend([&q["vhost"], &queue(&dead)["vhost"]].map(|v| text(v).unwrap_or_default()));
    }
    assert_eq!(vhosts.len(), 1, "queues in several vhosts: {vhosts:?}");
    for v in variables_set(&docs)
        .iter()
        .filter(|v| v.name == "FOLIO_DELIVERY_LIMIT")
    {
        let value: u64 = v
            .value
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        assert!(limits.contains(&value) && limits.len() == 1,
            "{}: FOLIO_DELIVERY_LIMIT={value} but the queues declare x-delivery-limit {limits:?}; RabbitMQ refuses to redeclare a queue with other arguments", v.at);
    }
    // With definitions loaded at boot RabbitMQ creates no default user: compose's must be declared.
    let compose = doc(&docs, "compose.yaml");
    let urls: BTreeSet<String> = compose["services"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, s)| compose_env(s).remove("FOLIO_AMQP_URL").flatten())
        .collect();
    assert!(!urls.is_empty(), "compose.yaml sets no FOLIO_AMQP_URL");
    for url in urls {
        let (user, password, _, vhost) = amqp_parts(&url);
        assert!(
            vhosts.contains(&vhost),
            "{url}: vhost {vhost} is not the queues' {vhosts:?}"
        );
        assert!(
            find(&defs["vhosts"], |v| v["name"] == vhost.as_str()).is_some(),
            "definitions.json: no vhost {vhost}"
        );
        let u = find(&defs["users"], |u| u["name"] == user.as_str()).unwrap_or_else(|| panic!(
            "definitions.json declares no user `{user}` (compose connects with {url}); loading definitions at boot skips the default user"));
        // Import takes a plain `password` (hashed on import) or an exported `password_hash`.
        let matches = match (text(&u["password"]), text(&u["password_hash"])) {
            (Some(plain), _) => plain == password,
            (None, Some(hash)) => {
                let algorithm = text(&u["hashing_algorithm"]).unwrap_or_default();
                rabbit_password_matches(&hash, &algorithm, &password)
            }
            (None, None) => false,
        };
        assert!(
            matches,
            "definitions.json: the password of `{user}` is not the one in {url}"
        );
        let perm = find(&defs["permissions"], |p| {
            p["user"] == user.as_str() && p["vhost"] == vhost.as_str()
        })
        .unwrap_or_else(|| {
            panic!("definitions.json: `{user}` has no permissions on vhost {vhost}")
        });
        for p in ["configure", "write", "read"] {
            assert!(
                !text(&perm[p]).unwrap_or_default().is_empty(),
                "`{user}` lacks {p} permission"
            );
        }
    }
}
