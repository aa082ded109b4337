//! `sparkedge`: the industrial edge appliance in one binary.
//!
//! This crate is the shell around the libraries: the command line, the embedded MQTT broker,
//! and the wiring store → drivers → hub → sinks (Sparkplug session, UNS publisher, web live
//! view). Protocol logic lives in the library crates; everything here is I/O and lifetimes.
//! What depends on the model is rebuilt when it changes, without a restart (`pipeline`).

mod config;
mod dashboard;
mod device_access;
mod docs_cli;
mod hub;
mod inspect;
mod logging;
mod mqtt_access;
mod opcua_cli;
mod pipeline;
mod sessions;
mod sim;
mod sparkplug_node;
mod uns;
mod user_cli;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::sync::{mpsc, watch};
use uns_model::{Model, Store};

#[derive(Debug, Parser)]
#[command(
    name = "sparkedge",
    version,
    about = "Industrial edge appliance: PLC tags to Sparkplug 3.0 and a Unified Namespace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything with a simulated PLC: broker, Sparkplug Edge Node, UNS, web UI.
    Demo {
        /// Address of the embedded MQTT broker.
        #[arg(long, default_value = "127.0.0.1:1883")]
        mqtt_listen: SocketAddr,
        /// Address of the web UI.
        #[arg(long, default_value = "127.0.0.1:8080")]
        web_listen: SocketAddr,
        /// Folder for the database (model, Sparkplug bdSeq); created if missing.
        #[arg(long, default_value = "sparkedge-data")]
        data_dir: PathBuf,
        /// Sparkplug Primary Host id: publish births only while its STATE is online.
        #[arg(long)]
        primary_host_id: Option<String>,
    },
    /// Run as a service: the model from the data directory, listeners and northbound MQTT
    /// servers from the configuration file.
    Run {
        /// The configuration file: listeners, data directory, anonymous MQTT, UNS on or off;
        /// every key is listed in the one the Debian package installs.
        #[arg(long, default_value = config::INSTALLED)]
        config: PathBuf,
    },
    /// Run a simulated PLC that other programs (and sparkedge) can poll.
    Sim {
        #[command(subcommand)]
        plc: SimPlc,
    },
    /// Replace the model (namespace, devices, tags) with the one in a TOML file. Everything
    /// is checked first; on any error nothing is changed.
    Import {
        file: PathBuf,
        #[arg(long, default_value_os_t = config::cli_data_dir(), hide_default_value = true, help = config::DATA_DIR_HELP)]
        data_dir: PathBuf,
    },
    /// Write the model as TOML to FILE, or to standard output.
    Export {
        file: Option<PathBuf>,
        #[arg(long, default_value_os_t = config::cli_data_dir(), hide_default_value = true, help = config::DATA_DIR_HELP)]
        data_dir: PathBuf,
    },
    /// OPC UA certificates: the appliance's own, and the servers' it trusts or refused.
    Opcua {
        #[command(subcommand)]
        command: opcua_cli::Command,
    },
    /// Web UI users: add, list, remove, passwd, token.
    User {
        #[command(subcommand)]
        command: user_cli::Command,
    },
    /// MQTT users of the embedded broker: add, list, remove, passwd.
    MqttUser {
        #[command(subcommand)]
        command: user_cli::MqttCommand,
    },
    /// Man pages and shell completions, for the Debian package (packaging/build-deb).
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: docs_cli::Generate,
    },
}

#[derive(Debug, Subcommand)]
enum SimPlc {
    /// A Modbus PLC with changing values of every type and byte order, writable memory,
    /// and a hole in its address space (the register map is in the README): Modbus TCP on
    /// --listen, and with --rtu or --rtu-over-tcp also a line of RTU units.
    Modbus(sim::ModbusArgs),
    /// An OPC UA server (security policy None, anonymous) with a changing variable and a
    /// writable variable of every scalar type in namespace urn:sparkedge:sim (the node list
    /// is in the README).
    Opcua(sim::OpcUaArgs),
}

