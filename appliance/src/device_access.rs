//! The web's access to the devices ([`web::DeviceAccess`]), made of southbound's probes and
//! the hub's write path.
//!
//! Probes ([`southbound::probe`]) connect on their own, apart from the running drivers, so
//! a device can be tested before it is saved. Writes go into the hub's write channel, the
//! one Sparkplug commands use, so a value written from the web meets the same driver, the
//! same checks and the same read-back as one written by SCADA.

use std::path::PathBuf;
use std::sync::Arc;

use crate::hub::Write;
use southbound::WriteCommand;
use southbound::opcua::pki::Pki;
use southbound::probe::{self, Registers};
use tokio::sync::{OnceCell, mpsc, oneshot};
use uns_model::{Device, DriverConfig, NodeAddress, OpcUaSecurityPolicy, Tag, TagId, Value};
use web::devices::{
    BrowseLevel, BrowsedNode, DecodedOrder, DeviceCall, NodeClass, PreviewRequest, RegisterData,
    RegisterPreview, TagReading,
};

#[derive(Debug)]
pub struct ApplianceDevices {
    /// The appliance's OPC UA certificate folder (`<data dir>/opcua-pki`).
    pki_dir: PathBuf,
    /// Opened on the first probe of a device that signs or encrypts: a first open makes an
    /// RSA key, which nobody testing a Modbus device should wait for.
    pki: OnceCell<Pki>,
    /// The hub's write channel.
    writes: mpsc::Sender<Write>,
    /// Its model count is the hub's model generation, which a write carries.
    live: Arc<web::LiveValues>,
}

impl ApplianceDevices {
    pub fn new(
        pki_dir: PathBuf,
        pki: Option<Pki>,
        writes: mpsc::Sender<Write>,
        live: Arc<web::LiveValues>,
    ) -> ApplianceDevices {
        ApplianceDevices {
            pki_dir,
            pki: OnceCell::new_with(pki),
            writes,
            live,
        }
    }

    /// The certificate folder when `device` needs one (an OPC UA device with security).
    async fn pki_for(&self, device: &Device) -> Result<Option<&Pki>, String> {
        let secure = matches!(
            device.driver,
            DriverConfig::OpcUa { security_policy, .. } if security_policy != OpcUaSecurityPolicy::None
        );
        if !secure {
            return Ok(self.pki.get());
        }
        let dir = self.pki_dir.clone();
        self.pki
            .get_or_try_init(|| async move {
                // Key generation is slow and blocking: off the async thread.
                tokio::task::spawn_blocking(move || Pki::open(&dir))
                    .await
                    .map_err(|e| format!("opening the OPC UA certificates failed: {e}"))?
            })
            .await
            .map(Some)
    }
}

fn reading(r: probe::TagReading) -> TagReading {
    TagReading {
        value: r.value,
        quality: r.quality,
        timestamp_ms: r.timestamp_ms,
        error: r.error,
    }
}

fn node(n: southbound::opcua::browse::BrowsedNode) -> BrowsedNode {
    use southbound::opcua::browse::NodeKind;
    let variable = n.variable.as_ref();
    BrowsedNode {
        address: n.address.to_string(),
        display_name: n.display_name,
        browse_name: n.browse_name,
        node_class: match n.kind {
            NodeKind::Folder => NodeClass::Folder,
            NodeKind::Object => NodeClass::Object,
            NodeKind::Variable => NodeClass::Variable,
        },
        description: n.description,
        has_children: n.may_have_children,
        opcua_type: variable.map(|v| v.opcua_type.clone()),
        datatype: variable.and_then(|v| v.datatype),
        value_rank: variable.and_then(|v| v.value_rank),
        readable: variable.is_some_and(|v| v.readable),
        writable: variable.is_some_and(|v| v.writable),
    }
}

impl web::DeviceAccess for ApplianceDevices {
    fn test_connection(&self, device: Device) -> DeviceCall<'_, String> {
        Box::pin(async move {
            let pki = self.pki_for(&device).await?;
            probe::test_connection(&device, pki)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn test_read(&self, device: Device, tags: Vec<Tag>) -> DeviceCall<'_, Vec<TagReading>> {
        Box::pin(async move {
            let pki = self.pki_for(&device).await?;
            let readings = probe::read_tags(&device, &tags, pki)
                .await
                .map_err(|e| e.to_string())?;
            Ok(readings.into_iter().map(reading).collect())
        })
    }

    fn modbus_preview(
        &self,
        device: Device,
        request: PreviewRequest,
    ) -> DeviceCall<'_, RegisterPreview> {
        Box::pin(async move {
            let registers =
                probe::read_registers(&device, request.kind, request.start, request.count)
                    .await
                    .map_err(|e| e.to_string())?;
            let (data, orders) = match registers {
                Registers::Bits(bits) => (RegisterData::Bits(bits), Vec::new()),
                Registers::Words(words) => {
                    let orders = match &request.decode {
                        None => Vec::new(),
                        Some(d) => {
                            probe::decode_every_order(&words, &d.conversion, usize::from(d.length))
                                .map_err(|e| e.to_string())?
                                .into_iter()
                                .map(|o| DecodedOrder {
                                    order: o.order,
                                    name: o.name.to_owned(),
                                    raw: o.raw,
                                    value: o.value,
                                })
                                .collect()
                        }
                    };
                    (RegisterData::Words(words), orders)
                }
            };
            Ok(RegisterPreview { data, orders })
        })
    }

    fn browse(
        &self,
        device: Device,
        node_address: Option<NodeAddress>,
        limit: usize,
    ) -> DeviceCall<'_, BrowseLevel> {
        Box::pin(async move {
            let pki = self.pki_for(&device).await?;
            let children = probe::browse(&device, node_address.as_ref(), limit, pki)
                .await
                .map_err(|e| e.to_string())?;
            Ok(BrowseLevel {
                nodes: children.nodes.into_iter().map(node).collect(),
                truncated: children.truncated,
            })
        })
    }

    fn write(&self, tag: TagId, value: Value) -> DeviceCall<'_, ()> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            // `tag` numbers the running model: the one the hub runs now, as the caller looked
            // the tag up with no await since (and holds the web's edit lock). Should the model
            // change before the hub takes the write, the hub renumbers it or refuses it.
            let write = Write {
                generation: self.live.model(),
                command: WriteCommand {
                    tag,
                    value,
                    reply: Some(reply),
                },
            };
            // The caller bounds the wait; the hub's channel is full only under a storm of
            // commands, and then waiting for room is the fair thing.
            self.writes
                .send(write)
                .await
                .map_err(|_| "the appliance is shutting down".to_owned())?;
            answer.await.map_err(|_| {
                "the write was dropped: the device's driver had too many writes queued, or \
                 stopped"
                    .to_owned()
            })?
        })
    }
}
