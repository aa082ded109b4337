//! The model-dependent part of the appliance, and how a changed model replaces it while the
//! broker, the web server and the MQTT connections stay up.
//!
//! What a model builds: the drivers, the hub's tables (tag → device, deadbands), the last
//! values, each Sparkplug session's metric set and the UNS topics. [`plan`] compares a new
//! model with a [`Fingerprint`] of the running one and prepares a [`hub::Reload`]: drivers of
//! devices whose settings and tags are unchanged keep running (a PLC connection is not
//! dropped because another device got a tag), the others stop and start again; tags that
//! persist (same device, location, name and type) keep their last value; each sink gets its
//! part of the new model through its mailbox, ahead of any sample numbered by it. The hub
//! switches in one step.
//!
//! [`Pipeline`] is the web UI's [`web::ModelSource`]. `apply` stores a model (one
//! transaction; if that fails nothing changed) and hands it to the hub, waiting until the hub
//! runs it. Applies are serialised, and refused once shutdown began. A model stored by
//! another process (`sparkedge import` while running) is noticed by [`watch_store`], which
//! compares the store's model version every couple of seconds, and by `load`.
//!
//! Memory: the running model is not kept (100,000 tags are about 18 MB); the fingerprint is
//! 8 bytes a tag. While a change is applied, the new model exists until the plan has taken
//! what it needs; the drivers to start take their devices and tags out of it.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use uns_model::{DriverConfig, Model, Store, StoreError};

use crate::hub::{self, NONE};
use crate::sessions::Sessions;
use crate::sparkplug_node::{self, NodeModel};
use crate::uns::{self, UnsModel};

/// How often the store's model version is compared with the running one.
const WATCH_PERIOD: Duration = Duration::from_secs(2);

/// How long `apply` waits for the hub to take a model. The hub takes it between two events,
/// within milliseconds, unless the process is overloaded.
const TAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// A sink's part of a model, delivered through its mailbox.
#[derive(Debug)]
pub enum SinkModel {
    Sparkplug(Box<NodeModel>),
    Uns(Box<UnsModel>),
}

impl SinkModel {
    /// This model followed by `later`, for a sink that took neither yet.
    pub fn then(self, later: SinkModel) -> SinkModel {
        match (self, later) {
            (SinkModel::Uns(earlier), SinkModel::Uns(later)) => {
                SinkModel::Uns(Box::new(earlier.then(*later)))
            }
            // A session's part is whole in itself: it replaces the one before.
            (_, later) => later,
        }
    }
}

/// The sinks a model is delivered to, in the order of the hub's mailboxes: the Sparkplug
/// sessions (embedded broker first, then each northbound connection), then the UNS publisher.
#[derive(Clone, Copy, Debug)]
pub struct Sinks {
    pub sparkplug: usize,
    pub uns: bool,
}

impl Sinks {
    pub fn count(&self) -> usize {
        self.sparkplug + usize::from(self.uns)
    }
}

/// What the next model is compared with: enough of the running model to tell which tags
/// persist and which drivers may keep running, without keeping the model.
#[derive(Debug, Default)]
pub struct Fingerprint {
    /// Per tag: a hash of what makes it the same tag in another model (device, location,
    /// name, type); 0 for a tag of a disabled device, whose last value is not carried.
    tags: Vec<u64>,
    devices: Vec<DevicePrint>,
}

#[derive(Debug, PartialEq)]
struct DevicePrint {
    name: String,
    /// A hash of everything its driver is built from: the device, its tags in order and
    /// their scan classes. `None` when disabled.
    driver: Option<u64>,
    /// The serial line or RTU gateway it shares with other devices, in one driver task.
    line: Option<String>,
}

