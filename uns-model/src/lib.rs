//! The configuration model of sparkedge and the one place names are derived from it.
//!
//! - [`model`]: the ISA-95 hierarchy (enterprise/site/area/line/cell), devices and tags.
//! - [`validate`]: checks a whole model and reports every bad field by path, value and rule.
//! - [`northbound`]: plant MQTT brokers with their own Sparkplug session, and server URLs.
//! - [`naming`]: the single function that turns a tag into its UNS topic and its Sparkplug
//!   group, edge node, device and metric names. Every sink and the UI use it.
//! - [`csv`]: tags as CSV for spreadsheets, with errors by row and column.
//! - [`diff`]: what changes between two models (the preview before an import).
//! - [`file`]: the human-editable TOML form used by `sparkedge import`/`export`.
//! - [`store`]: the SQLite store (migrations, transactions) holding the model and the
//!   Sparkplug session counters that must survive restarts.
//! - [`modbus`]: Modbus address notation and byte/word orders of tags.
//! - [`opcua`]: OPC UA NodeId notation of tags and the OPC UA type of each data type.
//! - [`scaling`]: linear scaling between register and engineering values, and its inverse.
//! - [`value`]: typed values, quality and samples as they flow from drivers to sinks.

pub mod csv;
pub mod diff;
pub mod file;
pub mod modbus;
pub mod model;
pub mod naming;
pub mod northbound;
pub mod opcua;
pub mod scaling;
pub mod store;
pub mod validate;
pub mod value;

/// The string type of a tag's device, location, name and address.
pub use compact_str::CompactString;
pub use diff::ModelDiff;
pub use modbus::{ByteOrder, ModbusAddress, RegisterKind};
pub use model::{
    Acquisition, Area, Device, DriverConfig, Line, ModbusPolling, Model, Namespace,
    OpcUaAcquisition, OpcUaIdentity, OpcUaSecurityMode, OpcUaSecurityPolicy, Parity, ScanClass,
    SimSignal, SparkplugIds, Tag,
};
pub use naming::{TagNames, tag_names};
pub use northbound::{Northbound, ServerAddr, parse_server};
pub use opcua::NodeAddress;
pub use scaling::{Conversion, Scaling};
pub use store::{Store, StoreError};
pub use validate::{ModelError, ModelErrors};
pub use value::{Array, DataType, Quality, TagId, TagSample, Value};
