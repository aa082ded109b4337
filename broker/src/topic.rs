//! Topic names and topic filters, MQTT 3.1.1 §4.7.

/// Checks a topic name a client publishes to (or names as its Will topic).
pub fn check_name(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        return Err("a topic name must not be empty");
    }
    if topic.contains(['+', '#']) {
        return Err("a topic name must not contain the wildcards + or #");
    }
    if topic.contains('\0') {
        return Err("a topic name must not contain U+0000");
    }
    Ok(())
}

/// Checks a topic filter a client subscribes to.
pub fn check_filter(filter: &str) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("a topic filter must not be empty");
    }
    if filter.contains('\0') {
        return Err("a topic filter must not contain U+0000");
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        match level {
            "#" if levels.peek().is_some() => return Err("# must be the last level of a filter"),
            "#" | "+" => {}
            _ if level.contains(['+', '#']) => {
                return Err("+ and # must each occupy a whole level of a filter");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether a valid `filter` matches a valid topic name.
///
/// A filter that starts with a wildcard does not match a topic starting with `$`
/// [MQTT-4.7.2-1], so `#` does not see `$sparkplug/certificates/...`: consumers of the
/// Sparkplug certificates subscribe to them by name.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for f in filter.split('/') {
        if f == "#" {
            // `a/#` also matches `a` itself [MQTT-4.7.1-2].
            return true;
        }
        match topic_levels.next() {
            Some(t) if f == "+" || f == t => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_refuse_wildcards_and_emptiness() {
        assert!(check_name("plant/area/line").is_ok());
        assert!(check_name("/leading/slash").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a/+/b").is_err());
        assert!(check_name("a/#").is_err());
        assert!(check_name("a\0b").is_err());
    }

    #[test]
    fn filters_follow_the_wildcard_rules() {
        for ok in [
            "#",
            "+",
            "a/#",
            "a/+/b",
            "+/+",
            "/+",
            "$sparkplug/certificates/#",
        ] {
            assert!(check_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/#/b", "a#", "a/b+", "+a/b", "##"] {
            assert!(check_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching_follows_the_examples_of_section_4_7() {
        let cases = [
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
                true,
            ),
            ("sport/#", "sport", true),
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("#", "$SYS/broker", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false),
            ("$SYS/#", "$SYS/broker", true),
            ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
            ("spBv1.0/+/NBIRTH/+", "spBv1.0/G/NBIRTH/E", true),
            ("spBv1.0/+/NBIRTH/+", "spBv1.0/G/DBIRTH/E/D", false),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/b", false),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(matches(filter, topic), expected, "{filter} vs {topic}");
        }
    }

    proptest! {
        /// A topic name used as a filter matches exactly itself.
        #[test]
        fn a_name_as_filter_matches_only_itself(
            a in "[a-z$]{0,3}(/[a-z]{0,3}){0,3}",
            b in "[a-z$]{0,3}(/[a-z]{0,3}){0,3}",
        ) {
            prop_assume!(check_name(&a).is_ok() && check_name(&b).is_ok());
            prop_assert!(matches(&a, &a));
            prop_assert_eq!(matches(&a, &b), a == b);
        }

        /// `#` matches every topic that does not start with `$`.
        #[test]
        fn hash_matches_everything_but_dollar_topics(t in "[a-z$]{1,3}(/[a-z]{0,3}){0,3}") {
            prop_assert_eq!(matches("#", &t), !t.starts_with('$'));
        }
    }
}
