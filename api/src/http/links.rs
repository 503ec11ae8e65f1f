//! Signed viewer links: `?tenant=T&expires=UNIX&sig=HEX` lets a browser open one document's
//! viewer (and its page images) without an `Authorization` header until `expires`.
//!
//! `sig` is HMAC-SHA256, keyed by the server's view secret, over
//! `folio-view-v1\n{tenant}\n{document_id}\n{expires}`: a link names exactly one document of one
//! tenant and cannot be stretched in time. Verification is constant-time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Shortest accepted view secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Why a link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the viewer link has expired; ask for a new one (GET /v1/documents/{{id}}/view-link)")]
    Expired,
    #[error("the viewer link is not valid for this document")]
    Invalid,
}

/// Signs and checks viewer links. The secret never appears in `Debug` output.
#[derive(Clone)]
pub struct LinkSigner {
    /// The keyed HMAC, cloned for each link.
    keyed: HmacSha256,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(<redacted>)")
    }
}

impl LinkSigner {
    /// A signer keyed by `secret` (at least [`MIN_SECRET_LEN`] bytes), `None` when shorter.
    pub fn new(secret: &[u8]) -> Option<Self> {
        (secret.len() >= MIN_SECRET_LEN).then(|| Self::keyed(secret))
    }

    /// A signer with a random secret: links work on this process only, until it restarts.
    pub fn random() -> Self {
        Self::keyed(&rand::random::<[u8; MIN_SECRET_LEN]>())
    }

    fn keyed(secret: &[u8]) -> Self {
        LinkSigner {
            keyed: HmacSha256::new_from_slice(secret).expect("HMAC takes keys of every length"),
        }
    }

    fn mac(&self, tenant: &str, document_id: &str, expires: u64) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(format!("folio-view-v1\n{tenant}\n{document_id}\n{expires}").as_bytes());
        mac
    }

    /// The signature (lower-case hex) of a link to `document_id` of `tenant` valid until
    /// `expires` (Unix seconds).
    pub fn sign(&self, tenant: &str, document_id: &str, expires: u64) -> String {
        hex::encode(
            self.mac(tenant, document_id, expires)
                .finalize()
                .into_bytes(),
        )
    }

    /// Check `sig` for the link, and that `now` (Unix seconds) is not past `expires`.
    pub fn verify(
        &self,
        tenant: &str,
        document_id: &str,
        expires: u64,
        sig: &str,
        now: u64,
    ) -> Result<(), LinkError> {
        let sig = hex::decode(sig).map_err(|_| LinkError::Invalid)?;
        self.mac(tenant, document_id, expires)
            .verify_slice(&sig)
            .map_err(|_| LinkError::Invalid)?;
        // Checked after the signature, so an expired answer proves the link was once ours.
        if now > expires {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_name_one_document_until_they_expire() {
        let s = LinkSigner::new(&[7u8; 32]).unwrap();
        let sig = s.sign("acme", "doc-1", 1000);
        assert_eq!(s.verify("acme", "doc-1", 1000, &sig, 999), Ok(()));
        assert_eq!(s.verify("acme", "doc-1", 1000, &sig, 1000), Ok(()));
        assert_eq!(
            s.verify("acme", "doc-1", 1000, &sig, 1001),
            Err(LinkError::Expired)
        );
        for (tenant, doc, expires) in [
            ("beta", "doc-1", 1000),
            ("acme", "doc-2", 1000),
            ("acme", "doc-1", 5000),
        ] {
            assert_eq!(
                s.verify(tenant, doc, expires, &sig, 0),
                Err(LinkError::Invalid),
                "{tenant} {doc} {expires}"
            );
        }
        assert_eq!(
            s.verify("acme", "doc-1", 1000, "zz", 0),
            Err(LinkError::Invalid)
        );
        let other = LinkSigner::new(&[8u8; 32]).unwrap();
        assert_eq!(
            other.verify("acme", "doc-1", 1000, &sig, 0),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn short_secrets_are_refused_and_never_shown() {
        assert!(LinkSigner::new(b"short").is_none());
        let s = LinkSigner::new(b"0123456789abcdef0123456789abcdef-secret").unwrap();
        assert!(!format!("{s:?}").contains("0123"));
    }
}