/// Feeds a value's `Debug` text to a hasher, so a type without `Hash` (floats) can be
/// compared by hash: two tags with the same text read the same way.
fn hash_debug(hasher: &mut DefaultHasher, value: &impl std::fmt::Debug) {
    struct Feed<'a>(&'a mut DefaultHasher);
    impl std::fmt::Write for Feed<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.write(s.as_bytes());
            Ok(())
        }
    }
    let _ = std::fmt::write(&mut Feed(hasher), format_args!("{value:?}"));
}

/// The key of the driver task a device shares with others (see `southbound::spawn_model`).
fn line_key(driver: &DriverConfig) -> Option<String> {
    match driver {
        DriverConfig::ModbusRtu { path, .. } => Some(format!("serial {path}")),
        DriverConfig::ModbusRtuTcp { host, port, .. } => {
            Some(format!("gateway {}:{port}", host.to_ascii_lowercase()))
        }
        _ => None,
    }
}

impl Fingerprint {
    pub fn of(model: &Model) -> Fingerprint {
        let index: HashMap<&str, usize> = model
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.as_str(), i))
            .collect();
        let mut drivers: Vec<DefaultHasher> = model
            .devices
            .iter()
            .map(|d| {
                let mut h = DefaultHasher::new();
                hash_debug(&mut h, d);
                h
            })
            .collect();
        let tags = model
            .tags
            .iter()
            .map(|t| {
                let Some(&d) = index.get(t.device.as_str()) else {
                    return 0;
                };
                hash_debug(&mut drivers[d], t);
                if let Some(class) = t.scan_class() {
                    hash_debug(
                        &mut drivers[d],
                        &model.scan_classes.iter().find(|c| c.name == class),
                    );
                }
                if !model.devices[d].enabled {
                    return 0;
                }
                let mut h = DefaultHasher::new();
                (&t.device, &t.location, &t.name, t.datatype.as_str()).hash(&mut h);
                h.finish().max(1)
            })
            .collect();
        let devices = model
            .devices
            .iter()
            .zip(drivers)
            .map(|(d, h)| DevicePrint {
                name: d.name.clone(),
                driver: d.enabled.then(|| h.finish()),
                line: line_key(&d.driver),
            })
            .collect();
        Fingerprint { tags, devices }
    }

    /// Per shared line: its enabled devices in order.
    fn lines(&self) -> HashMap<&str, Vec<&DevicePrint>> {
        let mut lines: HashMap<&str, Vec<&DevicePrint>> = HashMap::new();
        for d in &self.devices {
            if let (Some(line), Some(_)) = (&d.line, d.driver) {
                lines.entry(line).or_default().push(d);
            }
        }
        lines
    }
}

/// A prepared model change.
#[derive(Debug)]
pub struct Plan {
    /// The new model's fingerprint, for the change after this one.
    pub print: Fingerprint,
    pub reload: hub::Reload,
    /// Each sink's part of the new model, in [`Sinks`] order.
    pub sink_models: Vec<SinkModel>,
    /// Drivers kept, started and stopped, for the log.
    pub kept: usize,
    pub started: usize,
    pub stopped: usize,
}

