//! A simulated OPC UA server (`sparkedge sim opcua`), on async-opcua's server: one variable
//! of every type that changes on every tick, one writable variable of every type, and
//! optionally many Doubles for load tests, in a small folder tree in namespace
//! [`NAMESPACE_URI`]:
//!
//! ```text
//! Objects/Sim/Changing/<Type>   ns=<n>;s=Changing.<Type>   read-only, changes every tick
//! Objects/Sim/Writable/<Type>   ns=<n>;s=Writable.<Type>   holds what is written to it
//! Objects/Sim/Bulk/<k>          ns=<n>;s=Bulk.<k>          Double, k = 0..bulk, changes every tick
//! ```
//!
//! `<Type>` is the OPC UA type name: Boolean, SByte, Byte, Int16, UInt16, Int32, UInt32,
//! Int64, UInt64, Float, Double, String, DateTime, and for a one-dimensional array of one of
//! them (four elements, each changing every tick) the name followed by `Array`
//! (`FloatArray`). Address them namespace-independently as
//! `nsu=urn:sparkedge:sim;s=Changing.Float`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use opcua::server::address_space::{AccessLevel, NodeBase, Variable};
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{SimpleNodeManager, simple_node_manager};
use opcua::server::{ServerBuilder, ServerHandle};
use opcua::types::{DataValue, DateTime, NodeId, ObjectId, StatusCode, Variant};
use tokio::net::TcpListener;
use uns_model::opcua::{opcua_type, opcua_type_name};
use uns_model::{Array, DataType, Value};

use super::convert::to_variant;

/// The simulator's namespace.
pub const NAMESPACE_URI: &str = "urn:sparkedge:sim";

/// How the simulated server runs.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// How often the changing variables change.
    pub tick: Duration,
    /// The server's MaxMonitoredItemsPerCall operation limit (a low one tests batching).
    pub max_monitored_items_per_call: usize,
    /// The server's MaxNodesPerRead operation limit (a low one tests batched reads).
    pub max_nodes_per_read: usize,
    /// Browse continuation points the server keeps per session (a low one shows leaks).
    pub max_browse_continuation_points: usize,
    /// Monitored items one subscription may hold (a low one makes a client spread its items
    /// over several subscriptions).
    pub max_monitored_items_per_subscription: usize,
    /// Where the server keeps its PKI folders (it creates them).
    pub pki_dir: PathBuf,
    /// Secure endpoints and user accounts besides the anonymous policy-None endpoint.
    pub security: Option<SimSecurity>,
    /// How many `Bulk.<k>` Doubles to serve (0: no Bulk folder), all changing every tick:
    /// a load for benchmarks of many monitored items.
    pub bulk: usize,
}

/// The simulator's security: its own certificate (created in the PKI folder), endpoints for
/// Basic256Sha256, Aes128-Sha256-RsaOaep and Aes256-Sha256-RsaPss with Sign and with
/// SignAndEncrypt, and users. A client's certificate is trusted only once it is in
/// `<pki_dir>/trusted/` (the server puts refused ones in `rejected/`).
#[derive(Clone, Debug, Default)]
pub struct SimSecurity {
    /// A user name and password accepted on every secure endpoint.
    pub user: Option<(String, String)>,
    /// A user certificate (DER) accepted as an X.509 identity on every secure endpoint.
    /// With neither, the secure endpoints are anonymous.
    pub user_certificate: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tick: Duration::from_secs(1),
            max_monitored_items_per_call: 1000,
            max_nodes_per_read: opcua::server::constants::MAX_NODES_PER_READ,
            max_browse_continuation_points:
                opcua::server::constants::MAX_BROWSE_CONTINUATION_POINTS,
            // Room for a 10,000-item load run in one subscription; the library's own
            // default (1000) is what tests lower it from.
            max_monitored_items_per_subscription: 20_000,
            pki_dir: std::env::temp_dir().join("sparkedge-sim-opcua-pki"),
            security: None,
            bulk: 0,
        }
    }
}

