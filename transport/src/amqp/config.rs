//! Configuration of the RabbitMQ queue and the names of its topology.
//!
//! Every exchange and queue name starts with `topology_prefix` (default `folio`), so that tests (or
//! two deployments sharing a vhost) can run side by side without touching each other's queues:
//!
//! | what | name |
//! | --- | --- |
//! | direct exchange for page jobs | `{prefix}.pages` |
//! | quorum queue of an engine (binding key = engine) | `{prefix}.pages.{engine}` |
//! | dead-letter exchange (direct) | `{prefix}.dead` |
//! | dead-letter queue of an engine (binding key = engine) | `{prefix}.pages.{engine}.dead` |

use crate::{ErrorKind, TransportError};
use folio_schemas::EngineKind;
use std::time::Duration;

/// Settings of [`super::AmqpQueue`]. `Debug` hides the password inside `url`.
#[derive(Clone, custom_debug::Debug)]
pub struct AmqpConfig {
    /// `amqp://user:password@host:port/vhost` (vhost `/` is `%2f`); `amqps://` for TLS.
    #[debug(with = debug_url)]
    pub url: String,
    /// The queues' `x-delivery-limit`: a message returned (requeued, or unacked when its consumer
    /// died) more than this many times is dead-lettered. Must match an existing queue's argument:
    /// RabbitMQ refuses to redeclare a queue with different arguments.
    pub delivery_limit: u32,
    /// First segment of every exchange and queue name (see the module docs).
    pub topology_prefix: String,
    /// Engines whose queues are declared on every (re)connection.
    pub engines: Vec<EngineKind>,
    /// Upper bound on one connection attempt (TCP + AMQP handshake + topology).
    pub connect_timeout: Duration,
    /// How long a publish may wait for the broker's confirm before it fails as `Unavailable`.
    pub publish_timeout: Duration,
    /// First delay between reconnection attempts (see [`super::backoff`]).
    pub reconnect_min: Duration,
    /// Longest delay between reconnection attempts.
    pub reconnect_max: Duration,
    /// Shown in the broker's connection list.
    pub connection_name: String,
}

impl AmqpConfig {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        AmqpConfig {
            url: url.into(),
            delivery_limit: 5,
            topology_prefix: "folio".into(),
            engines: vec![EngineKind::Ocr, EngineKind::Glm45v],
            connect_timeout: Duration::from_secs(5),
            publish_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(5),
            connection_name: "folio".into(),
        }
    }

    /// Check what the broker would reject late or confusingly (name lengths, limits).
    pub fn validate(&self) -> Result<(), TransportError> {
        let invalid = |m: String| Err(TransportError::new(ErrorKind::Invalid, m));
        check_connection(&self.url, self.reconnect_min, self.reconnect_max)?;
        if self.delivery_limit == 0 {
            return invalid("delivery_limit must be at least 1".into());
        }
        let prefix_ok = !self.topology_prefix.is_empty()
            && self.topology_prefix.len() <= 200
            && self
                .topology_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !prefix_ok {
            return invalid(format!(
                "topology_prefix `{}` must be 1-200 characters of [A-Za-z0-9._-]",
                self.topology_prefix
            ));
        }
        Ok(())
    }

    /// `{prefix}.pages`
    pub fn exchange(&self) -> String {
        format!("{}.pages", self.topology_prefix)
    }

    /// `{prefix}.dead`
    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.topology_prefix)
    }

    /// `{prefix}.pages.{engine}`
    pub fn queue(&self, engine: EngineKind) -> String {
        format!("{}.pages.{}", self.topology_prefix, engine.as_str())
    }

    /// `{prefix}.pages.{engine}.dead`
    pub fn dead_queue(&self, engine: EngineKind) -> String {
        format!("{}.pages.{}.dead", self.topology_prefix, engine.as_str())
    }

    /// The URL with its password replaced by `***`, for logs and errors.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

/// `Debug` of an AMQP URL: redacted by [`redact_url`].
pub(crate) fn debug_url<S: AsRef<str>>(
    url: &S,
    f: &mut std::fmt::Formatter<'_>,
) -> std::fmt::Result {
    std::fmt::Debug::fmt(&redact_url(url.as_ref()), f)
}

/// The checks every AMQP connection's settings share: an `amqp://` or `amqps://` URL, and
/// reconnection delays with `0 < min <= max`.
pub(crate) fn check_connection(
    url: &str,
    reconnect_min: Duration,
    reconnect_max: Duration,
) -> Result<(), TransportError> {
    if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
        return Err(TransportError::new(
            ErrorKind::Invalid,
            format!(
                "AMQP URL must start with amqp:// or amqps://: {}",
                redact_url(url)
            ),
        ));
    }
    if reconnect_min.is_zero() || reconnect_max < reconnect_min {
        return Err(TransportError::new(
            ErrorKind::Invalid,
            "reconnect delays must satisfy 0 < reconnect_min <= reconnect_max",
        ));
    }
    Ok(())
}

/// Replace the password of `scheme://user:password@host/...` with `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_string();
    };
    format!(
        "{}{}:***{}",
        &url[..scheme_end + 3],
        &userinfo[..colon],
        &rest[at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_password() {
        let cfg = AmqpConfig::new("amqp://folio:s3cr%40t@broker:5672/%2f");
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(
            shown.contains("amqp://folio:***@broker:5672/%2f"),
            "{shown}"
        );
    }

    #[test]
    fn redaction_leaves_urls_without_password_alone() {
        for url in [
            "amqp://broker:5672/%2f",
            "amqp://user@broker/%2f",
            "not a url",
        ] {
            assert_eq!(redact_url(url), url);
        }
        assert_eq!(
            redact_url("amqps://u:p:q@h?x=@y"),
            "amqps://u:***@h?x=@y".to_string()
        );
    }

    #[test]
    fn names_follow_the_prefix() {
        let mut cfg = AmqpConfig::new("amqp://h");
        cfg.topology_prefix = "t1".into();
        assert_eq!(cfg.exchange(), "t1.pages");
        assert_eq!(cfg.dead_exchange(), "t1.dead");
        assert_eq!(cfg.queue(EngineKind::Ocr), "t1.pages.ocr");
        assert_eq!(cfg.dead_queue(EngineKind::Glm45v), "t1.pages.glm45v.dead");
    }

    #[test]
    fn validate_rejects_bad_settings() {
        assert!(AmqpConfig::new("amqp://h").validate().is_ok());
        assert!(AmqpConfig::new("http://h").validate().is_err());
        let mut cfg = AmqpConfig::new("amqp://h");
        cfg.topology_prefix = "bad prefix".into();
        assert!(cfg.validate().is_err());
        let mut cfg = AmqpConfig::new("amqp://h");
        cfg.delivery_limit = 0;
        assert!(cfg.validate().is_err());
    }
}
