//! The built-in simulated PLC: deterministic signals that change every period, and a
//! `memory` signal that holds what is written to it. `sparkedge demo` runs on it, so a new
//! user sees live data with no hardware.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use uns_model::{DataType, Quality, SimSignal, Tag, TagId, TagSample, Value};

use crate::{DeviceId, DriverEvent, WriteCommand, now_ms};

const STATES: [&str; 4] = ["idle", "starting", "running", "cleaning"];

pub(crate) struct SimTag {
    id: TagId,
    datatype: DataType,
    signal: SimSignal,
    memory: Value,
}

/// What the simulator keeps of each tag.
pub(crate) fn sim_tags(tags: &[(TagId, &Tag)]) -> Vec<SimTag> {
    tags.iter()
        .filter_map(|(id, tag)| {
            // The model was validated, so an unknown signal cannot occur; skip rather than panic.
            let signal = tag.address.parse().ok()?;
            Some(SimTag {
                id: *id,
                datatype: tag.datatype,
                signal,
                memory: Value::zero(tag.datatype),
            })
        })
        .collect()
}

pub(crate) async fn run(
    device: DeviceId,
    period: Duration,
    mut tags: Vec<SimTag>,
    events: mpsc::Sender<DriverEvent>,
    mut writes: mpsc::Receiver<WriteCommand>,
) {
    // Online after the first reading, as a real PLC's driver says it: the birth then carries
    // a value for every tag.
    let mut online = Some(DriverEvent::DeviceStatus {
        device,
        online: true,
        error: None,
    });
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut tick: u64 = 0;
    loop {
        tokio::select! {
            // Writes first: a command must not wait behind a poll.
            biased;
            Some(write) = writes.recv() => {
                let result = apply_write(&mut tags, &write);
                let sample = result.as_ref().ok().cloned();
                if let Some(reply) = write.reply {
                    let _ = reply.send(result.map(|_| ()));
                }
                if let Some(sample) = sample
                    && events.send(DriverEvent::Samples(vec![sample])).await.is_err() {
                        return;
                    }
            }
            _ = ticker.tick() => {
                let t = now_ms();
                let samples = tags.iter().map(|tag| TagSample {
                    tag: tag.id,
                    value: Some(signal_value(tag, tick, t)),
                    quality: Quality::Good,
                    timestamp_ms: t,
                }).collect();
                tick += 1;
                if events.send(DriverEvent::Samples(samples)).await.is_err() {
                    return;
                }
                if let Some(online) = online.take()
                    && events.send(online).await.is_err() {
                        return;
                    }
            }
        }
    }
}

fn apply_write(tags: &mut [SimTag], write: &WriteCommand) -> Result<TagSample, String> {
    let tag = tags
        .iter_mut()
        .find(|t| t.id == write.tag)
        .ok_or_else(|| format!("tag {} is not on this device", write.tag.0))?;
    if tag.signal != SimSignal::Memory {
        return Err(format!(
            "the simulator's {} signal is read-only; only memory tags accept writes",
            tag.signal.as_str()
        ));
    }
    if write.value.datatype() != tag.datatype {
        return Err(format!(
            "value is {}, the tag is {}",
            write.value.datatype(),
            tag.datatype
        ));
    }
    tag.memory = write.value.clone();
    Ok(TagSample {
        tag: tag.id,
        value: Some(tag.memory.clone()),
        quality: Quality::Good,
        timestamp_ms: now_ms(),
    })
}

fn signal_value(tag: &SimTag, tick: u64, t_ms: u64) -> Value {
    match tag.signal {
        SimSignal::Sine => {
            let phase = (t_ms % 60_000) as f64 / 60_000.0 * std::f64::consts::TAU;
            numeric(tag.datatype, 50.0 + 50.0 * phase.sin())
        }
        SimSignal::Ramp => numeric(tag.datatype, (tick % 100) as f64),
        SimSignal::Toggle => Value::Bool(tick % 2 == 1),
        // Counters wrap like a PLC counter of that width.
        SimSignal::Counter => match tag.datatype {
            DataType::Int8 => Value::Int8(tick as i8),
            DataType::Int16 => Value::Int16(tick as i16),
            DataType::Int32 => Value::Int32(tick as i32),
            DataType::Int64 => Value::Int64(tick as i64),
            DataType::UInt8 => Value::UInt8(tick as u8),
            DataType::UInt16 => Value::UInt16(tick as u16),
            DataType::UInt32 => Value::UInt32(tick as u32),
            _ => Value::UInt64(tick),
        },
        SimSignal::Text => Value::String(STATES[(tick / 5 % 4) as usize].to_owned()),
        SimSignal::Memory => tag.memory.clone(),
    }
}

