//! Kubernetes: kustomization lists every manifest; each Deployment has distinct readiness and
//! liveness probes on the port it listens on, a PodDisruptionBudget, a termination grace above its
//! shutdown grace; each worker scales on its engine's queue (KEDA), and only the glm45v one asks for
//! a GPU.

use crate::docs::*;
use crate::formats::*;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};

/// The container port a probe's `port` (name or number) refers to.
pub fn probe_port(c: &Json, port: &Json) -> Option<u64> {
    let ports = c["ports"].as_array()?;
    let p = ports
        .iter()
        .find(|p| p["name"] == *port || p["containerPort"] == *port)?;
    p["containerPort"].as_u64()
}

pub fn labels_match(selector: &Json, labels: &Json) -> bool {
    let sel = selector.as_object().filter(|s| !s.is_empty());
    sel.is_some_and(|s| s.iter().all(|(k, v)| labels[k] == *v))
}

#[test]
fn kubernetes_workloads_are_consistent() {
    let docs = load_docs();
    let kust = doc(&docs, "k8s/kustomization.yaml");
    let listed: BTreeSet<String> = strings(&kust["resources"])
        .iter()
        .map(|r| format!("k8s/{r}"))
        .collect();
    let present: BTreeSet<String> = docs
        .iter()
        .map(|d| d.file.clone())
        .filter(|f| f.starts_with("k8s/") && f != "k8s/kustomization.yaml")
        .collect();
    assert_eq!(
        listed, present,
        "kustomization.yaml resources vs the manifests in deploy/k8s"
    );

    let deployments = kind_docs(&docs, "Deployment");
    assert!(
        deployments.len() >= 3,
        "api, ocr and glm45v Deployments expected"
    );
    let mut engines = BTreeSet::new();
    for d in deployments {
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        let spec = pod_spec(d).expect("pod spec");
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        assert!(
            labels_match(&d["spec"]["selector"]["matchLabels"], labels),
            "{name}: selector vs pod labels"
        );
        let pdb = kind_docs(&docs, "PodDisruptionBudget")
            .into_iter()
            .any(|p| labels_match(&p["spec"]["selector"]["matchLabels"], labels));
        assert!(pdb, "{name}: no PodDisruptionBudget selects its pods");
        let termination = spec["terminationGracePeriodSeconds"]
            .as_f64()
            .unwrap_or(30.0);
        for c in containers(spec) {
            let args = [strings(&c["command"]), strings(&c["args"])].concat();
            let Some(sub) = args
                .iter()
                .find(|a| SERVICE_SUBCOMMANDS.contains(&a.as_str()))
            else {
                continue;
            };
            let env: BTreeMap<String, String> = container_env(&docs, c)
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?)))
                .collect();
            let (ready, live) = (
                &c["readinessProbe"]["httpGet"],
                &c["livenessProbe"]["httpGet"],
            );
            assert!(
                ready.is_object() && live.is_object(),
                "{name}: readiness and liveness httpGet probes"
            );
            assert_ne!(
                ready["path"], live["path"],
                "{name}: readiness must not be the liveness check"
            );
            let ready_port =
                probe_port(c, &ready["port"]).unwrap_or_else(|| panic!("{name}: readiness port"));
            for probe in ["livenessProbe", "startupProbe"]
                .map(|p| &c[p]["httpGet"])
                .into_iter()
                .filter(|p| p.is_object())
            {
                assert!(
                    probe_port(c, &probe["port"]).is_some(),
                    "{name}: probe on an undeclared port {}",
                    probe["port"]
                );
            }
            let listen = if sub == "serve" {
                "FOLIO_LISTEN"
            } else {
                "FOLIO_METRICS_LISTEN"
            };
            if let Some(addr) = env.get(listen) {
                assert_eq!(
                    port_of(addr),
                    ready_port,
                    "{name}: probes a port other than {listen}={addr}"
                );
            }
            let pre_stop = strings(&c["lifecycle"]["preStop"]["exec"]["command"]);
            let pre_stop: f64 = match pre_stop.as_slice() {
                [cmd, secs] if cmd.ends_with("sleep") => {
                    secs.parse().expect("preStop sleep seconds")
                }
                _ => 0.0,
            };
            if let Some(var) = drain_variable(sub) {
                let drain = env
                    .get(var)
                    .unwrap_or_else(|| panic!("{name}: {var} unset"));
                let drain: f64 = drain.parse().expect("a number of seconds");
                assert!(termination > drain + pre_stop,
                    "{name}: terminationGracePeriodSeconds {termination} must exceed preStop {pre_stop} + {var} {drain}");
            }
            if sub != "work" {
                continue;
            }
            let engine = flag_value(&args, "--engine")
                .or_else(|| env.get("FOLIO_ENGINE").cloned())
                .expect("--engine");
            let gpus = text(&c["resources"]["limits"]["nvidia.com/gpu"])
                .and_then(|g| g.parse::<u64>().ok());
            if engine == "glm45v" {
                assert!(
                    gpus.unwrap_or(0) >= 1,
                    "{name}: the GPU worker must request nvidia.com/gpu"
                );
                let tolerates = find(&spec["tolerations"], |t| t["key"] == "nvidia.com/gpu");
                assert!(
                    tolerates.is_some(),
                    "{name}: GPU nodes are tainted nvidia.com/gpu; the pods must tolerate it"
                );
            } else {
                assert!(gpus.is_none(), "{name}: a CPU worker requests a GPU");
            }
            let so = kind_docs(&docs, "ScaledObject")
                .into_iter()
                .find(|s| s["spec"]["scaleTargetRef"]["name"] == name);
            let so = so.unwrap_or_else(|| panic!("{name}: no ScaledObject scales it"));
            let trigger = find(&so["spec"]["triggers"], |t| t["type"] == "rabbitmq")
                .expect("rabbitmq trigger");
            assert_eq!(
                trigger["metadata"]["queueName"],
                format!("folio.pages.{engine}"),
                "{name}: scales on another queue"
            );
            let auth_name = trigger["authenticationRef"]["name"]
                .as_str()
                .unwrap_or_default();
            let auth =
                named(&docs, "TriggerAuthentication", auth_name).expect("TriggerAuthentication");
            let host = find(&auth["spec"]["secretTargetRef"], |r| {
                r["parameter"] == "host"
            })
            .expect("host from a Secret");
            let secret = named(&docs, "Secret", host["name"].as_str().unwrap_or_default())
                .expect("the Secret");
            let key = host["key"].as_str().unwrap_or_default();
            assert!(
                data_keys(secret).iter().any(|(k, _)| k == key),
                "Secret {} has no key {key}",
                host["name"]
            );
            engines.insert(engine);
        }
    }
    assert_eq!(
        engines,
        ENGINES.iter().map(|e| e.to_string()).collect(),
        "a worker Deployment per engine"
    );
}
