//! Feeds the web dashboard's status board with what only the appliance sees.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use web::{NorthboundSettings, RuntimeSettings, StatusBoard};

/// The process configuration for the settings page: what the file (or the demo's command
/// line) set, without passwords.
pub fn runtime_settings(settings: &crate::Settings) -> RuntimeSettings {
    RuntimeSettings {
        source: settings.source.clone(),
        data_dir: settings.data_dir.display().to_string(),
        mqtt_listen: settings.mqtt_listen.to_string(),
        mqtt_allow_anonymous: settings.allow_anonymous,
        web_listen: settings.web_listen.to_string(),
        uns_enabled: settings.uns,
        primary_host_id: settings.primary_host_id.clone(),
        northbound: settings
            .northbound
            .iter()
            .map(|nb| NorthboundSettings {
                name: nb.name.clone(),
                servers: nb.servers.clone(),
                client_id: nb.client_id.clone(),
                username: nb.username.clone(),
                password_set: nb.password.is_some(),
                ca_file: nb.ca_file.as_ref().map(|f| f.display().to_string()),
                primary_host_id: nb.primary_host_id.clone(),
            })
            .collect(),
    }
}

/// Samples the broker's counters once a second into `board`, as rates, until shutdown.
pub async fn sample_broker(
    broker: Arc<broker::Broker>,
    listen: String,
    board: Arc<StatusBoard>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last = (Instant::now(), broker.stats());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let now = (Instant::now(), broker.stats());
        let seconds = now.0.duration_since(last.0).as_secs_f64().max(1e-3);
        let rate = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / seconds;
        board.update(|s| {
            let b = &mut s.broker;
            b.listen.clone_from(&listen);
            b.connections = now.1.connections;
            b.sessions = now.1.sessions;
            b.retained = now.1.retained;
            b.dropped = now.1.dropped;
            b.messages_in_per_s = rate(last.1.received, now.1.received);
            b.messages_out_per_s = rate(last.1.delivered, now.1.delivered);
        });
        last = now;
    }
}
