//! Modbus TCP: register codecs and request planning (pure functions), reconnect pacing, and
//! the driver built on them.

pub mod backoff;
pub mod codec;
pub(crate) mod driver;
pub mod plan;
pub mod sim_server;

pub use driver::TcpSettings;
