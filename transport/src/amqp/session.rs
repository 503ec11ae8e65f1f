//! The broker connection shared by a queue's publisher and consumers, and its reconnection.
//!
//! One AMQP connection per [`super::AmqpQueue`]; on it one confirm-mode channel for publishing and
//! one channel per consumer. [`Link::try_session`] hands out the live session, or reconnects when
//! the connection died, under the backoff policy of [`super::backoff`]: while a delay runs it
//! fails at once (publishers turn that into `Unavailable`), [`Link::wait_session`] sleeps through
//! it (consumers). Every new connection declares the topology again, so a broker that lost its
//! definitions gets them back.

use super::backoff::reconnect_delay;
use super::config::AmqpConfig;
use super::errors::{amqp_error, timed_out};
use super::wire::{long, open_channel, short};
use crate::{ErrorKind, TransportError};
use folio_schemas::EngineKind;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A live connection with its publishing channel (publisher confirms on).
pub(crate) struct Session {
    pub(crate) connection: Arc<Connection>,
    pub(crate) publish: Channel,
    pub(crate) id: u64,
}

impl Session {
    fn alive(&self) -> bool {
        self.connection.status().connected() && self.publish.status().connected()
    }
}

/// Why no session is available, and when the next attempt may start.
pub(crate) struct NoSession {
    pub(crate) error: TransportError,
    pub(crate) retry_in: Duration,
}

#[derive(Default)]
struct LinkState {
    current: Option<Arc<Session>>,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<(ErrorKind, String)>,
}

/// Owner of the connection; see the module docs.
pub(crate) struct Link {
    pub(crate) config: AmqpConfig,
    state: tokio::sync::Mutex<LinkState>,
    next_id: AtomicU64,
    /// Consumers subscribed right now (for readiness).
    pub(crate) consumers: AtomicUsize,
}

impl Link {
    pub(crate) fn new(config: AmqpConfig) -> Self {
        Link {
            config,
            state: tokio::sync::Mutex::new(LinkState::default()),
            next_id: AtomicU64::new(1),
            consumers: AtomicUsize::new(0),
        }
    }

    /// Whether the current connection is up (without trying to connect).
    pub(crate) fn is_connected(&self) -> bool {
        self.state
            .try_lock()
            .ok()
            .and_then(|s| s.current.as_ref().map(|s| s.alive()))
            .unwrap_or(false)
    }

