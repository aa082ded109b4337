//! Keeps the embedded broker's logins equal to the MQTT users in `users.db`.
//!
//! The web UI and API hand over the table after each change they make, before they answer
//! ([`web::Auth::on_mqtt_users_changed`]); `sparkedge mqtt-user` runs in another process, so
//! the table is also read every [`POLL`]. Reading a few rows is cheap; the broker is told
//! only when something changed, and then disconnects the clients whose login no longer holds.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use web::UserStore;
use web::mqtt_users::{MqttAccess, MqttCredential};

/// How soon a change made by the CLI reaches the broker.
const POLL: Duration = Duration::from_secs(2);

/// The broker and the table it has.
pub struct Logins {
    broker: Arc<broker::Broker>,
    allow_anonymous: bool,
    current: Mutex<Vec<MqttCredential>>,
}

impl Logins {
    /// `current`: the table the broker started with.
    pub fn new(
        broker: Arc<broker::Broker>,
        allow_anonymous: bool,
        current: Vec<MqttCredential>,
    ) -> Logins {
        Logins {
            broker,
            allow_anonymous,
            current: Mutex::new(current),
        }
    }

    /// Gives the broker `users` if they differ from what it has.
    pub fn apply(&self, users: Vec<MqttCredential>) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if *current != users {
            tracing::info!(
                users = users.len(),
                "MQTT users changed: the broker takes them now"
            );
            self.broker.set_access(access(self.allow_anonymous, &users));
            *current = users;
        }
    }
}

/// The broker's table for these users.
pub fn access(allow_anonymous: bool, users: &[MqttCredential]) -> broker::Access {
    broker::Access {
        allow_anonymous,
        users: users
            .iter()
            .map(|u| broker::MqttUser {
                name: u.name.clone(),
                password_hash: u.password_hash.clone(),
                permission: match u.access {
                    MqttAccess::Subscribe => broker::Permission::Subscribe,
                    MqttAccess::Publish => broker::Permission::PublishSubscribe,
                },
            })
            .collect(),
    }
}

/// Reads the MQTT users off the async thread.
pub async fn load(users: &Arc<UserStore>) -> Result<Vec<MqttCredential>, String> {
    let users = users.clone();
    tokio::task::spawn_blocking(move || users.mqtt_credentials())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Picks up changes made by another process until shutdown.
pub async fn poll(logins: Arc<Logins>, users: Arc<UserStore>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = crate::stopped(&mut shutdown) => return,
        }
        match load(&users).await {
            Ok(now) => logins.apply(now),
            // The broker keeps the last table it had: no one is locked out by a read error.
            Err(e) => tracing::warn!("cannot read the MQTT users: {e}"),
        }
    }
}
