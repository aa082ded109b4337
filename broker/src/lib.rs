//! The embedded MQTT broker of sparkedge: MQTT 3.1.1 over TCP, Sparkplug Aware.
//!
//! SCADA, MES and ERP clients, and our own Sparkplug and UNS sessions, all connect to it over
//! TCP, so the embedded broker and a plant's broker are used the same way.
//!
//! What it does (MQTT 3.1.1, OASIS standard):
//! - QoS 0 and 1 end to end; QoS 2 publishes are accepted exactly once and subscriptions
//!   asking for QoS 2 are granted QoS 1.
//! - Retained messages; Wills (retained and QoS 1 too) when a connection ends without
//!   DISCONNECT, including a keep-alive timeout and a takeover by the same client id.
//! - Clean and persistent sessions (in memory): a persistent session keeps its subscriptions
//!   and QoS 1 messages while its client is away and resends unacknowledged ones.
//! - Sparkplug Aware (spec §2.19): the latest NBIRTH and DBIRTH of every edge node are kept,
//!   unmodified, as retained messages on `$sparkplug/certificates/spBv1.0/...`. Clients cannot
//!   publish under `$`.
//! - Bounded per client: a client that stops reading loses its own new messages once its
//!   queue is full (counted and logged) and never grows memory without bound or slows others.
//!
//! Why not rumqttd: it refuses every subscription to a `$` topic, so it cannot be Sparkplug
//! Aware, and its commit log kept tens of megabytes alive at our load (BENCHMARKS.md).
//!
//! MQTT 5 clients are refused with return code 1 so they fall back to 3.1.1.

mod connection;
mod router;
pub mod topic;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use router::{Limits, Stats};

/// How the broker listens and what it allows.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Largest packet a client may send, in bytes. A 10,000-metric DBIRTH is well under
    /// 1 MiB; the margin is for big templates.
    pub max_packet_size: usize,
    /// How long a new connection may take to send its CONNECT.
    pub connect_timeout: Duration,
    pub limits: Limits,
}

impl Config {
    pub fn new(listen: SocketAddr) -> Config {
        Config {
            listen,
            max_packet_size: 16 << 20,
            connect_timeout: Duration::from_secs(10),
            limits: Limits::default(),
        }
    }
}

/// A running broker. It serves until the process ends.
#[derive(Debug)]
pub struct Broker {
    local_addr: SocketAddr,
    router: Arc<Mutex<router::Router>>,
}

impl Broker {
    /// Binds the listener and starts serving on the current tokio runtime. The broker
    /// accepts connections as soon as this returns.
    pub async fn start(config: Config) -> std::io::Result<Broker> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let router = Arc::new(Mutex::new(router::Router::new(config.limits.clone())));
        let config = Arc::new(config);
        let shared = router.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        tokio::spawn(connection::serve(
                            stream,
                            peer,
                            shared.clone(),
                            config.clone(),
                        ));
                    }
                    Err(e) => {
                        // Out of file descriptors, typically: wait a little and go on
                        // rather than spinning or giving up on every client.
                        tracing::warn!("MQTT listener cannot accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(Broker { local_addr, router })
    }

    /// The address the broker listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The retained messages whose topics match `filter` (an MQTT topic filter; `$` topics
    /// such as the Sparkplug certificates included), as (topic, payload).
    pub fn retained(&self, filter: &str) -> Vec<(Arc<str>, bytes::Bytes)> {
        self.router
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retained(filter)
    }

    pub fn stats(&self) -> Stats {
        self.router
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stats()
    }
}
