//! Browsing a server's address space for the tag picker, one level at a time.
//!
//! Big servers hold hundreds of thousands of nodes and small ones have small operation
//! limits, so nothing here walks the tree on its own: [`browse_children`] lists the
//! children of one node, asks for them in pages of a bounded size (following the server's
//! continuation points with BrowseNext), stops at a bounded count, reports progress after
//! every page and bounds every request in time. The attributes a picker shows (data type,
//! access level, description…) are read per page, in Read requests no larger than the
//! server's MaxNodesPerRead.
//!
//! Addresses come back in the model's notation ([`NodeAddress`]), by namespace URI outside
//! namespace 0, so a tag picked today still addresses the same node after the server
//! renumbers its namespaces.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use opcua::client::Session;
use opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, BrowseResult, BrowseResultMaskFlags,
    ByteString, DataValue, ExpandedNodeId, Identifier, NodeClass, NodeClassMask, NodeId,
    ObjectTypeId, ReadValueId, ReferenceDescription, ReferenceTypeId, StatusCode,
    TimestampsToReturn, VariableId, VariableTypeId, Variant,
};
use tokio::time::timeout;
use uns_model::DataType;
use uns_model::opcua::{NodeAddress, opcua_type};

use super::convert;

/// Attributes per Read request when the server does not say
/// (OperationLimits.MaxNodesPerRead absent or 0): small enough for embedded servers.
pub const DEFAULT_NODES_PER_READ: usize = 100;

/// How far one [`browse_children`] call may go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrowseOptions {
    /// References asked for per Browse/BrowseNext call (requestedMaxReferencesPerNode): the
    /// size of a page, and so how often progress is reported.
    pub page: u32,
    /// Children returned at most; the rest is left on the server (the result says so).
    pub limit: usize,
    /// Limit for each request. Use the session's request timeout: this one also holds when
    /// the library is waiting for a connection that does not come back.
    pub request_timeout: Duration,
}

impl Default for BrowseOptions {
    fn default() -> Self {
        BrowseOptions {
            page: 250,
            limit: 5000,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// What kind of node a child is, as a tag picker shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// An object of FolderType: only organises other nodes.
    Folder,
    Object,
    /// Has a value: a tag can address it.
    Variable,
}

/// What a tag needs to know about a variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariableInfo {
    /// The name of the node's DataType (`Int32`, `DateTime`, a vendor's structure…).
    pub opcua_type: String,
    /// The model's data type a tag on this node reads as, when there is one: the node is
    /// a scalar (or does not say) or a one-dimensional array (ValueRank 1) of one of the
    /// built-in types [`opcua_type`] maps, or of a standard subtype sent as one (Duration is
    /// a Double on the wire).
    pub datatype: Option<DataType>,
    /// -1 scalar, 0 one or more dimensions, n > 0 n dimensions, -2/-3 either (Part 3, 5.6.2).
    pub value_rank: Option<i32>,
    pub array_dimensions: Option<Vec<u32>>,
    /// Whether this session's user may read and write the value (UserAccessLevel, or
    /// AccessLevel when the server does not give that).
    pub readable: bool,
    pub writable: bool,
}

/// One child of a browsed node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrowsedNode {
    /// Its address as a tag gives it ([`NodeAddress`]'s `Display` is the string form).
    pub address: NodeAddress,
    /// The browse name without its namespace index: the name within its parent.
    pub browse_name: String,
    /// The name to show (the server's locale).
    pub display_name: String,
    pub kind: NodeKind,
    pub description: Option<String>,
    /// Whether it is worth an expander. Not browsed to find out, since a level of a big
    /// server would cost one request per child: objects may have children, and so may
    /// variables of a type richer than a plain data variable or property (an analog item
    /// has its engineering range, a structure its fields).
    pub may_have_children: bool,
    /// Set for variables.
    pub variable: Option<VariableInfo>,
}

/// The children of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Children {
    /// In the server's order; a node referenced twice is listed once.
    pub nodes: Vec<BrowsedNode>,
    /// Browsing stopped at [`BrowseOptions::limit`] with children left on the server (its
    /// continuation point released). A server may hold a continuation point that turns out
    /// to lead nowhere, so a node with exactly `limit` children can be reported truncated.
    pub truncated: bool,
}

