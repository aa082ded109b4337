//! `sparkedge sim modbus` and `sparkedge sim opcua`: the simulated PLCs of `southbound` as
//! processes: on Modbus TCP and optionally as a line of RTU units on a serial port or over
//! TCP, and as an OPC UA server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::Signals;

/// What `sparkedge sim modbus` serves.
#[derive(Debug, clap::Args)]
pub struct ModbusArgs {
    #[arg(long, default_value = "127.0.0.1:5020")]
    listen: SocketAddr,
    /// Also serve RTU units on this serial device (e.g. one end of a socat pty pair).
    #[arg(long)]
    rtu: Option<PathBuf>,
    /// Also serve RTU units over TCP on this address, as a serial gateway would.
    #[arg(long)]
    rtu_over_tcp: Option<SocketAddr>,
    /// Unit ids present on the RTU line; other ids get no answer.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    units: Vec<u8>,
    #[arg(long, default_value_t = 19200)]
    baud: u32,
    #[arg(long, default_value = "even", value_parser = ["none", "even", "odd"])]
    parity: String,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    stop_bits: u8,
}

/// Runs the simulated PLC until SIGINT or SIGTERM.
pub fn modbus(sim: ModbusArgs) -> Result<(), String> {
    use southbound::modbus::sim_server::{self, SimLine, SimPlc};
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let listen = sim.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen for Modbus on {listen}: {e}"))?;
        // The bound address, so that port 0 prints the port actually chosen.
        let bound = listener.local_addr().unwrap_or(listen);
        println!("simulated Modbus PLC on {bound} (unit id any); Ctrl-C to stop");
        let plc = Arc::new(SimPlc::default());
        // One RTU line, served on a serial port and/or over TCP: each unit its own PLC.
        if let Some(bad) = sim.units.iter().find(|u| !(1..=247).contains(*u)) {
            return Err(format!(
                "--units {bad}: unit ids on a serial line are 1 to 247"
            ));
        }
        let line = SimLine::new(
            sim.units
                .iter()
                .map(|&u| Arc::new(SimPlc::with_unit(u)))
                .collect(),
        );
        let units = sim
            .units
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let serial = match &sim.rtu {
            Some(path) => {
                let settings = southbound::modbus::SerialLine {
                    path: path.display().to_string(),
                    baud: sim.baud,
                    parity: match sim.parity.as_str() {
                        "none" => uns_model::Parity::None,
                        "odd" => uns_model::Parity::Odd,
                        _ => uns_model::Parity::Even,
                    },
                    data_bits: 8,
                    stop_bits: sim.stop_bits,
                    inter_frame_delay: Duration::ZERO,
                };
                let port = southbound::modbus::open_serial(&settings)
                    .map_err(|e| format!("cannot open serial port {}: {e}", path.display()))?;
                println!(
                    "simulated Modbus RTU units {units} on {} ({} baud, {} parity, {} stop bit(s))",
                    path.display(),
                    sim.baud,
                    sim.parity,
                    sim.stop_bits
                );
                Some(tokio::spawn(sim_server::serve_rtu(port, line.clone())))
            }
            None => None,
        };
        let gateway = match sim.rtu_over_tcp {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("cannot listen for RTU over TCP on {addr}: {e}"))?;
                let bound = listener.local_addr().unwrap_or(addr);
                println!("simulated Modbus RTU units {units} over TCP on {bound}");
                Some(tokio::spawn(sim_server::serve_rtu_over_tcp(
                    listener,
                    line.clone(),
                )))
            }
            None => None,
        };
        let mut signals = Signals::new().map_err(|e| format!("cannot handle signals: {e}"))?;
        let ended = |what: &str, r: Result<std::io::Result<()>, tokio::task::JoinError>| match r {
            Ok(Ok(())) => Err(format!("simulated {what} stopped")),
            Ok(Err(e)) => Err(format!("simulated {what} stopped: {e}")),
            Err(e) => Err(format!("simulated {what} failed: {e}")),
        };
        tokio::select! {
            served = sim_server::serve(listener, plc) => {
                served.map_err(|e| format!("simulated PLC stopped: {e}"))
            }
            r = finished(serial) => ended("RTU line", r),
            r = finished(gateway) => ended("RTU gateway", r),
            _ = signals.recv() => Ok(()),
        }
    })
}