    /// The live session, or one new connection attempt if the backoff delay has passed.
    pub(crate) async fn try_session(&self) -> Result<Arc<Session>, NoSession> {
        let mut st = self.state.lock().await;
        if let Some(session) = st.current.as_ref().filter(|s| s.alive()) {
            return Ok(session.clone());
        }
        let now = Instant::now();
        if let Some(at) = st.retry_at.filter(|at| *at > now) {
            let (kind, last) = st.last_error.clone().unwrap_or((
                ErrorKind::Unavailable,
                "no connection attempt yet".to_string(),
            ));
            return Err(NoSession {
                error: TransportError::new(
                    kind,
                    format!(
                        "RabbitMQ at {} is unavailable (next reconnect in {} ms; last error: {last})",
                        self.config.redacted_url(),
                        (at - now).as_millis()
                    ),
                ),
                retry_in: at - now,
            });
        }
        // The connection may still be up when only the publishing channel died (a channel error):
        // keep it, so consumers on it keep their deliveries.
        let reuse = st
            .current
            .take()
            .map(|s| s.connection.clone())
            .filter(|c| c.status().connected());
        let reconnecting = st.failures > 0;
        let attempt =
            tokio::time::timeout(self.config.connect_timeout, self.establish(reuse)).await;
        let result = match attempt {
            Ok(result) => result,
            Err(_) => Err(timed_out(
                format!("connecting to {}", self.config.redacted_url()),
                self.config.connect_timeout,
            )),
        };
        match result {
            Ok(session) => {
                if reconnecting {
                    tracing::info!(url = %self.config.redacted_url(), failures = st.failures, "reconnected to RabbitMQ");
                } else {
                    tracing::debug!(url = %self.config.redacted_url(), "connected to RabbitMQ");
                }
                st.failures = 0;
                st.retry_at = None;
                st.last_error = None;
                st.current = Some(session.clone());
                Ok(session)
            }
            Err(error) => {
                st.failures = st.failures.saturating_add(1);
                let delay = reconnect_delay(
                    st.failures,
                    self.config.reconnect_min,
                    self.config.reconnect_max,
                );
                st.retry_at = Some(Instant::now() + delay);
                st.last_error = Some((error.kind, error.message.clone()));
                if st.failures == 1 {
                    tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "RabbitMQ connection failed");
                } else {
                    tracing::debug!(error = %error, failures = st.failures, retry_in_ms = delay.as_millis() as u64, "RabbitMQ still unavailable");
                }
                Err(NoSession {
                    error,
                    retry_in: delay,
                })
            }
        }
    }

    /// Wait (through the backoff delays) until a session is available.
    pub(crate) async fn wait_session(&self) -> Arc<Session> {
        loop {
            match self.try_session().await {
                Ok(session) => return session,
                Err(no) => tokio::time::sleep(no.retry_in).await,
            }
        }
    }

    /// Close the connection (consumers' channels with it).
    pub(crate) async fn close(&self) {
        let current = self.state.lock().await.current.take();
        if let Some(session) = current {
            if session.connection.status().connected() {
                if let Err(e) = session.connection.close(200, "closing".into()).await {
                    tracing::debug!(error = %e, "closing the RabbitMQ connection");
                }
            }
        }
    }

    async fn establish(
        &self,
        reuse: Option<Arc<Connection>>,
    ) -> Result<Arc<Session>, TransportError> {
        let cfg = &self.config;
        let connection = match reuse {
            Some(c) => c,
            None => {
                let props = ConnectionProperties::default()
                    .with_connection_name(cfg.connection_name.as_str().into());
                let uri = cfg.url.parse::<lapin::uri::AMQPUri>().map_err(|e| {
                    TransportError::new(
                        ErrorKind::Invalid,
                        format!("invalid AMQP URL {}: {e}", cfg.redacted_url()),
                    )
                })?;
                let conn = Connection::connect_uri(uri, props)
                    .await
                    .map_err(|e| amqp_error(format!("connecting to {}", cfg.redacted_url()), e))?;
                Arc::new(conn)
            }
        };
        let setup = open_channel(&connection, "a channel", false).await?;
        for engine in &cfg.engines {
            declare_topology(&setup, cfg, *engine).await?;
        }
        if let Err(e) = setup.close(200, "topology declared".into()).await {
            tracing::debug!(error = %e, "closing the setup channel");
        }
        let publish = open_channel(&connection, "the publishing channel", true).await?;
        Ok(Arc::new(Session {
            connection,
            publish,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
        }))
    }
}

/// Declare (idempotently) the exchanges, the engine's quorum queue with its delivery limit and
/// dead-letter exchange, the dead-letter queue, and both bindings (binding key = engine).
///
/// A queue that exists with other arguments (say another `x-delivery-limit`) makes the broker answer
/// `PRECONDITION_FAILED` and close the channel: that is an `Invalid` error naming the queue.
pub(crate) async fn declare_topology(
    channel: &Channel,
    cfg: &AmqpConfig,
    engine: EngineKind,
) -> Result<(), TransportError> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    for exchange in [cfg.exchange(), cfg.dead_exchange()] {
        channel
            .exchange_declare(
                short(&exchange)?,
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp_error(format!("declaring exchange {exchange}"), e))?;
    }
    let queue = cfg.queue(engine);
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long("quorum"));
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(i64::from(cfg.delivery_limit)),
    );
    args.insert("x-dead-letter-exchange".into(), long(&cfg.dead_exchange()));
    let dead = cfg.dead_queue(engine);
    let mut dead_args = FieldTable::default();
    dead_args.insert("x-queue-type".into(), long("quorum"));
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    for (name, exchange, arguments) in [
        (&queue, cfg.exchange(), args),
        (&dead, cfg.dead_exchange(), dead_args),
    ] {
        channel
            .queue_declare(short(name)?, durable_queue, arguments)
            .await
            .map_err(|e| {
                let mut err = amqp_error(format!("declaring queue {name}"), e);
                if err.kind == ErrorKind::Invalid {
                    err.message.push_str(
                        " (does it exist with other arguments, e.g. another x-delivery-limit?)",
                    );
                }
                err
            })?;
        channel
            .queue_bind(
                short(name)?,
                short(&exchange)?,
                short(engine.as_str())?,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp_error(format!("binding {name} to {exchange}"), e))?;
    }
    Ok(())
}
