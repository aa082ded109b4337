//! The OPC UA driver of one server: one session; one subscription with a monitored item per
//! subscribed tag; polled reads for tags of a scan class; writes through the same session.
//!
//! The driver owns reconnection rather than leaving it to the client library: on a lost
//! session it reports the device offline (every tag stale), drops the session with its
//! subscription, waits out its back-off and builds a new session and subscription from
//! scratch. So a tag is never monitored twice, whatever the server remembered, and the
//! device is born again only once every monitored item has reported its first value.

use std::collections::VecDeque;
use std::time::Duration;

use opcua::client::{DataChangeCallback, Session};
use opcua::types::{
    AttributeId, DataChangeFilter, DataChangeTrigger, DataValue, DeadbandType, ExtensionObject,
    MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters, NodeId, ReadValueId,
    StatusCode, TimestampsToReturn, VariableId, Variant, WriteValue,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use uns_model::opcua::NodeAddress;
use uns_model::{DataType, Quality, TagId, TagSample, Value};

use super::connect::Connection;
use super::convert;
use crate::modbus::backoff::Backoff;
use crate::{DeviceId, DriverEvent, WriteCommand, now_ms};

/// Monitored items per CreateMonitoredItems call when the server does not say
/// (OperationLimits.MaxMonitoredItemsPerCall absent or 0): small enough for embedded servers.
pub(crate) const DEFAULT_ITEMS_PER_CALL: usize = 100;

/// Subscriptions one device opens at most when the server limits the items of each; with
/// a server's usual limits (a thousand or more) that is far beyond any PLC's tag count.
const MAX_SUBSCRIPTIONS: usize = 100;

/// Notifications the server puts in one Publish response at most. Without a bound, 10,000
/// changing items make a response larger than the server's message size limit
/// (BadResponseTooLarge, found with async-opcua's server at 327,675 bytes); a value change
/// takes some 40 bytes, so 1000 keep a response near 40 KB and the server sends the rest in
/// further responses of the same publishing cycle.
const NOTIFICATIONS_PER_PUBLISH: u32 = 1000;

/// How often at most an established session is checked for a silent server.
const WATCHDOG_EVERY: Duration = Duration::from_secs(5);

/// Nodes per Read request when the server does not say (OperationLimits.MaxNodesPerRead).
const DEFAULT_NODES_PER_READ: usize = 500;

/// One OPC UA server and the tags read from it.
#[derive(Clone, Debug)]
pub(crate) struct OpcUaDevice {
    pub device: DeviceId,
    pub connection: Connection,
    /// Publishing interval of the subscription.
    pub period: Duration,
    /// Sampling interval asked for each item, in milliseconds.
    pub sampling_ms: f64,
    /// Values the server queues per item between publishes.
    pub queue_size: u32,
    /// In tag id order.
    pub tags: Vec<OpcUaTag>,
}

#[derive(Clone, Debug)]
pub(crate) struct OpcUaTag {
    pub id: TagId,
    pub node: NodeAddress,
    pub datatype: DataType,
    pub writable: bool,
    /// Read by polling at this period; `None`: by subscription.
    pub poll: Option<Duration>,
    /// The data-change deadband asked of the server, so unchanged values are not even sent.
    /// The hub applies the tag's deadband again: a server may ignore the filter.
    pub deadband: Option<(DeadbandType, f64)>,
}

impl OpcUaTag {
    pub(crate) fn from_model(
        id: TagId,
        tag: &uns_model::Tag,
        poll: Option<Duration>,
    ) -> Option<OpcUaTag> {
        let acquisition = tag.acquisition.as_deref();
        let deadband = match (
            acquisition.and_then(|a| a.deadband),
            acquisition.and_then(|a| a.deadband_percent),
        ) {
            (Some(d), _) => Some((DeadbandType::Absolute, d)),
            (None, Some(p)) => Some((DeadbandType::Percent, p)),
            (None, None) => None,
        };
        Some(OpcUaTag {
            id,
            node: tag.address.parse().ok()?,
            datatype: tag.datatype,
            writable: tag.writable,
            poll,
            deadband,
        })
    }
}

/// Why a session ended.
enum End {
    /// The hub is gone: stop.
    HubGone,
    /// The server went away or never came: offline, back off, try again.
    Lost(String),
}

/// A value notification: the item's client handle (tag index + 1) and its data value.
type Notification = (u32, DataValue);

/// Runs the driver until the hub goes away.
pub(crate) async fn run(
    dev: OpcUaDevice,
    events: mpsc::Sender<DriverEvent>,
    mut writes: mpsc::Receiver<WriteCommand>,
) {
    let mut client = match dev.connection.client() {
        Ok(c) => c,
        Err(e) => {
            // A configuration the library refuses, or a missing certificate: say so and idle.
            let _ = events.send(offline(dev.device, e)).await;
            while let Some(w) = writes.recv().await {
                refuse(w, "the OPC UA client could not be set up");
            }
            return;
        }
    };
    let seed = now_ms() ^ (dev.device.0 as u64) << 32;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30), seed);
    let mut online = false;
    // The reason of the last failed attempt: a new reason is worth a warning, a repeat not.
    let mut last_failure = String::new();
    loop {
        match session(
            &mut client,
            &dev,
            &events,
            &mut writes,
            &mut online,
            &mut backoff,
        )
        .await
        {
            End::HubGone => return,
            End::Lost(reason) => {
                if online {
                    online = false;
                    let t = now_ms();
                    let stale = dev
                        .tags
                        .iter()
                        .map(|tag| sample(tag.id, None, Quality::Stale, t))
                        .collect();
                    if events.send(DriverEvent::Samples(stale)).await.is_err()
                        || events
                            .send(offline(dev.device, reason.clone()))
                            .await
                            .is_err()
                    {
                        return;
                    }
                } else if reason != last_failure {
                    // A new reason why the device cannot be reached: the hub logs it and
                    // the UI shows it (an untrusted certificate, a wrong password…).
                    if events
                        .send(offline(dev.device, reason.clone()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                } else {
                    tracing::debug!(device = dev.device.0, endpoint = %dev.connection.endpoint, "{reason}");
                }
                last_failure = reason;
            }
        }
        // Back off; writes meanwhile are answered at once rather than left waiting.
        let until = Instant::now() + backoff.next_delay();
        loop {
            tokio::select! {
                w = writes.recv() => match w {
                    Some(w) => refuse(w, "the device is not connected"),
                    None => return,
                },
                _ = sleep_until(until) => break,
            }
        }
    }
}

/// What a new session set up.
struct Subscribed {
    /// The NodeId of each tag (same index), `None` when it did not resolve.
    nodes: Vec<Option<NodeId>>,
    /// Tags whose item was created: they owe a first value before the device is online.
    expected: Vec<bool>,
    /// Samples for tags that could not be monitored (bad quality).
    failed: Vec<TagSample>,
    /// Nodes per Read request the server accepts.
    per_read: usize,
}

/// Tags read together at one period.
struct PollGroup {
    period: Duration,
    next: Instant,
    /// Tag indexes whose node resolved.
    tags: Vec<usize>,
}

/// One session, from connecting to its loss. Sets `online` once the device is born.
async fn session(
    client: &mut opcua::client::Client,
    dev: &OpcUaDevice,
    events: &mpsc::Sender<DriverEvent>,
    writes: &mut mpsc::Receiver<WriteCommand>,
    online: &mut bool,
    backoff: &mut Backoff,
) -> End {
    let timeout_each = dev.connection.timeout;
    let mut opened = match dev.connection.session(client).await {
        Ok(s) => s,
        Err(e) => return End::Lost(e),
    };
    let session = opened.session.clone();
    let lost = &mut opened.lost;
    let lost_reason = |r: Result<String, _>| {
        End::Lost(
            dev.connection
                .explain(r.unwrap_or_else(|_| "session ended".into())),
        )
    };

    let (notes_tx, mut notes) = mpsc::unbounded_channel::<Notification>();
    let setup = async {
        if !session.wait_for_connection().await {
            return Err("the session did not come up".to_owned());
        }
        subscribe(&session, dev, notes_tx).await
    };
    // Setup makes a handful of requests, each limited by the request timeout.
    let mut subscribed = tokio::select! {
        r = &mut *lost => return lost_reason(r),
        r = timeout(timeout_each * 4, setup) => match r {
            Err(_) => return End::Lost("setting up the subscription took too long".into()),
            Ok(Err(e)) => return End::Lost(e),
            Ok(Ok(s)) => s,
        },
    };

    let mut statuses = StatusLog::new(dev.tags.len());
    // Polled tags, grouped by period; their first read is part of the birth.
    let mut groups: Vec<PollGroup> = Vec::new();
    for (k, tag) in dev.tags.iter().enumerate() {
        let (Some(period), Some(_)) = (tag.poll, &subscribed.nodes[k]) else {
            continue;
        };
        match groups.iter_mut().find(|g| g.period == period) {
            Some(g) => g.tags.push(k),
            None => groups.push(PollGroup {
                period,
                next: Instant::now(),
                tags: vec![k],
            }),
        }
    }
    let mut pending = std::mem::take(&mut subscribed.failed);
    for group in &mut groups {
        tokio::select! {
            r = &mut *lost => return lost_reason(r),
            samples = poll(&session, dev, &subscribed, &mut statuses, &group.tags) => {
                match samples {
                    Ok(samples) => pending.extend(samples),
                    Err(e) => return End::Lost(e),
                }
            }
        }
        group.next = Instant::now() + group.period;
    }

    // Birth: every created item's first value (or what the deadline leaves), then online.
    // The server sends each item's current value in the first publish after creation.
    let mut missing = subscribed.expected.iter().filter(|e| **e).count();
    let mut seen = vec![false; dev.tags.len()];
    let deadline = Instant::now() + timeout_each.max(dev.period * 3);
    let mut batch = Vec::new();
    while missing > 0 {
        tokio::select! {
            r = &mut *lost => return lost_reason(r),
            n = notes.recv_many(&mut batch, 1024) => {
                if n == 0 {
                    return End::Lost("the subscription ended".into());
                }
                for (handle, dv) in batch.drain(..) {
                    if let Some(s) = to_sample(dev, &mut statuses, handle, dv) {
                        let k = handle as usize - 1;
                        if !seen[k] && subscribed.expected[k] {
                            seen[k] = true;
                            missing -= 1;
                        }
                        pending.push(s);
                    }
                }
            }
            _ = sleep_until(deadline) => {
                tracing::warn!(device = dev.device.0, missing, "items without a first value; the device is born without them");
                break;
            }
        }
    }
    if events.send(DriverEvent::Samples(pending)).await.is_err() {
        return End::HubGone;
    }
    let up = DriverEvent::DeviceStatus {
        device: dev.device,
        online: true,
        error: None,
    };
    if events.send(up).await.is_err() {
        return End::HubGone;
    }
    *online = true;
    backoff.reset();
    tracing::info!(device = dev.device.0, endpoint = %dev.connection.endpoint, "OPC UA session up");

    // A server that stops answering without closing the connection (cable pulled, process
    // hung) never ends the session by itself: ask it something now and then, and give up on
    // it after two unanswered questions.
    let mut watchdog = tokio::time::interval(WATCHDOG_EVERY.min(timeout_each.max(dev.period)));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    watchdog.reset();
    let mut unanswered = 0;
    loop {
        let next_poll = groups.iter().map(|g| g.next).min();
        tokio::select! {
            biased;
            r = &mut *lost => return lost_reason(r),
            _ = watchdog.tick() => {
                let state = ReadValueId {
                    node_id: VariableId::Server_ServerStatus_State.into(),
                    attribute_id: AttributeId::Value as u32,
                    ..Default::default()
                };
                let state = [state];
                let asked = session.read(&state, TimestampsToReturn::Neither, 0.0);
                match timeout(timeout_each, asked).await {
                    Ok(Ok(_)) => unanswered = 0,
                    Ok(Err(e)) => {
                        unanswered += 1;
                        tracing::debug!(device = dev.device.0, "watchdog read failed: {e}");
                    }
                    Err(_) => unanswered += 1,
                }
                if unanswered >= 2 {
                    return End::Lost("the server stopped answering".into());
                }
            }
            w = writes.recv() => match w {
                Some(w) => {
                    let result = write(&session, dev, &subscribed.nodes, &mut statuses, &w).await;
                    if let Err(e) = &result {
                        tracing::warn!(device = dev.device.0, tag = w.tag.0, "write refused: {e}");
                    }
                    let back = result.as_ref().ok().cloned();
                    if let Some(reply) = w.reply {
                        let _ = reply.send(result.map(|_| ()));
                    }
                    if let Some(s) = back
                        && events.send(DriverEvent::Samples(vec![s])).await.is_err()
                    {
                        return End::HubGone;
                    }
                }
                None => {
                    // Free the server's session now rather than at its timeout.
                    let _ = timeout(timeout_each, session.disconnect()).await;
                    return End::HubGone;
                }
            },
            n = notes.recv_many(&mut batch, 1024) => {
                if n == 0 {
                    return End::Lost("the subscription ended".into());
                }
                let samples: Vec<TagSample> = batch
                    .drain(..)
                    .filter_map(|(handle, dv)| to_sample(dev, &mut statuses, handle, dv))
                    .collect();
                if !samples.is_empty() && events.send(DriverEvent::Samples(samples)).await.is_err() {
                    return End::HubGone;
                }
            }
            _ = sleep_until(next_poll.unwrap_or_else(Instant::now)), if next_poll.is_some() => {
                let now = Instant::now();
                for group in groups.iter_mut().filter(|g| g.next <= now) {
                    // A late poll is not made up for: the next one is a period from now.
                    group.next = (group.next + group.period).max(now);
                    match poll(&session, dev, &subscribed, &mut statuses, &group.tags).await {
                        Ok(samples) => {
                            if events.send(DriverEvent::Samples(samples)).await.is_err() {
                                return End::HubGone;
                            }
                        }
                        Err(e) => return End::Lost(e),
                    }
                }
            }
        }
    }
}

/// Reads the server's namespace table and the operation limits the driver obeys. One node
/// per request: a server's MaxNodesPerRead may be lower than the three asked here.
async fn server_info(session: &Session) -> Result<(Vec<String>, usize, usize), String> {
    let read = |id: VariableId| async move {
        let node = [ReadValueId {
            node_id: id.into(),
            attribute_id: AttributeId::Value as u32,
            ..Default::default()
        }];
        session
            .read(&node, TimestampsToReturn::Neither, 0.0)
            .await
            .map(|values| values.into_iter().next().and_then(|dv| dv.value))
    };
    let namespaces = read(VariableId::Server_NamespaceArray)
        .await
        .map_err(|e| format!("cannot read the server's namespace table: {e}"))?;
    let namespaces = convert::namespace_table(namespaces.as_ref());
    // 0 or absent means the server sets no limit; ours then keeps requests moderate.
    let limit = |value: Result<Option<Variant>, _>, default: usize| match value {
        Ok(Some(Variant::UInt32(n))) if n > 0 => n as usize,
        _ => default,
    };
    let per_call = limit(
        read(VariableId::Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall).await,
        DEFAULT_ITEMS_PER_CALL,
    );
    let per_read = limit(
        read(VariableId::Server_ServerCapabilities_OperationLimits_MaxNodesPerRead).await,
        DEFAULT_NODES_PER_READ,
    );
    Ok((namespaces, per_call, per_read))
}

/// Resolves the tags' NodeIds, creates the subscription and its monitored items in batches
/// the server accepts.
async fn subscribe(
    session: &Session,
    dev: &OpcUaDevice,
    notes: mpsc::UnboundedSender<Notification>,
) -> Result<Subscribed, String> {
    let (namespaces, per_call, per_read) = server_info(session).await?;
    let t = now_ms();
    let mut failed = Vec::new();
    let nodes: Vec<Option<NodeId>> = dev
        .tags
        .iter()
        .map(|tag| match convert::node_id(&tag.node, &namespaces) {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(device = dev.device.0, tag = tag.id.0, "{e}");
                failed.push(sample(tag.id, None, Quality::Bad, t));
                None
            }
        })
        .collect();
    let mut expected = vec![false; dev.tags.len()];
    let subscribed: Vec<usize> = (0..dev.tags.len())
        .filter(|k| dev.tags[*k].poll.is_none() && nodes[*k].is_some())
        .collect();
    if subscribed.is_empty() {
        return Ok(Subscribed {
            nodes,
            expected,
            failed,
            per_read,
        });
    }

    // Keep-alive every ~10 s at most; the lifetime three keep-alives (Part 4, 5.13.2).
    let period_ms = dev.period.as_millis().max(1) as u32;
    let keep_alive = (10_000 / period_ms).clamp(1, 100);
    let new_subscription = || {
        let notes = notes.clone();
        let callback = DataChangeCallback::new(move |dv, item| {
            // The receiver is gone only when the session is being dropped.
            let _ = notes.send((item.client_handle(), dv));
        });
        async move {
            session
                .create_subscription(
                    dev.period,
                    keep_alive * 3,
                    keep_alive,
                    NOTIFICATIONS_PER_PUBLISH,
                    0,
                    true,
                    callback,
                )
                .await
                .map_err(|e| format!("cannot create a subscription: {e}"))
        }
    };
    let mut subscription = new_subscription().await?;
    let mut subscriptions = 1;
    // Items created in the current subscription.
    let mut in_current = 0;

    let request = |k: usize, with_filter: bool| {
        let tag = &dev.tags[k];
        let filter = match tag.deadband {
            Some((kind, value)) if with_filter => ExtensionObject::from_message(DataChangeFilter {
                trigger: DataChangeTrigger::StatusValue,
                deadband_type: kind as u32,
                deadband_value: value,
            }),
            _ => ExtensionObject::null(),
        };
        MonitoredItemCreateRequest {
            item_to_monitor: ReadValueId {
                node_id: nodes[k].clone().unwrap_or_default(),
                attribute_id: AttributeId::Value as u32,
                ..Default::default()
            },
            monitoring_mode: MonitoringMode::Reporting,
            requested_parameters: MonitoringParameters {
                client_handle: k as u32 + 1,
                sampling_interval: dev.sampling_ms,
                filter,
                queue_size: dev.queue_size,
                discard_oldest: true,
            },
        }
    };
    // Calls still to make: tag indexes, and whether to ask for their deadband filter.
    // A server limits the items of one subscription (BadTooManyMonitoredItems, for the
    // whole call or per item): the rest then go into a new subscription, and a call larger
    // than that limit is split. Items whose deadband the server refused are created again
    // without it: the hub's deadband still applies, the server just sends a little more.
    let mut work: VecDeque<(Vec<usize>, bool)> = subscribed
        .chunks(per_call)
        .map(|c| (c.to_vec(), true))
        .collect();
    // Every item is created, refused or split at most a bounded number of times: each
    // split halves a call, each new subscription starts empty.
    while let Some((chunk, filtered)) = work.pop_front() {
        let requests = chunk.iter().map(|k| request(*k, filtered)).collect();
        let results = match session
            .create_monitored_items(subscription, TimestampsToReturn::Both, requests)
            .await
        {
            Ok(results) => results,
            Err(e) if e.status() == StatusCode::BadTooManyMonitoredItems => {
                if in_current > 0 && subscriptions < MAX_SUBSCRIPTIONS {
                    subscription = new_subscription().await?;
                    subscriptions += 1;
                    in_current = 0;
                } else if chunk.len() > 1 {
                    let (a, b) = chunk.split_at(chunk.len() / 2);
                    work.push_front((b.to_vec(), filtered));
                    work.push_front((a.to_vec(), filtered));
                    continue;
                } else {
                    return Err(format!(
                        "cannot create monitored items: the server takes no more \
                         (BadTooManyMonitoredItems) after {} items in {subscriptions} \
                         subscriptions",
                        expected.iter().filter(|e| **e).count()
                    ));
                }
                work.push_front((chunk, filtered));
                continue;
            }
            Err(e) => return Err(format!("cannot create monitored items: {e}")),
        };
        let mut unfiltered = Vec::new();
        let mut too_many = Vec::new();
        for (k, result) in chunk.iter().zip(results.iter()) {
            let code = result.result.status_code;
            let tag = &dev.tags[*k];
            if code.is_good() {
                expected[*k] = true;
                in_current += 1;
            } else if filtered && tag.deadband.is_some() && is_filter_refusal(code) {
                tracing::info!(device = dev.device.0, tag = tag.id.0, node = %tag.node, "the server does not take the deadband ({code}); it is applied here only");
                unfiltered.push(*k);
            } else if code == StatusCode::BadTooManyMonitoredItems
                && in_current > 0
                && subscriptions < MAX_SUBSCRIPTIONS
            {
                too_many.push(*k);
            } else {
                tracing::warn!(device = dev.device.0, tag = tag.id.0, node = %tag.node, "cannot monitor: {code}");
                failed.push(sample(tag.id, None, Quality::Bad, t));
            }
        }
        if !unfiltered.is_empty() {
            work.push_back((unfiltered, false));
        }
        if !too_many.is_empty() {
            subscription = new_subscription().await?;
            subscriptions += 1;
            in_current = 0;
            work.push_front((too_many, filtered));
        }
    }
    tracing::info!(
        device = dev.device.0,
        items = expected.iter().filter(|e| **e).count(),
        subscriptions,
        per_call,
        "OPC UA subscriptions created"
    );
    Ok(Subscribed {
        nodes,
        expected,
        failed,
        per_read,
    })
}

