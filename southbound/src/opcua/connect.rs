//! Opening a session to an OPC UA server with the device's security and identity: the one
//! place that knows about endpoints, certificates and user tokens. The driver and the
//! browse API both connect through it.
//!
//! Trust is checked here before anything is sent: a server certificate that is not in the
//! appliance's `trusted/` folder is put into `rejected/` and the attempt fails with the
//! thumbprint and the command that trusts it. A server that refuses *our* certificate gets
//! an error that says where ours is and what its thumbprint is.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use opcua::client::{Client, ClientBuilder, IdentityToken, Password, Session, SessionPollResult};
use opcua::crypto::{CertificateStore, PrivateKey, SecurityPolicy, X509};
use opcua::types::{EndpointDescription, MessageSecurityMode, StatusCode};
use tokio::sync::oneshot;
use uns_model::{DriverConfig, OpcUaIdentity, OpcUaSecurityMode, OpcUaSecurityPolicy};

use super::pki::Pki;

/// Who we are to the server.
#[derive(Clone, Debug)]
pub enum Identity {
    Anonymous,
    UserName {
        user: String,
        password: String,
    },
    /// Paths of the user certificate (DER or PEM) and its private key (PEM).
    Certificate {
        certificate: PathBuf,
        key: PathBuf,
    },
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Connection {
    /// `opc.tcp://…` as configured: always the address connected to.
    pub endpoint: String,
    pub policy: SecurityPolicy,
    pub mode: MessageSecurityMode,
    pub identity: Identity,
    /// Our certificates; required for any policy but None.
    pub pki: Option<Pki>,
    /// Limit for each request.
    pub timeout: Duration,
}

impl Connection {
    /// The connection settings of an OPC UA device of the model; `None` for other drivers.
    pub fn from_model(driver: &DriverConfig, pki: Option<Pki>) -> Option<Connection> {
        let DriverConfig::OpcUa {
            endpoint,
            security_policy,
            security_mode,
            identity,
            username,
            password,
            user_certificate,
            user_private_key,
            timeout_ms,
            ..
        } = driver
        else {
            return None;
        };
        let policy = match security_policy {
            OpcUaSecurityPolicy::None => SecurityPolicy::None,
            OpcUaSecurityPolicy::Basic256Sha256 => SecurityPolicy::Basic256Sha256,
            OpcUaSecurityPolicy::Aes128Sha256RsaOaep => SecurityPolicy::Aes128Sha256RsaOaep,
            OpcUaSecurityPolicy::Aes256Sha256RsaPss => SecurityPolicy::Aes256Sha256RsaPss,
        };
        let mode = match OpcUaSecurityMode::effective(*security_mode, *security_policy) {
            OpcUaSecurityMode::None => MessageSecurityMode::None,
            OpcUaSecurityMode::Sign => MessageSecurityMode::Sign,
            OpcUaSecurityMode::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
        };
        let text = |s: &Option<String>| s.clone().unwrap_or_default();
        let identity = match identity {
            OpcUaIdentity::Anonymous => Identity::Anonymous,
            OpcUaIdentity::Username => Identity::UserName {
                user: text(username),
                password: text(password),
            },
            OpcUaIdentity::Certificate => Identity::Certificate {
                certificate: text(user_certificate).into(),
                key: text(user_private_key).into(),
            },
        };
        Some(Connection {
            endpoint: endpoint.clone(),
            policy,
            mode,
            identity,
            pki,
            timeout: Duration::from_millis(u64::from(*timeout_ms)),
        })
    }

    /// A client for this connection. Reconnecting is left to the caller: the library never
    /// retries a session and never recreates subscriptions on its own, so a tag cannot end
    /// up monitored twice behind the driver's back.
    pub fn client(&self) -> Result<Client, String> {
        let mut builder = ClientBuilder::new()
            .application_name("sparkedge")
            .product_uri("urn:sparkedge")
            .create_sample_keypair(false)
            .trust_server_certs(false)
            .session_retry_limit(0)
            .recreate_subscriptions(false)
            .request_timeout(self.timeout)
            .session_timeout(60_000);
        builder = match &self.pki {
            Some(pki) => builder
                .pki_dir(pki.dir())
                .application_uri(pki.application_uri()?),
            None if self.policy == SecurityPolicy::None => builder
                // The library wants a folder even when no certificate is used.
                .pki_dir(std::env::temp_dir().join("sparkedge-opcua-pki"))
                .application_uri("urn:sparkedge"),
            None => {
                return Err(format!(
                    "security policy {} needs the appliance's certificate folder, and none \
                     is configured",
                    self.policy
                ));
            }
        };
        builder
            .client()
            .map_err(|errors| format!("OPC UA client configuration: {}", errors.join("; ")))
    }

