//! What a client presents to the services it calls: the CA it trusts for `https://` peers, a
//! client certificate for mTLS, and a bearer token sent with every request (`[server.client]`
//! of a service, the CLI's `--ca-file`/`--token-file`). With none of it, peers are dialled in
//! plaintext and without credentials, as on the laptop.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// The settings of a client's credentials, every path optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSettings {
    /// PEM CA that signs the certificates of `https://` peers.
    pub ca_file: PathBuf,
    /// PEM client certificate and key (mTLS), for peers that identify callers by certificate.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// A file holding the bearer token sent to every peer (surrounding whitespace ignored).
    pub token_file: PathBuf,
}

impl ClientSettings {
    /// Mistakes of the settings alone (pairs that go together); files are read by
    /// [`Credentials::from_settings`].
    pub fn validate(&self, section: &str) -> Result<(), String> {
        if self.cert_file.as_os_str().is_empty() != self.key_file.as_os_str().is_empty() {
            return Err(format!(
                "{section}.cert_file and {section}.key_file go together"
            ));
        }
        Ok(())
    }
}

/// Adds `authorization: Bearer …` to every request when a token is set.
#[derive(Debug, Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Loaded credentials, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub(crate) tls: Option<ClientTlsConfig>,
    pub(crate) bearer: Bearer,
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

impl Credentials {
    /// No TLS, no token.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads the files the settings name; `section` names them in errors (`server.client`).
    pub fn from_settings(settings: &ClientSettings, section: &str) -> Result<Self, String> {
        settings.validate(section)?;
        let mut tls = None;
        if !settings.ca_file.as_os_str().is_empty() {
            let ca = read(&format!("{section}.ca_file"), &settings.ca_file)?;
            let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
            if !settings.cert_file.as_os_str().is_empty() {
                let cert = read(&format!("{section}.cert_file"), &settings.cert_file)?;
                let key = read(&format!("{section}.key_file"), &settings.key_file)?;
                config = config.identity(Identity::from_pem(cert, key));
            }
            tls = Some(config);
        } else if !settings.cert_file.as_os_str().is_empty() {
            return Err(format!(
                "{section}.cert_file needs {section}.ca_file (client certificates travel over TLS)"
            ));
        }
        let bearer = if settings.token_file.as_os_str().is_empty() {
            Bearer(None)
        } else {
            let bytes = read(&format!("{section}.token_file"), &settings.token_file)?;
            let token = String::from_utf8(bytes)
                .map_err(|_| format!("{section}.token_file is not UTF-8"))?;
            let token = token.trim();
            if token.is_empty() {
                return Err(format!(
                    "{section}.token_file {} is empty",
                    settings.token_file.display()
                ));
            }
            let value = format!("Bearer {token}")
                .parse::<MetadataValue<Ascii>>()
                .map_err(|_| {
                    format!("{section}.token_file holds characters a header cannot carry")
                })?;
            Bearer(Some(value))
        };
        Ok(Self { tls, bearer })
    }

    /// Whether `https://` peers can be dialled.
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn bearer(&self) -> Bearer {
        self.bearer.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_loaded_or_refused_by_name() {
        assert!(
            Credentials::from_settings(&ClientSettings::default(), "server.client")
                .is_ok_and(|c| !c.has_tls())
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let token = dir.path().join("token");
        std::fs::write(&token, "  s3cret-token-value\n").expect("write");
        let mut credentials = Credentials::from_settings(
            &ClientSettings {
                token_file: token.clone(),
                ..ClientSettings::default()
            },
            "server.client",
        )
        .expect("a token");
        let request = credentials
            .bearer
            .call(tonic::Request::new(()))
            .expect("intercepted");
        assert_eq!(
            request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer s3cret-token-value")
        );
        std::fs::write(&token, "\n").expect("write");
        let empty = Credentials::from_settings(
            &ClientSettings {
                token_file: token,
                ..ClientSettings::default()
            },
            "server.client",
        );
        assert!(empty.is_err_and(|e| e.contains("is empty")));
        let lone_cert = ClientSettings {
            cert_file: "c.pem".into(),
            ..ClientSettings::default()
        };
        assert!(
            lone_cert
                .validate("x")
                .is_err_and(|e| e.contains("go together"))
        );
        let missing_ca = ClientSettings {
            ca_file: dir.path().join("absent.pem"),
            ..ClientSettings::default()
        };
        assert!(
            Credentials::from_settings(&missing_ca, "server.client")
                .is_err_and(|e| e.contains("cannot read server.client.ca_file"))
        );
    }
}
