//! `sparkedge opcua …`: the appliance's OPC UA certificate folder from the command line,
//! and where it lives (`<data dir>/opcua-pki`).
//!
//! Trusting a server is deliberately a separate, explicit act (the web UI will get a button
//! for it): the appliance never trusts a certificate just because a server presented it.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use southbound::opcua::browse::{self, BrowseOptions, NodeKind};
use southbound::opcua::connect::{Connection, Opened};
use southbound::opcua::pki::{CertificateInfo, Pki};
use uns_model::{DriverConfig, Model, NodeAddress, OpcUaSecurityPolicy};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the appliance's certificate (to trust on your servers) and the server
    /// certificates trusted and refused so far. Creates the certificate if there is none.
    Certificates {
        #[arg(long, default_value_os_t = crate::config::cli_data_dir(), hide_default_value = true, help = crate::config::DATA_DIR_HELP)]
        data_dir: PathBuf,
    },
    /// Trust a server certificate: a refused one by its thumbprint (at least 8 hex digits),
    /// or a certificate file (DER or PEM) from the server's administrator.
    Trust {
        certificate: String,
        #[arg(long, default_value_os_t = crate::config::cli_data_dir(), hide_default_value = true, help = crate::config::DATA_DIR_HELP)]
        data_dir: PathBuf,
    },
    /// Stop trusting a server certificate, chosen by its thumbprint.
    Distrust {
        thumbprint: String,
        #[arg(long, default_value_os_t = crate::config::cli_data_dir(), hide_default_value = true, help = crate::config::DATA_DIR_HELP)]
        data_dir: PathBuf,
    },
    /// List the address space of a device's server below NODE (the Objects folder when
    /// absent), connecting with the device's security and identity. Prints each node's
    /// address as a tag's `address` takes it.
    Browse {
        /// An OPC UA device of the stored model.
        device: String,
        /// Where to start, a NodeId (`nsu=urn:plc;s=Line1`, `i=85`).
        node: Option<String>,
        /// Levels to descend (each level one browse per expandable node).
        #[arg(long, default_value_t = 1)]
        depth: u32,
        /// Children listed at most per node.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long, default_value_os_t = crate::config::cli_data_dir(), hide_default_value = true, help = crate::config::DATA_DIR_HELP)]
        data_dir: PathBuf,
    },
}

/// The certificate folder in a data directory.
pub fn pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("opcua-pki")
}

/// The certificate folder for a running appliance, when an OPC UA device of its model signs
/// or encrypts; without one it is not opened, so a first start does not wait for an RSA key
/// it will not use. A folder that cannot be made is logged, not fatal: Modbus devices and
/// OPC UA devices without security still run, and the secure ones say what is missing.
pub fn pki_for(model: &Model, data_dir: &Path) -> Option<Pki> {
    let secure = model.devices.iter().any(|d| {
        d.enabled
            && matches!(
                d.driver,
                DriverConfig::OpcUa { security_policy, .. }
                    if security_policy != OpcUaSecurityPolicy::None
            )
    });
    if !secure {
        return None;
    }
    match Pki::open(&pki_dir(data_dir)) {
        Ok(pki) => Some(pki),
        Err(e) => {
            tracing::error!("OPC UA certificates unavailable: {e}");
            None
        }
    }
}

pub fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Certificates { data_dir } => {
            let pki = Pki::open(&pki_dir(&data_dir))?;
            println!("own certificate (trust this one on your OPC UA servers):");
            print(&pki.own()?);
            println!("application URI: {}", pki.application_uri()?);
            for (title, list) in [("trusted", pki.trusted()?), ("rejected", pki.rejected()?)] {
                println!("\n{title} server certificates: {}", list.len());
                for cert in &list {
                    print(cert);
                }
            }
            Ok(())
        }
        Command::Trust {
            certificate,
            data_dir,
        } => {
            let cert = Pki::open(&pki_dir(&data_dir))?.trust(&certificate)?;
            println!("trusted:");
            print(&cert);
            Ok(())
        }
        Command::Distrust {
            thumbprint,
            data_dir,
        } => {
            let cert = Pki::open(&pki_dir(&data_dir))?.distrust(&thumbprint)?;
            println!("no longer trusted (moved to rejected):");
            print(&cert);
            Ok(())
        }
        Command::Browse {
            device,
            node,
            depth,
            limit,
            data_dir,
        } => browse_command(&device, node.as_deref(), depth, limit, &data_dir),
    }
}

