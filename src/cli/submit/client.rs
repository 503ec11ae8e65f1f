//! The HTTP client of `folio submit`: the few API calls it makes, each failure mapped to the exit
//! code it ends the command with (the server unreachable or unavailable → 5, the key refused → 2,
//! the file refused → 3, anything else → 1).

use crate::cli::{CliError, Exit};
use bytes::Bytes;
use reqwest::{Response, StatusCode, Url};
use serde::Deserialize;
use std::time::Duration;

/// How often an upload refused with 429 `tenant_busy` or 503 is tried again.
const UPLOAD_ATTEMPTS: u32 = 6;

/// A `folio serve` at `base`, with an optional API key.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    key: Option<String>,
}

/// The 202 answer to an upload.
#[derive(Debug, Deserialize)]
pub struct Uploaded {
    pub document_id: String,
    pub pages: u32,
}

/// What the client reads of `GET /v1/documents/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    /// `processing`, `complete` or `partial`.
    pub status: String,
    pub pages_total: u32,
    pub pages_done: u32,
    pub pages_failed: u32,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

impl ApiClient {
    /// `server` is the API's base URL (`http://host:8080`).
    pub fn new(server: &str, key: Option<String>) -> Result<Self, CliError> {
        let usage = |m: String| CliError::new(Exit::Usage, anyhow::anyhow!(m));
        let mut base =
            Url::parse(server).map_err(|e| usage(format!("--server {server:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(usage(format!(
                "--server {server:?} is not an http:// or https:// URL"
            )));
        }
        // Paths are joined below the base's own path (a server mounted under a prefix).
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .user_agent(concat!("folio-submit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(CliError::internal)?;
        Ok(ApiClient { http, base, key })
    }

    fn url(&self, path: &str) -> Result<Url, CliError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(CliError::internal)
    }

    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, url);
        match &self.key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    /// Upload `bytes` as `file_name` with the upload's query options; busy and overloaded
    /// answers are retried (as `Retry-After` says) a few times.
    pub async fn upload(
        &self,
        bytes: Bytes,
        file_name: &str,
        options: &[(&str, String)],
    ) -> Result<Uploaded, CliError> {
        let url = self.url("v1/documents")?;
        let mut attempt = 1;
        loop {
            let response = self
                .request(reqwest::Method::POST, url.clone())
                .query(&[("filename", file_name)])
                .query(options)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes.clone())
                .send()
                .await
                .map_err(transport_error)?;
            let status = response.status();
            let busy = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE;
            if busy && attempt < UPLOAD_ATTEMPTS {
                let wait = retry_after(&response).unwrap_or(Duration::from_secs(2));
                tracing::info!(%status, attempt, wait_s = wait.as_secs(), "upload refused for now; retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return json(checked(response).await?).await;
        }
    }

    /// `GET /v1/documents/{id}`.
    pub async fn status(&self, id: &str) -> Result<Status, CliError> {
        json(self.get(&format!("v1/documents/{id}")).await?).await
    }

    /// The body of `GET path` (2xx required).
    pub async fn bytes(&self, path: &str) -> Result<Bytes, CliError> {
        let response = self.get(path).await?;
        response.bytes().await.map_err(transport_error)
    }

    /// The body of `GET path`, `None` on 404.
    pub async fn bytes_if_found(&self, path: &str) -> Result<Option<Bytes>, CliError> {
        let url = self.url(path)?;
        let response = self
            .request(reqwest::Method::GET, url)
            .send()
            .await
            .map_err(transport_error)?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = checked(response).await?;
        response.bytes().await.map(Some).map_err(transport_error)
    }

    async fn get(&self, path: &str) -> Result<Response, CliError> {
        let url = self.url(path)?;
        let response = self
            .request(reqwest::Method::GET, url)
            .send()
            .await
            .map_err(transport_error)?;
        checked(response).await
    }
}

/// A JSON answer's body as `T`.
async fn json<T: serde::de::DeserializeOwned>(response: Response) -> Result<T, CliError> {
    let body = response.bytes().await.map_err(transport_error)?;
    serde_json::from_slice(&body)
        .map_err(|e| CliError::internal(anyhow::anyhow!("the server's answer does not parse: {e}")))
}

/// The server could not be reached or the exchange broke off: try again later (5).
fn transport_error(e: reqwest::Error) -> CliError {
    CliError::new(
        Exit::Unavailable,
        anyhow::anyhow!("cannot reach the server: {e}"),
    )
}

fn retry_after(response: &Response) -> Option<Duration> {
    let secs = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(Duration::from_secs(secs.clamp(1, 60)))
}

/// The response when it is a success, else an error with the server's code and message and the
/// exit code that status means.
async fn checked(response: Response) -> Result<Response, CliError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    let detail = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(b) => format!("{} ({})", b.error.message, b.error.code),
        Err(_) => String::from_utf8_lossy(&body)
            .trim()
            .chars()
            .take(200)
            .collect(),
    };
    let code = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Exit::Usage,
        StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::UNPROCESSABLE_ENTITY => Exit::InputRejected,
        StatusCode::BAD_REQUEST => Exit::Usage,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::BAD_GATEWAY
        | StatusCode::GATEWAY_TIMEOUT
        | StatusCode::REQUEST_TIMEOUT => Exit::Unavailable,
        _ => Exit::Internal,
    };
    Err(CliError::new(
        code,
        anyhow::anyhow!("the server answered {status}: {detail}"),
    ))
}
