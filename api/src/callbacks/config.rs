//! Settings of completion webhooks, validated once: the per-tenant signing secrets, the networks
//! that may be called although they are not public, and the delivery timings. The binary fills
//! it from its flags; nothing here reads the environment. Secrets never appear in `Debug`.

use ipnet::IpNet;
use std::collections::BTreeMap;
use std::time::Duration;

/// Shortest accepted signing secret.
pub const MIN_SECRET_LEN: usize = 16;

#[derive(Clone)]
pub struct CallbackConfig {
    secrets: BTreeMap<String, Vec<u8>>,
    /// Networks a callback may reach although they are not public (`FOLIO_CALLBACK_ALLOW`).
    pub allow: Vec<IpNet>,
    /// One POST, connection included.
    pub timeout: Duration,
    /// Wait after the first failed attempt; doubled after each further one up to `max_retry`.
    pub first_retry: Duration,
    pub max_retry: Duration,
    /// No attempt starts later than this after the document ended.
    pub give_up_after: Duration,
    /// How often the outbox is read.
    pub poll: Duration,
}

impl std::fmt::Debug for CallbackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackConfig")
            .field("tenants", &self.secrets.keys().collect::<Vec<_>>())
            .field("allow", &self.allow)
            .field("timeout", &self.timeout)
            .field("first_retry", &self.first_retry)
            .field("max_retry", &self.max_retry)
            .field("give_up_after", &self.give_up_after)
            .field("poll", &self.poll)
            .finish()
    }
}

impl Default for CallbackConfig {
    fn default() -> Self {
        CallbackConfig {
            secrets: BTreeMap::new(),
            allow: Vec::new(),
            timeout: Duration::from_secs(10),
            first_retry: Duration::from_secs(10),
            max_retry: Duration::from_secs(600),
            give_up_after: Duration::from_secs(3600),
            poll: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackConfigError {
    #[error("a callback secret is not given as `TENANT=SECRET`")]
    BadSpec,
    #[error("tenant name {0:?} must be 1-64 characters of a-z, A-Z, 0-9, '-' or '_'")]
    BadTenant(String),
    #[error("the callback secret of tenant {0:?} must be at least {MIN_SECRET_LEN} characters")]
    ShortSecret(String),
    #[error("tenant {0:?} has two callback secrets")]
    Duplicate(String),
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
}

impl CallbackConfig {
    /// Add a `TENANT=SECRET` pair (`FOLIO_CALLBACK_SECRETS`).
    pub fn insert_spec(&mut self, spec: &str) -> Result<(), CallbackConfigError> {
        let (tenant, secret) = spec.split_once('=').ok_or(CallbackConfigError::BadSpec)?;
        let tenant = tenant.trim();
        if !folio_transport::valid_tenant(tenant) {
            return Err(CallbackConfigError::BadTenant(tenant.into()));
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(CallbackConfigError::ShortSecret(tenant.into()));
        }
        if self
            .secrets
            .insert(tenant.into(), secret.as_bytes().to_vec())
            .is_some()
        {
            return Err(CallbackConfigError::Duplicate(tenant.into()));
        }
        Ok(())
    }

    /// The signing secret of `tenant`; without one, its documents cannot ask for a callback.
    pub fn secret(&self, tenant: &str) -> Option<&[u8]> {
        self.secrets.get(tenant).map(Vec::as_slice)
    }

    pub fn validate(&self) -> Result<(), CallbackConfigError> {
        for (name, d) in [
            ("callback timeout", self.timeout),
            ("callback first retry", self.first_retry),
            ("callback poll interval", self.poll),
        ] {
            if d.is_zero() {
                return Err(CallbackConfigError::Zero(name));
            }
        }
        Ok(())
    }

    /// The wait after failed attempt `attempt` (1-based): `first_retry`, doubled each time, at
    /// most `max_retry`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.first_retry
            .saturating_mul(factor)
            .min(self.max_retry.max(self.first_retry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_per_tenant() {
        let mut c = CallbackConfig::default();
        c.insert_spec("acme=0123456789abcdef").unwrap();
        assert_eq!(c.secret("acme"), Some(&b"0123456789abcdef"[..]));
        assert_eq!(c.secret("beta"), None);
        assert_eq!(
            c.insert_spec("acme=0123456789abcdefg"),
            Err(CallbackConfigError::Duplicate("acme".into()))
        );
        assert!(matches!(
            c.insert_spec("beta=short"),
            Err(CallbackConfigError::ShortSecret(_))
        ));
        assert!(matches!(
            c.insert_spec("a/b=0123456789abcdef"),
            Err(CallbackConfigError::BadTenant(_))
        ));
        let e = c.insert_spec("no-equals-sign-secret").unwrap_err();
        assert!(
            !e.to_string().contains("no-equals-sign"),
            "the spec is not echoed: {e}"
        );
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = CallbackConfig::default();
        let secs: Vec<u64> = (1..=8).map(|a| c.backoff(a).as_secs()).collect();
        assert_eq!(secs, vec![10, 20, 40, 80, 160, 320, 600, 600]);
    }
}