/// Prepares the change from the running model (`running`) to `model`, numbered
/// `generation`. `known_aliases` are the Sparkplug aliases stored by earlier runs (at start;
/// a running session keeps its own). Takes the model apart for the drivers it starts.
pub fn plan(
    running: &Fingerprint,
    model: Model,
    generation: u64,
    sinks: Sinks,
    known_aliases: HashMap<(String, String), u64>,
    data_dir: &std::path::Path,
) -> Plan {
    let print = Fingerprint::of(&model);
    // Empty at start: nothing to look up, and 100,000 entries spared at the memory peak.
    let by_identity: HashMap<u64, u32> = match running.tags.is_empty() {
        true => HashMap::new(),
        false => print
            .tags
            .iter()
            .enumerate()
            .filter(|(_, id)| **id != 0)
            .map(|(i, &id)| (id, i as u32))
            .collect(),
    };
    let tags: Vec<u32> = running
        .tags
        .iter()
        .map(|id| match id {
            0 => NONE,
            id => by_identity.get(id).copied().unwrap_or(NONE),
        })
        .collect();
    drop(by_identity);

    // A driver keeps running when its device is unchanged and so is everything else its
    // task serves (the other devices on a shared line).
    let new_index: HashMap<&str, usize> = print
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    let (old_lines, new_lines) = (running.lines(), print.lines());
    let kept: Vec<u32> = running
        .devices
        .iter()
        .map(|old| {
            let Some(&n) = new_index.get(old.name.as_str()) else {
                return NONE;
            };
            let new = &print.devices[n];
            let same = old.driver.is_some()
                && old == new
                && old
                    .line
                    .as_deref()
                    .is_none_or(|l| old_lines.get(l) == new_lines.get(l));
            if same { n as u32 } else { NONE }
        })
        .collect();
    drop((old_lines, new_lines, new_index));
    let mut starts: Vec<bool> = model.devices.iter().map(|d| d.enabled).collect();
    for &n in kept.iter().filter(|&&n| n != NONE) {
        starts[n as usize] = false;
    }
    let kept_count = kept.iter().filter(|&&n| n != NONE).count();
    let started = starts.iter().filter(|&&s| s).count();
    let stopped = running
        .devices
        .iter()
        .filter(|d| d.driver.is_some())
        .count()
        - kept_count;

    let device_index: HashMap<&str, u32> = model
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i as u32))
        .collect();
    let tag_devices: Vec<u32> = model
        .tags
        .iter()
        .map(|t| device_index.get(t.device.as_str()).copied().unwrap_or(NONE))
        .collect();
    drop(device_index);
    let deadbands: Vec<f64> = if model.tags.iter().any(|t| t.deadband_abs().is_some()) {
        model
            .tags
            .iter()
            .map(|t| t.deadband_abs().unwrap_or(0.0))
            .collect()
    } else {
        Vec::new()
    };

    let mut sink_models = Vec::with_capacity(sinks.count());
    if sinks.sparkplug > 0 {
        let (config, map) = sparkplug_node::session_config(&model, known_aliases);
        let map = Arc::new(map);
        for _ in 1..sinks.sparkplug {
            sink_models.push(SinkModel::Sparkplug(Box::new(NodeModel {
                config: config.clone(),
                map: map.clone(),
                generation,
            })));
        }
        sink_models.push(SinkModel::Sparkplug(Box::new(NodeModel {
            config,
            map,
            generation,
        })));
    }
    if sinks.uns {
        let model = UnsModel::new(uns::tags(&model), tags.clone());
        sink_models.push(SinkModel::Uns(Box::new(model)));
    }

    // The drivers to start take their devices and tags out of the model.
    let start_devices: Vec<u32> = (0..starts.len() as u32)
        .filter(|&d| starts[d as usize])
        .collect();
    let start_tags: Vec<u32> = (0..tag_devices.len() as u32)
        .filter(|&t| {
            let d = tag_devices[t as usize];
            d != NONE && starts[d as usize]
        })
        .collect();
    let device_count = model.devices.len();
    let device_info: Vec<hub::DeviceInfo> = model
        .devices
        .iter()
        .map(|d| hub::DeviceInfo {
            name: d.name.clone(),
            driver: driver_name(&d.driver).to_owned(),
            enabled: d.enabled,
        })
        .collect();
    let Model {
        namespace,
        sparkplug,
        scan_classes,
        devices,
        tags: model_tags,
        ..
    } = model;
    let start = Model {
        namespace,
        sparkplug,
        northbound: Vec::new(),
        scan_classes,
        areas: Vec::new(),
        devices: devices
            .into_iter()
            .zip(&starts)
            .filter_map(|(d, &s)| s.then_some(d))
            .collect(),
        tags: model_tags
            .into_iter()
            .zip(&tag_devices)
            .filter_map(|(t, &d)| (d != NONE && starts[d as usize]).then_some(t))
            .collect(),
    };
    let opcua_pki = crate::opcua_cli::pki_for(&start, data_dir);
    Plan {
        print,
        reload: hub::Reload {
            generation,
            tags,
            kept,
            start,
            start_devices,
            start_tags,
            opcua_pki,
            device_count,
            devices: device_info,
            tag_devices,
            deadbands,
            // Filled by whoever knows the mailboxes (the pipeline's sessions).
            sinks: Vec::new(),
            taken: None,
        },
        sink_models,
        kept: kept_count,
        started,
        stopped,
    }
}

