//! `GET /`: the dashboard — the embedded broker, each Sparkplug session and each device, as
//! the appliance last reported them on the [`StatusBoard`](crate::StatusBoard).
//!
//! The page is rendered here from a snapshot, so it is complete without JavaScript; its
//! script (`/static/dashboard.js`) then re-reads `/api/status` every few seconds and redraws
//! the same markup in place. Whatever needs attention (a device offline, a session not
//! online, dropped messages, a last error) is marked on the row itself, and errors are shown
//! in full: an OT engineer should never have to open a log to learn why a PLC is offline.

use axum::extract::State;

use crate::status::{DeviceStatus, SessionStatus, Status};
use crate::{AppState, CurrentUser};

#[derive(askama::Template, askama_web::WebTemplate)]
#[template(path = "dashboard.html")]
pub(crate) struct DashboardPage {
    user: Option<CurrentUser>,
    status: Status,
    /// The time the page was rendered at, for "… ago".
    now_ms: u64,
}

pub(crate) async fn page(State(state): State<AppState>, user: CurrentUser) -> DashboardPage {
    DashboardPage {
        user: Some(user),
        status: state.status.snapshot(),
        now_ms: now_ms(),
    }
}

impl DashboardPage {
    // Askama hands fields over by reference.
    fn time(&self, ms: &Option<u64>) -> String {
        ms.map_or_else(|| "—".to_owned(), iso_time)
    }

    fn ago(&self, ms: &Option<u64>) -> String {
        ms.map(|ms| age(self.now_ms, ms)).unwrap_or_default()
    }

    fn now_text(&self) -> String {
        iso_time(self.now_ms)
    }

    /// When the appliance started and how long ago; empty before it said.
    fn started(&self) -> Option<(String, String)> {
        let ms = self.status.started_ms;
        (ms > 0).then(|| (iso_time(ms), age(self.now_ms, ms)))
    }

    fn rate(&self, per_s: &f64) -> String {
        format!("{per_s:.1}/s")
    }

    /// Enabled devices that are online, and enabled devices: a disabled device is not a fault.
    fn devices_online(&self) -> (usize, usize) {
        let enabled = self.status.devices.iter().filter(|d| d.enabled);
        let (online, all) = enabled.fold((0, 0), |(o, a), d| (o + usize::from(d.online), a + 1));
        (online, all)
    }

    fn sessions_online(&self) -> usize {
        self.status
            .sessions
            .iter()
            .filter(|s| session_class(s) == "good")
            .count()
    }

    fn device_class(&self, device: &DeviceStatus) -> &'static str {
        device_class(device)
    }

    fn session_class(&self, session: &SessionStatus) -> &'static str {
        session_class(session)
    }
}

/// `good` (online), `bad` (offline) or `warn` (connecting, waiting for the Primary Host):
/// the badge class `q-…` and the row class `row-…` (the script maps the same way).
fn session_class(session: &SessionStatus) -> &'static str {
    match session.state.as_str() {
        "online" => "good",
        "offline" | "" => "bad",
        _ => "warn",
    }
}

fn device_class(device: &DeviceStatus) -> &'static str {
    match (device.enabled, device.online) {
        (false, _) => "off",
        (true, true) => "good",
        (true, false) => "bad",
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `2026-11-22 07:20:31Z`: UTC to the second, as the pages' scripts write it too. Plant
/// historians and SCADA logs are compared in UTC; the `Z` says so.
pub(crate) fn iso_time(ms: u64) -> String {
    match uns_model::Value::DateTime(ms).to_json() {
        serde_json::Value::String(iso) => match iso.split_once('.') {
            // `2026-11-22T07:20:31.123Z`
            Some((seconds, _)) => format!("{}Z", seconds.replacen('T', " ", 1)),
            None => iso.replacen('T', " ", 1),
        },
        // Out of the calendar's range: the number is still the truth.
        other => other.to_string(),
    }
}

/// `4 s ago`, `3 min ago`, `2 h ago`, `5 d ago`; `in the future` for a clock ahead of ours.
pub(crate) fn age(now_ms: u64, ms: u64) -> String {
    let Some(seconds) = now_ms.checked_sub(ms).map(|d| d / 1000) else {
        return "in the future".to_owned();
    };
    match seconds {
        0..60 => format!("{seconds} s ago"),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..86_400 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_to_the_second_and_ages_round_down() {
        assert_eq!(iso_time(1_772_346_600_123), "2026-03-01 06:30:00Z");
        assert_eq!(iso_time(0), "1970-01-01 00:00:00Z");
        assert_eq!(age(10_000, 5_500), "4 s ago");
        assert_eq!(age(200_000, 0), "3 min ago");
        assert_eq!(age(7_200_000, 0), "2 h ago");
        assert_eq!(age(3 * 86_400_000, 0), "3 d ago");
        assert_eq!(age(0, 1), "in the future");
    }

    #[test]
    fn a_disabled_device_is_not_counted_as_offline() {
        let device = |enabled, online| DeviceStatus {
            enabled,
            online,
            ..DeviceStatus::default()
        };
        let page = DashboardPage {
            user: None,
            status: Status {
                devices: vec![
                    device(true, true),
                    device(true, false),
                    device(false, false),
                ],
                ..Status::default()
            },
            now_ms: 0,
        };
        assert_eq!(page.devices_online(), (1, 2));
        assert_eq!(device_class(&page.status.devices[2]), "off");
    }
}
