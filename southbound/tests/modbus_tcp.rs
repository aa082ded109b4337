//! The Modbus TCP driver against the simulated PLC (a tokio-modbus server) over real TCP.

use std::sync::Arc;
use std::time::Duration;

use southbound::modbus::sim_server::{self, SimPlc};
use southbound::{DeviceId, DriverEvent, WriteCommand};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use uns_model::{
    Acquisition, DataType, Device, DriverConfig, ModbusAddress, Quality, RegisterKind, ScanClass,
    Tag, TagId, TagSample, Value,
};

const DEADLINE: Duration = Duration::from_secs(15);

fn tag(address: &str, datatype: DataType, order: Option<&str>) -> Tag {
    Tag {
        // The simulator's memory: hr:0–99 and hr:300–399.
        writable: address.parse::<ModbusAddress>().is_ok_and(|a| {
            a.kind == RegisterKind::HoldingRegister && !(100..300).contains(&a.offset)
        }),
        byte_order: order.map(str::to_owned),
        length: (datatype == DataType::String).then_some(16),
        ..Tag::new(
            "plc",
            "a/l",
            address.replace([':', '.'], "_"),
            datatype,
            address,
        )
    }
}

fn device(port: u16, max_gap: u16, offline_after: u32) -> Device {
    Device {
        name: "plc".into(),
        enabled: true,
        driver: DriverConfig::ModbusTcp {
            host: "127.0.0.1".into(),
            port,
            unit: 1,
            period_ms: 100,
            timeout_ms: 300,
            offline_after,
            max_gap,
        },
    }
}

async fn start_plc(listener: TcpListener) -> (Arc<SimPlc>, tokio::task::JoinHandle<()>) {
    let plc = Arc::new(SimPlc::default());
    let task = tokio::spawn({
        let plc = plc.clone();
        async move {
            let _ = sim_server::serve(listener, plc).await;
        }
    });
    (plc, task)
}

struct Driver {
    events: mpsc::Receiver<DriverEvent>,
    handle: southbound::DriverHandle,
}

impl Driver {
    fn start(device: &Device, tags: &[Tag]) -> Driver {
        Driver::start_with(device, tags, &[])
    }

    fn start_with(device: &Device, tags: &[Tag], classes: &[ScanClass]) -> Driver {
        let (tx, events) = mpsc::channel(64);
        let tags: Vec<(TagId, &Tag)> = tags
            .iter()
            .enumerate()
            .map(|(i, t)| (TagId(i as u32), t))
            .collect();
        let handle = southbound::spawn(
            DeviceId(0),
            device,
            &tags,
            &southbound::Context {
                scan_classes: classes,
                opcua_pki: None,
            },
            tx,
        );
        Driver { events, handle }
    }