/// The `driver = "..."` name of a device's driver, as the model file spells it.
fn driver_name(driver: &uns_model::DriverConfig) -> &'static str {
    use uns_model::DriverConfig::*;
    match driver {
        Simulator { .. } => "simulator",
        ModbusTcp { .. } => "modbus-tcp",
        ModbusRtu { .. } => "modbus-rtu",
        ModbusRtuTcp { .. } => "modbus-rtu-tcp",
        OpcUa { .. } => "opc-ua",
    }
}

/// The running model's keeper: the web UI's [`web::ModelSource`].
#[derive(Debug)]
pub struct Pipeline {
    /// Held for a whole change, which serialises changes.
    state: Mutex<State>,
    store: Arc<Mutex<Store>>,
    hub: mpsc::UnboundedSender<hub::Reload>,
    /// The UNS publisher's mailbox, when it publishes.
    uns: Option<Arc<hub::Mailbox>>,
    data_dir: PathBuf,
}

#[derive(Debug)]
struct State {
    /// The Sparkplug sessions: a model may add or remove northbound connections.
    sessions: Sessions,
    running: Fingerprint,
    /// The store's model version of the running model.
    version: u64,
    generation: u64,
    /// Shutdown began: no more changes.
    closed: bool,
}

impl Pipeline {
    /// The keeper of the models, handing changes to the hub over `hub`; nothing runs
    /// until [`Pipeline::start`].
    pub fn new(
        store: Arc<Mutex<Store>>,
        hub: mpsc::UnboundedSender<hub::Reload>,
        sessions: Sessions,
        uns: Option<Arc<hub::Mailbox>>,
        data_dir: PathBuf,
    ) -> Pipeline {
        Pipeline {
            state: Mutex::new(State {
                sessions,
                running: Fingerprint::default(),
                version: 0,
                generation: 0,
                closed: false,
            }),
            store,
            hub,
            uns,
            data_dir,
        }
    }

    /// Start-up, a change from nothing: starts the Sparkplug sessions with `model` (store
    /// version `version`) and returns the hub's first reload, to apply before the hub runs,
    /// and the UNS publisher's part of the model, which it starts with.
    pub fn start(
        &self,
        model: Model,
        version: u64,
        known_aliases: HashMap<(String, String), u64>,
    ) -> (hub::Reload, Option<SinkModel>) {
        let mut state = self.state();
        let generation = 1;
        let mut plan = self.prepare(&mut state, model, generation, known_aliases);
        // The publisher's mailbox is new to the hub, which seeds it instead.
        let uns = match (&self.uns, plan.reload.sinks.last_mut()) {
            (Some(_), Some((_, part))) => part.take(),
            _ => None,
        };
        state.running = plan.print;
        state.version = version;
        state.generation = generation;
        (plan.reload, uns)
    }