fn main() -> ExitCode {
    logging::init();
    let result = match Cli::parse().command {
        Command::Demo {
            mqtt_listen,
            web_listen,
            data_dir,
            primary_host_id,
        } => demo(Settings {
            source: "the command line of `sparkedge demo`".to_owned(),
            mqtt_listen,
            web_listen,
            data_dir,
            primary_host_id,
            // A demo on a laptop: `mosquitto_sub` without a login just works.
            allow_anonymous: true,
            northbound: Vec::new(),
            uns: true,
        }),
        Command::Run { config } => config::AppConfig::load(&config).and_then(|c| {
            let mut store = open_store(&c.data_dir)?;
            // A fresh installation: a namespace to build on in the web UI, so that the
            // service starts (and a restart loop never does) before anyone imported a model.
            seed_if_empty(
                &mut store,
                uns_model::file::starter_model,
                "starter",
                &c.data_dir,
            )?;
            serve(
                Settings {
                    source: config.display().to_string(),
                    mqtt_listen: c.mqtt.listen,
                    allow_anonymous: c.mqtt.allow_anonymous,
                    web_listen: c.web.listen,
                    data_dir: c.data_dir,
                    primary_host_id: c.sparkplug.primary_host_id,
                    northbound: c.northbound,
                    uns: c.uns.enabled,
                },
                store,
            )
        }),
        Command::Sim {
            plc: SimPlc::Modbus(args),
        } => sim::modbus(args),
        Command::Sim {
            plc: SimPlc::Opcua(args),
        } => sim::opcua(args),
        Command::Import { file, data_dir } => import(&file, &data_dir),
        Command::Export { file, data_dir } => export(file.as_deref(), &data_dir),
        Command::Opcua { command } => opcua_cli::run(command),
        Command::User { command } => user_cli::run(command),
        Command::MqttUser { command } => user_cli::run_mqtt(command),
        Command::Generate { what } => docs_cli::run(what),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sparkedge: {e}");
            ExitCode::FAILURE
        }
    }
}

fn open_store(data_dir: &Path) -> Result<Store, String> {
    prepare_data_dir(data_dir)?;
    let path = data_dir.join("sparkedge.db");
    Store::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// Where a client on this machine reaches a listener: a browser or a client cannot connect
/// to 0.0.0.0 or ::, and loopback reaches a listener on all interfaces.
pub(crate) fn on_this_machine(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], listen.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, listen.port()))
        }
        _ => listen,
    }
}

/// Creates `data_dir` if missing, and refuses root in one that another user owns (the
/// service's, /var/lib/sparkedge): SQLite files root made there (a journal, a new database)
/// would belong to root, and the service could no longer write them. Any other user who may
/// not write there is refused with the same advice, rather than by SQLite's own words.
fn prepare_data_dir(data_dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    let owner = std::fs::metadata(data_dir)
        .map_err(|e| format!("cannot read data directory {}: {e}", data_dir.display()))?
        .uid();
    let why = if rustix::process::getuid().is_root() {
        (owner != 0).then_some("files root made in it would lock that user (the service) out")
    } else {
        use rustix::fs::Access;
        rustix::fs::access(
            data_dir,
            Access::READ_OK | Access::WRITE_OK | Access::EXEC_OK,
        )
        .is_err()
        .then_some("this user may not write in it")
    };
    match why {
        Some(why) => Err(format!(
            "{} belongs to the user with id {owner}, and {why}: run this as that user, e.g. \
             `sudo -u sparkedge sparkedge …`, or give another --data-dir",
            data_dir.display()
        )),
        None => Ok(()),
    }
}

fn import(file: &Path, data_dir: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let model = uns_model::file::from_toml(&text)
        .map_err(|e| format!("{} was not imported, nothing changed:\n{e}", file.display()))?;
    open_store(data_dir)?
        .replace_model(&model)
        .map_err(|e| format!("{} was not imported, nothing changed: {e}", file.display()))?;
    println!(
        "imported {} devices and {} tags from {} into {}",
        model.devices.len(),
        model.tags.len(),
        file.display(),
        data_dir.display()
    );
    Ok(())
}

