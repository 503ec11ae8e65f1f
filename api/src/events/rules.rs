//! Which objects each tenant wants processed: bucket, key prefix, key suffixes and content types,
//! plus the options its documents are submitted with. Loaded from a YAML (or JSON) file:
//!
//! ```yaml
//! rules:
//!   - tenant: acme
//!     bucket: inbox
//!     prefix: scans/            # optional; "" = the whole bucket
//!     suffixes: [.pdf, .tif]    # optional, any of, case-insensitive
//!     content_types: [application/pdf, "image/*"]   # optional, any of
//!     engine: ocr               # optional (ocr | glm45v), default ocr
//!     profile: document         # optional prompt profile
//!     dpi: 200                  # optional, default 200
//! ```
//!
//! An event is submitted once per tenant: the first matching rule of each tenant applies.

use super::model::ObjectEvent;
use folio_schemas::{EngineKind, JobOptions};
use folio_transport::valid_tenant;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One tenant's interest in a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub tenant: String,
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub suffixes: Vec<String>,
    /// `type/subtype` or `type/*`; matched against the type the event declares or, when it
    /// declares none, the type sniffed from the object's bytes.
    #[serde(default)]
    pub content_types: Vec<String>,
    #[serde(default = "default_engine")]
    pub engine: EngineKind,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub dpi: Option<u32>,
    /// Completion webhook of the documents this rule submits (see `crate::callbacks`; the
    /// target is checked again before each delivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

fn default_engine() -> EngineKind {
    EngineKind::Ocr
}

/// Every rule, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Syntax {
        path: String,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("rule {index}: {problem}")]
    Invalid { index: usize, problem: String },
    #[error("no rules: give at least one bucket to watch")]
    Empty,
}

impl RuleSet {
    /// Read and validate a YAML or JSON rules file.
    pub fn load(path: &Path) -> Result<RuleSet, RuleError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RuleError::Read {
            path: shown.clone(),
            source,
        })?;
        let set: RuleSet = serde_yaml_ng::from_str(&text).map_err(|source| RuleError::Syntax {
            path: shown,
            source,
        })?;
        set.validate()?;
        Ok(set)
    }

    /// Check every rule: tenant names usable as key prefixes, a bucket, DPI in range, content
    /// types of the form `type/subtype` or `type/*`.
    pub fn validate(&self) -> Result<(), RuleError> {
        if self.rules.is_empty() {
            return Err(RuleError::Empty);
        }
        for (index, rule) in self.rules.iter().enumerate() {
            let invalid = |problem: String| RuleError::Invalid { index, problem };
            if !valid_tenant(&rule.tenant) {
                return Err(invalid(format!(
                    "tenant {:?} must be 1-64 characters of a-z, A-Z, 0-9, '-' or '_'",
                    rule.tenant
                )));
            }
            if rule.bucket.is_empty() || rule.bucket.contains('/') {
                return Err(invalid(format!(
                    "bucket {:?} is not a bucket name",
                    rule.bucket
                )));
            }
            if let Some(Err(e)) = rule
                .callback_url
                .as_deref()
                .map(crate::callbacks::Target::parse)
            {
                return Err(invalid(e.to_string()));
            }
            if let Some(dpi) = rule.dpi.filter(|d| !(36..=1200).contains(d)) {
                return Err(invalid(format!("dpi {dpi} is outside 36..=1200")));
            }
            if let Some(ct) = rule.content_types.iter().find(|c| {
                let mut parts = c.split('/');
                !matches!((parts.next(), parts.next(), parts.next()), (Some(t), Some(s), None) if !t.is_empty() && !s.is_empty())
            }) {
                return Err(invalid(format!("content type {ct:?} is not `type/subtype` or `type/*`")));
            }
        }
        Ok(())
    }

    /// The rules that apply to an event's bucket and key: the first match of each tenant.
    pub fn matching(&self, event: &ObjectEvent) -> Vec<&Rule> {
        let mut out: Vec<&Rule> = Vec::new();
        for rule in &self.rules {
            if rule.matches_key(&event.bucket, &event.key)
                && !out.iter().any(|r| r.tenant == rule.tenant)
            {
                out.push(rule);
            }
        }
        out
    }

    /// Every bucket some rule watches (sorted, unique).
    pub fn buckets(&self) -> Vec<String> {
        let mut b: Vec<String> = self.rules.iter().map(|r| r.bucket.clone()).collect();
        b.sort();
        b.dedup();
        b
    }
}

