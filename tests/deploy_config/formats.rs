//! Small parsers for values found in deploy files: AMQP URLs, RabbitMQ password hashes, compose
//! durations, listen addresses, URLs and argument lists.

use serde_json::Value as Json;
use sha2::{Digest, Sha256, Sha512};

/// `amqp://user:pass@host:port/vhost` → (user, password, host, vhost), percent-decoded.
pub fn amqp_parts(url: &str) -> (String, String, String, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (auth, hostpath) = rest.rsplit_once('@').unwrap_or(("guest:guest", rest));
    let (user, pass) = auth.split_once(':').unwrap_or((auth, ""));
    let (hostport, path) = hostpath.split_once('/').unwrap_or((hostpath, ""));
    let host = hostport.rsplit_once(':').map_or(hostport, |(h, _)| h);
    let vhost = if path.is_empty() {
        "/".to_string()
    } else {
        decode(path)
    };
    (decode(user), decode(pass), host.to_string(), vhost)
}

/// Percent-decoding (`%2f` → `/`), as AMQP URLs need.
pub fn decode(s: &str) -> String {
    let (bytes, mut out, mut i) = (s.as_bytes(), Vec::new(), 0);
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) if bytes[i] == b'%' => {
                out.push(byte);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 (padding optional); `None` on a character outside the alphabet.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in s.trim_end_matches('=').bytes() {
        acc = (acc << 6) | ABC.iter().position(|&x| x == c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// RabbitMQ's `password_hash`: base64(salt[4] ++ H(salt ++ password)).
pub fn rabbit_password_matches(hash: &str, algorithm: &str, password: &str) -> bool {
    let Some(raw) = base64_decode(hash).filter(|r| r.len() > 4) else {
        return false;
    };
    let (salt, digest) = raw.split_at(4);
    let salted = [salt, password.as_bytes()].concat();
    match algorithm {
        "rabbit_password_hashing_sha512" => Sha512::digest(&salted).as_slice() == digest,
        _ => Sha256::digest(&salted).as_slice() == digest,
    }
}

/// Compose durations: `90s`, `3m`, `1m30s`, `500ms`.
pub fn seconds(d: &str) -> f64 {
    let (mut total, mut num) = (0.0, String::new());
    let mut chars = d.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = std::mem::take(&mut num)
            .parse()
            .unwrap_or_else(|_| panic!("duration {d}"));
        let unit = match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => panic!("duration {d}: unknown unit {c}"),
        };
        total += n * unit;
    }
    assert!(num.is_empty(), "duration {d} lacks a unit");
    total
}

/// The port of a listen address: `0.0.0.0:8080`, `[::]:8080`.
pub fn port_of(listen: &str) -> u64 {
    let port = listen.rsplit_once(':').map_or(listen, |(_, p)| p);
    port.parse()
        .unwrap_or_else(|_| panic!("no port in listen address {listen}"))
}

/// `host` of `scheme://host:port/path`.
pub fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or_default();
    hostport
        .rsplit_once(':')
        .map_or(hostport, |(h, _)| h)
        .to_string()
}

/// The value after `flag` in an argument list.
pub fn flag_value(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The first element of a JSON array that satisfies `pred`.
pub fn find(list: &Json, pred: impl Fn(&Json) -> bool) -> Option<&Json> {
    list.as_array().and_then(|a| a.iter().find(|x| pred(x)))
}
