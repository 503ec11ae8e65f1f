//! Loading the deploy files: every document of every YAML/JSON file under deploy/ as a JSON value,
//! and accessors for what compose and Kubernetes documents hold (environments, pod specs).

use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The subcommands that run as services (and so appear in deploy files).
pub const SERVICE_SUBCOMMANDS: &[&str] = &["serve", "work", "trigger", "reprocess"];
/// The engines; each has its queue `folio.pages.{engine}` and a worker.
pub const ENGINES: &[&str] = &["ocr", "glm45v"];

/// The variable that bounds how long a subcommand drains after SIGTERM: a worker finishes its
/// batch within FOLIO_SHUTDOWN_GRACE_SECS; the API finishes in-flight requests, each bounded by
/// FOLIO_REQUEST_TIMEOUT_SECS. The platform's stop grace must exceed it.
pub fn drain_variable(subcommand: &str) -> Option<&'static str> {
    match subcommand {
        "serve" => Some("FOLIO_REQUEST_TIMEOUT_SECS"),
        "work" => Some("FOLIO_SHUTDOWN_GRACE_SECS"),
        _ => None,
    }
}

/// The repository's deploy/ folder.
pub fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// One parsed document of a deploy file.
pub struct Doc {
    pub file: String,
    pub value: Json,
}

/// Every document of a YAML text (merge keys applied), as JSON values; empty documents are skipped.
pub fn parse_yaml(text: &str) -> Result<Vec<Json>, String> {
    let mut docs = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        let mut v = serde_yaml_ng::Value::deserialize(de).map_err(|e| e.to_string())?;
        v.apply_merge().map_err(|e| e.to_string())?;
        if !v.is_null() {
            docs.push(serde_json::to_value(&v).map_err(|e| e.to_string())?);
        }
    }
    Ok(docs)
}

/// Files below `dir` (recursively, sorted) whose name `keep` accepts.
pub fn files_under(dir: &Path, keep: &dyn Fn(&str) -> bool, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, keep, out);
        } else if keep(&p.file_name().unwrap_or_default().to_string_lossy()) {
            out.push(p);
        }
    }
}

/// A path relative to deploy/, as the checks report it.
pub fn rel(p: &Path) -> String {
    p.strip_prefix(deploy()).unwrap_or(p).display().to_string()
}

/// Every document of every `*.yaml`/`*.yml`/`*.json` under deploy/; panics listing every bad file.
pub fn load_docs() -> Vec<Doc> {
    let mut files = Vec::new();
    let data = |n: &str| n.ends_with(".yaml") || n.ends_with(".yml") || n.ends_with(".json");
    files_under(&deploy(), &data, &mut files);
    let (mut docs, mut errors) = (Vec::new(), Vec::new());
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let parsed = if f.extension().is_some_and(|x| x == "json") {
            serde_json::from_str(&text)
                .map(|v| vec![v])
                .map_err(|e| e.to_string())
        } else {
            parse_yaml(&text)
        };
        match parsed {
            Ok(values) => docs.extend(values.into_iter().map(|value| Doc {
                file: rel(f),
                value,
            })),
            Err(e) => errors.push(format!("{}: {e}", rel(f))),
        }
    }
    assert!(
        errors.is_empty(),
        "deploy files that do not parse:\n{}",
        errors.join("\n")
    );
    docs
}

/// The single document of `deploy/{file}`; panics when the file is missing.
pub fn doc<'a>(docs: &'a [Doc], file: &str) -> &'a Json {
    let found = docs.iter().find(|d| d.file == file);
    &found
        .unwrap_or_else(|| panic!("deploy/{file} is missing"))
        .value
}

/// Every Kubernetes document of `kind`.
pub fn kind_docs<'a>(docs: &'a [Doc], kind: &str) -> Vec<&'a Json> {
    docs.iter()
        .filter(|d| d.value["kind"] == kind)
        .map(|d| &d.value)
        .collect()
}

/// The Kubernetes document of `kind` named `name`.
pub fn named<'a>(docs: &'a [Doc], kind: &str, name: &str) -> Option<&'a Json> {
    kind_docs(docs, kind)
        .into_iter()
        .find(|v| v["metadata"]["name"] == name)
}

/// A scalar as text (YAML lets numbers and booleans through where strings are meant).
pub fn text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The scalars of an array (nothing when `v` is not an array).
pub fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(text).collect())
        .unwrap_or_default()
}

/// `environment:` of a compose service, as a map or a `KEY=VALUE` list.
pub fn compose_env(service: &Json) -> BTreeMap<String, Option<String>> {
    match &service["environment"] {
        Json::Object(m) => m.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Json::Array(items) => items
            .iter()
            .filter_map(text)
            .map(|s| match s.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (s, None),
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The pod spec of a workload object, if it is one.
pub fn pod_spec(v: &Json) -> Option<&Json> {
    match v["kind"].as_str()? {
        "Pod" => Some(&v["spec"]),
        "CronJob" => v.pointer("/spec/jobTemplate/spec/template/spec"),
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicaSet" => {
            v.pointer("/spec/template/spec")
        }
        _ => None,
    }
}

/// Init containers and containers of a pod spec.
pub fn containers(spec: &Json) -> Vec<&Json> {
    let all = ["initContainers", "containers"].map(|k| spec[k].as_array());
    all.into_iter().flatten().flatten().collect()
}

/// The keys of a ConfigMap (`data`) or Secret (`data`, `stringData`).
pub fn data_keys(v: &Json) -> Vec<(String, Option<String>)> {
    let fields = ["data", "stringData"].map(|k| v[k].as_object());
    let pairs = fields.into_iter().flatten().flatten();
    pairs.map(|(k, v)| (k.clone(), text(v))).collect()
}

/// A container's environment: its `env:` entries, then the keys of its `envFrom` sources.
pub fn container_env(docs: &[Doc], c: &Json) -> Vec<(String, Option<String>)> {
    let mut vars = Vec::new();
    for e in c["env"].as_array().into_iter().flatten() {
        vars.push((text(&e["name"]).unwrap_or_default(), text(&e["value"])));
        for (field, kind) in [("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")] {
            let source = &e["valueFrom"][field];
            if let (Some(name), Some(key)) = (source["name"].as_str(), source["key"].as_str()) {
                let obj = named(docs, kind, name);
                let has = obj.is_some_and(|o| data_keys(o).iter().any(|(k, _)| k == key));
                assert!(
                    has || source["optional"] == true,
                    "{} reads missing {kind} {name} key {key}",
                    e["name"]
                );
            }
        }
    }
    for src in c["envFrom"].as_array().into_iter().flatten() {
        let prefix = text(&src["prefix"]).unwrap_or_default();
        for (field, kind) in [("configMapRef", "ConfigMap"), ("secretRef", "Secret")] {
            if let Some(name) = src[field]["name"].as_str() {
                let obj = named(docs, kind, name)
                    .unwrap_or_else(|| panic!("envFrom names {kind} {name}, not in deploy/k8s"));
                vars.extend(
                    data_keys(obj)
                        .into_iter()
                        .map(|(k, v)| (format!("{prefix}{k}"), v)),
                );
            }
        }
    }
    vars
}
