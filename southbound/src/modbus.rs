//! Modbus: register codecs and request planning (pure functions); the TCP and RTU driver is
//! being built on them next.

pub mod codec;
pub mod plan;
