//! Who may call a service, and how it proves it: TLS (rustls) with the service's certificate,
//! callers identified by a bearer token (`authorization: Bearer …`, checked against a file of
//! `NAME TOKEN` lines) or by a client certificate signed by the configured client CA (its
//! identity: a DNS name in its subject alternative names), and a table of which identity may
//! call which methods. Health checks stay open (probes carry no credentials). With nothing
//! configured — the laptop — the service serves plaintext to anyone, on 127.0.0.1 by default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// `[server.tls]`: serve TLS with this certificate; verify client certificates against a CA.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM certificate chain of this service; empty: plaintext.
    pub cert_file: PathBuf,
    /// PEM private key of that certificate.
    pub key_file: PathBuf,
    /// PEM CA whose client certificates identify callers (mTLS); empty: no client
    /// certificates. Callers without one may still use a bearer token.
    pub client_ca_file: PathBuf,
}

/// `[server.auth]`: the callers this service knows and what each may call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// A file of `NAME TOKEN` lines (`#` comments): a request bearing TOKEN is NAME's. Empty:
    /// no tokens.
    pub tokens_file: PathBuf,
    /// Identity → the methods it may call: `"*"`, a method name (`"SubmitJob"`) or a full
    /// path (`"ra.sandbox.v1.SandboxService/SubmitJob"`). Empty: every authenticated caller
    /// may call everything. Client certificates are matched against these names.
    pub allow: BTreeMap<String, Vec<String>>,
}

impl TlsSettings {
    pub fn enabled(&self) -> bool {
        !self.cert_file.as_os_str().is_empty()
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let key = !self.key_file.as_os_str().is_empty();
        let ca = !self.client_ca_file.as_os_str().is_empty();
        if self.enabled() != key {
            return Err("server.tls.cert_file and server.tls.key_file go together".into());
        }
        if ca && !self.enabled() {
            return Err(
                "server.tls.client_ca_file needs server.tls.cert_file and key_file (client certificates only travel over TLS)"
                    .into(),
            );
        }
        Ok(())
    }
}

impl AuthSettings {
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (identity, methods) in &self.allow {
            if identity.trim().is_empty() {
                return Err("server.auth.allow has an empty identity".into());
            }
            if methods.is_empty() {
                return Err(format!(
                    "server.auth.allow.{identity} lists no methods (use [\"*\"] for all)"
                ));
            }
        }
        Ok(())
    }
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

/// The TLS configuration of the server, if any.
pub fn server_tls(settings: &TlsSettings) -> Result<Option<ServerTlsConfig>, String> {
    if !settings.enabled() {
        return Ok(None);
    }
    let cert = read("server.tls.cert_file", &settings.cert_file)?;
    let key = read("server.tls.key_file", &settings.key_file)?;
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    if !settings.client_ca_file.as_os_str().is_empty() {
        let ca = read("server.tls.client_ca_file", &settings.client_ca_file)?;
        config = config
            .client_ca_root(Certificate::from_pem(ca))
            // A caller may prove itself with a token instead.
            .client_auth_optional(true);
    }
    Ok(Some(config))
}

/// Who is calling, once established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// The checks of every request, built once from the settings.
#[derive(Debug, Clone)]
pub struct Gate {
    /// sha256 of each token → its name.
    tokens: Arc<BTreeMap<[u8; 32], String>>,
    allow: Arc<BTreeMap<String, Vec<String>>>,
    client_certs: bool,
}

impl Gate {
    /// `None` when nothing is to be checked (no tokens, no client CA).
    pub fn new(tls: &TlsSettings, auth: &AuthSettings) -> Result<Option<Gate>, String> {
        let client_certs = !tls.client_ca_file.as_os_str().is_empty();
        let tokens = if auth.tokens_file.as_os_str().is_empty() {
            BTreeMap::new()
        } else {
            parse_tokens(&auth.tokens_file)?
        };
        if tokens.is_empty() && !client_certs {
            if !auth.allow.is_empty() {
                return Err(
                    "server.auth.allow needs callers to identify themselves: set server.auth.tokens_file or server.tls.client_ca_file"
                        .into(),
                );
            }
            return Ok(None);
        }
        Ok(Some(Gate {
            tokens: Arc::new(tokens),
            allow: Arc::new(auth.allow.clone()),
            client_certs,
        }))
    }