    /// Plans `model` as generation `generation` and lets the sessions follow its northbound
    /// connections: the plan's reload lists every mailbox with its part of the model.
    fn prepare(
        &self,
        state: &mut State,
        model: Model,
        generation: u64,
        known_aliases: HashMap<(String, String), u64>,
    ) -> Plan {
        let wanted = state.sessions.wanted(&model);
        let tag_count = model.tags.len();
        let sinks = Sinks {
            sparkplug: wanted.len(),
            uns: self.uns.is_some(),
        };
        let mut plan = plan(
            &state.running,
            model,
            generation,
            sinks,
            known_aliases,
            &self.data_dir,
        );
        let mut parts = std::mem::take(&mut plan.sink_models);
        let uns_part = if self.uns.is_some() {
            parts.pop()
        } else {
            None
        };
        let mut mailboxes = state.sessions.switch(wanted, parts, tag_count);
        if let Some(mailbox) = &self.uns {
            mailboxes.push((mailbox.clone(), uns_part));
        }
        plan.reload.sinks = mailboxes;
        plan
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses every later change (a change under way finishes first) and ends every
    /// Sparkplug session; returns their tasks, which end after their NDEATH. Blocks.
    pub fn close(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut state = self.state();
        state.closed = true;
        state.sessions.stop_all()
    }

    /// Runs the stored model if it is not the one running (another process stored it).
    /// Blocks.
    pub fn catch_up(&self) -> Result<(), String> {
        let mut state = self.state();
        if state.closed {
            return Ok(());
        }
        self.catch_up_locked(&mut state)
    }

    fn catch_up_locked(&self, state: &mut State) -> Result<(), String> {
        let (version, model) = {
            let store = self.store();
            let version = store.model_version().map_err(|e| e.to_string())?;
            if version == state.version {
                return Ok(());
            }
            // Stored by `replace_model`, so it was valid when stored.
            let model = store.load_model().map_err(|e| e.to_string())?;
            (version, model.ok_or("the store holds no model")?)
        };
        tracing::info!("the stored model changed (version {version}): applying it");
        self.hand_over(state, model, version)
    }

    /// Hands `model` (store version `version`) to the hub and waits until it runs it.
    fn hand_over(&self, state: &mut State, model: Model, version: u64) -> Result<(), String> {
        let began = Instant::now();
        let (tag_count, device_count) = (model.tags.len(), model.devices.len());
        let generation = state.generation + 1;
        let mut plan = self.prepare(state, model, generation, HashMap::new());
        let (taken, answer) = std::sync::mpsc::sync_channel(1);
        plan.reload.taken = Some(taken);
        let planned = began.elapsed();
        self.hub
            .send(plan.reload)
            .map_err(|_| "sparkedge is shutting down".to_owned())?;
        // From here on the hub runs this model, now or when it gets to it.
        state.running = plan.print;
        state.version = version;
        state.generation = generation;
        match answer.recv_timeout(TAKE_TIMEOUT) {
            Ok(()) => {
                tracing::info!(
                    version,
                    tags = tag_count,
                    devices = device_count,
                    drivers_kept = plan.kept,
                    drivers_started = plan.started,
                    drivers_stopped = plan.stopped,
                    "model applied in {} ms (planned in {} ms)",
                    began.elapsed().as_millis(),
                    planned.as_millis()
                );
                Ok(())
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "the model was stored, but the running appliance did not take it within {} s; \
                 it will when it can",
                TAKE_TIMEOUT.as_secs()
            )),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err("the model was stored, but the running appliance has stopped".to_owned())
            }
        }
    }
}

impl web::ModelSource for Pipeline {
    fn load(&self) -> Result<Arc<Model>, String> {
        let mut state = self.state();
        // A model another process stored runs before it is shown: the page's tag numbers
        // must be those of the live values. Another store may land between running it and
        // reading it back, so what is read must still carry the running version.
        for _ in 0..3 {
            if !state.closed {
                self.catch_up_locked(&mut state)
                    .map_err(|e| format!("the stored model was not applied: {e}"))?;
            }
            let store = self.store();
            let model = store.load_model().map_err(|e| e.to_string())?;
            let version = store.model_version().map_err(|e| e.to_string())?;
            if version == state.version || state.closed {
                return model
                    .map(Arc::new)
                    .ok_or_else(|| "the store holds no model".to_owned());
            }
        }
        Err("the model is being replaced by another process; try again".to_owned())
    }

