//! Browsing the simulated OPC UA server's address space over TCP on 127.0.0.1: from the
//! Objects folder down to the variables, in small pages, within small operation limits and
//! a count limit.

use std::sync::Arc;
use std::time::Duration;

use opcua::client::{ClientBuilder, IdentityToken, Session};
use opcua::crypto::SecurityPolicy;
use opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, MessageSecurityMode, NodeClassMask, NodeId,
    ReadValueId, ReferenceTypeId, StatusCode, TimestampsToReturn,
};
use southbound::opcua::browse::{
    BrowseError, BrowseOptions, BrowsedNode, Children, NodeKind, browse_children, objects_folder,
};
use southbound::opcua::sim_server::{NAMESPACE_URI, SimConfig, SimServer, node_name};
use tokio::net::TcpListener;
use tokio::time::timeout;
use uns_model::DataType;
use uns_model::opcua::{NodeAddress, opcua_type};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A simulated server and an anonymous session to it (security policy None).
struct Connected {
    session: Arc<Session>,
    event_loop: tokio::task::JoinHandle<StatusCode>,
    sim: SimServer,
    _pki: tempfile::TempDir,
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.event_loop.abort();
    }
}

async fn connect(config: impl FnOnce(&mut SimConfig)) -> Connected {
    let pki = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("opc.tcp://{}/", listener.local_addr().unwrap());
    let mut sim_config = SimConfig {
        // Still: only the values change with the ticks, never what is browsed.
        tick: Duration::from_secs(3600),
        pki_dir: pki.path().join("server"),
        ..SimConfig::default()
    };
    config(&mut sim_config);
    let sim = SimServer::start(listener, sim_config).await.unwrap();

    let mut client = ClientBuilder::new()
        .application_name("sparkedge browse test")
        .application_uri("urn:sparkedge:browse-test")
        .pki_dir(pki.path().join("client"))
        .create_sample_keypair(false)
        .trust_server_certs(false)
        .session_retry_limit(0)
        .request_timeout(REQUEST_TIMEOUT)
        .client()
        .unwrap();
    let endpoints = timeout(
        REQUEST_TIMEOUT,
        client.get_server_endpoints_from_url(url.as_str()),
    )
    .await
    .expect("no answer to GetEndpoints")
    .unwrap();
    let endpoint = endpoints
        .into_iter()
        .find(|e| {
            e.security_mode == MessageSecurityMode::None
                && SecurityPolicy::from_uri(e.security_policy_uri.as_ref()) == SecurityPolicy::None
        })
        .expect("the simulator offers security policy None");
    let (session, event_loop) = client
        .connect_to_endpoint_directly(endpoint, IdentityToken::Anonymous)
        .unwrap();
    let event_loop = event_loop.spawn();
    let up = timeout(REQUEST_TIMEOUT, session.wait_for_connection()).await;
    assert_eq!(up, Ok(true), "the session did not come up");
    Connected {
        session,
        event_loop,
        sim,
        _pki: pki,
    }
}

fn options(page: u32, limit: usize) -> BrowseOptions {
    BrowseOptions {
        page,
        limit,
        request_timeout: REQUEST_TIMEOUT,
    }
}

fn address(s: &str) -> NodeAddress {
    s.parse().unwrap()
}

/// The child called `name`, which must be there.
fn child<'a>(children: &'a Children, name: &str) -> &'a BrowsedNode {
    children
        .nodes
        .iter()
        .find(|n| n.browse_name == name)
        .unwrap_or_else(|| {
            let names: Vec<&str> = children
                .nodes
                .iter()
                .map(|n| n.browse_name.as_str())
                .collect();
            panic!("no child {name}; children: {names:?}")
        })
}

/// The nodes by address: servers need not list children in the same order every time
/// (the simulator does not).
fn sorted(nodes: &[BrowsedNode]) -> Vec<BrowsedNode> {
    let mut nodes = nodes.to_vec();
    nodes.sort_by_key(|n| n.address.to_string());
    nodes
}