fn is_filter_refusal(code: StatusCode) -> bool {
    matches!(
        code,
        StatusCode::BadFilterNotAllowed
            | StatusCode::BadMonitoredItemFilterUnsupported
            | StatusCode::BadMonitoredItemFilterInvalid
            | StatusCode::BadDeadbandFilterInvalid
    )
}

/// Reads the values of `tags` (indexes into the device's tags, all resolved) in requests
/// of at most the server's MaxNodesPerRead. A request that gets no answer ends the session;
/// a node the server cannot read is a bad sample.
async fn poll(
    session: &Session,
    dev: &OpcUaDevice,
    subscribed: &Subscribed,
    statuses: &mut StatusLog,
    tags: &[usize],
) -> Result<Vec<TagSample>, String> {
    let mut samples = Vec::with_capacity(tags.len());
    for chunk in tags.chunks(subscribed.per_read.max(1)) {
        let reads: Vec<ReadValueId> = chunk
            .iter()
            .map(|k| ReadValueId {
                node_id: subscribed.nodes[*k].clone().unwrap_or_default(),
                attribute_id: AttributeId::Value as u32,
                ..Default::default()
            })
            .collect();
        let values = timeout(
            dev.connection.timeout,
            session.read(&reads, TimestampsToReturn::Both, 0.0),
        )
        .await
        .map_err(|_| "a polled read got no answer".to_owned())?
        .map_err(|e| format!("a polled read failed: {e}"))?;
        for (k, dv) in chunk.iter().zip(values) {
            samples.extend(to_sample(dev, statuses, *k as u32 + 1, dv));
        }
    }
    Ok(samples)
}