/// Why a browse failed. Each names the node and, from the server, the status code's name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrowseError {
    /// The start node's address does not resolve on this server.
    #[error("{0}")]
    Address(String),
    #[error("{node}: no answer to {service} within {} ms", timeout.as_millis())]
    Timeout {
        node: String,
        service: &'static str,
        timeout: Duration,
    },
    #[error("{node}: {service} failed: {status}")]
    Failed {
        node: String,
        service: &'static str,
        status: StatusCode,
    },
    /// The server answered against the protocol (results missing, endless empty pages).
    #[error("{node}: {what}")]
    Protocol { node: String, what: String },
}

/// Lists the Objects, Folders and Variables below `parent` (hierarchical references,
/// forward), at most `options.limit` of them, in pages of `options.page`; calls `progress`
/// with the number of children found so far after each page. Types, methods and views are
/// left out: a tag cannot address them.
///
/// Start at the Objects folder ([`objects_folder`]) and browse each level the user opens.
pub async fn browse_children(
    session: &Session,
    parent: &NodeAddress,
    options: &BrowseOptions,
    mut progress: impl FnMut(usize),
) -> Result<Children, BrowseError> {
    let request = Requests {
        session,
        node: parent.to_string(),
        timeout: options.request_timeout,
    };
    let server = request.server_facts().await?;
    let parent_id = convert::node_id(parent, &server.namespaces).map_err(BrowseError::Address)?;
    let limit = options.limit.max(1);
    // No page larger than the limit: the rest would be fetched only to be dropped.
    let page = options
        .page
        .max(1)
        .min(u32::try_from(limit).unwrap_or(u32::MAX));

    let mut children = Children::default();
    let mut seen = HashSet::new();
    let mut type_names = HashMap::new();
    let mut result = request.browse(&parent_id, page).await?;
    // A page that is empty but not the last gets the server a few more tries; a server
    // that keeps doing it would otherwise keep us here for ever.
    let mut empty_pages = 0;
    // Bounded: every round adds a child (at most `limit`) or is one of a few empty pages.
    loop {
        let continuation = result.continuation_point.clone();
        let mut references = result.references.take().unwrap_or_default();
        references.retain(|r| {
            // A node on another server (server index ≠ 0) cannot be read through this
            // session; a node referenced twice (Organizes and HasComponent…) is one node.
            r.node_id.server_index == 0 && seen.insert(r.node_id.clone())
        });
        let room = limit - children.nodes.len();
        if references.len() > room {
            references.truncate(room);
            children.truncated = true;
        }
        if references.is_empty() {
            empty_pages += 1;
        } else {
            empty_pages = 0;
        }
        let described = request.describe(&server, references, &mut type_names).await;
        let described = match described {
            Ok(d) => d,
            Err(e) => {
                request.release(&continuation).await;
                return Err(e);
            }
        };
        children.nodes.extend(described);
        progress(children.nodes.len());

        if continuation.is_null_or_empty() {
            if children.nodes.is_empty() {
                // Some servers answer a Browse of a node they do not have with no references
                // rather than BadNodeIdUnknown: ask the node itself, so a mistyped address
                // is not taken for a leaf.
                request.exists(&parent_id).await?;
            }
            return Ok(children);
        }
        if children.nodes.len() >= limit {
            request.release(&continuation).await;
            children.truncated = true;
            return Ok(children);
        }
        if empty_pages > 3 {
            request.release(&continuation).await;
            return Err(BrowseError::Protocol {
                node: request.node,
                what: "the server keeps sending empty pages with a continuation point".into(),
            });
        }
        result = request.browse_next(&continuation).await?;
    }
}

/// The root of the objects a server exposes (`i=85`), where a tag picker starts.
pub fn objects_folder() -> NodeAddress {
    convert::node_address(&NodeId::objects_folder_id(), &[])
}

