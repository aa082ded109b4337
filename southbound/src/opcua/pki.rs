//! The appliance's OPC UA certificates: its own application instance certificate, and the
//! server certificates it trusts or has rejected.
//!
//! The folder is the layout async-opcua reads (so the client library checks trust itself):
//!
//! ```text
//! <pki>/own/cert.der              our certificate (DER), sent to every server
//! <pki>/own/application-uri       the ApplicationUri written into it
//! <pki>/private/private.pem       our private key (PEM, mode 0600)
//! <pki>/trusted/<name>.der        server certificates we accept
//! <pki>/rejected/<name>.der       server certificates seen and refused
//! ```
//!
//! Trust is an explicit act. A server whose certificate is unknown is refused, and its
//! certificate lands in `rejected/`; an engineer compares the thumbprint with the one the
//! server shows and trusts it ([`Pki::trust`], `sparkedge opcua trust`). Nothing is trusted
//! on first use: that would accept whoever answers first at the server's address.

use std::path::{Path, PathBuf};

use opcua::crypto::{CertificateStore, X509, X509Data};

/// Years our own certificate is valid: long, because renewing it means re-trusting it on
/// every server, and the key never leaves the appliance.
const OWN_CERTIFICATE_YEARS: u32 = 20;

/// RSA key size of our certificate: the size every current policy accepts
/// (Basic256Sha256, Aes128-Sha256-RsaOaep and Aes256-Sha256-RsaPss take 2048 to 4096).
const KEY_BITS: u32 = 2048;

/// A certificate as an engineer compares it with what a server's own screen shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// SHA-1 of the DER form, lower-case hex: what OPC UA tools display.
    pub thumbprint: String,
    pub subject: String,
    /// End of validity, RFC 3339.
    pub valid_until: String,
    pub path: PathBuf,
}

/// The certificate folder of the appliance.
#[derive(Clone, Debug)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// The folder at `dir`, created with our own certificate and key if they are missing.
    /// Generating the key takes a moment (RSA 2048); it happens once per appliance.
    pub fn open(dir: &Path) -> Result<Pki, String> {
        let pki = Pki {
            dir: dir.to_path_buf(),
        };
        for sub in ["own", "private", "trusted", "rejected"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        }
        if !pki.certificate_path().exists() || !pki.private_key_path().exists() {
            pki.create_own()?;
        }
        Ok(pki)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Our certificate, to be trusted on the servers.
    pub fn certificate_path(&self) -> PathBuf {
        self.dir.join("own/cert.der")
    }

    pub fn private_key_path(&self) -> PathBuf {
        self.dir.join("private/private.pem")
    }

    fn uri_path(&self) -> PathBuf {
        self.dir.join("own/application-uri")
    }

    /// The ApplicationUri in our certificate: the client must announce exactly this one,
    /// or servers refuse the session (BadCertificateUriInvalid).
    pub fn application_uri(&self) -> Result<String, String> {
        let path = self.uri_path();
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_owned())
            .map_err(|e| {
                format!(
                    "cannot read {}: {e}; it holds the ApplicationUri of {}",
                    path.display(),
                    self.certificate_path().display()
                )
            })
    }

    /// Ours, with its thumbprint.
    pub fn own(&self) -> Result<CertificateInfo, String> {
        info(&self.certificate_path())
    }

    /// The server certificates in `trusted/`.
    pub fn trusted(&self) -> Result<Vec<CertificateInfo>, String> {
        list(&self.dir.join("trusted"))
    }

    /// The server certificates refused so far, waiting for a decision.
    pub fn rejected(&self) -> Result<Vec<CertificateInfo>, String> {
        list(&self.dir.join("rejected"))
    }

    /// Trusts a server certificate: a rejected one chosen by its thumbprint (or the first
    /// eight or more characters of it), or a certificate file obtained from the server's
    /// administrator. Drivers that were refused pick it up on their next attempt.
    pub fn trust(&self, what: &str) -> Result<CertificateInfo, String> {
        let file = Path::new(what);
        if file.is_file() {
            let cert = CertificateStore::read_cert(file)?;
            let target = self
                .dir
                .join("trusted")
                .join(CertificateStore::cert_file_name(&cert));
            let der = cert
                .to_der()
                .map_err(|e| format!("{what}: cannot encode the certificate: {e}"))?;
            std::fs::write(&target, der)
                .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
            let trusted = info(&target)?;
            // A copy left in rejected/ would still win (the library looks there first).
            self.remove_from("rejected", &trusted.thumbprint)?;
            return Ok(trusted);
        }
        self.move_between("rejected", "trusted", what)
    }

    /// Stops trusting a server certificate, chosen by thumbprint; it goes back to
    /// `rejected/` so the next connection attempt is refused.
    pub fn distrust(&self, thumbprint: &str) -> Result<CertificateInfo, String> {
        self.move_between("trusted", "rejected", thumbprint)
    }

    /// Moves the certificate of `from` whose thumbprint starts with `prefix` to `to`.
    fn move_between(&self, from: &str, to: &str, prefix: &str) -> Result<CertificateInfo, String> {
        let cert = self.find(from, prefix)?;
        let target = self
            .dir
            .join(to)
            .join(cert.path.file_name().unwrap_or_default());
        std::fs::rename(&cert.path, &target)
            .map_err(|e| format!("cannot move {} to {to}/: {e}", cert.path.display()))?;
        info(&target)
    }

    /// The one certificate in `folder` whose thumbprint starts with `prefix`.
    fn find(&self, folder: &str, prefix: &str) -> Result<CertificateInfo, String> {
        let prefix = prefix.to_ascii_lowercase();
        if prefix.len() < 8 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "{prefix:?} is neither a certificate file nor a thumbprint: give at least the \
                 first 8 hex digits of a thumbprint (`sparkedge opcua certificates` lists them)"
            ));
        }
        let all = list(&self.dir.join(folder))?;
        let matching: Vec<&CertificateInfo> = all
            .iter()
            .filter(|c| c.thumbprint.starts_with(&prefix))
            .collect();
        match matching.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!(
                "no certificate in {} has a thumbprint starting with {prefix}; it has: {}",
                self.dir.join(folder).display(),
                if all.is_empty() {
                    "none".to_owned()
                } else {
                    all.iter()
                        .map(|c| c.thumbprint.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )),
            _ => Err(format!(
                "{} certificates in {folder}/ have a thumbprint starting with {prefix}: give \
                 more of it",
                matching.len()
            )),
        }
    }

    fn remove_from(&self, folder: &str, thumbprint: &str) -> Result<(), String> {
        for cert in list(&self.dir.join(folder))? {
            if cert.thumbprint == thumbprint {
                std::fs::remove_file(&cert.path)
                    .map_err(|e| format!("cannot remove {}: {e}", cert.path.display()))?;
            }
        }
        Ok(())
    }

    fn create_own(&self) -> Result<(), String> {
        let host = X509Data::computer_hostnames()
            .into_iter()
            .next()
            .unwrap_or_else(|| "localhost".to_owned());
        // Unique per appliance, as Part 4 asks of an ApplicationUri; kept in a file because
        // the host may be renamed later while the certificate stays.
        let uri = format!("urn:{host}:sparkedge");
        let names = X509Data::alt_host_names(&uri, None, true, true, true);
        let data = X509Data {
            key_size: KEY_BITS,
            common_name: format!("sparkedge@{host}"),
            organization: "sparkedge".to_owned(),
            organizational_unit: "edge".to_owned(),
            country: String::new(),
            state: String::new(),
            alt_host_names: names,
            certificate_duration_days: OWN_CERTIFICATE_YEARS * 365,
        };
        CertificateStore::create_certificate_and_key(
            &data,
            true,
            &self.certificate_path(),
            &self.private_key_path(),
        )?;
        restrict(&self.private_key_path())?;
        std::fs::write(self.uri_path(), format!("{uri}\n"))
            .map_err(|e| format!("cannot write {}: {e}", self.uri_path().display()))?;
        tracing::info!(certificate = %self.certificate_path().display(), "created the appliance's OPC UA certificate");
        Ok(())
    }
}

