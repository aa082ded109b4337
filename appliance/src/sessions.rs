//! The Sparkplug sessions that run, one per MQTT connection: the embedded broker's first,
//! then each northbound connection, from the configuration file when it lists any, else
//! from the model (which the web UI edits).
//!
//! A model change may add, remove or change northbound connections. [`Sessions::switch`]
//! keeps every session whose connection is unchanged (it gets the new model through its
//! mailbox, like any sink), ends the sessions of removed or changed connections (NDEATH,
//! DISCONNECT), and starts sessions for new or changed ones with the new model. The hub
//! seeds a new session's mailbox with every last value and every online device, so its
//! births carry values.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use uns_model::{Model, Store};

use crate::hub::{Mailbox, Write};
use crate::pipeline::SinkModel;
use crate::sparkplug_node::{self, ConnectionConfig, NodeModel};

/// What every session shares.
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<Mutex<Store>>,
    pub writes: mpsc::Sender<Write>,
    pub status: Arc<web::StatusBoard>,
    /// Where tasks are spawned: changes arrive on blocking threads.
    pub runtime: tokio::runtime::Handle,
}

struct Running {
    connection: ConnectionConfig,
    mailbox: Arc<Mailbox>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The running sessions, in the hub's mailbox order.
pub struct Sessions {
    shared: Shared,
    /// The session on the embedded broker: always there (but in tests), never changed.
    embedded: Option<ConnectionConfig>,
    /// Connections from the configuration file; when there are any, the model's are unused.
    from_file: Vec<ConnectionConfig>,
    running: Vec<Running>,
    /// Ended sessions still saying goodbye (NDEATH), awaited at shutdown.
    ending: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("running", &self.running.len())
            .finish()
    }
}

impl Sessions {
    pub fn new(
        shared: Shared,
        embedded: Option<ConnectionConfig>,
        from_file: Vec<ConnectionConfig>,
    ) -> Sessions {
        Sessions {
            shared,
            embedded,
            from_file,
            running: Vec::new(),
            ending: Vec::new(),
        }
    }

    /// The connections `model` wants, embedded first.
    pub fn wanted(&self, model: &Model) -> Vec<ConnectionConfig> {
        let mut out: Vec<ConnectionConfig> = self.embedded.iter().cloned().collect();
        if !self.from_file.is_empty() {
            out.extend(self.from_file.iter().cloned());
            return out;
        }
        for nb in model.northbound.iter().filter(|nb| nb.enabled) {
            match connection_of(nb) {
                Ok(c) => out.push(c),
                // Validated when stored: only a store written by hand gets here.
                Err(e) => tracing::error!("northbound {:?} not started: {e}", nb.name),
            }
        }
        out
    }

    /// Makes `wanted` the running sessions, `models` holding each one's part of the new
    /// model (`tag_count` tags). Returns each session's mailbox with the model part it is
    /// still to get through it: `None` for a session started here with its part.
    pub fn switch(
        &mut self,
        wanted: Vec<ConnectionConfig>,
        models: Vec<SinkModel>,
        tag_count: usize,
    ) -> Vec<(Arc<Mailbox>, Option<SinkModel>)> {
        let mut old = std::mem::take(&mut self.running);
        let mut out = Vec::with_capacity(wanted.len());
        for (connection, model) in wanted.into_iter().zip(models) {
            if let Some(i) = old.iter().position(|r| r.connection == connection) {
                let running = old.swap_remove(i);
                out.push((running.mailbox.clone(), Some(model)));
                self.running.push(running);
                continue;
            }
            let SinkModel::Sparkplug(model) = model else {
                tracing::error!("internal error: no Sparkplug model for {}", connection.name);
                continue;
            };
            let mailbox = Mailbox::new(tag_count);
            out.push((mailbox.clone(), None));
            self.running.push(self.start(connection, *model, mailbox));
        }
        // What is left was removed or changed: its session ends.
        for running in old {
            tracing::info!(connection = %running.connection.name, "ending the Sparkplug session: its connection was removed or changed");
            let _ = running.stop.send(true);
            let name = running.connection.name.clone();
            if !self.running.iter().any(|r| r.connection.name == name) {
                self.shared
                    .status
                    .update(|s| s.sessions.retain(|entry| entry.name != name));
            }
            self.ending.push(running.task);
        }
        self.ending.retain(|task| !task.is_finished());
        out
    }

    fn start(
        &self,
        connection: ConnectionConfig,
        model: NodeModel,
        mailbox: Arc<Mailbox>,
    ) -> Running {
        let (stop, stopped) = watch::channel(false);
        let shared = &self.shared;
        let task = shared.runtime.spawn(sparkplug_node::run(
            connection.clone(),
            model,
            shared.store.clone(),
            mailbox.clone(),
            shared.writes.clone(),
            shared.status.clone(),
            stopped,
        ));
        Running {
            connection,
            mailbox,
            stop,
            task,
        }
    }

    /// Ends every session (NDEATH first) and returns their tasks to await.
    pub fn stop_all(&mut self) -> Vec<JoinHandle<()>> {
        let mut tasks = std::mem::take(&mut self.ending);
        for running in self.running.drain(..) {
            let _ = running.stop.send(true);
            tasks.push(running.task);
        }
        tasks
    }
}

/// The session settings of a northbound connection of the model.
pub fn connection_of(nb: &uns_model::Northbound) -> Result<ConnectionConfig, String> {
    Ok(ConnectionConfig {
        name: format!("northbound/{}", nb.name),
        servers: nb
            .servers
            .iter()
            .map(|url| uns_model::parse_server(url))
            .collect::<Result<_, _>>()?,
        client_id: nb.client_id.clone(),
        credentials: nb
            .username
            .clone()
            .map(|u| (u, nb.password.clone().unwrap_or_default())),
        ca_pem: nb.ca_pem.clone().map(String::into_bytes),
        pinned_primary_host: Some(nb.primary_host_id.clone()),
    })
}