/// What is read once per browse.
struct ServerFacts {
    /// Server.NamespaceArray (index = namespace index).
    namespaces: Vec<String>,
    /// Attributes per Read request.
    nodes_per_read: usize,
}

/// The requests of one browse, each bounded in time and failing with the browsed node's name.
struct Requests<'a> {
    session: &'a Session,
    /// The browsed node, as errors name it.
    node: String,
    timeout: Duration,
}

/// References to Objects and Variables below a node, the fields the picker shows.
fn children_of(node: &NodeId) -> BrowseDescription {
    BrowseDescription {
        node_id: node.clone(),
        browse_direction: BrowseDirection::Forward,
        reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
        include_subtypes: true,
        node_class_mask: (NodeClassMask::OBJECT | NodeClassMask::VARIABLE).bits(),
        result_mask: (BrowseResultMaskFlags::NodeClass
            | BrowseResultMaskFlags::BrowseName
            | BrowseResultMaskFlags::DisplayName
            | BrowseResultMaskFlags::TypeDefinition)
            .bits(),
    }
}

fn read_of(node_id: NodeId, attribute: AttributeId) -> ReadValueId {
    ReadValueId {
        node_id,
        attribute_id: attribute as u32,
        ..Default::default()
    }
}

/// The attributes read of each child: Description for all, and for variables what a tag
/// needs. The order is the order of [`Attributes`]' fields.
const VARIABLE_ATTRIBUTES: [AttributeId; 5] = [
    AttributeId::DataType,
    AttributeId::ValueRank,
    AttributeId::ArrayDimensions,
    AttributeId::AccessLevel,
    AttributeId::UserAccessLevel,
];

