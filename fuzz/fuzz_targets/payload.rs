//! `Payload::decode` on arbitrary bytes: it must return an error or a payload, never panic,
//! and a payload it returns must survive encode → decode unchanged. Equality is checked on
//! the re-encoded bytes because a float value may be NaN, which `PartialEq` never equates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparkplug::Payload;

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = Payload::decode(data) {
        let bytes = payload.encode();
        let again = Payload::decode(&bytes).expect("a decoded payload re-encodes to a valid one");
        assert_eq!(again.encode(), bytes, "encode → decode is not stable");
    }
});
