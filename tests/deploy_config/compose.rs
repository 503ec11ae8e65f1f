//! compose.yaml: services reach each other by name with the S3 identity of seaweedfs/s3.json,
//! workers cover every engine (a GPU for glm45v), stop grace periods exceed the drain time; mounted
//! files exist, RabbitMQ loads the mounted definitions, the trigger's rules load with the code's own
//! parser, and seaweedfs-init creates every bucket the services and rules name.

use crate::docs::*;
use crate::formats::*;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};

fn services(docs: &[Doc]) -> &Map<String, Json> {
    let compose = doc(docs, "compose.yaml");
    compose["services"]
        .as_object()
        .expect("compose.yaml: services")
}

/// `source:target` of the bind mount of `svc` whose source ends with `suffix`.
fn bind_mount(svc: &Json, suffix: &str) -> Option<(String, String)> {
    let mounts = strings(&svc["volumes"]);
    let m = mounts
        .iter()
        .find(|m| m.split(':').next().unwrap_or_default().ends_with(suffix))?;
    let mut parts = m.split(':').map(String::from);
    Some((parts.next()?, parts.next()?))
}

/// A service's literal environment.
fn env_of(svc: &Json) -> BTreeMap<String, String> {
    compose_env(svc)
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect()
}

#[test]
fn compose_stack_is_wired_consistently() {
    let docs = load_docs();
    let services = services(&docs);
    for s in [
        "rabbitmq",
        "seaweedfs",
        "api",
        "worker-ocr",
        "worker-glm45v",
    ] {
        assert!(services.contains_key(s), "compose.yaml: no service {s}");
    }
    let s3 = doc(&docs, "seaweedfs/s3.json");
    let creds: BTreeSet<(String, String)> = s3["identities"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["credentials"].as_array().into_iter().flatten())
        .map(|c| {
            (
                text(&c["accessKey"]).unwrap_or_default(),
                text(&c["secretKey"]).unwrap_or_default(),
            )
        })
        .collect();
    let mut engines = BTreeSet::new();
    for (name, svc) in services {
        let cmd = strings(&svc["command"]);
        let Some(sub) = cmd
            .first()
            .filter(|s| SERVICE_SUBCOMMANDS.contains(&s.as_str()))
        else {
            continue;
        };
        let env = env_of(svc);
        let get = |k: &str| {
            env.get(k)
                .cloned()
                .unwrap_or_else(|| panic!("compose.yaml: {name} lacks {k}"))
        };
        for dep in ["rabbitmq", "seaweedfs"] {
            assert_eq!(
                svc["depends_on"][dep]["condition"], "service_healthy",
                "{name} must wait for {dep}"
            );
        }
        for (var, host) in [
            ("FOLIO_AMQP_URL", amqp_parts(&get("FOLIO_AMQP_URL")).2),
            ("FOLIO_S3_ENDPOINT", url_host(&get("FOLIO_S3_ENDPOINT"))),
        ] {
            assert!(
                services.contains_key(&host),
                "{name}: {var} names host {host}, not a compose service"
            );
        }
        let pair = (get("FOLIO_S3_ACCESS_KEY"), get("FOLIO_S3_SECRET_KEY"));
        assert!(
            creds.contains(&pair),
            "{name}: its S3 credentials are not an identity of seaweedfs/s3.json"
        );
        if sub == "serve" || sub == "work" {
            assert!(
                !strings(&svc["healthcheck"]["test"]).is_empty(),
                "{name}: no healthcheck"
            );
        }
        if let Some(var) = drain_variable(sub) {
            let drain: f64 = get(var).parse().expect("a number of seconds");
            let stop = text(&svc["stop_grace_period"]).map_or(10.0, |d| seconds(&d));
            assert!(
                stop > drain,
                "{name}: stop_grace_period {stop}s must exceed {var} {drain}"
            );
        }
        if sub == "work" {
            let engine = flag_value(&cmd, "--engine").or_else(|| env.get("FOLIO_ENGINE").cloned());
            let engine = engine.unwrap_or_else(|| panic!("{name}: work without --engine"));
            assert!(
                ENGINES.contains(&engine.as_str()),
                "{name}: unknown engine {engine}"
            );
            let devices = &svc["deploy"]["resources"]["reservations"]["devices"];
            let gpu = find(devices, |d| {
                d["driver"] == "nvidia" && strings(&d["capabilities"]).contains(&"gpu".to_string())
            });
            assert_eq!(
                gpu.is_some(),
                engine == "glm45v",
                "{name}: a GPU reservation is for the glm45v worker only"
            );
            engines.insert(engine);
        }
    }
    assert_eq!(
        engines,
        ENGINES.iter().map(|e| e.to_string()).collect(),
        "a worker per engine"
    );
}

#[test]
fn compose_mounts_rules_and_buckets_match_their_files() {
    let docs = load_docs();
    let services = services(&docs);
    for (name, svc) in services {
        for m in strings(&svc["volumes"]) {
            let src = m.split(':').next().unwrap_or_default();
            if (src.starts_with('.') || src.starts_with('/')) && !src.contains("${") {
                assert!(
                    deploy().join(src).exists(),
                    "compose.yaml: {name} mounts missing {src}"
                );
            }
        }
    }
    // RabbitMQ loads the definitions from where compose mounts them.
    let rabbit = &services["rabbitmq"];
    let (conf_src, _) = bind_mount(rabbit, ".conf").expect("rabbitmq mounts its conf");
    let conf = std::fs::read_to_string(deploy().join(&conf_src)).expect("rabbitmq conf");
    let load = conf.lines().find_map(|l| {
        l.split_once('=')
            .filter(|(k, _)| k.trim() == "load_definitions")
    });
    let load = load
        .map(|(_, v)| v.trim().to_string())
        .expect("conf: no load_definitions");
    let defs = bind_mount(rabbit, "definitions.json").expect("rabbitmq mounts definitions.json");
    assert_eq!(
        load, defs.1,
        "load_definitions is not where compose mounts the file"
    );

    // Buckets: Folio's own, and those the trigger's rules watch, all created by seaweedfs-init.
    let created: BTreeSet<String> = env_of(&services["seaweedfs-init"])
        .get("BUCKETS")
        .map(|b| b.split_whitespace().map(String::from).collect())
        .expect("seaweedfs-init: BUCKETS");
    let mut needed = BTreeSet::new();
    for (name, svc) in services {
        let env = env_of(svc);
        needed.extend(env.get("FOLIO_S3_BUCKET").cloned());
        let Some(rules_path) = env.get("FOLIO_TRIGGER_RULES") else {
            continue;
        };
        let mounted = strings(&svc["volumes"]).into_iter().find_map(|m| {
            let mut parts = m.split(':');
            let (src, dst) = (parts.next()?.to_string(), parts.next()?);
            (dst == rules_path).then_some(src)
        });
        let src = mounted.unwrap_or_else(|| panic!("{name}: {rules_path} is not mounted"));
        let rules = folio_api::events::rules::RuleSet::load(&deploy().join(&src))
            .unwrap_or_else(|e| panic!("{name}: {src}: {e}"));
        needed.extend(rules.rules.iter().map(|r| r.bucket.clone()));
    }
    let missing: Vec<_> = needed.difference(&created).collect();
    assert!(missing.is_empty(), "buckets nobody creates: {missing:?}");
}
