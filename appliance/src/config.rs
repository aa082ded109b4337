//! The process configuration of `sparkedge run`: where the appliance listens, where its data
//! lives, and the northbound MQTT servers its Sparkplug sessions also connect to. The model
//! (namespace, devices, tags) is not here: it lives in the store and is edited by import or UI.
//!
//! ```toml
//! data_dir = "/var/lib/sparkedge"
//! [mqtt]
//! listen = "0.0.0.0:1883"
//! allow_anonymous = false            # default: clients log in as MQTT users (web UI, CLI)
//! [web]
//! listen = "0.0.0.0:8080"
//! [sparkplug]
//! primary_host_id = "scada"          # optional, for the session on the embedded broker
//! [uns]
//! enabled = true                     # publish the UNS JSON tree (default)
//! [[northbound]]
//! name = "plant"
//! servers = ["mqtt://10.0.0.5:1883", "mqtts://10.0.0.6:8883"]   # walked in order on failure
//! username = "edge"
//! password = "secret"
//! ca_file = "/etc/sparkedge/plant-ca.pem"                      # needed for mqtts://
//! primary_host_id = "scada"
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub web: Listen<8080>,
    #[serde(default)]
    pub sparkplug: SparkplugConfig,
    #[serde(default)]
    pub uns: UnsConfig,
    #[serde(default)]
    pub northbound: Vec<Northbound>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/sparkedge")
}

/// The configuration file of `sparkedge run`, as the Debian package installs it.
pub const INSTALLED: &str = "/etc/sparkedge/sparkedge.toml";

/// The help of `--data-dir` for the commands that work on the data of a running appliance.
pub const DATA_DIR_HELP: &str = "The data directory [default: where \
    /etc/sparkedge/sparkedge.toml exists (an installed service), its data_dir, \
    /var/lib/sparkedge unless changed; else ./sparkedge-data]";

/// The data directory those commands use without `--data-dir`: on an installed box the
/// service's, so that `sudo -u sparkedge sparkedge mqtt-user add scada` changes what the
/// service serves; elsewhere (a checkout, a laptop) the one `sparkedge demo` makes. A user
/// who may not read the file (it is root:sparkedge 0640) gets the packaged data directory,
/// which then refuses them with the way to do it, rather than a folder of their own that the
/// service never reads.
pub fn cli_data_dir() -> PathBuf {
    let installed = std::path::Path::new(INSTALLED);
    if !installed.exists() {
        return PathBuf::from("sparkedge-data");
    }
    AppConfig::load(installed)
        .map(|c| c.data_dir)
        .unwrap_or_else(|_| default_data_dir())
}

/// A listening address, by default all interfaces on port `PORT`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen<const PORT: u16> {
    pub listen: SocketAddr,
}

impl<const PORT: u16> Default for Listen<PORT> {
    fn default() -> Self {
        Listen {
            listen: SocketAddr::from(([0, 0, 0, 0], PORT)),
        }
    }
}

/// The embedded broker.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    #[serde(default = "default_mqtt_listen")]
    pub listen: SocketAddr,
    /// Let clients in without a user name. Off by default for a service: SCADA and MES log
    /// in as MQTT users, which the web UI (settings) and `sparkedge mqtt-user` manage.
    #[serde(default)]
    pub allow_anonymous: bool,
}