/// Only the owner may read the private key.
fn restrict(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", path.display()))
}

/// A certificate's thumbprint as shown to users and matched in commands: lower-case hex.
pub(crate) fn thumbprint(cert: &X509) -> String {
    cert.thumbprint().as_hex_string().to_ascii_lowercase()
}

fn info(path: &Path) -> Result<CertificateInfo, String> {
    let cert: X509 = CertificateStore::read_cert(path)?;
    Ok(CertificateInfo {
        thumbprint: thumbprint(&cert),
        subject: cert.subject_name(),
        valid_until: cert
            .not_after()
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|_| "unknown".to_owned()),
        path: path.to_path_buf(),
    })
}

/// The certificates in a folder, by file name; a file that is not one is skipped.
fn list(dir: &Path) -> Result<Vec<CertificateInfo>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    Ok(paths.iter().filter_map(|p| info(p).ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_certificate_is_made_once_and_trust_moves_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::open(dir.path()).unwrap();
        let own = pki.own().unwrap();
        assert_eq!(own.thumbprint.len(), 40);
        assert!(pki.application_uri().unwrap().starts_with("urn:"));
        let mode = std::fs::metadata(pki.private_key_path()).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        // Opening again keeps the same certificate.
        assert_eq!(Pki::open(dir.path()).unwrap().own().unwrap(), own);

        // Another appliance's certificate stands in for a server's, refused once.
        let other_dir = tempfile::tempdir().unwrap();
        let other = Pki::open(other_dir.path()).unwrap().own().unwrap();
        let rejected = dir.path().join("rejected/server.der");
        std::fs::copy(&other.path, &rejected).unwrap();
        assert_eq!(pki.rejected().unwrap().len(), 1);

        let err = pki.trust("12").unwrap_err();
        assert!(err.contains("at least the first 8 hex digits"), "{err}");
        let err = pki.trust("0000000000").unwrap_err();
        assert!(err.contains(&other.thumbprint), "{err}");

        let trusted = pki
            .trust(&other.thumbprint[..10].to_ascii_uppercase())
            .unwrap();
        assert_eq!(trusted.thumbprint, other.thumbprint);
        assert!(pki.rejected().unwrap().is_empty());
        assert_eq!(pki.trusted().unwrap(), vec![trusted.clone()]);

        pki.distrust(&other.thumbprint).unwrap();
        assert!(pki.trusted().unwrap().is_empty());
        // Trusting from a file also clears the rejected copy.
        pki.trust(other.path.to_str().unwrap()).unwrap();
        assert!(pki.rejected().unwrap().is_empty());
        assert_eq!(pki.trusted().unwrap().len(), 1);
    }
}
