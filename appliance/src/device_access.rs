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
    /// Its model count is the hub's model generation: a write made under an older one than
    /// the hub can renumber is refused before it is queued.
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

    fn write(&self, tag: TagId, generation: u64, value: Value) -> DeviceCall<'_, ()> {
        Box::pin(async move {
            // The hub renumbers a write one model behind to the same tag; one made under an
            // older model it can only refuse, and it is said plainly here.
            let running = self.live.model();
            if generation.saturating_add(1) < running {
                return Err(format!(
                    "the model changed (generation {generation} to {running}, an import?) \
                     since the tag was looked up; nothing was written: try again"
                ));
            }
            let (reply, answer) = oneshot::channel();
            let write = Write {
                generation,
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

#[cfg(test)]
mod tests {
    use super::*;
    use web::DeviceAccess;

    fn devices() -> (
        ApplianceDevices,
        mpsc::Receiver<Write>,
        Arc<web::LiveValues>,
    ) {
        let (writes, queued) = mpsc::channel(4);
        let live = Arc::new(web::LiveValues::new(2));
        let devices =
            ApplianceDevices::new(PathBuf::from("/nonexistent"), None, writes, live.clone());
        (devices, queued, live)
    }

    #[tokio::test]
    async fn a_write_carries_the_generation_it_was_looked_up_under() {
        let (devices, mut queued, live) = devices();
        live.remap(2, [(TagId(0), TagId(1))]);
        // Looked up before the model changed: the hub renumbers it to the same tag.
        let call = tokio::spawn(async move { devices.write(TagId(0), 0, Value::Int16(7)).await });
        let write = queued.recv().await.unwrap();
        assert_eq!((write.generation, write.command.tag), (0, TagId(0)));
        write.command.reply.unwrap().send(Ok(())).unwrap();
        assert_eq!(call.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_write_two_models_behind_is_refused_before_it_is_queued() {
        let (devices, mut queued, live) = devices();
        live.remap(2, []);
        live.remap(2, []);
        let refused = devices
            .write(TagId(1), 0, Value::Int16(7))
            .await
            .unwrap_err();
        assert!(
            refused.contains("model changed") && refused.contains("nothing was written"),
            "{refused}"
        );
        assert!(queued.try_recv().is_err(), "nothing reached the hub");
    }
}