impl Rule {
    /// Bucket equal, key under the prefix, and (when suffixes are given) ending in one of them,
    /// ignoring ASCII case.
    pub fn matches_key(&self, bucket: &str, key: &str) -> bool {
        if bucket != self.bucket || !key.starts_with(&self.prefix) {
            return false;
        }
        if self.suffixes.is_empty() {
            return true;
        }
        let lower = key.to_ascii_lowercase();
        self.suffixes
            .iter()
            .any(|s| lower.ends_with(&s.to_ascii_lowercase()))
    }

    /// Whether `content_type` (parameters such as `; charset=` ignored) is one this rule takes.
    /// A rule without content types takes everything.
    pub fn accepts_content_type(&self, content_type: &str) -> bool {
        if self.content_types.is_empty() {
            return true;
        }
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let major = essence.split('/').next().unwrap_or("");
        self.content_types.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            match pattern.strip_suffix("/*") {
                Some(p_major) => p_major == major,
                None => pattern == essence,
            }
        })
    }

    /// Job options for documents this rule submits.
    pub fn job_options(&self) -> JobOptions {
        JobOptions {
            engine: self.engine,
            profile: self.profile.clone(),
            prompt: None,
            dpi: self.dpi.unwrap_or(folio_ingest::DEFAULT_DPI),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(bucket: &str, key: &str) -> ObjectEvent {
        ObjectEvent::put_for_tests(bucket, key)
    }

    const YAML: &str = "
rules:
  - tenant: acme
    bucket: inbox
    prefix: scans/
    suffixes: [.pdf, .TIF]
    content_types: [application/pdf, 'image/*']
  - tenant: acme
    bucket: inbox
  - tenant: beta
    bucket: inbox
    prefix: scans/beta/
    engine: glm45v
    profile: table
    dpi: 300
";

    fn set() -> RuleSet {
        let set: RuleSet = serde_yaml_ng::from_str(YAML).unwrap();
        set.validate().unwrap();
        set
    }

    #[test]
    fn first_match_per_tenant() {
        let set = set();
        let m = set.matching(&ev("inbox", "scans/beta/x.PDF"));
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].tenant.as_str(), m[0].prefix.as_str()),
            ("acme", "scans/")
        );
        assert_eq!(m[1].tenant, "beta");
        assert_eq!(m[1].job_options().engine, EngineKind::Glm45v);
        assert_eq!(m[1].job_options().dpi, 300);
        // Outside scans/: acme's catch-all rule, not beta's.
        let m = set.matching(&ev("inbox", "other/x.docx"));
        assert_eq!(m.len(), 1);
        assert!(m[0].prefix.is_empty());
        assert!(set.matching(&ev("elsewhere", "scans/x.pdf")).is_empty());
        assert_eq!(set.buckets(), vec!["inbox".to_string()]);
    }

    #[test]
    fn suffixes_and_content_types() {
        let set = set();
        let r = &set.rules[0];
        assert!(r.matches_key("inbox", "scans/a.tif"));
        assert!(!r.matches_key("inbox", "scans/a.txt"));
        assert!(r.accepts_content_type("application/PDF; qs=1"));
        assert!(r.accepts_content_type("image/webp"));
        assert!(!r.accepts_content_type("text/plain"));
        assert!(set.rules[1].accepts_content_type("anything/else"));
    }

    #[test]
    fn validation_and_json_files() {
        let dir = tempfile::tempdir().unwrap();
        let bad = [
            ("rules: []", "no rules"),
            ("rules: [{tenant: 'a/b', bucket: x}]", "tenant"),
            ("rules: [{tenant: a, bucket: ''}]", "bucket"),
            ("rules: [{tenant: a, bucket: b, dpi: 5}]", "dpi"),
            (
                "rules: [{tenant: a, bucket: b, content_types: [pdf]}]",
                "content type",
            ),
            ("rules: [{tenant: a, bucket: b, colour: red}]", "colour"),
        ];
        for (i, (text, needle)) in bad.iter().enumerate() {
            let path = dir.path().join(format!("r{i}.yaml"));
            std::fs::write(&path, text).unwrap();
            let err = RuleSet::load(&path).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        let path = dir.path().join("rules.json");
        std::fs::write(
            &path,
            r#"{"rules":[{"tenant":"acme","bucket":"inbox","suffixes":[".pdf"]}]}"#,
        )
        .unwrap();
        let set = RuleSet::load(&path).unwrap();
        assert_eq!(set.rules[0].engine, EngineKind::Ocr);
        assert!(RuleSet::load(&dir.path().join("missing.yaml")).is_err());
    }
}
