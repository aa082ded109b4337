//! `sparkedge opcua …`: the appliance's OPC UA certificate folder from the command line,
//! and where it lives (`<data dir>/opcua-pki`).
//!
//! Trusting a server is deliberately a separate, explicit act (the web UI will get a button
//! for it): the appliance never trusts a certificate just because a server presented it.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use southbound::opcua::pki::{CertificateInfo, Pki};
use uns_model::{DriverConfig, Model};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the appliance's certificate (to trust on your servers) and the server
    /// certificates trusted and refused so far. Creates the certificate if there is none.
    Certificates {
        #[arg(long, default_value = "sparkedge-data")]
        data_dir: PathBuf,
    },
    /// Trust a server certificate: a refused one by its thumbprint (at least 8 hex digits),
    /// or a certificate file (DER or PEM) from the server's administrator.
    Trust {
        certificate: String,
        #[arg(long, default_value = "sparkedge-data")]
        data_dir: PathBuf,
    },
    /// Stop trusting a server certificate, chosen by its thumbprint.
    Distrust {
        thumbprint: String,
        #[arg(long, default_value = "sparkedge-data")]
        data_dir: PathBuf,
    },
}

/// The certificate folder in a data directory.
pub fn pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("opcua-pki")
}

/// The certificate folder for a running appliance, when its model has OPC UA devices.
/// A folder that cannot be made is logged, not fatal: Modbus devices and OPC UA devices
/// without security still run, and the secure ones say what is missing.
pub fn pki_for(model: &Model, data_dir: &Path) -> Option<Pki> {
    let uses_opcua = model
        .devices
        .iter()
        .any(|d| d.enabled && matches!(d.driver, DriverConfig::OpcUa { .. }));
    if !uses_opcua {
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
    }
}

fn print(cert: &CertificateInfo) {
    println!("  thumbprint  {}", cert.thumbprint);
    println!("  subject     {}", cert.subject);
    println!("  valid until {}", cert.valid_until);
    println!("  file        {}", cert.path.display());
}