    /// Finds the server's endpoint with our policy and mode, checks we trust its
    /// certificate, and opens the session: a task drives it (connects, keeps it alive) until
    /// the returned [`Opened`] is dropped, and says through [`Opened::lost`] why it ended.
    pub async fn session(&self, client: &mut Client) -> Result<Opened, String> {
        let endpoints = tokio::time::timeout(
            self.timeout,
            client.get_server_endpoints_from_url(self.endpoint.as_str()),
        )
        .await
        .map_err(|_| format!("{}: no answer to GetEndpoints", self.endpoint))?
        .map_err(|e| format!("{}: GetEndpoints failed: {e}", self.endpoint))?;
        let mut endpoint = self.choose(&endpoints)?;
        if self.policy != SecurityPolicy::None {
            self.check_trusted(&endpoint)?;
        }
        // A server often announces a host or port it is not reached at (NAT, port
        // forwarding, containers, a relay): always connect where the configuration says.
        endpoint.endpoint_url = self.endpoint.as_str().into();
        let identity = self.identity_token()?;
        let (session, event_loop) = client
            .connect_to_endpoint_directly(endpoint, identity)
            .map_err(|e| format!("{}: {e}", self.endpoint))?;
        let (lost_tx, lost) = oneshot::channel();
        Ok(Opened {
            session,
            lost,
            event_loop: tokio::spawn(drive(event_loop.enter(), lost_tx)),
        })
    }

    /// The endpoint with our policy and mode, or an error listing what the server offers.
    fn choose(&self, endpoints: &[EndpointDescription]) -> Result<EndpointDescription, String> {
        endpoints
            .iter()
            .find(|e| {
                e.security_mode == self.mode
                    && SecurityPolicy::from_uri(e.security_policy_uri.as_ref()) == self.policy
            })
            .cloned()
            .ok_or_else(|| {
                let offered: Vec<String> = endpoints
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            SecurityPolicy::from_uri(e.security_policy_uri.as_ref()),
                            mode_name(e.security_mode)
                        )
                    })
                    .collect();
                format!(
                    "{}: the server offers no endpoint with security policy {} and mode {}; \
                     it offers: {}",
                    self.endpoint,
                    self.policy,
                    mode_name(self.mode),
                    offered.join(", ")
                )
            })
    }

    /// Refuses a server whose certificate is not in `trusted/`, leaving it in `rejected/`
    /// for an engineer to inspect and trust.
    fn check_trusted(&self, endpoint: &EndpointDescription) -> Result<(), String> {
        let pki = self.pki.as_ref().ok_or("no certificate folder")?;
        let cert = X509::from_byte_string(&endpoint.server_certificate).map_err(|e| {
            format!(
                "{}: the server sent no usable certificate for policy {}: {e}",
                self.endpoint, self.policy
            )
        })?;
        let thumbprint = super::pki::thumbprint(&cert);
        if pki.trusted()?.iter().any(|c| c.thumbprint == thumbprint) {
            return Ok(());
        }
        let store = CertificateStore::new(pki.dir());
        store.store_rejected_cert(&cert)?;
        Err(format!(
            "{}: the server's certificate ({}, thumbprint {thumbprint}) is not trusted; it \
             was put in {}. If the thumbprint matches the one the server shows, trust it: \
             sparkedge opcua trust {thumbprint}",
            self.endpoint,
            cert.subject_name(),
            pki.dir().join("rejected").display()
        ))
    }

    fn identity_token(&self) -> Result<IdentityToken, String> {
        Ok(match &self.identity {
            Identity::Anonymous => IdentityToken::Anonymous,
            Identity::UserName { user, password } => {
                IdentityToken::UserName(user.clone(), Password::new(password.clone()))
            }
            Identity::Certificate { certificate, key } => {
                let cert = CertificateStore::read_cert(certificate)
                    .map_err(|e| format!("user_certificate {}: {e}", certificate.display()))?;
                let key = PrivateKey::read_pem_file(key).map_err(|e| {
                    format!(
                        "user_private_key {}: cannot read a PEM private key: {e}",
                        key.display()
                    )
                })?;
                IdentityToken::X509(Box::new(cert), Box::new(key))
            }
        })
    }

    /// Connects and waits until the session is up: for one-off work (browsing, a tag
    /// picker), not for drivers, which watch their session themselves. The session ends
    /// when the returned value is dropped.
    pub async fn connect(&self) -> Result<Opened, String> {
        let mut client = self.client()?;
        let mut opened = self.session(&mut client).await?;
        let up = tokio::time::timeout(self.timeout, opened.session.wait_for_connection());
        tokio::select! {
            reason = &mut opened.lost => {
                let reason = reason.unwrap_or_else(|_| "the session ended".into());
                Err(self.explain(format!("{}: {reason}", self.endpoint)))
            }
            up = up => match up {
                Ok(true) => Ok(opened),
                Ok(false) => Err(format!("{}: the session did not come up", self.endpoint)),
                Err(_) => Err(format!("{}: no session within {:?}", self.endpoint, self.timeout)),
            },
        }
    }

    /// Says what a failed connection means when security is the likely cause: most often
    /// the server does not trust our certificate yet.
    pub fn explain(&self, reason: String) -> String {
        if self.policy == SecurityPolicy::None {
            return reason;
        }
        // Checks of the server's certificate that trust does not fix.
        if reason.contains("BadCertificateHostNameInvalid") {
            let host = self
                .endpoint
                .trim_start_matches("opc.tcp://")
                .split('/')
                .next()
                .unwrap_or("");
            let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
            return format!(
                "{reason}. The server's certificate does not name {host}, the host of the \
                 endpoint: connect by a host name or address the certificate lists"
            );
        }
        if reason.contains("BadCertificateTimeInvalid") {
            return format!(
                "{reason}. A certificate is expired or not yet valid: check the clocks of the \
                 appliance and the server, or renew the server's certificate"
            );
        }
        let refused = [
            "BadSecurityChecksFailed",
            "BadCertificateUntrusted",
            "BadCertificateInvalid",
            "BadCertificateUriInvalid",
        ];
        let Some(pki) = &self.pki else {
            return reason;
        };
        if !refused.iter().any(|c| reason.contains(c)) {
            return reason;
        }
        match pki.own() {
            Ok(own) => format!(
                "{reason}. The server may not trust the appliance's certificate yet: trust \
                 {} (thumbprint {}) on the server",
                own.path.display(),
                own.thumbprint
            ),
            Err(_) => reason,
        }
    }
}

