//! OPC UA: conversions between OPC UA and our model (pure), connecting with the device's
//! security and identity, the appliance's certificate folder, the subscription driver of one
//! server, browsing a server's address space for the tag picker, and a simulated server.
//!
//! Built on async-opcua (lib name `opcua`), whose crypto is pure Rust.

pub mod browse;
pub mod connect;
pub mod convert;
pub(crate) mod driver;
pub mod pki;
pub mod sim_server;