/// The status code each tag of a session last had, so that a status is logged when it
/// changes rather than with every sample: a sensor reporting an uncertain value every
/// second would otherwise write a warning every second for as long as it is out of
/// calibration, while every sink already shows the quality. Four bytes a tag. A new
/// session starts from good, so after a reconnect what is still wrong is logged again.
struct StatusLog(Vec<StatusCode>);

impl StatusLog {
    fn new(tags: usize) -> StatusLog {
        StatusLog(vec![StatusCode::Good; tags])
    }

    /// Records tag `k`'s status; gives the one it had before when that was another. Good
    /// codes differ only in their info bits (overflow, local override…), which are no news.
    fn change(&mut self, k: usize, code: StatusCode) -> Option<StatusCode> {
        let last = self.0.get_mut(k)?;
        let code = if code.is_good() {
            StatusCode::Good
        } else {
            code
        };
        (*last != code).then(|| std::mem::replace(last, code))
    }
}

/// A notification as a sample of its tag: the source time when the server gives one.
fn to_sample(
    dev: &OpcUaDevice,
    statuses: &mut StatusLog,
    handle: u32,
    dv: DataValue,
) -> Option<TagSample> {
    let k = (handle as usize).checked_sub(1)?;
    let tag = dev.tags.get(k)?;
    let t = dv
        .source_timestamp
        .as_ref()
        .or(dv.server_timestamp.as_ref())
        .and_then(convert::unix_ms)
        .unwrap_or_else(now_ms);
    let code = dv.status();
    let quality = convert::quality(code);
    let (device, id, node) = (dev.device.0, tag.id.0, &tag.node);
    match (statuses.change(k, code), quality) {
        (None, Quality::Good) => {}
        (None, _) => tracing::debug!(device, tag = id, %node, "status {code} still"),
        (Some(was), Quality::Good) => {
            tracing::info!(device, tag = id, %node, "status good again, was {was}")
        }
        (Some(_), Quality::Uncertain) => {
            tracing::warn!(device, tag = id, %node, "status {code}: value passed on as uncertain")
        }
        (Some(_), Quality::Bad | Quality::Stale) => {
            tracing::warn!(device, tag = id, %node, "status {code}: bad, no value")
        }
    }
    if quality == Quality::Bad {
        return Some(sample(tag.id, None, Quality::Bad, t));
    }
    // A good or uncertain status comes with the value it qualifies. An uncertain one
    // without a value (a server with no last usable value to give) has nothing to flag: it
    // is bad, and the status just noted says why.
    let value = match &dv.value {
        Some(Variant::Empty) | None if quality == Quality::Uncertain => None,
        value => value.as_ref(),
    };
    match value.map(|v| convert::to_value(tag.datatype, v)) {
        Some(Ok(v)) => Some(sample(tag.id, Some(v), quality, t)),
        Some(Err(e)) => {
            tracing::warn!(device = dev.device.0, tag = tag.id.0, node = %tag.node, "{e}");
            Some(sample(tag.id, None, Quality::Bad, t))
        }
        None => Some(sample(tag.id, None, Quality::Bad, t)),
    }
}

