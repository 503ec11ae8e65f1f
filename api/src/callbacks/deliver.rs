//! One POST of a callback, to addresses already checked ([`super::target`]): the connection goes
//! to exactly those addresses (never to a second resolution of the host name), over TLS with the
//! system's roots for `https`. The receiver's body is not read.

use super::target::Target;
use axum::http;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// POST `body` to `target` through the first of `addrs` that accepts a connection; the HTTP
/// status, or why there is none. The whole exchange is bounded by `timeout`.
pub async fn post(
    target: &Target,
    addrs: &[SocketAddr],
    headers: &[(&str, String)],
    body: Bytes,
    timeout: Duration,
) -> Result<u16, String> {
    match tokio::time::timeout(timeout, exchange(target, addrs, headers, body)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs_f64())),
    }
}

async fn exchange(
    target: &Target,
    addrs: &[SocketAddr],
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<u16, String> {
    let mut last = String::from("no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("connecting to {addr}: {e}"),
        }
    }
    let stream = stream.ok_or(last)?;
    let request = request(target, headers, body)?;
    if target.https {
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| format!("TLS server name {:?}: {e}", target.host))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        send(tls, request).await
    } else {
        send(stream, request).await
    }
}

fn request(
    target: &Target,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<http::Request<Full<Bytes>>, String> {
    let path = match target.url.query() {
        Some(q) => format!("{}?{q}", target.url.path()),
        None => target.url.path().to_string(),
    };
    let host = match target.url.port() {
        Some(p) => format!("{}:{p}", target.url.host_str().unwrap_or_default()),
        None => target.url.host_str().unwrap_or_default().to_string(),
    };
    let mut builder = http::Request::post(path)
        .header(http::header::HOST, host)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("folio/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    builder
        .body(Full::new(body))
        .map_err(|e| format!("building the request: {e}"))
}

async fn send<I>(io: I, request: http::Request<Full<Bytes>>) -> Result<u16, String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let driver = tokio::spawn(connection);
    let answer = sender.send_request(request).await;
    driver.abort();
    answer
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("HTTP: {e}"))
}

/// rustls with the ring provider and the system's root certificates, built once.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err("no system root certificates for https callbacks".into());
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| format!("TLS configuration: {e}"))
        })
        .clone()
}