/// The end of an optional task; never, when there is none.
async fn finished<T>(
    task: Option<tokio::task::JoinHandle<T>>,
) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

/// What `sparkedge sim opcua` serves.
#[derive(Debug, clap::Args)]
pub struct OpcUaArgs {
    #[arg(long, default_value = "127.0.0.1:4840")]
    listen: SocketAddr,
    /// How often the changing variables change, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    tick_ms: u64,
    /// Also serve this many Double variables ns=<n>;s=Bulk.0 … Bulk.<N-1> in Objects/Sim/Bulk,
    /// all changing every tick: a load for benchmarks.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    bulk: u64,
    /// Also serve signed and encrypted endpoints (Basic256Sha256, Aes128-Sha256-RsaOaep,
    /// Aes256-Sha256-RsaPss; Sign and SignAndEncrypt) with a certificate of the server's own,
    /// made in --pki-dir. A client's certificate is accepted once it is in
    /// <pki-dir>/trusted/; refused ones land in <pki-dir>/rejected/, to be moved over.
    #[arg(long)]
    secure: bool,
    /// With --secure: the secure endpoints take this user (NAME:PASSWORD) instead of
    /// anonymous clients.
    #[arg(long, requires = "secure")]
    user: Option<String>,
    /// The server's certificate folder.
    #[arg(long, default_value = "sparkedge-sim-opcua-pki")]
    pki_dir: std::path::PathBuf,
}

/// Runs the simulated OPC UA server until SIGINT or SIGTERM.
pub fn opcua(sim: OpcUaArgs) -> Result<(), String> {
    use southbound::opcua::sim_server::{NAMESPACE_URI, SimConfig, SimSecurity, SimServer};
    let user = match &sim.user {
        None => None,
        Some(u) => match u.split_once(':') {
            Some((name, password)) if !name.is_empty() => {
                Some((name.to_owned(), password.to_owned()))
            }
            _ => return Err(format!("--user {u:?}: write NAME:PASSWORD")),
        },
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let listen = sim.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen for OPC UA on {listen}: {e}"))?;
        let bound = listener.local_addr().unwrap_or(listen);
        let config = SimConfig {
            tick: Duration::from_millis(sim.tick_ms),
            // At most a million, checked by clap: fits usize on any target we build for.
            bulk: usize::try_from(sim.bulk).unwrap_or(usize::MAX),
            pki_dir: sim.pki_dir.clone(),
            security: sim.secure.then(|| SimSecurity {
                user: user.clone(),
                user_certificate: None,
            }),
            ..SimConfig::default()
        };
        let server = SimServer::start(listener, config)
            .await
            .map_err(|e| format!("cannot start the simulated OPC UA server: {e}"))?;
        println!(
            "simulated OPC UA server on opc.tcp://{bound}/ (security None, anonymous; namespace \
             {NAMESPACE_URI} = ns={}); Ctrl-C to stop",
            server.namespace()
        );
        if sim.secure {
            println!(
                "secure endpoints too ({}); certificate {}, trusted clients in {}",
                match &user {
                    Some((name, _)) => format!("user {name}"),
                    None => "anonymous".to_owned(),
                },
                sim.pki_dir.join("own/cert.der").display(),
                sim.pki_dir.join("trusted").display()
            );
        }
        if sim.bulk > 0 {
            println!(
                "bulk: {} Doubles ns={ns};s=Bulk.0 … ns={ns};s=Bulk.{}, changing every {} ms",
                sim.bulk,
                sim.bulk - 1,
                sim.tick_ms,
                ns = server.namespace()
            );
        }
        let mut signals = Signals::new().map_err(|e| format!("cannot handle signals: {e}"))?;
        signals.recv().await;
        drop(server);
        Ok(())
    })
}
