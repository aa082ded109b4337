//! Modbus TCP, RTU and RTU over TCP: register codecs and request planning (pure functions),
//! reconnect pacing, the line driver built on them, and a simulated PLC.

pub mod backoff;
pub mod codec;
pub(crate) mod driver;
pub mod plan;
pub mod sim_server;

pub use driver::{SerialLine, Transport, open_serial};