/// A running simulated server; dropping it stops the server and its ticker.
pub struct SimServer {
    handle: ServerHandle,
    manager: Arc<SimpleNodeManager>,
    namespace: u16,
    ticker: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for SimServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimServer")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.handle.cancel();
        self.ticker.abort();
        self.server.abort();
    }
}

/// The name of the simulator's variable of `datatype` in `folder` (`Changing`, `Writable`):
/// `Changing.Float`, `Changing.FloatArray`.
pub fn node_name(folder: &str, datatype: DataType) -> String {
    let suffix = if datatype.is_array() { "Array" } else { "" };
    format!("{folder}.{}{suffix}", opcua_type(datatype).0)
}

/// The name of the `k`th bulk variable: `Bulk.0`, `Bulk.1`, …
pub fn bulk_name(k: usize) -> String {
    format!("Bulk.{k}")
}

impl SimServer {
    /// Starts the server on `listener`; its endpoint is `opc.tcp://<listener address>/`.
    pub async fn start(listener: TcpListener, config: SimConfig) -> Result<SimServer, String> {
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read the listening address: {e}"))?;
        let host = addr.ip().to_string();
        let url = format!("opc.tcp://{addr}/");
        let mut builder = ServerBuilder::new_anonymous("sparkedge simulated PLC")
            .application_uri("urn:sparkedge:sim-plc")
            .product_uri("urn:sparkedge")
            .host(host)
            .port(addr.port())
            .discovery_urls(vec![url])
            .pki_dir(&config.pki_dir)
            .create_sample_keypair(config.security.is_some())
            .trust_client_certs(false)
            .with_node_manager(simple_node_manager(
                NamespaceMetadata {
                    namespace_uri: NAMESPACE_URI.to_owned(),
                    ..Default::default()
                },
                "sparkedge-sim",
            ));
        if let Some(security) = &config.security {
            builder = secure(builder, security);
        }
        builder
            .limits_mut()
            .operational
            .max_monitored_items_per_call = config.max_monitored_items_per_call;
        builder.limits_mut().operational.max_nodes_per_read = config.max_nodes_per_read;
        builder.limits_mut().max_browse_continuation_points = config.max_browse_continuation_points;
        builder
            .limits_mut()
            .subscriptions
            .max_monitored_items_per_sub = config.max_monitored_items_per_subscription;
        let (server, handle) = builder.build()?;
        let manager = handle
            .node_managers()
            .get_of_type::<SimpleNodeManager>()
            .ok_or("the simulator's node manager is missing")?;
        let namespace = handle
            .get_namespace_index(NAMESPACE_URI)
            .ok_or("the simulator's namespace is missing")?;
        build_address_space(&manager, namespace, config.bulk);
        let server = tokio::spawn(async move {
            if let Err(e) = server.run_with(listener).await {
                tracing::warn!("simulated OPC UA server stopped: {e}");
            }
        });
        let ticker = tokio::spawn(tick(
            manager.clone(),
            handle.clone(),
            namespace,
            config.tick,
            config.bulk,
        ));
        Ok(SimServer {
            handle,
            manager,
            namespace,
            ticker,
            server,
        })
    }

    /// The namespace index of [`NAMESPACE_URI`] on this server.
    pub fn namespace(&self) -> u16 {
        self.namespace
    }

    /// Sets a variable (`Writable.Int32`…) as a PLC program would, notifying subscribers.
    pub fn set(&self, name: &str, value: &Value) -> Result<(), String> {
        let id = NodeId::new(self.namespace, name);
        self.manager
            .set_value(
                self.handle.subscriptions(),
                &id,
                None,
                DataValue::new_now(to_variant(value)),
            )
            .map_err(|e| format!("cannot set {name}: {e}"))
    }

    /// Sets a variable with a status code other than good, as a server does for a sensor
    /// out of calibration (`UncertainSensorNotAccurate`) or a failed one
    /// (`BadSensorFailure`), notifying subscribers; a later [`SimServer::set`] makes it good.
    pub fn set_status(&self, name: &str, value: &Value, status: StatusCode) -> Result<(), String> {
        let id = NodeId::new(self.namespace, name);
        let mut dv = DataValue::new_now(to_variant(value));
        dv.status = Some(status);
        self.manager
            .set_value(self.handle.subscriptions(), &id, None, dv)
            .map_err(|e| format!("cannot set {name}: {e}"))
    }
}