    /// The next event that `pick` accepts, within the deadline.
    async fn next<T>(&mut self, what: &str, mut pick: impl FnMut(&DriverEvent) -> Option<T>) -> T {
        tokio::time::timeout(DEADLINE, async {
            loop {
                let e = self.events.recv().await.expect("driver running");
                if let Some(v) = pick(&e) {
                    return v;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {what} within {DEADLINE:?}"))
    }

    async fn samples(&mut self, what: &str) -> Vec<TagSample> {
        self.next(what, |e| match e {
            DriverEvent::Samples(s) if s.len() > 1 => Some(s.clone()),
            _ => None,
        })
        .await
    }

    async fn status(&mut self, online: bool) {
        self.next("device status", |e| {
            matches!(e, DriverEvent::DeviceStatus { online: o, .. } if *o == online).then_some(())
        })
        .await
    }

    async fn write(&mut self, tag: u32, value: Value) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.handle
            .write(WriteCommand {
                tag: TagId(tag),
                value,
                reply: Some(reply),
            })
            .expect("queue the write");
        tokio::time::timeout(DEADLINE, answer)
            .await
            .expect("write answered")
            .expect("reply")
    }
}

fn value(samples: &[TagSample], tag: u32) -> Value {
    let s = samples
        .iter()
        .find(|s| s.tag == TagId(tag))
        .expect("sample of the tag");
    assert_eq!(s.quality, Quality::Good, "{s:?}");
    s.value.clone().expect("a value")
}

#[tokio::test]
async fn every_type_and_order_decodes_exactly() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_plc, _server) = start_plc(listener).await;
    let tags = [
        tag("hr:100", DataType::UInt16, None),
        tag("hr:102", DataType::UInt32, Some("ABCD")),
        tag("hr:104", DataType::UInt32, Some("CDAB")),
        tag("hr:106", DataType::Float32, Some("ABCD")),
        tag("hr:108", DataType::Float32, Some("BADC")),
        tag("hr:110", DataType::Float32, Some("CDAB")),
        tag("hr:112", DataType::Float32, Some("DCBA")),
        tag("hr:114", DataType::Float64, Some("ABCDEFGH")),
        tag("hr:118", DataType::Float64, Some("GHEFCDAB")),
        tag("hr:122", DataType::Int64, Some("ABCDEFGH")),
        tag("hr:126", DataType::UInt64, Some("HGFEDCBA")),
        tag("hr:130", DataType::String, None),
        tag("hr:138.15", DataType::Bool, None),
        tag("40102", DataType::Int16, None), // classic form of hr:101
        tag("ir:0", DataType::UInt16, None),
        tag("di:1", DataType::Bool, None),
    ];
    let mut d = Driver::start(&device(port, 16, 3), &tags);
    let s = d.samples("first poll").await;
    d.status(true).await;
    // One read covers hr:100–138, so every value comes from the same instant.
    let Value::UInt16(t) = value(&s, 0) else {
        panic!("uint16")
    };
    let t = u32::from(t);
    assert_eq!(value(&s, 1), Value::UInt32(t * 1000));
    assert_eq!(value(&s, 2), Value::UInt32(t * 1000));
    let sine = value(&s, 3);
    for i in 4..=6 {
        assert_eq!(value(&s, i), sine, "float32 order of tag {i}");
    }
    let Value::Float32(f) = sine else {
        panic!("float32")
    };
    let Value::Float64(d64) = value(&s, 7) else {
        panic!("float64")
    };
    assert_eq!(d64 as f32, f);
    assert_eq!(value(&s, 8), Value::Float64(d64));
    assert_eq!(value(&s, 9), Value::Int64(-i64::from(t) * 1_000_000_000));
    assert_eq!(value(&s, 10), Value::UInt64(u64::from(t) * 1_000_000_000));
    assert_eq!(value(&s, 11), Value::String("SPARKEDGE SIM".into()));
    assert_eq!(value(&s, 12), Value::Bool(true));
    assert_eq!(value(&s, 13), Value::Int16(-(t as i16)));
    assert!(matches!(value(&s, 14), Value::UInt16(_)));
    assert_eq!(value(&s, 15), Value::Bool(false));
}

#[tokio::test]
async fn writes_land_in_the_right_registers_and_come_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (plc, _server) = start_plc(listener).await;
    let tags = [
        tag("hr:10", DataType::Float32, Some("CDAB")),
        tag("hr:5.3", DataType::Bool, None),
        tag("hr:300", DataType::Int16, None),
        tag("hr:120", DataType::Float64, None), // live and read-only
    ];
    let mut d = Driver::start(&device(port, 16, 3), &tags);
    d.status(true).await;
    d.write(0, Value::Float32(21.5)).await.unwrap();
    // CDAB: the low word first.
    let [hi, lo] = [(21.5f32.to_bits() >> 16) as u16, 21.5f32.to_bits() as u16];
    assert_eq!(plc.read_holding(10, 2), Ok(vec![lo, hi]));
    let back = d
        .next("read-back sample", |e| match e {
            DriverEvent::Samples(s) if s.len() == 1 && s[0].tag == TagId(0) => Some(s[0].clone()),
            _ => None,
        })
        .await;
    assert_eq!(back.value, Some(Value::Float32(21.5)));

    plc.answer(tokio_modbus::Request::WriteSingleRegister(5, 0x0101))
        .unwrap();
    d.write(1, Value::Bool(true)).await.unwrap();
    assert_eq!(
        plc.read_holding(5, 1),
        Ok(vec![0x0109]),
        "only bit 3 changes"
    );
    d.write(2, Value::Int16(-300)).await.unwrap();
    assert_eq!(plc.read_holding(300, 1), Ok(vec![(-300i16) as u16]));
    let err = d.write(3, Value::Float64(1.0)).await.unwrap_err();
    assert!(err.contains("not writable"), "{err}");
    let err = d.write(0, Value::Int32(1)).await.unwrap_err();
    assert!(err.contains("cannot be written"), "{err}");
}

#[tokio::test]
async fn an_illegal_address_turns_only_its_tag_bad() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_plc, _server) = start_plc(listener).await;
    // With a wide gap all three share one read, which the PLC refuses because of hr:250.
    let tags = [
        tag("hr:199", DataType::UInt16, None),
        tag("hr:250", DataType::UInt16, None),
        tag("hr:300", DataType::UInt16, None),
    ];
    let mut d = Driver::start(&device(port, 124, 3), &tags);
    let s = d.samples("first poll").await;
    let quality = |t: u32| s.iter().find(|x| x.tag == TagId(t)).map(|x| x.quality);
    assert_eq!(quality(0), Some(Quality::Good));
    assert_eq!(quality(1), Some(Quality::Bad));
    assert_eq!(quality(2), Some(Quality::Good));
    d.status(true).await;
}