/// `x` as a value of `datatype` (rounded and saturated for integers); validation gives only
/// numeric and bool types to the signals that use it, the rest start from zero.
fn numeric(datatype: DataType, x: f64) -> Value {
    let r = x.round();
    match datatype {
        DataType::Bool => Value::Bool(x != 0.0),
        DataType::Int8 => Value::Int8(r as i8),
        DataType::Int16 => Value::Int16(r as i16),
        DataType::Int32 => Value::Int32(r as i32),
        DataType::Int64 => Value::Int64(r as i64),
        DataType::UInt8 => Value::UInt8(r as u8),
        DataType::UInt16 => Value::UInt16(r as u16),
        DataType::UInt32 => Value::UInt32(r as u32),
        DataType::UInt64 => Value::UInt64(r as u64),
        DataType::Float32 => Value::Float32(x as f32),
        DataType::Float64 => Value::Float64(x),
        other => Value::zero(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(signal: SimSignal, datatype: DataType) -> SimTag {
        SimTag {
            id: TagId(0),
            datatype,
            signal,
            memory: Value::zero(datatype),
        }
    }

    #[test]
    fn signals_have_the_tag_type_and_change_between_ticks() {
        for (signal, datatype) in [
            (SimSignal::Ramp, DataType::Int32),
            (SimSignal::Toggle, DataType::Bool),
            (SimSignal::Counter, DataType::UInt32),
        ] {
            let t = tag(signal, datatype);
            let (a, b) = (signal_value(&t, 1, 0), signal_value(&t, 2, 1000));
            assert_eq!(a.datatype(), datatype);
            assert_ne!(a, b, "{signal:?}");
        }
        let sine = tag(SimSignal::Sine, DataType::Float32);
        assert_ne!(signal_value(&sine, 0, 0), signal_value(&sine, 0, 1000));
        let text = tag(SimSignal::Text, DataType::String);
        assert_ne!(signal_value(&text, 0, 0), signal_value(&text, 5, 0));
    }

    #[test]
    fn only_memory_accepts_writes_of_its_own_type() {
        let mut tags = vec![tag(SimSignal::Memory, DataType::Float32)];
        let write = |value| WriteCommand {
            tag: TagId(0),
            value,
            reply: None,
        };
        let sample = apply_write(&mut tags, &write(Value::Float32(4.5))).unwrap();
        assert_eq!(sample.value, Some(Value::Float32(4.5)));
        assert_eq!(signal_value(&tags[0], 9, 0), Value::Float32(4.5));
        assert!(apply_write(&mut tags, &write(Value::Int32(1))).is_err());
        // Memory holds arrays and datetimes too, starting from empty and the epoch.
        let mut tags = vec![tag(SimSignal::Memory, DataType::StringArray)];
        assert_eq!(
            signal_value(&tags[0], 0, 0),
            Value::zero(DataType::StringArray)
        );
        let recipe: Value = uns_model::Array::String(vec!["a".into(), "b".into()]).into();
        apply_write(&mut tags, &write(recipe.clone())).unwrap();
        assert_eq!(signal_value(&tags[0], 1, 0), recipe);
        let mut tags = vec![tag(SimSignal::Memory, DataType::DateTime)];
        assert_eq!(signal_value(&tags[0], 0, 0), Value::DateTime(0));
        assert!(apply_write(&mut tags, &write(Value::UInt64(5))).is_err());
        tags[0].signal = SimSignal::Sine;
        let err = apply_write(&mut tags, &write(Value::Float32(1.0))).unwrap_err();
        assert!(err.contains("read-only"), "{err}");
    }
}