fn export(file: Option<&Path>, data_dir: &Path) -> Result<(), String> {
    let model = open_store(data_dir)?
        .load_model()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "{} holds no model yet: run `sparkedge demo` or `sparkedge import FILE` first",
                data_dir.display()
            )
        })?;
    let text = uns_model::file::to_toml(&model);
    match file {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// What `demo` and `run` need to start the appliance.
#[derive(Debug)]
struct Settings {
    /// Where these come from (the configuration file), for the settings page.
    source: String,
    mqtt_listen: SocketAddr,
    /// Let MQTT clients in without a login.
    allow_anonymous: bool,
    web_listen: SocketAddr,
    data_dir: PathBuf,
    primary_host_id: Option<String>,
    northbound: Vec<config::Northbound>,
    /// Publish the UNS JSON tree.
    uns: bool,
}

/// `run` with the demo model seeded into an empty data directory.
fn demo(settings: Settings) -> Result<(), String> {
    let mut store = open_store(&settings.data_dir)?;
    seed_if_empty(
        &mut store,
        uns_model::file::demo_model,
        "demo",
        &settings.data_dir,
    )?;
    serve(settings, store)
}

/// Stores `model()` if the store never held a model; one that was stored, even one later
/// emptied in the web UI, is left as it is.
fn seed_if_empty(
    store: &mut Store,
    model: fn() -> Model,
    what: &str,
    data_dir: &Path,
) -> Result<(), String> {
    // Version 0: no model was ever stored (cheaper than loading one to find out).
    if store.model_version().map_err(|e| e.to_string())? == 0 {
        store.replace_model(&model()).map_err(|e| e.to_string())?;
        tracing::info!("seeded {} with the {what} model", data_dir.display());
    }
    Ok(())
}

fn serve(settings: Settings, store: Store) -> Result<(), String> {
    let model = store
        .load_model()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} holds no model", settings.data_dir.display()))?;
    // One thread runs the whole appliance: 100,000 tags/s take about 5 % of a core
    // (BENCHMARKS.md), and a single thread means a single malloc arena, so the memory freed
    // after start-up (the model) is reused instead of sitting in the main thread's arena while
    // worker threads grow their own: 10 MB less peak RSS at 100,000 tags. Blocking work
    // (SQLite) goes to `spawn_blocking`.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(run(model, store, settings))
}