#[tokio::test]
async fn a_plc_that_stops_answering_goes_offline_and_comes_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_plc, server) = start_plc(listener).await;
    let tags = [
        tag("hr:100", DataType::UInt16, None),
        tag("hr:0", DataType::UInt16, None),
    ];
    let mut d = Driver::start(&device(addr.port(), 16, 2), &tags);
    d.status(true).await;
    server.abort();
    let _ = server.await;
    // Offline after two failed cycles, every tag stale.
    let stale = d
        .next("stale samples", |e| match e {
            DriverEvent::Samples(s) if s.iter().all(|x| x.quality == Quality::Stale) => {
                Some(s.len())
            }
            _ => None,
        })
        .await;
    assert_eq!(stale, 2);
    d.status(false).await;
    let err = d.write(1, Value::UInt16(1)).await.unwrap_err();
    assert!(err.contains("not connected"), "{err}");
    // Back on the same port: the driver reconnects by itself.
    let listener = TcpListener::bind(addr).await.unwrap();
    let (_plc, _server) = start_plc(listener).await;
    d.status(true).await;
}

#[tokio::test]
async fn scaled_tags_read_in_engineering_units_and_writes_go_back_exactly() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (plc, _server) = start_plc(listener).await;
    let tags = [
        tag("hr:100", DataType::UInt16, None),
        // The same register, 0..100 raw as 0..1000 engineering, as a float.
        Tag {
            acquisition: Acquisition {
                raw_type: Some(DataType::UInt16),
                raw_low: Some(0.0),
                raw_high: Some(100.0),
                eng_low: Some(0.0),
                eng_high: Some(1000.0),
                ..Acquisition::default()
            }
            .boxed(),
            ..tag("hr:100", DataType::Float64, None)
        },
        // An int16 register holding tenths of a degree.
        Tag {
            acquisition: Acquisition {
                raw_type: Some(DataType::Int16),
                gain: Some(0.1),
                ..Acquisition::default()
            }
            .boxed(),
            ..tag("hr:20", DataType::Float32, None)
        },
    ];
    let mut d = Driver::start(&device(port, 16, 3), &tags);
    let s = d.samples("first poll").await;
    let Value::UInt16(t) = value(&s, 0) else {
        panic!("uint16")
    };
    assert_eq!(value(&s, 1), Value::Float64(f64::from(t) * 10.0));
    d.status(true).await;

    d.write(2, Value::Float32(-21.5)).await.unwrap();
    assert_eq!(plc.read_holding(20, 1), Ok(vec![(-215i16) as u16]));
    let back = d
        .next("read-back sample", |e| match e {
            DriverEvent::Samples(s) if s.len() == 1 && s[0].tag == TagId(2) => Some(s[0].clone()),
            _ => None,
        })
        .await;
    assert_eq!(back.value, Some(Value::Float32(-21.5)));
    let err = d.write(2, Value::Float32(4000.0)).await.unwrap_err();
    assert!(
        err.contains("4000") && err.contains("-3276.8 to 3276.7"),
        "{err}"
    );
    assert_eq!(
        plc.read_holding(20, 1),
        Ok(vec![(-215i16) as u16]),
        "nothing written"
    );
}

#[tokio::test]
async fn a_scan_class_is_planned_and_polled_on_its_own_period() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_plc, _server) = start_plc(listener).await;
    // Neighbours that would share one read, split by scan class: hr:100 every 20 ms, hr:101
    // at the device's 100 ms, hr:102 every 2 s.
    let classes = [
        ScanClass {
            name: "fast".into(),
            period_ms: 20,
        },
        ScanClass {
            name: "slow".into(),
            period_ms: 2000,
        },
    ];
    let tags = [
        Tag {
            acquisition: Acquisition {
                scan_class: Some("fast".into()),
                ..Acquisition::default()
            }
            .boxed(),
            ..tag("hr:100", DataType::UInt16, None)
        },
        tag("hr:101", DataType::Int16, None),
        Tag {
            acquisition: Acquisition {
                scan_class: Some("slow".into()),
                ..Acquisition::default()
            }
            .boxed(),
            ..tag("hr:102", DataType::UInt32, None)
        },
    ];
    let mut d = Driver::start_with(&device(port, 16, 3), &tags, &classes);
    // Born once every class was read, with all three values.
    let first = d.samples("first poll").await;
    assert_eq!(first.len(), 3, "{first:?}");
    d.status(true).await;
    // Afterwards each class's read comes on its own: count reads until the slow one again.
    let mut reads = [0u32; 3];
    while reads[2] == 0 {
        let tags = d
            .next("a read", |e| match e {
                DriverEvent::Samples(s) => Some(s.iter().map(|x| x.tag.0).collect::<Vec<_>>()),
                _ => None,
            })
            .await;
        assert_eq!(tags.len(), 1, "one tag per read: {tags:?}");
        reads[tags[0] as usize] += 1;
    }
    // 2 s of the slow class: about 100 fast reads and 20 at the device period.
    assert!(reads[0] > 2 * reads[1], "{reads:?}");
    assert!(reads[1] >= 5, "{reads:?}");
}
