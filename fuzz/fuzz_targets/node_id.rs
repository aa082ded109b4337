//! `NodeAddress` (an OPC UA NodeId in its string form, typed by users and imported from CSV)
//! on arbitrary UTF-8: it must return an error or an address, never panic, and an address it
//! returns must print back to a string that parses to the same address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uns_model::NodeAddress;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(address) = s.parse::<NodeAddress>() {
        let printed = address.to_string();
        assert_eq!(
            printed.parse::<NodeAddress>(),
            Ok(address),
            "{printed:?} does not parse back"
        );
    }
});