fn secure(mut builder: ServerBuilder, security: &SimSecurity) -> ServerBuilder {
    use opcua::server::{ANONYMOUS_USER_TOKEN_ID, ServerEndpoint, ServerUserToken};
    let mut tokens = Vec::new();
    if let Some((user, password)) = &security.user {
        builder = builder.add_user_token("user", ServerUserToken::user_pass(user, password));
        tokens.push("user".to_owned());
    }
    if let Some(cert) = &security.user_certificate {
        builder = builder.add_user_token("x509", ServerUserToken::x509("x509", cert));
        tokens.push("x509".to_owned());
    }
    // With users configured, the secure endpoints take only them, so a client's identity
    // really is checked; without, they are anonymous.
    if tokens.is_empty() {
        tokens.push(ANONYMOUS_USER_TOKEN_ID.to_owned());
    }
    use opcua::crypto::SecurityPolicy as P;
    use opcua::types::MessageSecurityMode as M;
    for policy in [
        P::Basic256Sha256,
        P::Aes128Sha256RsaOaep,
        P::Aes256Sha256RsaPss,
    ] {
        for mode in [M::Sign, M::SignAndEncrypt] {
            let id = format!("{policy}-{mode:?}");
            builder = builder.add_endpoint(id, ServerEndpoint::new("/", policy, mode, &tokens));
        }
    }
    builder
}

fn build_address_space(manager: &SimpleNodeManager, ns: u16, bulk: usize) {
    let mut space = manager.address_space().write();
    let sim = NodeId::new(ns, "Sim");
    space.add_folder(&sim, "Sim", "Sim", &ObjectId::ObjectsFolder.into());
    for folder in ["Changing", "Writable"] {
        let folder_id = NodeId::new(ns, folder);
        space.add_folder(&folder_id, folder, folder, &sim);
        let variables = DataType::ALL
            .into_iter()
            .map(|dt| {
                let name = node_name(folder, dt);
                let id = NodeId::new(ns, name.as_str());
                let browse_name = name.trim_start_matches(folder).trim_start_matches('.');
                // The node's DataType, ValueRank and ArrayDimensions follow from the value.
                let mut v = Variable::new(&id, browse_name, browse_name, value_at(dt, 0));
                let what = match folder {
                    "Writable" => "holds what is written to it",
                    _ => "changes every tick",
                };
                v.set_description(format!("{}, {what}", opcua_type_name(dt)).into());
                if folder == "Writable" {
                    v.set_access_level(AccessLevel::CURRENT_READ | AccessLevel::CURRENT_WRITE);
                    v.set_user_access_level(AccessLevel::CURRENT_READ | AccessLevel::CURRENT_WRITE);
                }
                v
            })
            .collect();
        space.add_variables(variables, &folder_id);
    }
    if bulk > 0 {
        let folder_id = NodeId::new(ns, "Bulk");
        space.add_folder(&folder_id, "Bulk", "Bulk", &sim);
        let variables = (0..bulk)
            .map(|k| {
                let id = NodeId::new(ns, bulk_name(k));
                Variable::new(&id, k.to_string(), k.to_string(), bulk_value(k, 0))
            })
            .collect();
        space.add_variables(variables, &folder_id);
    }
}

/// Changes every `Changing.*` and `Bulk.*` variable once per tick, in one `set_values` call
/// (one address-space lock and one round of subscription notifications).
async fn tick(
    manager: Arc<SimpleNodeManager>,
    handle: ServerHandle,
    ns: u16,
    period: Duration,
    bulk: usize,
) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let changing: Vec<(NodeId, DataType)> = DataType::ALL
        .into_iter()
        .map(|dt| (NodeId::new(ns, node_name("Changing", dt).as_str()), dt))
        .collect();
    let bulk: Vec<NodeId> = (0..bulk).map(|k| NodeId::new(ns, bulk_name(k))).collect();
    let mut n: u64 = 0;
    loop {
        interval.tick().await;
        n += 1;
        let now = DateTime::now();
        let good = |variant| {
            let mut dv = DataValue::new_at(variant, now);
            dv.status = Some(StatusCode::Good);
            dv
        };
        let values = changing
            .iter()
            .map(|(id, dt)| (id, None, good(value_at(*dt, n))))
            .chain(
                bulk.iter()
                    .enumerate()
                    .map(|(k, id)| (id, None, good(bulk_value(k, n)))),
            );
        if let Err(e) = manager.set_values(handle.subscriptions(), values) {
            tracing::warn!("simulated OPC UA server: {e}");
        }
    }
}

