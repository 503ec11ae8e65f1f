//! The deployment files under `deploy/`, checked without Docker or Kubernetes (neither runs here):
//! every YAML (all documents) and JSON file parses; every `FOLIO_*` variable they set (compose
//! `environment:`, Kubernetes `env:` and the ConfigMaps/Secrets behind `envFrom`, Dockerfile `ENV`)
//! is one the `folio` binary reads, taken from the `[env: …]` annotations of its `--help`; the
//! RabbitMQ definitions declare the topology the code uses, with the user compose connects as; and
//! the compose stack, the Kubernetes workloads and the Dockerfiles agree with each other.

#[path = "deploy_config/compose.rs"]
mod compose;
#[path = "deploy_config/dockerfile.rs"]
mod dockerfile;
#[path = "deploy_config/docs.rs"]
mod docs;
#[path = "deploy_config/env.rs"]
mod env;
#[path = "deploy_config/formats.rs"]
mod formats;
#[path = "deploy_config/k8s.rs"]
mod k8s;
#[path = "deploy_config/rabbitmq.rs"]
mod rabbitmq;

use dockerfile::{dockerfiles, env_pairs, instructions};
use docs::{load_docs, parse_yaml};
use formats::{amqp_parts, rabbit_password_matches, seconds};
use serde_json::json;
use std::collections::BTreeSet;

#[test]
fn every_deploy_file_parses() {
    let docs = load_docs();
    let files: BTreeSet<&str> = docs.iter().map(|d| d.file.as_str()).collect();
    let expected = [
        "compose.yaml",
        "seaweedfs/s3.json",
        "k8s/kustomization.yaml",
        "k8s/keda.yaml",
    ];
    for f in expected {
        assert!(files.contains(f), "deploy/{f} missing; parsed: {files:?}");
    }
    let k8s_docs = docs.iter().filter(|d| d.file.starts_with("k8s/")).count();
    assert!(
        k8s_docs >= 12,
        "only {k8s_docs} Kubernetes documents parsed"
    );
    let dockerfiles = dockerfiles();
    assert!(
        dockerfiles.len() >= 2,
        "expected Dockerfile and Dockerfile.gpu"
    );
}

#[test]
fn the_parsers_reject_broken_input_and_read_every_document() {
    assert!(
        parse_yaml("a: 1\na: 2\n").is_err(),
        "duplicate key accepted"
    );
    assert!(
        parse_yaml("a:\n  - b\n c: d\n").is_err(),
        "bad indentation accepted"
    );
    assert!(
        parse_yaml("a: [1, 2\n").is_err(),
        "unclosed sequence accepted"
    );
    let docs = parse_yaml("x: &x {k: 1}\ny:\n  <<: *x\n  j: 2\n---\n---\nb: 2\n").expect("valid");
    assert_eq!(docs.len(), 2, "{docs:?}");
    assert_eq!(docs[0]["y"], json!({"k": 1, "j": 2}));

    let df = "# syntax=x\nFROM a:1 AS b\nENV A=1 \\\n  # note\n  B=\"two words\"\nRUN <<EOF\nFROM no\nEOF\nENV C 3\n";
    let instrs = instructions(df);
    let kws: Vec<&str> = instrs.iter().map(|i| i.keyword.as_str()).collect();
    assert_eq!(kws, ["FROM", "ENV", "RUN", "ENV"]);
    assert_eq!(
        env_pairs(&instrs[1].args),
        [("A".into(), "1".into()), ("B".into(), "two words".into())]
    );
    assert_eq!(
        env_pairs(&instrs[3].args),
        [("C".to_string(), "3".to_string())]
    );

    let (user, pass, host, vhost) = amqp_parts("amqp://fo%40lio:p%3Ass@rabbit:5672/%2f");
    assert_eq!(
        (user.as_str(), pass.as_str(), host.as_str(), vhost.as_str()),
        ("fo@lio", "p:ss", "rabbit", "/")
    );
    assert_eq!(seconds("1m30s"), 90.0);
    assert_eq!(seconds("500ms"), 0.5);
    // Exported by RabbitMQ 3.10.8 for a user added with the password `folio-dev-password`.
    let hash = "uoz4sJNmmlu+7+LnD15zDJ5VFHUBbq0ZYluDtOkxC8xZj2b3";
    assert!(rabbit_password_matches(
        hash,
        "rabbit_password_hashing_sha256",
        "folio-dev-password"
    ));
    assert!(!rabbit_password_matches(
        hash,
        "rabbit_password_hashing_sha256",
        "folio-dev-passwore"
    ));
}
