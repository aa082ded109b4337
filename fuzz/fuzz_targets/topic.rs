//! `Topic::parse` on arbitrary UTF-8: it must return an error or a topic, never panic, and a
//! topic it returns must print back to a string that parses to the same topic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparkplug::Topic;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(topic) = Topic::parse(s) {
        let printed = topic.to_string();
        assert_eq!(
            Topic::parse(&printed),
            Ok(topic),
            "{printed:?} does not parse back"
        );
    }
});