impl Requests<'_> {
    /// `request` within the time limit, its library error as the status code's name.
    async fn call<T>(
        &self,
        service: &'static str,
        request: impl Future<Output = Result<T, opcua::types::Error>>,
    ) -> Result<T, BrowseError> {
        match timeout(self.timeout, request).await {
            Err(_) => Err(BrowseError::Timeout {
                node: self.node.clone(),
                service,
                timeout: self.timeout,
            }),
            Ok(Err(e)) => Err(BrowseError::Failed {
                node: self.node.clone(),
                service,
                status: e.status(),
            }),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// The one result of a Browse or BrowseNext of one node, which must be good.
    fn single(
        &self,
        service: &'static str,
        results: Vec<BrowseResult>,
    ) -> Result<BrowseResult, BrowseError> {
        let result = results
            .into_iter()
            .next()
            .ok_or_else(|| BrowseError::Protocol {
                node: self.node.clone(),
                what: format!("the server answered {service} without a result"),
            })?;
        if result.status_code.is_bad() {
            return Err(BrowseError::Failed {
                node: self.node.clone(),
                service,
                status: result.status_code,
            });
        }
        Ok(result)
    }

    async fn browse(&self, node: &NodeId, page: u32) -> Result<BrowseResult, BrowseError> {
        let results = self
            .call(
                "Browse",
                self.session.browse(&[children_of(node)], page, None),
            )
            .await?;
        self.single("Browse", results)
    }

    async fn browse_next(&self, continuation: &ByteString) -> Result<BrowseResult, BrowseError> {
        let points = [continuation.clone()];
        let results = self
            .call("BrowseNext", self.session.browse_next(false, &points))
            .await?;
        self.single("BrowseNext", results)
    }

    /// Frees the server's continuation point now: servers keep only a few per session
    /// (MaxBrowseContinuationPoints), and one left behind would make later browses fail
    /// until the session ends.
    async fn release(&self, continuation: &ByteString) {
        if continuation.is_null_or_empty() {
            return;
        }
        let points = [continuation.clone()];
        if let Err(e) = self
            .call("BrowseNext", self.session.browse_next(true, &points))
            .await
        {
            tracing::debug!("cannot release a browse continuation point: {e}");
        }
    }

    /// Fails with the status code's name when the server does not have `node`.
    async fn exists(&self, node: &NodeId) -> Result<(), BrowseError> {
        let class = self
            .read(&[read_of(node.clone(), AttributeId::NodeClass)], 1)
            .await?;
        let status = class[0].status();
        if status.is_bad() {
            return Err(BrowseError::Failed {
                node: self.node.clone(),
                service: "Read",
                status,
            });
        }
        Ok(())
    }

    /// `reads` in Read requests of at most `per_read` attributes, the values in order.
    async fn read(
        &self,
        reads: &[ReadValueId],
        per_read: usize,
    ) -> Result<Vec<DataValue>, BrowseError> {
        let mut values = Vec::with_capacity(reads.len());
        for chunk in reads.chunks(per_read.max(1)) {
            let got = self
                .call(
                    "Read",
                    self.session.read(chunk, TimestampsToReturn::Neither, 0.0),
                )
                .await?;
            if got.len() != chunk.len() {
                return Err(BrowseError::Protocol {
                    node: self.node.clone(),
                    what: format!(
                        "the server answered a Read of {} attributes with {} values",
                        chunk.len(),
                        got.len()
                    ),
                });
            }
            values.extend(got);
        }
        Ok(values)
    }

    async fn server_facts(&self) -> Result<ServerFacts, BrowseError> {
        let reads = [
            read_of(VariableId::Server_NamespaceArray.into(), AttributeId::Value),
            read_of(
                VariableId::Server_ServerCapabilities_OperationLimits_MaxNodesPerRead.into(),
                AttributeId::Value,
            ),
        ];
        // One node per request: the limit is not known yet, and may be 1.
        let values = self.read(&reads, 1).await?;
        let namespaces = convert::namespace_table(value(&values[0]));
        let nodes_per_read = match value(&values[1]) {
            Some(Variant::UInt32(n)) if *n > 0 => *n as usize,
            _ => DEFAULT_NODES_PER_READ,
        };
        Ok(ServerFacts {
            namespaces,
            nodes_per_read,
        })
    }

    /// The children behind `references`, with the attributes read from the server.
    /// `type_names` keeps the names of DataType nodes already read.
    async fn describe(
        &self,
        server: &ServerFacts,
        references: Vec<ReferenceDescription>,
        type_names: &mut HashMap<NodeId, String>,
    ) -> Result<Vec<BrowsedNode>, BrowseError> {
        // A reference may carry its namespace as a URI; reads need the index.
        let ids: Vec<Option<NodeId>> = references
            .iter()
            .map(|r| local_id(&r.node_id, &server.namespaces))
            .collect();
        let mut reads = Vec::new();
        // Where each child's attributes start in `reads`.
        let mut first_read = Vec::with_capacity(references.len());
        for (r, id) in references.iter().zip(&ids) {
            first_read.push(reads.len());
            let Some(id) = id else { continue };
            reads.push(read_of(id.clone(), AttributeId::Description));
            if r.node_class == NodeClass::Variable {
                reads.extend(VARIABLE_ATTRIBUTES.map(|a| read_of(id.clone(), a)));
            }
        }
        let values = self.read(&reads, server.nodes_per_read).await?;

        let mut attributes = Vec::with_capacity(references.len());
        for ((r, id), first) in references.iter().zip(&ids).zip(first_read) {
            let a = match id {
                None => Attributes::default(),
                Some(_) if r.node_class == NodeClass::Variable => {
                    Attributes::of_variable(&values[first..first + 1 + VARIABLE_ATTRIBUTES.len()])
                }
                Some(_) => Attributes::of_object(&values[first]),
            };
            attributes.push(a);
        }

        // Names of the data types not known yet, read in one go from their BrowseName.
        let unnamed: Vec<NodeId> = attributes
            .iter()
            .filter_map(|a| a.data_type.clone())
            .filter(|t| builtin_name(t).is_none() && !type_names.contains_key(t))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !unnamed.is_empty() {
            let reads: Vec<ReadValueId> = unnamed
                .iter()
                .map(|t| read_of(t.clone(), AttributeId::BrowseName))
                .collect();
            let names = self.read(&reads, server.nodes_per_read).await?;
            for (t, dv) in unnamed.into_iter().zip(names) {
                let name = match value(&dv) {
                    Some(Variant::QualifiedName(q)) if !q.name.is_empty() => {
                        q.name.as_ref().to_owned()
                    }
                    // A type the server cannot name is still identified by its address.
                    _ => convert::node_address(&t, &server.namespaces).to_string(),
                };
                type_names.insert(t, name);
            }
        }

        Ok(references
            .into_iter()
            .zip(attributes)
            .map(|(r, a)| child(r, a, &server.namespaces, type_names))
            .collect())
    }
}

/// The attributes read of one child; `None` where the server had none.
#[derive(Default)]
struct Attributes {
    description: Option<String>,
    data_type: Option<NodeId>,
    value_rank: Option<i32>,
    array_dimensions: Option<Vec<u32>>,
    access_level: Option<u8>,
    user_access_level: Option<u8>,
}

impl Attributes {
    fn of_object(description: &DataValue) -> Attributes {
        Attributes {
            description: text(description),
            ..Default::default()
        }
    }

    /// `values`: Description, then [`VARIABLE_ATTRIBUTES`].
    fn of_variable(values: &[DataValue]) -> Attributes {
        let byte = |dv: &DataValue| match value(dv) {
            Some(Variant::Byte(b)) => Some(*b),
            _ => None,
        };
        Attributes {
            description: text(&values[0]),
            data_type: match value(&values[1]) {
                Some(Variant::NodeId(id)) => Some((**id).clone()),
                _ => None,
            },
            value_rank: match value(&values[2]) {
                Some(Variant::Int32(n)) => Some(*n),
                _ => None,
            },
            array_dimensions: match value(&values[3]) {
                Some(Variant::Array(a)) => a
                    .values
                    .iter()
                    .map(|v| match v {
                        Variant::UInt32(n) => Some(*n),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            },
            access_level: byte(&values[4]),
            user_access_level: byte(&values[5]),
        }
    }
}

/// The value of an attribute read, unless the server had none (a bad status, most often
/// BadAttributeIdInvalid for an optional attribute) or an empty one.
fn value(dv: &DataValue) -> Option<&Variant> {
    if dv.status().is_bad() {
        return None;
    }
    dv.value.as_ref().filter(|v| !matches!(v, Variant::Empty))
}

fn text(dv: &DataValue) -> Option<String> {
    match value(dv) {
        Some(Variant::LocalizedText(t)) if !t.text.is_empty() => Some(t.text.as_ref().to_owned()),
        _ => None,
    }
}

/// The NodeId of a child on this server: a namespace URI in the reference resolves to
/// its index. `None` for a URI the server does not list.
fn local_id(id: &ExpandedNodeId, namespaces: &[String]) -> Option<NodeId> {
    if id.namespace_uri.is_empty() {
        return Some(id.node_id.clone());
    }
    let uri = id.namespace_uri.as_ref();
    let index = namespaces.iter().position(|n| n == uri)?;
    Some(NodeId::new(
        u16::try_from(index).ok()?,
        id.node_id.identifier.clone(),
    ))
}

/// Our data type for the OPC UA DataType node `t` when values of it arrive as one of the
/// built-in types the model has.
fn builtin(t: &NodeId) -> Option<DataType> {
    let Identifier::Numeric(n) = t.identifier else {
        return None;
    };
    if t.namespace != 0 {
        return None;
    }
    // Standard subtypes that are sent as their base type (Part 3, 8; Part 5, 12).
    let n = match n {
        290 => 11,      // Duration: Double
        288 | 289 => 7, // IntegerId, Counter: UInt32
        295 => 12,      // LocaleId: String
        294 => 13,      // UtcTime: DateTime
        n => n,
    };
    DataType::SCALARS
        .into_iter()
        .find(|&dt| opcua_type(dt).1 == n)
}

/// The name of the built-in type `n` (ns=0;i=`n`) the model maps.
fn builtin_name(t: &NodeId) -> Option<&'static str> {
    match t.identifier {
        Identifier::Numeric(n) if t.namespace == 0 => DataType::SCALARS
            .into_iter()
            .find(|&dt| opcua_type(dt).1 == n)
            .map(|dt| opcua_type(dt).0),
        _ => None,
    }
}

const CURRENT_READ: u8 = 1;
const CURRENT_WRITE: u8 = 2;

fn child(
    r: ReferenceDescription,
    a: Attributes,
    namespaces: &[String],
    type_names: &HashMap<NodeId, String>,
) -> BrowsedNode {
    let address = match local_id(&r.node_id, namespaces) {
        Some(id) => convert::node_address(&id, namespaces),
        // Only the URI is known: it is the address.
        None => NodeAddress {
            namespace: uns_model::opcua::Namespace::Uri(r.node_id.namespace_uri.as_ref().into()),
            ..convert::node_address(&r.node_id.node_id, &[])
        },
    };
    let type_definition = &r.type_definition.node_id;
    let kind = match r.node_class {
        NodeClass::Variable => NodeKind::Variable,
        _ if *type_definition == ObjectTypeId::FolderType => NodeKind::Folder,
        _ => NodeKind::Object,
    };
    let variable = (kind == NodeKind::Variable).then(|| {
        // Rank 0, -2 and -3 leave the shape open; only a definite one names a tag type.
        let shape = |dt: DataType| match a.value_rank {
            None | Some(-1) => Some(dt),
            Some(1) => dt.array(),
            Some(_) => None,
        };
        let opcua_type = match &a.data_type {
            None => "unknown".to_owned(),
            Some(t) => builtin_name(t)
                .map(str::to_owned)
                .or_else(|| type_names.get(t).cloned())
                .unwrap_or_else(|| convert::node_address(t, namespaces).to_string()),
        };
        // A server that gives neither access level is taken at the Part 3 default of a
        // variable: readable, not writable.
        let access = a
            .user_access_level
            .or(a.access_level)
            .unwrap_or(CURRENT_READ);
        VariableInfo {
            opcua_type,
            datatype: a.data_type.as_ref().and_then(builtin).and_then(shape),
            value_rank: a.value_rank,
            array_dimensions: a.array_dimensions,
            readable: access & CURRENT_READ != 0,
            writable: access & CURRENT_WRITE != 0,
        }
    });
    // A server that does not say (no HasTypeDefinition) has a plain variable, by far the
    // most common kind.
    let plain_variable = type_definition.is_null()
        || *type_definition == VariableTypeId::BaseDataVariableType
        || *type_definition == VariableTypeId::PropertyType;
    BrowsedNode {
        address,
        browse_name: r.browse_name.name.as_ref().to_owned(),
        display_name: r.display_name.text.as_ref().to_owned(),
        kind,
        description: a.description,
        may_have_children: kind != NodeKind::Variable || !plain_variable,
        variable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_types_and_their_standard_subtypes_map_to_the_model() {
        for dt in DataType::SCALARS {
            let id = NodeId::new(0, opcua_type(dt).1);
            assert_eq!(builtin(&id), Some(dt));
            assert_eq!(builtin_name(&id), Some(opcua_type(dt).0));
        }
        assert_eq!(builtin(&NodeId::new(0, 290u32)), Some(DataType::Float64));
        assert_eq!(builtin(&NodeId::new(0, 295u32)), Some(DataType::String));
        assert_eq!(builtin(&NodeId::new(0, 294u32)), Some(DataType::DateTime));
        assert_eq!(builtin(&NodeId::new(0, 13u32)), Some(DataType::DateTime));
        // A vendor's type with a small number is not built in.
        assert_eq!(builtin(&NodeId::new(2, 6u32)), None);
        assert_eq!(builtin_name(&NodeId::new(0, 290u32)), None);
    }

    #[test]
    fn a_reference_by_namespace_uri_resolves_to_the_index() {
        let ns = vec![
            "http://opcfoundation.org/UA/".to_owned(),
            "urn:a".to_owned(),
        ];
        let mut id = ExpandedNodeId::new(NodeId::new(0, "X"));
        id.namespace_uri = "urn:a".into();
        assert_eq!(local_id(&id, &ns), Some(NodeId::new(1, "X")));
        id.namespace_uri = "urn:nowhere".into();
        assert_eq!(local_id(&id, &ns), None);
    }
}