/// Nodes printed at most by one `browse`, whatever the depth: a bound on a big server.
const BROWSE_PRINT_LIMIT: usize = 20_000;

fn browse_command(
    device: &str,
    node: Option<&str>,
    depth: u32,
    limit: usize,
    data_dir: &Path,
) -> Result<(), String> {
    let model = crate::open_store(data_dir)?
        .load_model()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} holds no model", data_dir.display()))?;
    let found = model
        .devices
        .iter()
        .find(|d| d.name == device)
        .ok_or_else(|| {
            let opcua: Vec<&str> = model
                .devices
                .iter()
                .filter(|d| matches!(d.driver, DriverConfig::OpcUa { .. }))
                .map(|d| d.name.as_str())
                .collect();
            format!(
                "no device {device:?}; the OPC UA devices are: {}",
                opcua.join(", ")
            )
        })?;
    let pki = Pki::open(&pki_dir(data_dir))?;
    let connection = Connection::from_model(&found.driver, Some(pki))
        .ok_or_else(|| format!("device {device:?} is not an OPC UA device"))?;
    let start: NodeAddress = match node {
        Some(n) => n.parse()?,
        None => browse::objects_folder(),
    };
    let options = BrowseOptions {
        limit,
        request_timeout: connection.timeout,
        ..BrowseOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let connected = connection.connect().await?;
        let mut printed = 0;
        walk(&connected, &start, &options, depth, 0, &mut printed).await
    })
}

/// Prints the children of `node`, and theirs down to `depth` levels, depth first.
async fn walk(
    connected: &Opened,
    node: &NodeAddress,
    options: &BrowseOptions,
    depth: u32,
    level: usize,
    printed: &mut usize,
) -> Result<(), String> {
    let children = browse::browse_children(&connected.session, node, options, |_| {})
        .await
        .map_err(|e| e.to_string())?;
    for child in &children.nodes {
        if *printed >= BROWSE_PRINT_LIMIT {
            return Ok(());
        }
        *printed += 1;
        let indent = "  ".repeat(level);
        let what = match (&child.kind, &child.variable) {
            (NodeKind::Variable, Some(v)) => format!(
                "{}{}{} {}",
                v.datatype
                    .map_or_else(|| format!("({})", v.opcua_type), |d| d.to_string()),
                // Value rank 0 or more: an array (Part 3, 5.6.2); a tag type says so itself.
                if v.datatype.is_none() && v.value_rank.is_some_and(|r| r >= 0) {
                    "[]"
                } else {
                    ""
                },
                if v.writable { " writable" } else { "" },
                child.description.as_deref().unwrap_or("")
            ),
            (NodeKind::Folder, _) => "folder".to_owned(),
            _ => "object".to_owned(),
        };
        println!(
            "{indent}{}  {}  {}",
            child.display_name,
            child.address,
            what.trim_end()
        );
        if child.may_have_children && depth > 1 {
            Box::pin(walk(
                connected,
                &child.address,
                options,
                depth - 1,
                level + 1,
                printed,
            ))
            .await?;
        }
    }
    if children.truncated {
        println!(
            "{}… more than {} children, not listed",
            "  ".repeat(level),
            options.limit
        );
    }
    Ok(())
}

fn print(cert: &CertificateInfo) {
    println!("  thumbprint  {}", cert.thumbprint);
    println!("  subject     {}", cert.subject);
    println!("  valid until {}", cert.valid_until);
    println!("  file        {}", cert.path.display());
}
