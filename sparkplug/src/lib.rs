//! Sparkplug 3.0 for an Edge Node, without I/O.
//!
//! - [`proto`]: the Sparkplug B protobuf messages, generated from `protobuf/sparkplug_b.proto`.
//! - [`value`]: data types, metric values and their exact mapping onto the protobuf value
//!   fields.
//! - [`array`](mod@array): the packed `bytes_value` layouts of the array types.
//! - [`dataset`], [`template`], [`property`]: DataSet, Template (UDT) and PropertySet values.
//! - [`payload`]: the typed [`Payload`] and [`Metric`] with `encode`/`decode`; DATA metrics
//!   are typed from their birth through [`Payload::decode_with`].
//! - [`topic`]: the `spBv1.0/...` topic namespace, built and parsed with id validation.
//! - [`session`]: the Edge Node session as a sans-IO state machine. It owns bdSeq, seq,
//!   births, deaths, data and commands, takes events and the current time, and returns the
//!   publishes and actions the caller must carry out. No sockets, no clock, no tokio: the
//!   appliance shell does the I/O, and tests drive it directly.

pub mod array;
pub mod dataset;
pub mod payload;
pub mod property;
pub mod session;
pub mod template;
pub mod topic;
pub mod value;

/// Messages generated from `protobuf/sparkplug_b.proto` by prost.
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/org.eclipse.tahu.protobuf.rs"));
}

pub use dataset::DataSet;
pub use payload::{DecodeError, MetaData, Metric, Payload};
pub use property::{PropertyData, PropertySet, PropertyValue};
pub use session::{
    DeviceDef, EdgeNodeSession, MetricDef, MetricUpdate, Output, Publish, QoS, SessionConfig,
    WriteRequest,
};
pub use template::{Parameter, Template};
pub use topic::{MessageType, Topic, TopicError};
pub use value::{
    BasicValue, DataSetValue, DataType, MAX_NESTING, MetricValue, ParameterValue, Quality,
    ValueError,
};