/// Wires store → drivers → hub → sinks and runs until SIGINT or SIGTERM.
async fn run(model: Model, store: Store, settings: Settings) -> Result<(), String> {
    let runtime_settings = dashboard::runtime_settings(&settings);
    let Settings {
        source: _,
        mqtt_listen,
        allow_anonymous,
        web_listen,
        data_dir,
        primary_host_id,
        northbound,
        uns,
    } = settings;
    // Every northbound connection first: a missing CA file is a start-up error, not a
    // connection that silently never comes up.
    let mut connections = Vec::new();
    for nb in &northbound {
        let ca_pem = match &nb.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                format!(
                    "northbound {:?}: cannot read ca_file {}: {e}",
                    nb.name,
                    path.display()
                )
            })?),
            None => None,
        };
        let servers = nb
            .servers
            .iter()
            .map(|url| config::parse_server(url))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("northbound {:?}: {e}", nb.name))?;
        connections.push(sparkplug_node::ConnectionConfig {
            name: format!("northbound/{}", nb.name),
            servers,
            client_id: nb.client_id.clone(),
            credentials: nb
                .username
                .clone()
                .map(|u| (u, nb.password.clone().unwrap_or_default())),
            ca_pem,
            pinned_primary_host: Some(nb.primary_host_id.clone()),
        });
    }
    // The web users and the MQTT users, before the broker lets anyone in.
    let (auth, setup_url) = user_cli::web_auth(&data_dir, web_listen)?;
    let mqtt_users = mqtt_access::load(auth.users())
        .await
        .map_err(|e| format!("cannot read the MQTT users: {e}"))?;
    if !allow_anonymous && mqtt_users.is_empty() {
        tracing::warn!(
            "anonymous MQTT is off and there are no MQTT users yet: only sparkedge itself can \
             connect; add users on the settings page or with `sparkedge mqtt-user add NAME`"
        );
    }
    let mut broker_config = broker::Config::new(mqtt_listen);
    broker_config.access = mqtt_access::access(allow_anonymous, &mqtt_users);
    let broker = broker::Broker::start(broker_config).await.map_err(|e| {
        format!(
            "cannot listen for MQTT on {mqtt_listen}: {e} (is another broker running? \
                 choose another address with --mqtt-listen)"
        )
    })?;
    let broker = Arc::new(broker);
    let internal_login = broker.internal_login();
    let web_listener = tokio::net::TcpListener::bind(web_listen).await.map_err(|e| {
        format!("cannot listen for the web UI on {web_listen}: {e} (choose another address with --web-listen)")
    })?;
    let mut signals = Signals::new().map_err(|e| format!("cannot handle signals: {e}"))?;
    // Our own MQTT clients reach the broker over loopback even when it listens on all interfaces.
    let mqtt_address = on_this_machine(mqtt_listen).to_string();
    let mqtt_host = on_this_machine(mqtt_listen).ip().to_string();
    let (shutdown_tx, shutdown) = watch::channel(false);

    // The session on the embedded broker first, then one per northbound connection.
    let embedded = sparkplug_node::ConnectionConfig {
        name: "embedded".into(),
        servers: vec![config::ServerAddr {
            tls: false,
            host: mqtt_host.clone(),
            port: mqtt_listen.port(),
        }],
        client_id: None,
        credentials: Some(internal_login.clone()),
        ca_pem: None,
        // Set on the command line or in the file, it overrides the model's.
        pinned_primary_host: primary_host_id.map(Some),
    };
    let (group_id, edge_node_id, enterprise) = (
        model.sparkplug_group_id().to_owned(),
        model.sparkplug.edge_node_id.clone(),
        model.namespace.enterprise.clone(),
    );
    let known_aliases = store.sparkplug_aliases().map_err(|e| e.to_string())?;
    let model_version = store.model_version().map_err(|e| e.to_string())?;
    let tag_count = model.tags.len();
    let live = Arc::new(web::LiveValues::new(0));
    let (write_tx, write_rx) = mpsc::channel(256);
    let status = Arc::new(web::StatusBoard::default());
    status.update(|s| {
        s.started_ms = southbound::now_ms();
        s.runtime = Some(runtime_settings);
    });
    let store = Arc::new(Mutex::new(store));
    let sessions = sessions::Sessions::new(
        sessions::Shared {
            store: store.clone(),
            writes: write_tx.clone(),
            status: status.clone(),
            runtime: tokio::runtime::Handle::current(),
        },
        Some(embedded),
        connections,
    );
    let uns_mailbox = uns.then(|| hub::Mailbox::new(tag_count));
    let (reload_tx, reload_rx) = mpsc::unbounded_channel();
    let pipeline = Arc::new(pipeline::Pipeline::new(
        store,
        reload_tx,
        sessions,
        uns_mailbox.clone(),
        data_dir.clone(),
    ));
    // Start-up is a change from nothing: every driver and session starts. The model is taken
    // apart for them and not kept (BENCHMARKS.md, memory).
    let (reload, uns_model) = pipeline.start(model, model_version, known_aliases);
    let devices = device_access::ApplianceDevices::new(
        opcua_cli::pki_dir(&data_dir),
        reload.opcua_pki.clone(),
        write_tx.clone(),
        live.clone(),
    );
    drop(write_tx);
    let mut hub = hub::Hub::new(Vec::new(), live.clone()).with_status(status.clone());
    hub.reload(reload);
    tokio::spawn(hub.run(write_rx, reload_rx));
    let uns = match (uns_model, uns_mailbox) {
        (Some(pipeline::SinkModel::Uns(model)), Some(mailbox)) => Some(tokio::spawn(uns::run(
            model.into_tags(),
            {
                let mut options = rumqttc::MqttOptions::new(
                    format!("sparkedge-uns-{edge_node_id}"),
                    mqtt_host.clone(),
                    mqtt_listen.port(),
                );
                options.set_credentials(internal_login.0.clone(), internal_login.1.clone());
                options
            },
            mailbox,
            live.clone(),
            shutdown.clone(),
        ))),
        _ => None,
    };
    let watcher = tokio::spawn(pipeline::watch_store(pipeline.clone(), shutdown.clone()));
    tokio::spawn(dashboard::sample_broker(
        broker.clone(),
        mqtt_listen.to_string(),
        status.clone(),
        shutdown.clone(),
    ));
    let logins = Arc::new(mqtt_access::Logins::new(
        broker.clone(),
        allow_anonymous,
        mqtt_users,
    ));
    auth.on_mqtt_users_changed(Box::new({
        let logins = logins.clone();
        move |users| logins.apply(users)
    }));
    tokio::spawn(mqtt_access::poll(
        logins,
        auth.users().clone(),
        shutdown.clone(),
    ));
    let state = web::AppState {
        model: pipeline.clone(),
        live,
        mqtt_address: mqtt_address.clone(),
        edits: Default::default(),
        status: status.clone(),
        births: Some(Arc::new(inspect::Births(broker.clone()))),
        auth,
        devices: web::Devices::new(Arc::new(devices)),
    };
    let mut web_shutdown = shutdown.clone();
    let web = tokio::spawn(web::serve(web_listener, state, async move {
        stopped(&mut web_shutdown).await;
    }));

    let web_url = format!("http://{}/", on_this_machine(web_listen));
    let port = mqtt_listen.port();
    let everywhere = |listen: SocketAddr| {
        if listen.ip().is_unspecified() {
            "  (all interfaces: from another computer, use this machine's address)"
        } else {
            ""
        }
    };
    println!("sparkedge is running");
    println!("  web UI     {web_url}{}", everywhere(web_listen));
    if let Some(url) = &setup_url {
        println!("  first login {url}  (no users yet: this link creates the admin, once)");
    }
    println!(
        "  MQTT       {mqtt_address}  (Sparkplug group {group_id}, edge node {edge_node_id}){}",
        everywhere(mqtt_listen)
    );
    println!("  data       {}", data_dir.display());
    if uns.is_some() {
        println!("  watch UNS  mosquitto_sub -h {mqtt_host} -p {port} -v -t '{enterprise}/#'");
    } else {
        println!("  UNS        off ([uns] enabled = false)");
    }
    println!(
        "  Sparkplug  mosquitto_sub -h {mqtt_host} -p {port} -t 'spBv1.0/#' -F '%t (%l bytes)'"
    );
    println!("Press Ctrl-C to stop.");
    // Under systemd (Type=notify) the unit is started only now: the broker accepts clients,
    // the web UI answers, the sessions and drivers run. Without $NOTIFY_SOCKET this does
    // nothing.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!("cannot tell systemd that sparkedge is ready: {e}");
    }

    let signal = signals.recv().await;
    tracing::info!("{signal}: stopping");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    // No model change starts from now on (one under way finishes first), and every
    // Sparkplug session ends.
    let closing = pipeline.clone();
    let nodes = tokio::task::spawn_blocking(move || closing.close())
        .await
        .unwrap_or_default();
    let _ = shutdown_tx.send(true);
    // NDEATH first (QoS 1, acknowledged), then the rest; the broker stops with the process.
    let stopping = async {
        for node in nodes {
            let _ = node.await;
        }
        if let Some(uns) = uns {
            let _ = uns.await;
        }
        let _ = watcher.await;
        let _ = web.await;
    };
    if tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .is_err()
    {
        tracing::warn!("shutdown took longer than 10 s; exiting anyway");
    }
    Ok(())
}

/// Resolves once the shutdown flag is set (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // Drop the borrow guard here: it is not Send and must not live across an await.
    let _ = shutdown.wait_for(|s| *s).await;
}

/// SIGINT and SIGTERM, whichever comes first.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}
