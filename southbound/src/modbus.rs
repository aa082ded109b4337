//! Modbus TCP, RTU and RTU over TCP: register codecs and request planning (pure functions),
//! reconnect pacing, the line transport (link) and the line driver built on them, and a
//! simulated PLC.

pub mod backoff;
pub mod codec;
pub(crate) mod driver;
pub(crate) mod link;
pub mod plan;
pub mod sim_server;

pub use link::{SerialLine, Transport, open_serial};