    /// The caller of a request for `path` with these headers and connection, or the answer
    /// it gets instead.
    pub fn check(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<Option<Caller>, tonic::Status> {
        if path.starts_with("/grpc.health.v1.Health/") {
            return Ok(None);
        }
        let caller = self.identify(headers, extensions)?;
        if self.allow.is_empty() {
            return Ok(Some(caller));
        }
        let method = path.trim_start_matches('/');
        let short = method.rsplit('/').next().unwrap_or(method);
        let allowed = self.allow.get(&caller.0).is_some_and(|methods| {
            methods
                .iter()
                .any(|m| m == "*" || m == method || m == short)
        });
        if allowed {
            Ok(Some(caller))
        } else {
            Err(tonic::Status::permission_denied(format!(
                "{} may not call {method} on this service",
                caller.0
            )))
        }
    }

    fn identify(
        &self,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<Caller, tonic::Status> {
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(|| {
                    tonic::Status::unauthenticated("the authorization header is not `Bearer TOKEN`")
                })?;
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            return self
                .tokens
                .get(&digest)
                .map(|name| Caller(name.clone()))
                .ok_or_else(|| {
                    tonic::Status::unauthenticated("the bearer token is not one this service knows")
                });
        }
        if self.client_certs
            && let Some(certs) = extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(TlsConnectInfo::peer_certs)
            && let Some(leaf) = certs.first()
        {
            // The handshake verified the chain against the client CA; the name says who.
            return self.certificate_identity(leaf).ok_or_else(|| {
                tonic::Status::permission_denied(format!(
                    "the client certificate names none of the identities this service admits ({})",
                    self.allow.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            });
        }
        Err(tonic::Status::unauthenticated(if self.client_certs {
            "this service needs a bearer token (authorization: Bearer …) or a client certificate"
        } else {
            "this service needs a bearer token (authorization: Bearer …)"
        }))
    }

    fn certificate_identity(
        &self,
        leaf: &rustls_pki_types::CertificateDer<'static>,
    ) -> Option<Caller> {
        let cert = webpki::EndEntityCert::try_from(leaf).ok()?;
        if self.allow.is_empty() {
            return Some(Caller("client-certificate".into()));
        }
        self.allow.keys().find_map(|name| {
            let server_name = rustls_pki_types::ServerName::try_from(name.as_str()).ok()?;
            cert.verify_is_valid_for_subject_name(&server_name)
                .ok()
                .map(|()| Caller(name.clone()))
        })
    }
}

fn parse_tokens(path: &Path) -> Result<BTreeMap<[u8; 32], String>, String> {
    let text = String::from_utf8(read("server.auth.tokens_file", path)?)
        .map_err(|_| format!("{} is not UTF-8", path.display()))?;
    let mut tokens = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, token) = line
            .split_once(char::is_whitespace)
            .map(|(n, t)| (n.trim(), t.trim()))
            .filter(|(n, t)| !n.is_empty() && !t.is_empty())
            .ok_or_else(|| {
                format!(
                    "{} line {}: expected `NAME TOKEN`",
                    path.display(),
                    number + 1
                )
            })?;
        if token.len() < 16 {
            return Err(format!(
                "{} line {}: the token of {name} is shorter than 16 characters",
                path.display(),
                number + 1
            ));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if tokens.insert(digest, name.to_owned()).is_some() {
            return Err(format!(
                "{} line {}: a token given twice",
                path.display(),
                number + 1
            ));
        }
    }
    Ok(tokens)
}

/// The tower layer that runs the [`Gate`] before every request.
#[derive(Debug, Clone)]
pub struct GateLayer(pub Option<Gate>);

impl<S> tower::Layer<S> for GateLayer {
    type Service = GateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GateService {
            gate: self.0.clone(),
            inner,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GateService<S> {
    gate: Option<Gate>,
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for GateService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = futures::future::Either<
        S::Future,
        futures::future::Ready<Result<http::Response<R>, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(gate) = &self.gate {
            match gate.check(
                request.uri().path(),
                request.headers(),
                request.extensions(),
            ) {
                Ok(Some(caller)) => {
                    tracing::debug!(caller = %caller.0, "authenticated");
                    request.extensions_mut().insert(caller);
                }
                Ok(None) => {}
                Err(status) => {
                    tracing::info!(
                        method = request.uri().path(),
                        code = ?status.code(),
                        reason = status.message(),
                        "refused a request"
                    );
                    return futures::future::Either::Right(futures::future::ready(Ok(
                        status.into_http()
                    )));
                }
            }
        }
        futures::future::Either::Left(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(tokens: &str, allow: &[(&str, &[&str])]) -> Gate {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("tokens");
        std::fs::write(&file, tokens).expect("write tokens");
        let auth = AuthSettings {
            tokens_file: file,
            allow: allow
                .iter()
                .map(|(name, methods)| {
                    (
                        (*name).to_owned(),
                        methods.iter().map(|m| (*m).to_owned()).collect(),
                    )
                })
                .collect(),
        };
        Gate::new(&TlsSettings::default(), &auth)
            .expect("valid")
            .expect("a gate")
    }

    fn bearer(token: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("a header"),
        );
        headers
    }

    const SUBMIT: &str = "/ra.sandbox.v1.SandboxService/SubmitJob";

    #[test]
    fn tokens_identify_and_the_table_decides() {
        let gate = gate(
            "# callers\nevaluator 0123456789abcdef-eval\nplanner   0123456789abcdef-plan\n",
            &[("evaluator", &["*"]), ("planner", &["GetCapabilities"])],
        );
        let none = http::Extensions::new();
        let code = |path: &str, headers: &http::HeaderMap| {
            gate.check(path, headers, &none).map_err(|s| s.code())
        };
        assert_eq!(
            code(SUBMIT, &bearer("0123456789abcdef-eval")),
            Ok(Some(Caller("evaluator".into())))
        );
        assert_eq!(
            code(SUBMIT, &bearer("0123456789abcdef-plan")),
            Err(tonic::Code::PermissionDenied)
        );
        assert!(
            code(
                "/ra.sandbox.v1.SandboxService/GetCapabilities",
                &bearer("0123456789abcdef-plan")
            )
            .is_ok()
        );
        assert_eq!(
            code(SUBMIT, &bearer("not-a-token-of-ours-at-all")),
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(
            code(SUBMIT, &http::HeaderMap::new()),
            Err(tonic::Code::Unauthenticated)
        );
        let mut basic = http::HeaderMap::new();
        basic.insert(
            http::header::AUTHORIZATION,
            "Basic dXNlcjpwYXNz".parse().expect("a header"),
        );
        assert_eq!(code(SUBMIT, &basic), Err(tonic::Code::Unauthenticated));
        // Probes carry nothing.
        assert_eq!(
            code("/grpc.health.v1.Health/Check", &http::HeaderMap::new()),
            Ok(None)
        );
    }

    #[test]
    fn bad_token_files_and_settings_are_refused_with_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("tokens");
        for (content, expected) in [
            ("evaluator\n", "line 1: expected `NAME TOKEN`"),
            (
                "a 0123456789abcdef\nb 0123456789abcdef\n",
                "line 2: a token given twice",
            ),
            ("a short\n", "shorter than 16"),
        ] {
            std::fs::write(&file, content).expect("write");
            let auth = AuthSettings {
                tokens_file: file.clone(),
                ..AuthSettings::default()
            };
            let error = Gate::new(&TlsSettings::default(), &auth).expect_err(content);
            assert!(error.contains(expected), "{error}");
        }
        let missing = AuthSettings {
            tokens_file: dir.path().join("absent"),
            ..AuthSettings::default()
        };
        assert!(
            Gate::new(&TlsSettings::default(), &missing)
                .is_err_and(|e| e.contains("cannot read server.auth.tokens_file"))
        );
        let table_alone = AuthSettings {
            allow: BTreeMap::from([("evaluator".to_owned(), vec!["*".to_owned()])]),
            ..AuthSettings::default()
        };
        assert!(Gate::new(&TlsSettings::default(), &table_alone).is_err());
        assert!(matches!(
            Gate::new(&TlsSettings::default(), &AuthSettings::default()),
            Ok(None)
        ));
        let half = TlsSettings {
            cert_file: "cert.pem".into(),
            ..TlsSettings::default()
        };
        assert!(half.validate().is_err());
    }
}
