//! The embedded MQTT broker (rumqttd). SCADA, MES and our own sessions all connect to it over
//! TCP, so the embedded broker and a plant's broker are used the same way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The broker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "cannot listen for MQTT on {addr}: {source} (is another broker running? choose another address with --mqtt-listen)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the MQTT broker did not start listening on {0} within 10 s")]
    NotListening(SocketAddr),
}

/// Starts rumqttd with one MQTT 3.1.1 listener on `listen` and returns once it accepts
/// connections. The broker runs on its own threads until the process exits.
pub fn start(listen: SocketAddr) -> Result<(), BrokerError> {
    // rumqttd binds inside its own thread and only logs a failure there; bind once here so a
    // taken port is a clear error at start rather than a silent broker-less appliance.
    drop(
        std::net::TcpListener::bind(listen).map_err(|source| BrokerError::Bind {
            addr: listen,
            source,
        })?,
    );
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 5000,
        // A 10,000-metric DBIRTH is well under 1 MiB; allow room for big templates later.
        max_payload_size: 4 << 20,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "mqtt".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = rumqttd::Config {
        router: rumqttd::RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: 10_000,
            // rumqttd keeps a commit log per filter bounded by size × count; the sample
            // configuration's 100 MB × 10 would dominate an appliance's memory.
            max_segment_size: 1 << 20,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("mqtt".to_owned(), server)])),
        ..Default::default()
    };
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!("MQTT broker stopped: {e}");
            }
        })
        .map_err(|source| BrokerError::Bind {
            addr: listen,
            source,
        })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if answers_mqtt(listen) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(BrokerError::NotListening(listen))
}

/// Whether the broker at `addr` completes an MQTT 3.1.1 handshake. A bare TCP connect is not
/// enough (the router may not be up yet) and makes rumqttd log an aborted connection.
fn answers_mqtt(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    const CLIENT_ID: &[u8] = b"sparkedge-ready-probe";
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    // CONNECT: protocol "MQTT" level 4, clean session, keep-alive 10 s, then the client id.
    let mut connect = vec![0x10, (12 + CLIENT_ID.len()) as u8];
    connect.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10, 0]);
    connect.push(CLIENT_ID.len() as u8);
    connect.extend_from_slice(CLIENT_ID);
    let mut connack = [0u8; 4];
    let ok = stream.write_all(&connect).is_ok()
        && stream.read_exact(&mut connack).is_ok()
        && connack[0] == 0x20
        && connack[3] == 0;
    // DISCONNECT, so the broker sees a clean goodbye.
    let _ = stream.write_all(&[0xE0, 0]);
    ok
}
