//! Binding and running the API: a TCP listener (port 0 allowed), graceful shutdown on a
//! cancellation token, then a bounded wait for background enqueueing to finish. With
//! [`Server::with_events`], the event webhooks (`/v1/events/*`) are served too.

use crate::events::EventsEndpoint;
use crate::http::config::ConfigError;
use crate::http::state::AppState;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// A bound, not yet running API server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AppState,
    events: Option<EventsEndpoint>,
}

impl Server {
    /// Bind `state`'s `listen` address.
    pub async fn bind(state: AppState) -> Result<Server, ServeError> {
        let addr = state.config().listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(Server {
            listener,
            local_addr,
            state,
            events: None,
        })
    }

    /// The address actually bound (the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve `POST /v1/events/s3` and `POST /v1/events/seaweedfs` with `endpoint` (without it they
    /// answer 404 `events_disabled`).
    pub fn with_events(mut self, endpoint: EventsEndpoint) -> Self {
        self.events = Some(endpoint);
        self
    }

    /// Serve until `shutdown` is cancelled: stop accepting connections, let requests in progress
    /// finish, then give background enqueueing up to `shutdown_grace` to finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServeError> {
        let Server {
            listener,
            local_addr,
            state,
            events,
        } = self;
        tracing::info!(addr = %local_addr, config = ?state.config(), events = ?events, "API listening");
        let mut app = crate::http::app(state.clone());
        if let Some(endpoint) = &events {
            app = app.layer(axum::Extension(endpoint.clone()));
        }
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(ServeError::Serve)?;
        let grace = state.config().shutdown_grace;
        tracing::info!(
            grace_s = grace.as_secs_f64(),
            "listener closed; waiting for background enqueueing"
        );
        let background = async {
            state.wait_background().await;
            if let Some(endpoint) = &events {
                endpoint.wait_background().await;
            }
        };
        if tokio::time::timeout(grace, background).await.is_err() {
            tracing::warn!("background enqueueing did not finish within the grace period; those documents keep their pending pages");
        }
        Ok(())
    }
}

/// Bind, print `folio serve: listening on http://ADDR` on stdout (scripts starting the server
/// with port 0 read it), and serve until `shutdown` is cancelled; with the event webhooks when
/// `events` is given.
pub async fn serve(
    state: AppState,
    events: Option<EventsEndpoint>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let mut server = Server::bind(state).await?;
    if let Some(endpoint) = events {
        server = server.with_events(endpoint);
    }
    println!("folio serve: listening on http://{}", server.local_addr());
    server.run(shutdown).await
}
