//! What the appliance is doing right now, for the dashboard: the broker, each Sparkplug
//! session and each device.
//!
//! The appliance writes it as things happen (a device goes offline, a session is born) and
//! from a once-a-second sampler (broker counters); the web server only reads snapshots. It is
//! small (one entry per session and per device), so a snapshot is a plain clone.

use std::sync::{PoisonError, RwLock};

use serde::Serialize;

/// The latest status of everything, written by the appliance.
#[derive(Debug, Default)]
pub struct StatusBoard(RwLock<Status>);

impl StatusBoard {
    pub fn snapshot(&self) -> Status {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn update(&self, change: impl FnOnce(&mut Status)) {
        change(&mut self.0.write().unwrap_or_else(PoisonError::into_inner));
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Status {
    /// When the appliance started, ms since the Unix epoch.
    pub started_ms: u64,
    pub broker: BrokerStatus,
    pub sessions: Vec<SessionStatus>,
    pub devices: Vec<DeviceStatus>,
    /// The process configuration it runs with, reported once at start; served to admins at
    /// `/api/settings/runtime`, not polled with the rest.
    #[serde(skip)]
    pub runtime: Option<crate::settings::RuntimeSettings>,
}

impl Status {
    /// The session named `name`, added if it is not there yet.
    pub fn session(&mut self, name: &str) -> &mut SessionStatus {
        let i = match self.sessions.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.sessions.push(SessionStatus {
                    name: name.to_owned(),
                    ..SessionStatus::default()
                });
                self.sessions.len() - 1
            }
        };
        &mut self.sessions[i]
    }

    /// The device named `name`, added if it is not there yet.
    pub fn device(&mut self, name: &str) -> &mut DeviceStatus {
        let i = match self.devices.iter().position(|d| d.name == name) {
            Some(i) => i,
            None => {
                self.devices.push(DeviceStatus {
                    name: name.to_owned(),
                    ..DeviceStatus::default()
                });
                self.devices.len() - 1
            }
        };
        &mut self.devices[i]
    }
}

/// The embedded MQTT broker.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BrokerStatus {
    pub listen: String,
    pub connections: usize,
    pub sessions: usize,
    pub retained: usize,
    /// Messages received from clients per second, over the last sampling interval.
    pub messages_in_per_s: f64,
    /// Messages sent to subscribers per second, over the last sampling interval.
    pub messages_out_per_s: f64,
    /// Messages dropped since start because a client's queue was full.
    pub dropped: u64,
}

/// One Sparkplug Edge Node session (one per MQTT server list: embedded, northbound).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SessionStatus {
    pub name: String,
    /// The server it is connected to or trying, `host:port`.
    pub server: String,
    /// `connecting`, `waiting for primary host`, `online`, `offline`.
    pub state: String,
    pub bd_seq: Option<u8>,
    /// The `seq` of the last message published, sampled at most once a second.
    pub seq: Option<u8>,
    pub primary_host_id: Option<String>,
    /// The Primary Host's last STATE, when one is configured and has said anything.
    pub primary_host_online: Option<bool>,
    /// When the last NBIRTH went out, ms since the Unix epoch.
    pub last_birth_ms: Option<u64>,
    /// NBIRTHs since start (a rebirth counts).
    pub births: u64,
    /// Why the last connection ended or failed.
    pub last_error: Option<String>,
}

/// One device (PLC connection).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DeviceStatus {
    pub name: String,
    pub driver: String,
    pub enabled: bool,
    pub online: bool,
    /// Why it is offline (or was, last).
    pub last_error: Option<String>,
    /// When `online` last changed, ms since the Unix epoch.
    pub since_ms: Option<u64>,
    /// Samples received since start.
    pub samples: u64,
    /// When the last sample arrived, ms since the Unix epoch.
    pub last_sample_ms: Option<u64>,
    /// Times it went offline since start.
    pub failures: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_added_once_and_updated_in_place() {
        let board = StatusBoard::default();
        board.update(|s| {
            s.device("plc-1").online = true;
            s.device("plc-2").failures = 1;
            s.device("plc-1").samples = 10;
            s.session("embedded").births = 1;
        });
        let status = board.snapshot();
        assert_eq!(status.devices.len(), 2);
        assert!(status.devices[0].online && status.devices[0].samples == 10);
        assert_eq!(status.devices[1].failures, 1);
        assert_eq!(status.sessions[0].births, 1);
    }
}
