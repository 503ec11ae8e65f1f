//! compose.yaml: mounts exist, RabbitMQ loads the mounted definitions, services reach each other by
//! name with the S3 identity of seaweedfs/s3.json, workers cover every engine (a GPU for glm45v),
//! stop grace periods exceed the shutdown grace.

use crate::docs::*;
use crate::formats::*;
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn compose_stack_is_wired_consistently() {
    let docs = load_docs();
    let compose = doc(&docs, "compose.yaml");
    let services = compose["services"]
        .as_object()
        .expect("compose.yaml: services");
    for s in [
        "rabbitmq",
        "seaweedfs",
        "api",
        "worker-ocr",
        "worker-glm45v",
    ] {
        assert!(services.contains_key(s), "compose.yaml: no service {s}");
    }
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
    let mounts = strings(&services["rabbitmq"]["volumes"]);
    let mount = |suffix: &str| {
        let m = mounts
            .iter()
            .find(|m| m.split(':').next().unwrap_or_default().ends_with(suffix));
        let parts: Vec<String> = m
            .unwrap_or_else(|| panic!("rabbitmq mounts no *{suffix}"))
            .split(':')
            .map(String::from)
            .collect();
        (parts[0].clone(), parts[1].clone())
    };
    let (conf_src, _) = mount(".conf");
    let conf = std::fs::read_to_string(deploy().join(&conf_src)).expect("rabbitmq conf");
    let load = conf.lines().find_map(|l| {
        l.split_once('=')
            .filter(|(k, _)| k.trim() == "load_definitions")
    });
    let load = load
        .map(|(_, v)| v.trim().to_string())
        .expect("rabbitmq conf: no load_definitions");
    assert_eq!(
        load,
        mount("definitions.json").1,
        "load_definitions is not where compose mounts the file"
    );

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
        let env: BTreeMap<String, String> = compose_env(svc)
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
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
        if let Some(grace) = env.get("FOLIO_SHUTDOWN_GRACE_SECS") {
            let stop = text(&svc["stop_grace_period"]).map_or(10.0, |d| seconds(&d));
            let grace: f64 = grace
                .parse()
                .expect("FOLIO_SHUTDOWN_GRACE_SECS is a number");
            assert!(
                stop > grace,
                "{name}: stop_grace_period {stop}s must exceed FOLIO_SHUTDOWN_GRACE_SECS {grace}"
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