/// An opened session and the task that drives it; dropping it closes the connection.
pub struct Opened {
    pub session: Arc<Session>,
    /// Why the session ended, once it has: the connection closed or never came up.
    pub lost: oneshot::Receiver<String>,
    event_loop: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened").finish_non_exhaustive()
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        self.event_loop.abort();
    }
}

/// Drives a session's event stream; tells `lost` why it ended.
async fn drive(
    stream: impl Stream<Item = Result<SessionPollResult, StatusCode>>,
    lost: oneshot::Sender<String>,
) {
    tokio::pin!(stream);
    let reason = loop {
        match stream.next().await {
            None => break "the session was closed".to_owned(),
            Some(Err(code)) => break format!("cannot connect: {code}"),
            Some(Ok(SessionPollResult::ConnectionLost(code))) => {
                break format!("connection lost: {code}");
            }
            Some(Ok(_)) => {}
        }
    };
    let _ = lost.send(reason);
}

fn mode_name(mode: MessageSecurityMode) -> &'static str {
    match mode {
        MessageSecurityMode::None => "none",
        MessageSecurityMode::Sign => "sign",
        MessageSecurityMode::SignAndEncrypt => "sign-and-encrypt",
        _ => "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secure(endpoint: &str) -> Connection {
        let mut driver = DriverConfig::opc_ua(endpoint);
        if let DriverConfig::OpcUa {
            security_policy, ..
        } = &mut driver
        {
            *security_policy = OpcUaSecurityPolicy::Basic256Sha256;
        }
        Connection::from_model(&driver, None).unwrap()
    }

    #[test]
    fn certificate_failures_say_what_to_do() {
        let c = secure("opc.tcp://10.0.0.7:4840/plc");
        let e = c.explain("cannot connect: BadCertificateHostNameInvalid".into());
        assert!(e.contains("does not name 10.0.0.7,"), "{e}");
        let e = c.explain("cannot connect: BadCertificateTimeInvalid".into());
        assert!(e.contains("clocks"), "{e}");
        // Nothing to add to other failures, nor without security.
        let e = c.explain("cannot connect: BadTimeout".into());
        assert_eq!(e, "cannot connect: BadTimeout");
        let plain = Connection::from_model(&DriverConfig::opc_ua("opc.tcp://plc"), None).unwrap();
        let e = plain.explain("cannot connect: BadCertificateTimeInvalid".into());
        assert_eq!(e, "cannot connect: BadCertificateTimeInvalid");
        assert!(c.mode == MessageSecurityMode::SignAndEncrypt);
    }
}
