//! OPC UA: conversions between OPC UA and our model (pure), the subscription driver of one
//! server, and a simulated server.
//!
//! Built on async-opcua (lib name `opcua`), whose crypto is pure Rust.

pub mod connect;
pub mod convert;
pub(crate) mod driver;
pub mod pki;
pub mod sim_server;
