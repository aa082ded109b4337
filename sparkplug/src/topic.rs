//! The Sparkplug topic namespace (spec §1): `spBv1.0/<group>/<verb>/<edge node>[/<device>]`
//! and `spBv1.0/STATE/<host id>`.

use std::fmt;

/// The namespace token of Sparkplug B.
pub const NAMESPACE: &str = "spBv1.0";

/// The nine Sparkplug verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    NBirth,
    NDeath,
    NData,
    NCmd,
    DBirth,
    DDeath,
    DData,
    DCmd,
    State,
}

impl MessageType {
    const ALL: [MessageType; 9] = [
        MessageType::NBirth,
        MessageType::NDeath,
        MessageType::NData,
        MessageType::NCmd,
        MessageType::DBirth,
        MessageType::DDeath,
        MessageType::DData,
        MessageType::DCmd,
        MessageType::State,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::NBirth => "NBIRTH",
            MessageType::NDeath => "NDEATH",
            MessageType::NData => "NDATA",
            MessageType::NCmd => "NCMD",
            MessageType::DBirth => "DBIRTH",
            MessageType::DDeath => "DDEATH",
            MessageType::DData => "DDATA",
            MessageType::DCmd => "DCMD",
            MessageType::State => "STATE",
        }
    }

    /// Whether topics of this verb carry a device id.
    pub fn is_device(self) -> bool {
        matches!(
            self,
            MessageType::DBirth | MessageType::DDeath | MessageType::DData | MessageType::DCmd
        )
    }
}

/// A parsed or to-be-built Sparkplug topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topic {
    /// A node or device message; `device_id` is present exactly for the D* verbs.
    Edge {
        group_id: String,
        message_type: MessageType,
        edge_node_id: String,
        device_id: Option<String>,
    },
    /// A Host Application's STATE (3.0 form).
    State { host_id: String },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic {0:?} is not in the spBv1.0 namespace")]
    Namespace(String),
    #[error("topic {topic:?} has {found} levels; {verb} topics have {expected}")]
    Levels {
        topic: String,
        verb: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("topic {topic:?}: unknown message type {verb:?}")]
    Verb { topic: String, verb: String },
    #[error("{0}")]
    Id(#[from] IdError),
}

/// A group, edge node, device or host id that Sparkplug does not allow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Sparkplug id {id:?} is invalid: {reason}")]
pub struct IdError {
    pub id: String,
    pub reason: &'static str,
}

/// Checks a Sparkplug id: non-empty UTF-8 without the MQTT wildcards and separator
/// (`+`, `#`, `/`) or NUL.
pub fn validate_id(id: &str) -> Result<(), IdError> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.contains(['+', '#', '/']) {
        "it contains '+', '#' or '/', which are MQTT wildcards and the level separator"
    } else if id.contains('\0') {
        "it contains NUL"
    } else {
        return Ok(());
    };
    Err(IdError {
        id: id.to_owned(),
        reason,
    })
}

impl Topic {
    /// A node-level topic (`NBIRTH`, `NDEATH`, `NDATA`, `NCMD`).
    pub fn node(group_id: &str, message_type: MessageType, edge_node_id: &str) -> Topic {
        Topic::Edge {
            group_id: group_id.to_owned(),
            message_type,
            edge_node_id: edge_node_id.to_owned(),
            device_id: None,
        }
    }

    /// A device-level topic (`DBIRTH`, `DDEATH`, `DDATA`, `DCMD`).
    pub fn device(
        group_id: &str,
        message_type: MessageType,
        edge_node_id: &str,
        device_id: &str,
    ) -> Topic {
        Topic::Edge {
            group_id: group_id.to_owned(),
            message_type,
            edge_node_id: edge_node_id.to_owned(),
            device_id: Some(device_id.to_owned()),
        }
    }

    /// Parses an MQTT topic name, checking the level count for its verb and every id.
    pub fn parse(topic: &str) -> Result<Topic, TopicError> {
        let levels: Vec<&str> = topic.split('/').collect();
        if levels.first() != Some(&NAMESPACE) || levels.len() < 3 {
            return Err(TopicError::Namespace(topic.to_owned()));
        }
        if levels[1] == "STATE" {
            if levels.len() != 3 {
                return Err(TopicError::Levels {
                    topic: topic.to_owned(),
                    verb: "STATE",
                    found: levels.len(),
                    expected: 3,
                });
            }
            validate_id(levels[2])?;
            return Ok(Topic::State {
                host_id: levels[2].to_owned(),
            });
        }
        let message_type = MessageType::ALL
            .into_iter()
            .find(|m| m.as_str() == levels[2] && *m != MessageType::State)
            .ok_or_else(|| TopicError::Verb {
                topic: topic.to_owned(),
                verb: levels[2].to_owned(),
            })?;
        let expected = if message_type.is_device() { 5 } else { 4 };
        if levels.len() != expected {
            return Err(TopicError::Levels {
                topic: topic.to_owned(),
                verb: message_type.as_str(),
                found: levels.len(),
                expected,
            });
        }
        for id in [levels[1]].iter().chain(&levels[3..]) {
            validate_id(id)?;
        }
        Ok(Topic::Edge {
            group_id: levels[1].to_owned(),
            message_type,
            edge_node_id: levels[3].to_owned(),
            device_id: levels.get(4).map(|d| (*d).to_owned()),
        })
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Edge {
                group_id,
                message_type,
                edge_node_id,
                device_id,
            } => {
                write!(
                    f,
                    "{NAMESPACE}/{group_id}/{}/{edge_node_id}",
                    message_type.as_str()
                )?;
                match device_id {
                    Some(d) => write!(f, "/{d}"),
                    None => Ok(()),
                }
            }
            Topic::State { host_id } => write!(f, "{NAMESPACE}/STATE/{host_id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip() {
        for t in [
            "spBv1.0/plant-a/NBIRTH/edge1",
            "spBv1.0/plant-a/DDATA/edge1/plc1",
            "spBv1.0/STATE/scada",
        ] {
            assert_eq!(Topic::parse(t).unwrap().to_string(), t);
        }
        assert_eq!(
            Topic::device("g", MessageType::DCmd, "e", "d").to_string(),
            "spBv1.0/g/DCMD/e/d"
        );
    }

    #[test]
    fn bad_topics_say_why() {
        assert!(matches!(
            Topic::parse("spBv1.0/g/NBIRTH/e/d"),
            Err(TopicError::Levels { expected: 4, .. })
        ));
        assert!(matches!(
            Topic::parse("spBv1.0/g/DDATA/e"),
            Err(TopicError::Levels { expected: 5, .. })
        ));
        assert!(matches!(
            Topic::parse("spBv1.0/g/NFOO/e"),
            Err(TopicError::Verb { .. })
        ));
        assert!(matches!(
            Topic::parse("spAv1.0/g/NBIRTH/e"),
            Err(TopicError::Namespace(_))
        ));
        assert!(matches!(
            Topic::parse("spBv1.0//NBIRTH/e"),
            Err(TopicError::Id(_))
        ));
        assert!(validate_id("a+b").is_err());
    }
}
