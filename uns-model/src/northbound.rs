//! Northbound connections: plant MQTT brokers (or clusters) that each get their own Sparkplug
//! session with the same births as the embedded broker's, and the `mqtt://` / `mqtts://`
//! server addresses they list.
//!
//! They are part of the model, so the web UI edits them, a change applies while running,
//! and an export carries them to a replacement box. A configuration file that lists its own
//! `[[northbound]]` connections takes their place (see the appliance).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A plant MQTT broker (or cluster) with its own Sparkplug session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Northbound {
    /// 1 to 64 ASCII letters, digits, '_' or '-'; names the session (its bdSeq counter too).
    pub name: String,
    /// `mqtt://host[:port]` or `mqtts://host[:port]`, tried in this order (spec §2.5: the
    /// session walks to the next one when a server fails or the Primary Host is not there).
    pub servers: Vec<String>,
    /// The MQTT client id; by default `sparkedge-<edge node id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// PEM of the CA certificate(s) that signed the servers' certificates; needed for
    /// `mqtts://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// The SCADA host whose STATE on these servers gates this session's births.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_host_id: Option<String>,
    /// A disabled connection keeps its settings and has no session.
    #[serde(default = "enabled", skip_serializing_if = "is_enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

fn is_enabled(enabled: &bool) -> bool {
    *enabled
}

/// One MQTT server of a connection's list.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerAddr {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Parses `mqtt://host[:port]` / `mqtts://host[:port]` (IPv6 hosts in brackets).
pub fn parse_server(url: &str) -> Result<ServerAddr, String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("mqtt://") {
        (false, rest)
    } else {
        return Err("must start with mqtt:// or mqtts://".into());
    };
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or("an IPv6 host needs its closing ']'")?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("unexpected {after:?} after the host")),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() || host.contains('/') {
        return Err("needs a host name or address, and no path".into());
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("port {p:?} is not a number from 1 to 65535"))?,
        None => default_port,
    };
    Ok(ServerAddr {
        tls,
        host: host.to_owned(),
        port,
    })
}

/// Every rule a connection breaks, as (field under `prefix`, value, reason).
pub(crate) fn problems(nb: &Northbound) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut push = |field: &str, value: &str, reason: String| {
        out.push((field.to_owned(), value.to_owned(), reason));
    };
    let name_ok = (1..=64).contains(&nb.name.len())
        && nb
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !name_ok {
        push(
            "name",
            &nb.name,
            "must be 1 to 64 ASCII letters, digits, '_' or '-'".to_owned(),
        );
    }
    if nb.servers.is_empty() {
        push(
            "servers",
            "[]",
            "list at least one mqtt:// or mqtts:// server".to_owned(),
        );
    }
    for (j, url) in nb.servers.iter().enumerate() {
        let field = format!("servers[{j}]");
        match parse_server(url) {
            Ok(addr) if addr.tls && nb.ca_pem.is_none() => push(
                &field,
                url,
                "mqtts:// needs ca_pem, the PEM of the CA that signed the servers' certificates"
                    .to_owned(),
            ),
            Ok(_) => {}
            Err(why) => push(&field, url, why),
        }
    }
    if let Some(id) = &nb.client_id
        && (id.is_empty() || id.len() > 256 || id.chars().any(char::is_control))
    {
        push(
            "client_id",
            id,
            "must be 1 to 256 characters without control characters".to_owned(),
        );
    }
    if let Some(user) = &nb.username
        && (user.is_empty() || user.chars().any(char::is_control))
    {
        push(
            "username",
            user,
            "must not be empty or hold control characters".to_owned(),
        );
    }
    if nb.password.is_some() && nb.username.is_none() {
        push(
            "password",
            "(not shown)",
            "a password needs a username".to_owned(),
        );
    }
    if let Some(pem) = &nb.ca_pem
        && !pem.contains("-----BEGIN CERTIFICATE-----")
    {
        let start: String = pem.chars().take(40).collect();
        push(
            "ca_pem",
            &start,
            "must be PEM text holding at least one -----BEGIN CERTIFICATE----- block".to_owned(),
        );
    }
    if let Some(host) = &nb.primary_host_id
        && (host.is_empty()
            || host.chars().count() > 256
            || host.contains(['+', '#', '/'])
            || host.chars().any(char::is_control))
    {
        push(
            "primary_host_id",
            host,
            crate::validate::HOST_ID_RULE.to_owned(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_parse_with_default_ports() {
        let p = parse_server;
        assert_eq!(
            p("mqtt://broker"),
            Ok(ServerAddr {
                tls: false,
                host: "broker".into(),
                port: 1883
            })
        );
        assert_eq!(
            p("mqtts://10.0.0.6"),
            Ok(ServerAddr {
                tls: true,
                host: "10.0.0.6".into(),
                port: 8883
            })
        );
        assert_eq!(
            p("mqtt://[::1]:2883"),
            Ok(ServerAddr {
                tls: false,
                host: "::1".into(),
                port: 2883
            })
        );
        assert_eq!(
            p("mqtt://[::1]:2883").unwrap().to_string(),
            "mqtt://[::1]:2883"
        );
        assert!(p("tcp://broker").unwrap_err().contains("mqtt://"));
        assert!(p("mqtt://broker:0").unwrap_err().contains("1 to 65535"));
        assert!(p("mqtt://:1883").is_err());
    }
}