fn default_mqtt_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 1883))
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            listen: default_mqtt_listen(),
            allow_anonymous: false,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparkplugConfig {
    pub primary_host_id: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsConfig {
    /// Publish the UNS JSON tree on the embedded broker (default true). A node with far more
    /// tags than its consumers need as JSON may publish Sparkplug only.
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for UnsConfig {
    fn default() -> Self {
        UnsConfig { enabled: true }
    }
}

fn yes() -> bool {
    true
}

/// A plant MQTT broker (or cluster) that gets its own Sparkplug session.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Northbound {
    pub name: String,
    /// `mqtt://host[:port]` or `mqtts://host[:port]`, tried in order (spec §2.5 multi-server).
    pub servers: Vec<String>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM file of the CA that signed the servers' certificates (for `mqtts://`).
    pub ca_file: Option<PathBuf>,
    pub primary_host_id: Option<String>,
}

pub use uns_model::{ServerAddr, parse_server};

impl AppConfig {
    /// Reads and checks a configuration file; the error lists every bad field.
    pub fn load(path: &std::path::Path) -> Result<AppConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let config: AppConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let errors = config.problems();
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(format!(
                "{} is not valid:\n{}",
                path.display(),
                errors.join("\n")
            ))
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let mut names = std::collections::HashSet::new();
        let id_ok = |s: &str| sparkplug::topic::validate_id(s).is_ok();
        if let Some(h) = &self.sparkplug.primary_host_id
            && !id_ok(h)
        {
            errors.push(format!("sparkplug.primary_host_id = {h:?}: must be a Sparkplug id (non-empty, no '+', '#' or '/')"));
        }
        for (i, nb) in self.northbound.iter().enumerate() {
            let field = |f: &str| format!("northbound[{i}].{f}");
            let name_ok = !nb.name.is_empty()
                && nb.name.len() <= 64
                && nb
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !name_ok {
                errors.push(format!(
                    "{} = {:?}: must be 1 to 64 ASCII letters, digits, '_' or '-'",
                    field("name"),
                    nb.name
                ));
            } else if !names.insert(nb.name.to_ascii_lowercase()) {
                errors.push(format!(
                    "{} = {:?}: another northbound connection has this name",
                    field("name"),
                    nb.name
                ));
            }
            if nb.servers.is_empty() {
                errors.push(format!(
                    "{} = []: list at least one mqtt:// or mqtts:// server",
                    field("servers")
                ));
            }
            for (j, url) in nb.servers.iter().enumerate() {
                match parse_server(url) {
                    Ok(addr) if addr.tls && nb.ca_file.is_none() => errors.push(format!(
                        "{} = {url:?}: mqtts:// needs {} (the PEM file of the servers' CA)",
                        field(&format!("servers[{j}]")),
                        field("ca_file")
                    )),
                    Ok(_) => {}
                    Err(why) => errors.push(format!(
                        "{} = {url:?}: {why}",
                        field(&format!("servers[{j}]"))
                    )),
                }
            }
            if nb.password.is_some() && nb.username.is_none() {
                errors.push(format!(
                    "{}: a password needs a username",
                    field("password")
                ));
            }
            if let Some(h) = &nb.primary_host_id
                && !id_ok(h)
            {
                errors.push(format!(
                    "{} = {h:?}: must be a Sparkplug id (non-empty, no '+', '#' or '/')",
                    field("primary_host_id")
                ));
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_named() {
        let config: AppConfig = toml::from_str(
            r#"
            [[northbound]]
            name = "plant a"
            servers = ["mqtts://x", "http://y"]
            password = "p"
            [[northbound]]
            name = "b"
            servers = []
            "#,
        )
        .unwrap();
        let errors = config.problems().join("\n");
        for field in [
            "northbound[0].name",
            "northbound[0].servers[0]",
            "northbound[0].servers[1]",
            "northbound[0].password",
            "northbound[1].servers",
        ] {
            assert!(errors.contains(field), "{field} missing in:\n{errors}");
        }
    }

    #[test]
    fn defaults_listen_on_all_interfaces() {
        let config: AppConfig = toml::from_str("").unwrap();
        assert_eq!(config.mqtt.listen.to_string(), "0.0.0.0:1883");
        assert!(
            !config.mqtt.allow_anonymous,
            "a service wants MQTT logins by default"
        );
        assert_eq!(config.web.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/sparkedge"));
        assert!(toml::from_str::<AppConfig>("colour = 1").is_err());
    }
}
