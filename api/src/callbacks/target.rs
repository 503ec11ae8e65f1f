//! Which URLs a callback may go to. A URL must be `http` or `https`, name a host, carry no
//! credentials, and every address its host resolves to must be public: loopback, private,
//! link-local, carrier-grade NAT, unique-local, multicast, unspecified and documentation
//! addresses are refused unless an allowed network (`FOLIO_CALLBACK_ALLOW`) holds them.
//!
//! Checked when the callback is registered (the upload is refused with 400) and again before
//! every delivery, on the addresses the delivery then connects to — a host that resolves to a
//! public address at upload and to an internal one later (DNS rebinding) is refused then.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use url::Url;

/// Longest callback URL accepted.
pub const MAX_URL_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("callback_url is not a valid URL: {0}")]
    Syntax(String),
    #[error("callback_url must be http or https, not {0:?}")]
    Scheme(String),
    #[error("callback_url must not carry a user name or password")]
    Credentials,
    #[error("callback_url is longer than {MAX_URL_LEN} bytes")]
    TooLong,
    #[error("callback host {host:?} does not resolve: {message}")]
    Unresolved { host: String, message: String },
    #[error("callback host {host:?} resolves to {addr}, a {kind} address, which is not allowed (FOLIO_CALLBACK_ALLOW)")]
    Forbidden {
        host: String,
        addr: IpAddr,
        kind: &'static str,
    },
}

/// A syntactically valid callback URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: Url,
    pub host: String,
    pub port: u16,
    pub https: bool,
}

impl Target {
    /// Check the URL's form (no network).
    pub fn parse(raw: &str) -> Result<Target, TargetError> {
        if raw.len() > MAX_URL_LEN {
            return Err(TargetError::TooLong);
        }
        let url = Url::parse(raw).map_err(|e| TargetError::Syntax(e.to_string()))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(TargetError::Scheme(other.to_string())),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Credentials);
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(TargetError::Syntax("no host".into())),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| TargetError::Syntax("no port".into()))?;
        Ok(Target {
            url,
            host,
            port,
            https,
        })
    }

    /// Resolve the host and check every address; the addresses to connect to.
    pub async fn resolve(&self, allow: &[IpNet]) -> Result<Vec<SocketAddr>, TargetError> {
        let addrs: Vec<SocketAddr> = match self.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, self.port)],
            Err(_) => tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|e| TargetError::Unresolved {
                    host: self.host.clone(),
                    message: e.to_string(),
                })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(TargetError::Unresolved {
                host: self.host.clone(),
                message: "no addresses".into(),
            });
        }
        for addr in &addrs {
            check_addr(addr.ip(), allow).map_err(|kind| TargetError::Forbidden {
                host: self.host.clone(),
                addr: addr.ip(),
                kind,
            })?;
        }
        Ok(addrs)
    }
}

/// `Ok` when `ip` may be called: public, or inside an allowed network. `Err(kind)` otherwise.
pub fn check_addr(ip: IpAddr, allow: &[IpNet]) -> Result<(), &'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if allow.iter().any(|net| net.contains(&ip)) {
        return Ok(());
    }
    match non_public(ip) {
        Some(kind) => Err(kind),
        None => Ok(()),
    }
}

/// What kind of non-public address `ip` is, if it is one.
fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, _, _] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("multicast or reserved")
    } else if a == 100 && (64..128).contains(&b) {
        Some("carrier-grade NAT")
    } else if ip.is_documentation() || (a == 198 && (18..20).contains(&b)) {
        Some("documentation or benchmarking")
    } else {
        None
    }
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast or reserved")
    } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
        Some("link-local")
    } else if first & 0xfe00 == 0xfc00 {
        Some("private")
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("documentation or benchmarking")
    } else {
        None
    }
}

/// Parse `FOLIO_CALLBACK_ALLOW` entries: networks (`127.0.0.0/8`, `fd00::/8`) or single
/// addresses (`127.0.0.1`, `::1`).
pub fn parse_allow(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{e:?} is neither an address nor a network (a.b.c.d/n)"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused() {
        for (addr, kind) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("fd12::1", "private"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
        ] {
            assert_eq!(check_addr(ip(addr), &[]), Err(kind), "{addr}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert_eq!(check_addr(ip(public), &[]), Ok(()), "{public}");
        }
    }

    #[test]
    fn the_allow_list_opens_exactly_its_networks() {
        let allow = parse_allow(&["127.0.0.1".into(), "10.0.0.0/8".into()]).unwrap();
        assert_eq!(check_addr(ip("127.0.0.1"), &allow), Ok(()));
        assert_eq!(check_addr(ip("10.200.0.1"), &allow), Ok(()));
        assert_eq!(check_addr(ip("127.0.0.2"), &allow), Err("loopback"));
        assert!(parse_allow(&["localhost".into()]).is_err());
    }

    #[test]
    fn url_forms() {
        let t = Target::parse("https://hooks.example.com/folio?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.https),
            ("hooks.example.com", 443, true)
        );
        let t = Target::parse("http://[::1]:8080/h").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8080));
        assert!(matches!(
            Target::parse("ftp://x/"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            Target::parse("http://u:p@x/"),
            Err(TargetError::Credentials)
        ));
        assert!(matches!(
            Target::parse("not a url"),
            Err(TargetError::Syntax(_))
        ));
    }

    #[tokio::test]
    async fn resolution_checks_every_address() {
        let t = Target::parse("http://localhost:9/h").unwrap();
        assert!(matches!(
            t.resolve(&[]).await,
            Err(TargetError::Forbidden { .. })
        ));
        let t = Target::parse("http://127.0.0.1:9/h").unwrap();
        let allow = parse_allow(&["127.0.0.1".into()]).unwrap();
        assert_eq!(
            t.resolve(&allow).await.unwrap(),
            vec!["127.0.0.1:9".parse().unwrap()]
        );
    }
}
