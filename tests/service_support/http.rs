//! A small HTTP/1.1 client for talking to `folio serve` over a real socket: one request per
//! connection (`Connection: close`), `Content-Length` or chunked bodies, chunked answers decoded.
//! The body is written while the answer is read, so a server that answers early (413) and closes
//! is still heard.

#![allow(dead_code)]

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` (what a file upload usually sends).
    Length,
    /// `Transfer-Encoding: chunked`: the server cannot know the size up front.
    Chunked,
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} answer is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }

    /// `error.code` of a `{ "error": { "code", "message" } }` body, checking that shape.
    pub fn error_code(&self) -> String {
        let v = self.json();
        let code = v["error"]["code"].as_str().unwrap_or_else(|| {
            panic!("HTTP {}: no error.code in {v}", self.status);
        });
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty(),
            "HTTP {}: empty error.message",
            self.status
        );
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "HTTP {}: error without a JSON content type: {:?}",
            self.status,
            self.headers
        );
        code.to_string()
    }
}

/// Send one request to `addr` and read the whole answer (30 s at most).
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    framing: Framing,
) -> std::io::Result<Resp> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (mut reader, mut writer) = stream.into_split();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let mut out = Vec::with_capacity(head.len() + body.len() + 64);
        match framing {
            Framing::Length => {
                head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(body);
            }
            Framing::Chunked => {
                head.push_str("Transfer-Encoding: chunked\r\n\r\n");
                out.extend_from_slice(head.as_bytes());
                for chunk in body.chunks(64 * 1024) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
        }
        // A server that refuses early stops reading: the rest of the body may not go through.
        let write = tokio::spawn(async move {
            let _ = writer.write_all(&out).await;
            let _ = writer.flush().await;
            writer
        });
        let mut raw = Vec::new();
        let read = reader.read_to_end(&mut raw).await;
        let _writer = write.await;
        if let Err(e) = read {
            // A reset after the answer arrived still leaves the answer readable above.
            if raw.is_empty() {
                return Err(e);
            }
        }
        parse(&raw)
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| std::io::Error::other(format!("{method} {path}: no answer within 30 s")))?
}

fn parse(raw: &[u8]) -> std::io::Result<Resp> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of the header"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("header not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest).ok_or_else(|| bad("malformed chunked body"))?
    } else {
        rest.to_vec()
    };
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_and_chunked_answers() {
        let r =
            parse(b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n\r\n{}")
                .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (413, b"{}".as_slice()));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