    fn apply(&self, model: Model) -> Result<(), web::ApplyError> {
        let mut state = self.state();
        if state.closed {
            return Err(web::ApplyError::Failed(
                "sparkedge is shutting down; the change was not applied".to_owned(),
            ));
        }
        let version = {
            let mut store = self.store();
            let before = store
                .model_version()
                .map_err(|e| web::ApplyError::Failed(format!("nothing changed: {e}")))?;
            store.replace_model(&model).map_err(|e| match e {
                StoreError::Invalid(errors) => web::ApplyError::Invalid(errors),
                e => web::ApplyError::Failed(format!(
                    "the model was not stored, nothing changed: {e}"
                )),
            })?;
            // Should another process store a model in between, the store's version differs
            // from this one and the watcher applies the newest.
            before + 1
        };
        self.hand_over(&mut state, model, version)
            .map_err(web::ApplyError::Failed)
    }
}

/// Applies a model stored by another process, checking the store's model version every
/// [`WATCH_PERIOD`], until `shutdown`.
pub async fn watch_store(pipeline: Arc<Pipeline>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(WATCH_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Said once, not every two seconds.
    let mut last_error = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::stopped(&mut shutdown) => return,
        }
        let p = pipeline.clone();
        let result = tokio::task::spawn_blocking(move || p.catch_up())
            .await
            .unwrap_or_else(|e| Err(format!("the store check failed: {e}")));
        match result {
            Err(e) if last_error.as_ref() != Some(&e) => {
                tracing::error!("the model stored by another process was not applied: {e}");
                last_error = Some(e);
            }
            Err(_) => {}
            Ok(()) => last_error = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use web::ModelSource;

    const HEAD: &str = r#"
[namespace]
enterprise = "acme"
site = "plant"
[[area]]
name = "a"
[[area.line]]
name = "l"
"#;

    fn tcp(name: &str, host: &str) -> String {
        format!("[[device]]\nname = \"{name}\"\ndriver = \"modbus-tcp\"\nhost = \"{host}\"\n")
    }

    fn gateway(name: &str, unit: u8) -> String {
        format!(
            "[[device]]\nname = \"{name}\"\ndriver = \"modbus-rtu-tcp\"\nhost = \"gw\"\nport = 4001\nunit = {unit}\n"
        )
    }

    fn tag(device: &str, name: &str, datatype: &str, address: &str) -> String {
        format!(
            "[[tag]]\ndevice = \"{device}\"\nlocation = \"a/l\"\nname = \"{name}\"\ndatatype = \"{datatype}\"\naddress = \"{address}\"\n"
        )
    }

    fn model(parts: &[String]) -> Model {
        let text = String::from(HEAD) + &parts.concat();
        uns_model::file::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    const NO_SINKS: Sinks = Sinks {
        sparkplug: 0,
        uns: false,
    };

    fn plan_from(before: &Model, after: Model, sinks: Sinks) -> Plan {
        plan(
            &Fingerprint::of(before),
            after,
            2,
            sinks,
            HashMap::new(),
            std::path::Path::new("/nonexistent"),
        )
    }

    fn names(model: &Model) -> Vec<&str> {
        model.devices.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn unchanged_drivers_keep_running_and_persisting_tags_their_last_value() {
        let before = model(&[
            tcp("p1", "10.0.0.1"),
            tcp("p2", "10.0.0.2"),
            tag("p1", "t1", "uint16", "hr:1"),
            tag("p1", "t2", "uint16", "hr:2"),
            tag("p2", "u1", "uint16", "hr:1"),
        ]);
        // p3 is new and first; p1 gets a tag and t2 a new type; p2 is as it was.
        let after = model(&[
            tcp("p3", "10.0.0.3"),
            tcp("p1", "10.0.0.1"),
            tcp("p2", "10.0.0.2"),
            tag("p3", "v", "uint16", "hr:1"),
            tag("p1", "t1", "uint16", "hr:1"),
            tag("p1", "t2", "int16", "hr:2"),
            tag("p1", "t3", "uint16", "hr:3"),
            tag("p2", "u1", "uint16", "hr:1"),
        ]);
        let p = plan_from(&before, after, NO_SINKS);
        let r = &p.reload;
        assert_eq!(
            r.tags,
            [1, NONE, 4],
            "t2 changed type: its old value is not carried"
        );
        assert_eq!(r.kept, [NONE, 2]);
        assert_eq!((p.kept, p.started, p.stopped), (1, 2, 1));
        assert_eq!(names(&r.start), ["p3", "p1"]);
        assert_eq!(r.start_devices, [0, 1]);
        assert_eq!(r.start_tags, [0, 1, 2, 3]);
        assert_eq!(r.start.tags.len(), 4);
        assert_eq!(r.tag_devices, [0, 1, 1, 1, 2]);
        assert_eq!(r.device_count, 3);
        assert!(r.deadbands.is_empty());

        // The same model again: every driver keeps running, every tag its value.
        let again = plan(
            &p.print,
            model(&[
                tcp("p3", "10.0.0.3"),
                tcp("p1", "10.0.0.1"),
                tcp("p2", "10.0.0.2"),
                tag("p3", "v", "uint16", "hr:1"),
                tag("p1", "t1", "uint16", "hr:1"),
                tag("p1", "t2", "int16", "hr:2"),
                tag("p1", "t3", "uint16", "hr:3"),
                tag("p2", "u1", "uint16", "hr:1"),
            ]),
            3,
            NO_SINKS,
            HashMap::new(),
            std::path::Path::new("/nonexistent"),
        );
        assert_eq!(again.reload.tags, [0, 1, 2, 3, 4]);
        assert_eq!(again.reload.kept, [0, 1, 2]);
        assert!(again.reload.start.devices.is_empty());
    }

    #[test]
    fn devices_sharing_a_line_restart_together_and_disabled_ones_carry_nothing() {
        let before = model(&[
            gateway("r1", 1),
            gateway("r2", 2),
            tcp("t", "10.0.0.9"),
            tag("r1", "a", "uint16", "hr:1"),
            tag("r2", "b", "uint16", "hr:1"),
            tag("t", "c", "uint16", "hr:1"),
        ]);
        let mut after = model(&[
            gateway("r1", 1),
            gateway("r2", 2),
            tcp("t", "10.0.0.9"),
            tag("r1", "a", "uint16", "hr:1"),
            tag("r2", "b", "uint16", "hr:5"),
            tag("t", "c", "uint16", "hr:1"),
        ]);
        after.devices[2].enabled = false;
        let p = plan_from(&before, after, NO_SINKS);
        // r2's tag moved: its line task restarts, r1 with it; t is disabled.
        assert_eq!(p.reload.kept, [NONE, NONE, NONE]);
        assert_eq!(names(&p.reload.start), ["r1", "r2"]);
        assert_eq!(p.reload.tags, [0, 1, NONE]);
        assert_eq!((p.kept, p.started, p.stopped), (0, 2, 3));
    }

    #[test]
    fn every_session_shares_one_metric_map_and_the_uns_learns_where_tags_went() {
        let before = model(&[tcp("p", "h"), tag("p", "x", "uint16", "hr:1")]);
        let after = model(&[
            tcp("p", "h"),
            tag("p", "w", "uint16", "hr:2"),
            tag("p", "x", "uint16", "hr:1"),
        ]);
        let sinks = Sinks {
            sparkplug: 2,
            uns: true,
        };
        let p = plan_from(&before, after, sinks);
        let [
            SinkModel::Sparkplug(a),
            SinkModel::Sparkplug(b),
            SinkModel::Uns(u),
        ] = &p.sink_models[..]
        else {
            panic!("{:?}", p.sink_models);
        };
        assert!(Arc::ptr_eq(&a.map, &b.map));
        assert_eq!((a.generation, a.config.devices[0].metrics.len()), (2, 2));
        assert!(format!("{u:?}").contains("moved: [1]"), "{u:?}");
    }

    /// A hub that takes every model at once and reports each generation it took.
    fn fake_hub() -> (
        mpsc::UnboundedSender<hub::Reload>,
        std::sync::mpsc::Receiver<u64>,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel::<hub::Reload>();
        let (seen_tx, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            while let Some(r) = rx.blocking_recv() {
                let _ = seen_tx.send(r.generation);
                if let Some(taken) = r.taken {
                    let _ = taken.send(());
                }
            }
        });
        (tx, seen)
    }

    /// A pipeline running `first` (generation 1) without sinks.
    fn pipeline(first: &Model) -> (Pipeline, std::sync::mpsc::Receiver<u64>) {
        let mut store = Store::open_in_memory().unwrap();
        store.replace_model(first).unwrap();
        let store = Arc::new(Mutex::new(store));
        let (hub, seen) = fake_hub();
        // Sessions start tasks on a runtime; with no connection none is started.
        static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> =
            std::sync::LazyLock::new(|| tokio::runtime::Runtime::new().unwrap());
        let shared = crate::sessions::Shared {
            store: store.clone(),
            writes: mpsc::channel(1).0,
            status: Arc::default(),
            runtime: RUNTIME.handle().clone(),
        };
        let p = Pipeline::new(
            store,
            hub,
            Sessions::new(shared, None, Vec::new()),
            None,
            PathBuf::from("/nonexistent"),
        );
        p.start(first.clone(), 1, HashMap::new());
        (p, seen)
    }

    #[test]
    fn apply_stores_the_model_and_returns_once_the_hub_runs_it() {
        let first = model(&[tcp("p", "h"), tag("p", "x", "uint16", "hr:1")]);
        let (p, seen) = pipeline(&first);
        let second = model(&[tcp("p", "h"), tag("p", "y", "uint16", "hr:1")]);
        p.apply(second.clone()).unwrap();
        assert_eq!(seen.try_recv(), Ok(2), "taken before apply returned");
        assert_eq!(*p.load().unwrap(), second);
        assert_eq!(p.store().model_version().unwrap(), 2);

        // Invalid: nothing stored, nothing handed over.
        let mut bad = second.clone();
        bad.tags[0].address = "nowhere".into();
        match p.apply(bad) {
            Err(web::ApplyError::Invalid(errors)) => {
                assert!(errors.to_string().contains("tag[0].address"), "{errors}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.store().model_version().unwrap(), 2);
        assert!(seen.try_recv().is_err());

        // A model stored by another process is applied before it is shown.
        p.store().replace_model(&first).unwrap();
        assert_eq!(*p.load().unwrap(), first);
        assert_eq!(seen.try_recv(), Ok(3));
        p.catch_up().unwrap();
        assert!(seen.try_recv().is_err(), "applied once");

        // Shutting down: refused, and nothing stored.
        p.close();
        match p.apply(second) {
            Err(web::ApplyError::Failed(why)) => assert!(why.contains("shutting down"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.store().model_version().unwrap(), 3);
    }

    #[test]
    fn applies_from_two_threads_run_one_after_the_other() {
        let first = model(&[tcp("p", "h"), tag("p", "x", "uint16", "hr:1")]);
        let (p, seen) = pipeline(&first);
        let p = Arc::new(p);
        let threads: Vec<_> = ["y", "z"]
            .into_iter()
            .map(|name| {
                let p = p.clone();
                let m = model(&[tcp("p", "h"), tag("p", name, "uint16", "hr:1")]);
                std::thread::spawn(move || p.apply(m))
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let generations: Vec<u64> = seen.try_iter().collect();
        assert_eq!(generations, [2, 3]);
        assert_eq!(p.store().model_version().unwrap(), 3);
    }
}