/// Writes one value and reads the node back: what the server now holds is the new value.
async fn write(
    session: &Session,
    dev: &OpcUaDevice,
    nodes: &[Option<NodeId>],
    statuses: &mut StatusLog,
    w: &WriteCommand,
) -> Result<TagSample, String> {
    let k = dev
        .tags
        .binary_search_by_key(&w.tag, |t| t.id)
        .map_err(|_| "the tag is not on this device".to_owned())?;
    let tag = &dev.tags[k];
    if !tag.writable {
        return Err(format!("{} is not writable (writable = false)", tag.node));
    }
    if w.value.datatype() != tag.datatype {
        return Err(format!(
            "a {} value cannot be written to a {} tag",
            w.value.datatype(),
            tag.datatype
        ));
    }
    let node = nodes[k]
        .clone()
        .ok_or_else(|| format!("{} does not resolve on this server", tag.node))?;
    let value = WriteValue {
        node_id: node.clone(),
        attribute_id: AttributeId::Value as u32,
        value: DataValue {
            value: Some(convert::to_variant(&w.value)),
            ..Default::default()
        },
        ..Default::default()
    };
    let results = session
        .write(&[value])
        .await
        .map_err(|e| format!("the write got no answer: {e}"))?;
    let code = results
        .first()
        .copied()
        .ok_or("the server answered the write with no result")?;
    if !code.is_good() {
        return Err(format!("the server refused the write: {code}"));
    }
    let read = ReadValueId {
        node_id: node,
        attribute_id: AttributeId::Value as u32,
        ..Default::default()
    };
    let back = session
        .read(&[read], TimestampsToReturn::Both, 0.0)
        .await
        .map_err(|e| format!("written, but reading it back failed: {e}"))?;
    let dv = back
        .into_iter()
        .next()
        .ok_or("written, but the read-back had no value")?;
    to_sample(dev, statuses, k as u32 + 1, dv)
        .ok_or_else(|| "written, but not read back".to_owned())
}