/// Bulk variable `k` at tick `n`: different on every tick and from its neighbours.
fn bulk_value(k: usize, n: u64) -> Variant {
    Variant::Double(n as f64 + k as f64 / 100_000.0)
}

/// Elements of each changing array.
const ARRAY_LEN: u64 = 4;

/// The value of a changing variable of `datatype` at tick `n`: different on every tick
/// (booleans alternate). Element `i` of an array is the scalar value at tick `n + i`, so
/// every element changes on every tick.
fn value_at(datatype: DataType, n: u64) -> Variant {
    to_variant(&sim_value(datatype, n))
}

fn sim_value(datatype: DataType, n: u64) -> Value {
    match datatype {
        DataType::Bool => Value::Bool(n % 2 == 1),
        // Each counts through a range that crosses zero where it can, so signs are exercised;
        // the arithmetic is done in i64, where none of it can overflow.
        DataType::Int8 => Value::Int8(((n % 200) as i64 - 100) as i8),
        DataType::UInt8 => Value::UInt8((n % 250) as u8),
        DataType::Int16 => Value::Int16(((n % 30_000) as i64 - 1000) as i16),
        DataType::UInt16 => Value::UInt16((n % 60_000) as u16),
        DataType::Int32 => Value::Int32(((n % 2_000_000) as i64 - 100_000) as i32),
        DataType::UInt32 => Value::UInt32((n % 4_000_000_000) as u32),
        DataType::Int64 => Value::Int64((n % (1 << 60)) as i64 - 1_000_000_000_000),
        DataType::UInt64 => Value::UInt64((n % (1 << 60)) + 1_000_000_000_000),
        DataType::Float32 => Value::Float32(n as f32 * 0.5),
        DataType::Float64 => Value::Float64((n as f64 / 10.0).sin() * 100.0),
        DataType::String => Value::String(format!("state {}", n % 100)),
        // One second a tick from 2026-01-01T00:00:00Z, wrapping after about 30 years.
        DataType::DateTime => Value::DateTime(1_767_225_600_000 + n % (1 << 30) * 1000),
        array => {
            let element = array.element();
            let mut values = Array::with_capacity(array, ARRAY_LEN as usize);
            for i in 0..ARRAY_LEN {
                // Of the element type by construction, which push accepts.
                let _ = values.push(sim_value(element, n.wrapping_add(i)));
            }
            values.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opcua::convert::to_value;

    #[test]
    fn changing_values_have_their_type_and_change_every_tick() {
        for dt in DataType::ALL {
            let (a, b) = (value_at(dt, 1), value_at(dt, 2));
            assert_ne!(a, b, "{dt}");
            assert_eq!(to_value(dt, &a).map(|v| v.datatype()), Ok(dt));
        }
        // Every element of an array changes on every tick.
        for dt in DataType::SCALARS {
            let array = dt.array().unwrap();
            let (Value::Array(a), Value::Array(b)) = (sim_value(array, 7), sim_value(array, 8))
            else {
                panic!("{array} is not an array value");
            };
            assert_eq!(a.len(), ARRAY_LEN as usize);
            assert!(a.iter().zip(b.iter()).all(|(x, y)| x != y), "{array}");
        }
        assert_ne!(bulk_value(3, 1), bulk_value(3, 2));
        assert_ne!(bulk_value(3, 1), bulk_value(4, 1));
        // No overflow however long the server runs (overflow panics in debug builds).
        for n in (0..1000).chain([u64::MAX - 1, u64::MAX, 1 << 63, u64::from(u32::MAX) + 7]) {
            for dt in DataType::ALL {
                value_at(dt, n);
            }
        }
    }
}
