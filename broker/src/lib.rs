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
//! - Authentication: MQTT users with argon2 password hashes (made with [`hash_password`]),
//!   each read-only ([`Permission::Subscribe`]) or allowed to publish too; anonymous clients
//!   allowed or not. [`Broker::set_access`] changes it all at run time and closes the
//!   connections whose login no longer holds. The appliance's own clients always get in with
//!   [`Broker::internal_login`]. Refusals use CONNACK return code 5 (no user name while
//!   anonymous clients are not allowed) and 4 (unknown user, wrong password, a password
//!   without a user name); 3 if the hash check, done one at a time, did not finish within
//!   the connect timeout.
//!
//! Why not rumqttd: it refuses every subscription to a `$` topic, so it cannot be Sparkplug
//! Aware, and its commit log kept tens of megabytes alive at our load (BENCHMARKS.md).
//!
//! MQTT 5 clients are refused with return code 1 so they fall back to 3.1.1.

mod access;
mod connection;
mod router;
pub mod topic;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use access::{Access, INTERNAL_USER, MqttUser, Permission, hash_password};
pub use router::{Limits, Stats};

/// How the broker listens and what it allows.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Largest packet a client may send, in bytes. A 10,000-metric DBIRTH is well under
    /// 1 MiB; the margin is for big templates.
    pub max_packet_size: usize,
    /// Largest CONNECT, in bytes: it comes before the login is checked, so a stranger may
    /// not make the broker hold more than this per connection. A Sparkplug NDEATH Will is
    /// tens of bytes.
    pub max_connect_size: usize,
    /// How long a new connection may take to send its CONNECT and have its login checked.
    pub connect_timeout: Duration,
    pub limits: Limits,
    /// Who may connect at start; [`Broker::set_access`] replaces it.
    pub access: Access,
}

impl Config {
    pub fn new(listen: SocketAddr) -> Config {
        Config {
            listen,
            max_packet_size: 16 << 20,
            max_connect_size: 64 << 10,
            connect_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            // Open, as the broker was before it knew users: tests and `sparkedge demo`
            // connect without credentials.
            access: Access {
                allow_anonymous: true,
                users: Vec::new(),
            },
        }
    }
}

/// A running broker. It serves until the process ends.
#[derive(Debug)]
pub struct Broker {
    local_addr: SocketAddr,
    router: Arc<Mutex<router::Router>>,
    gate: Arc<access::Gate>,
}

impl Broker {
    /// Binds the listener and starts serving on the current tokio runtime. The broker
    /// accepts connections as soon as this returns.
    pub async fn start(mut config: Config) -> std::io::Result<Broker> {
        let gate = Arc::new(access::Gate::new()?);
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        // Taken out of the config the connections share: the router's table is the one in
        // force, and a copy left here would go stale at the first `set_access`.
        let access = std::mem::replace(
            &mut config.access,
            Access {
                allow_anonymous: false,
                users: Vec::new(),
            },
        );
        let table = Arc::new(access::Table::new(access));
        let router = Arc::new(Mutex::new(router::Router::new(
            config.limits.clone(),
            table,
        )));
        let config = Arc::new(config);
        let shared = router.clone();
        let shared_gate = gate.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        tokio::spawn(connection::serve(
                            stream,
                            peer,
                            shared.clone(),
                            shared_gate.clone(),
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
        Ok(Broker {
            local_addr,
            router,
            gate,
        })
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

    /// Replaces who may connect. New connections are checked against `access` at once.
    /// Connected clients keep their connection only if `access` would admit them with the
    /// same login: a client whose user was removed, whose password hash or permission
    /// changed, or that is anonymous while anonymous clients are no longer allowed, is
    /// disconnected, and its Will is published as for any connection that ends without
    /// DISCONNECT. A changed permission takes effect when the client reconnects under it.
    ///
    /// Unusable users (a reserved or empty name, a hash that is not argon2 or needs more
    /// than 19 MiB to check) are left out with a warning; the rest applies.
    pub fn set_access(&self, access: Access) {
        let table = Arc::new(access::Table::new(access));
        self.router
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_access(table);
    }

    /// The login of the appliance's own clients, as (user name, password). It gets in with
    /// publish and subscribe rights whatever the access settings say. The password is drawn
    /// from the OS at start and is never stored: it changes with every start.
    pub fn internal_login(&self) -> (String, String) {
        (
            INTERNAL_USER.to_owned(),
            self.gate.internal_password().to_owned(),
        )
    }

    pub fn stats(&self) -> Stats {
        self.router
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stats()
    }
}