/// The children of `node`, and the counts the progress callback was given.
async fn browse(
    session: &Session,
    node: &NodeAddress,
    options: &BrowseOptions,
) -> (Children, Vec<usize>) {
    let mut progress = Vec::new();
    let children = browse_children(session, node, options, |n| progress.push(n))
        .await
        .unwrap_or_else(|e| panic!("browsing {node}: {e}"));
    (children, progress)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_the_objects_folder_down_to_variables_with_their_attributes() {
    let c = connect(|_| {}).await;
    let all = options(1000, 10_000);

    let (objects, _) = browse(&c.session, &objects_folder(), &all).await;
    assert!(!objects.truncated);
    let sim = child(&objects, "Sim");
    assert_eq!(sim.kind, NodeKind::Folder);
    assert!(sim.may_have_children);
    assert_eq!(sim.variable, None);
    // Addressed by namespace URI, stable whatever index the server gives it.
    assert_eq!(
        sim.address.to_string(),
        format!("nsu={NAMESPACE_URI};s=Sim")
    );
    let server = child(&objects, "Server");
    assert_eq!(server.kind, NodeKind::Object);
    assert_eq!(server.address.to_string(), "i=2253");

    let (folders, _) = browse(&c.session, &sim.address, &all).await;
    for name in ["Changing", "Writable"] {
        let folder = child(&folders, name);
        assert_eq!(folder.kind, NodeKind::Folder);
        let (variables, _) = browse(&c.session, &folder.address, &all).await;
        assert!(!variables.truncated);
        // Other types may be added to the simulator; every type of ours is there, arrays
        // as <Type>Array.
        assert!(variables.nodes.len() >= DataType::ALL.len());
        for dt in DataType::ALL {
            let type_name = opcua_type(dt).0;
            let node = node_name(name, dt);
            let display_name = node.trim_start_matches(name).trim_start_matches('.');
            let v = child(&variables, display_name);
            assert_eq!(v.kind, NodeKind::Variable, "{display_name}");
            assert_eq!(v.display_name, display_name);
            assert_eq!(
                v.address.to_string(),
                format!("nsu={NAMESPACE_URI};s={}", node_name(name, dt))
            );
            assert!(!v.may_have_children, "{type_name}");
            let info = v.variable.as_ref().unwrap();
            assert_eq!(info.opcua_type, type_name);
            assert_eq!(info.datatype, Some(dt));
            let rank = if dt.is_array() { 1 } else { -1 };
            assert_eq!(info.value_rank, Some(rank), "{display_name}");
            assert!(info.readable, "{type_name}");
            assert_eq!(info.writable, name == "Writable", "{}", v.address);
            let description = v.description.as_deref().unwrap_or_default();
            let expected = match name {
                "Writable" => "holds what is written",
                _ => "changes every tick",
            };
            assert!(
                description.contains(expected),
                "{}: {description:?}",
                v.address
            );
        }
    }

    // The standard's own variables: a type the model has no counterpart for is still
    // named, from its DataType node.
    let (server_children, _) = browse(&c.session, &server.address, &all).await;
    let status = child(&server_children, "ServerStatus");
    assert_eq!(status.kind, NodeKind::Variable);
    // A structure with fields: worth an expander.
    assert!(status.may_have_children);
    let info = status.variable.as_ref().unwrap();
    assert_eq!(info.opcua_type, "ServerStatusDataType");
    assert_eq!(info.datatype, None);
    assert!(info.readable && !info.writable);
    let (status_children, _) = browse(&c.session, &status.address, &all).await;
    let start = child(&status_children, "StartTime");
    assert_eq!(start.variable.as_ref().unwrap().opcua_type, "UtcTime");
    // A subtype of DateTime, sent as one.
    assert_eq!(
        start.variable.as_ref().unwrap().datatype,
        Some(DataType::DateTime)
    );
    let namespaces = child(&server_children, "NamespaceArray");
    let info = namespaces.variable.as_ref().unwrap();
    assert_eq!(info.opcua_type, "String");
    // A one-dimensional array: a string[] tag reads it.
    assert_eq!(info.value_rank, Some(1));
    assert_eq!(info.datatype, Some(DataType::StringArray));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_pages_and_small_reads_give_what_one_big_page_gives() {
    // Fewer attributes per Read than one variable has.
    let c = connect(|s| s.max_nodes_per_read = 4).await;
    // The limit is real: a Read of more attributes is refused as a whole.
    let changing = NodeId::new(c.sim.namespace(), "Changing.Int32");
    let reads: Vec<ReadValueId> = [
        AttributeId::Value,
        AttributeId::DataType,
        AttributeId::ValueRank,
        AttributeId::AccessLevel,
        AttributeId::Description,
    ]
    .into_iter()
    .map(|a| ReadValueId {
        node_id: changing.clone(),
        attribute_id: a as u32,
        ..Default::default()
    })
    .collect();
    let refused = c
        .session
        .read(&reads, TimestampsToReturn::Neither, 0.0)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), StatusCode::BadTooManyOperations);

    let folder = address(&format!("nsu={NAMESPACE_URI};s=Writable"));
    let (paged, progress) = browse(&c.session, &folder, &options(3, 10_000)).await;
    let (whole, one) = browse(&c.session, &folder, &options(1000, 10_000)).await;
    assert_eq!(sorted(&paged.nodes), sorted(&whole.nodes));
    assert!(!paged.truncated && !whole.truncated);
    assert!(paged.nodes.len() >= DataType::ALL.len());
    // One report per page of at most 3, counting up to the result.
    assert!(
        progress.len() >= paged.nodes.len().div_ceil(3),
        "{progress:?}"
    );
    assert!(
        progress
            .windows(2)
            .all(|w| w[0] <= w[1] && w[1] - w[0] <= 3),
        "{progress:?}"
    );
    assert_eq!(progress.last(), Some(&paged.nodes.len()));
    assert_eq!(one, vec![whole.nodes.len()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_truncates_and_releases_the_continuation_point() {
    // One continuation point per session: a browse that left its own behind would make
    // the next one that needs a continuation point fail.
    let c = connect(|s| s.max_browse_continuation_points = 1).await;
    let folder = address(&format!("nsu={NAMESPACE_URI};s=Changing"));
    let (whole, _) = browse(&c.session, &folder, &options(1000, 10_000)).await;

    for (page, limit) in [(2, 5), (2, 5), (10, 5), (3, 6), (2, 5)] {
        let (first, progress) = browse(&c.session, &folder, &options(page, limit)).await;
        assert!(first.truncated, "page {page}, limit {limit}");
        assert_eq!(first.nodes.len(), limit);
        // Distinct children of the node, as a complete browse describes them.
        let first = sorted(&first.nodes);
        assert!(first.windows(2).all(|w| w[0].address != w[1].address));
        assert!(first.iter().all(|n| whole.nodes.contains(n)));
        assert_eq!(progress.last(), Some(&limit));
    }
    // Exactly the limit, and nothing more on the server: not truncated.
    let n = whole.nodes.len();
    let (exact, _) = browse(&c.session, &folder, &options(4, n)).await;
    assert_eq!((exact.nodes.len(), exact.truncated), (n, false));

    // The check above means something: a continuation point left behind does block the
    // next browse, and the failure names the node and the status code.
    let held = c
        .session
        .browse(
            &[BrowseDescription {
                node_id: NodeId::new(c.sim.namespace(), "Writable"),
                browse_direction: BrowseDirection::Forward,
                reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
                include_subtypes: true,
                node_class_mask: NodeClassMask::VARIABLE.bits(),
                result_mask: 0x3f,
            }],
            2,
            None,
        )
        .await
        .unwrap();
    assert!(!held[0].continuation_point.is_null_or_empty());
    let err = browse_children(&c.session, &folder, &options(2, 100), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, BrowseError::Failed { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("nsu={NAMESPACE_URI};s=Changing"))
            && message.contains("BadNoContinuationPoints"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_nodes_and_namespaces_are_named_in_the_error() {
    let c = connect(|_| {}).await;
    let missing = address(&format!("nsu={NAMESPACE_URI};s=Nope"));
    let err = browse_children(&c.session, &missing, &options(10, 10), |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&missing.to_string()) && err.contains("BadNodeIdUnknown"),
        "{err}"
    );
    let elsewhere = address("nsu=urn:elsewhere;s=Sim");
    let err = browse_children(&c.session, &elsewhere, &options(10, 10), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, BrowseError::Address(_)), "{err:?}");
    assert!(err.to_string().contains("urn:elsewhere"), "{err}");
}
