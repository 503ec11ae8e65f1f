//! The variables the deploy files set, and the variables the `folio` binary reads (from the
//! `[env: …]` annotations of its `--help`, with the lead's contract list as the fallback while a
//! service subcommand is not written yet).

use crate::dockerfile::{dockerfiles, env_pairs};
use crate::docs::*;
use std::collections::BTreeSet;
use std::process::Command;

/// The variables the binary reads (the contract kept by the lead). Used only while one of
/// `SERVICE_SUBCOMMANDS` is not in `folio --help` yet; after that, `--help` alone is the truth.
pub const CONTRACT: &[&str] = &[
    "FOLIO_RUNTIME_DIR",
    "FOLIO_AMQP_URL",
    "FOLIO_DELIVERY_LIMIT",
    "FOLIO_S3_ENDPOINT",
    "FOLIO_S3_BUCKET",
    "FOLIO_S3_REGION",
    "FOLIO_S3_ACCESS_KEY",
    "FOLIO_S3_SECRET_KEY",
    "FOLIO_S3_PATH_STYLE",
    "FOLIO_LISTEN",
    "FOLIO_API_KEYS",
    "FOLIO_MAX_BODY_BYTES",
    "FOLIO_MAX_PAGES",
    "FOLIO_MAX_IN_FLIGHT",
    "FOLIO_REQUEST_TIMEOUT_SECS",
    "FOLIO_ENGINE",
    "FOLIO_METRICS_LISTEN",
    "FOLIO_SHUTDOWN_GRACE_SECS",
    "FOLIO_MODEL_DIR",
    "FOLIO_DEVICE",
    "FOLIO_MAX_BATCH",
    "FOLIO_EVENTS_SECRET",
    "FOLIO_PDF_PASSWORD",
    "RUST_LOG",
];

/// Contract variables whose reader is not in the binary yet, with that reader. The check
/// tolerates exactly these, and fails as soon as `--help` shows one, so that the entry is removed.
/// Empty since `folio work --engine glm45v` reads FOLIO_MODEL_DIR, FOLIO_DEVICE, FOLIO_MAX_BATCH.
pub const NOT_YET_READ: &[(&str, &str)] = &[];

/// A variable set by a deploy file: name, value when literal, and where.
pub struct Var {
    pub name: String,
    pub value: Option<String>,
    pub at: String,
}

/// Every variable set anywhere in deploy/ (compose, Kubernetes, Dockerfiles).
pub fn variables_set(docs: &[Doc]) -> Vec<Var> {
    let mut out = Vec::new();
    for d in docs {
        if let Some(services) = d.value["services"].as_object() {
            for (name, svc) in services {
                assert!(
                    svc["env_file"].is_null(),
                    "{}: {name}: use environment:",
                    d.file
                );
                for (k, v) in compose_env(svc) {
                    let at = format!("{} services.{name}.environment", d.file);
                    out.push(Var {
                        name: k,
                        value: v,
                        at,
                    });
                }
            }
        }
        for c in pod_spec(&d.value).map(containers).unwrap_or_default() {
            let obj = format!("{} {}", d.value["kind"], d.value["metadata"]["name"]);
            for (k, v) in container_env(docs, c) {
                let at = format!("{} {obj} container {}", d.file, c["name"]);
                out.push(Var {
                    name: k,
                    value: v,
                    at,
                });
            }
        }
    }
    // Keys of every ConfigMap and Secret too, referenced or not: they exist to become variables.
    for d in docs
        .iter()
        .filter(|d| ["ConfigMap", "Secret"].contains(&d.value["kind"].as_str().unwrap_or_default()))
    {
        for (k, v) in data_keys(&d.value) {
            let at = format!(
                "{} {} {}",
                d.file, d.value["kind"], d.value["metadata"]["name"]
            );
            out.push(Var {
                name: k,
                value: v,
                at,
            });
        }
    }
    for (file, instrs) in dockerfiles() {
        for i in instrs.iter().filter(|i| i.keyword == "ENV") {
            for (k, v) in env_pairs(&i.args) {
                out.push(Var {
                    name: k,
                    value: Some(v),
                    at: format!("{file}:{}", i.line),
                });
            }
        }
    }
    out
}

/// `folio ARGS --help`, or `None` when the binary refuses (an unknown subcommand).
pub fn folio_help(args: &[&str]) -> Option<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_folio"))
        .args(args)
        .arg("--help")
        .output()
        .expect("the folio binary runs");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Names in clap's `[env: NAME]` / `[env: NAME=value]` annotations.
pub fn env_annotations(help: &str) -> BTreeSet<String> {
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let tail = flat.split("[env: ").skip(1);
    let names = tail.map(|t| {
        t.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
    });
    names
        .map(String::from_iter)
        .filter(|n| !n.is_empty())
        .collect()
}

/// The subcommands listed under `Commands:` in `folio --help`.
pub fn subcommands(help: &str) -> Vec<String> {
    let section = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1);
    let rows = section.take_while(|l| l.starts_with(' '));
    rows.filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Every variable the binary reads: from `--help` of the binary and each subcommand, plus
/// `CONTRACT` while a service subcommand is still missing from the binary.
pub fn variables_read() -> BTreeSet<String> {
    let top = folio_help(&[]).expect("`folio --help` succeeds");
    let subs = subcommands(&top);
    assert!(
        subs.iter().any(|s| s == "parse"),
        "no subcommands found in:\n{top}"
    );
    let mut read = env_annotations(&top);
    for s in subs.iter().filter(|s| *s != "help") {
        let help = folio_help(&[s]).unwrap_or_else(|| panic!("`folio {s} --help` fails"));
        read.extend(env_annotations(&help));
    }
    let missing: Vec<&str> = SERVICE_SUBCOMMANDS
        .iter()
        .copied()
        .filter(|s| !subs.iter().any(|x| x == s))
        .collect();
    if !missing.is_empty() {
        eprintln!("`folio` has no {missing:?} yet: using the CONTRACT list for those");
        read.extend(CONTRACT.iter().map(|s| s.to_string()));
    }
    read.insert("RUST_LOG".into()); // read by tracing-subscriber's EnvFilter, not a flag
    read
}

#[test]
fn every_folio_variable_set_in_deploy_is_read_by_the_binary() {
    let docs = load_docs();
    let set = variables_set(&docs);
    for source in ["compose.yaml", "k8s/", "docker/Dockerfile"] {
        let found = set
            .iter()
            .any(|v| v.at.starts_with(source) && v.name.starts_with("FOLIO_"));
        assert!(
            found,
            "no FOLIO_ variable collected from {source}: the collector is broken"
        );
    }
    let read = variables_read();
    for (name, reader) in NOT_YET_READ {
        assert!(CONTRACT.contains(name), "{name} is not in the CONTRACT");
        assert!(
            !read.contains(*name),
            "`folio --help` now shows {name}: remove it from NOT_YET_READ"
        );
        eprintln!("{name}: set for {reader}, which does not read it yet");
    }
    let pending = |name: &str| NOT_YET_READ.iter().any(|(n, _)| *n == name);
    let unknown: Vec<String> = set
        .iter()
        .filter(|v| v.name.starts_with("FOLIO_") && !read.contains(&v.name) && !pending(&v.name))
        .map(|v| format!("  {} ({})", v.name, v.at))
        .collect();
    assert!(
        unknown.is_empty(),
        "set in deploy/ but read by no `folio` subcommand:\n{}\nthe binary reads: {read:?}",
        unknown.join("\n")
    );
}