fn refuse(w: WriteCommand, why: &str) {
    if let Some(reply) = w.reply {
        let _ = reply.send(Err(why.to_owned()));
    }
}

fn offline(device: DeviceId, error: String) -> DriverEvent {
    DriverEvent::DeviceStatus {
        device,
        online: false,
        error: Some(error),
    }
}

fn sample(tag: TagId, value: Option<Value>, quality: Quality, timestamp_ms: u64) -> TagSample {
    TagSample {
        tag,
        value,
        quality,
        timestamp_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_news_when_it_changes_not_when_it_repeats() {
        let mut log = StatusLog::new(2);
        let uncertain = StatusCode::UncertainSensorNotAccurate;
        assert_eq!(log.change(0, StatusCode::Good), None, "sessions start good");
        assert_eq!(log.change(0, uncertain), Some(StatusCode::Good));
        assert_eq!(log.change(0, uncertain), None, "every second, logged once");
        assert_eq!(log.change(1, uncertain), Some(StatusCode::Good), "per tag");
        assert_eq!(log.change(0, StatusCode::BadSensorFailure), Some(uncertain));
        assert_eq!(
            log.change(0, StatusCode::Good),
            Some(StatusCode::BadSensorFailure)
        );
        // A good code with info bits set is still just good.
        assert_eq!(log.change(0, StatusCode::GoodLocalOverride), None);
        assert_eq!(log.change(0, StatusCode::Good.set_overflow(true)), None);
        assert_eq!(log.change(2, uncertain), None, "no such tag");
    }
}
