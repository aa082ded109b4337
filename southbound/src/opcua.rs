//! OPC UA: conversions between OPC UA and our model (pure), the subscription driver of one
//! server, browsing a server's address space for the tag picker, and a simulated server.
//!
//! Built on async-opcua (lib name `opcua`), whose crypto is pure Rust.

pub mod browse;
pub mod convert;
pub(crate) mod driver;
pub mod sim_server;
