//! A service that requires credentials, over real TLS: registry-svc serving with its own
//! certificate, callers known by bearer token or by a client certificate from the client CA,
//! and a table saying the planner may only read. No token, a wrong token, a token or a
//! certificate of an identity the table does not admit are refused (UNAUTHENTICATED /
//! PERMISSION_DENIED) with nothing done and nothing recorded; a certificate from another CA does
//! not get through the handshake; health stays open on the plaintext health port; the laptop
//! default (no settings) still serves plaintext to anyone.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ra_client::{ClientSettings, Credentials};
use ra_proto::registry::v1 as reg;
use ra_serve::Shutdown;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use registry_svc::RegistryConfig;
use tonic::Code;

const EVALUATOR_TOKEN: &str = "evaluator-token-0123456789abcdef";
const PLANNER_TOKEN: &str = "planner-token-0123456789abcdef";

/// A CA and the files of certificates it signs.
struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Self {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("a CA certificate");
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).expect("a folder");
        std::fs::write(dir.join("ca.pem"), cert.pem()).expect("write the CA");
        Self {
            dir,
            issuer: Issuer::new(params, key),
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate for `names` (DNS names or IP addresses), for servers and clients alike:
    /// (certificate file, key file).
    fn issue(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("a key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        let (cert_file, key_file) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&cert_file, cert.pem()).expect("write the certificate");
        std::fs::write(&key_file, key.serialize_pem()).expect("write the key");
        (cert_file, key_file)
    }
}

struct Secured {
    address: SocketAddr,
    health: SocketAddr,
    shutdown: Shutdown,
    _dir: tempfile::TempDir,
    pki: Pki,
    foreign: Pki,
}

impl Secured {
    fn url(&self) -> String {
        format!("https://localhost:{}", self.address.port())
    }

    fn credentials(&self, settings: ClientSettings) -> Credentials {
        Credentials::from_settings(
            &ClientSettings {
                ca_file: self.pki.ca(),
                ..settings
            },
            "client",
        )
        .expect("credentials")
    }

    fn token(&self, token: &str) -> Credentials {
        let file = self.pki.dir.join(format!("token-{}", token.len()));
        std::fs::write(&file, token).expect("write the token");
        self.credentials(ClientSettings {
            token_file: file,
            ..ClientSettings::default()
        })
    }

    fn certificate(&self, pki: &Pki, name: &str) -> Credentials {
        let (cert_file, key_file) = pki.issue(&format!("client-{name}"), &[name]);
        self.credentials(ClientSettings {
            cert_file,
            key_file,
            ..ClientSettings::default()
        })
    }

    fn registry(&self, credentials: &Credentials) -> ra_client::RegistryClient {
        ra_client::registry_with("registry", &self.url(), credentials)
            .expect("a client")
            .client()
    }
}

/// registry-svc with TLS, tokens for the evaluator and the planner, client certificates from
/// its CA, and the planner limited to reading.
async fn secured_registry() -> Secured {
    let dir = tempfile::tempdir().expect("a folder");
    let pki = Pki::new(dir.path(), "research-ca");
    let foreign = Pki::new(dir.path(), "foreign-ca");
    let (cert_file, key_file) = pki.issue("registry", &["localhost", "127.0.0.1"]);
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        format!("evaluator {EVALUATOR_TOKEN}\nplanner {PLANNER_TOKEN}\n"),
    )
    .expect("write the tokens");
    let mut config = RegistryConfig::default();
    config.store.path = dir.path().join("store");
    config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.server.tls = ra_serve::auth::TlsSettings {
        cert_file,
        key_file,
        client_ca_file: pki.ca(),
    };
    config.server.auth = ra_serve::auth::AuthSettings {
        tokens_file: tokens,
        allow: BTreeMap::from([
            ("evaluator".to_owned(), vec!["*".to_owned()]),
            (
                "planner".to_owned(),
                vec!["GetExperiment".to_owned(), "ListExperiments".to_owned()],
            ),
        ]),
    };
    // The health port is bound by the server itself: take a free one first.
    let health = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    config.server.health_listen = Some(health);
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let shutdown = Shutdown::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            if let Err(error) = registry_svc::run(&config, listener, shutdown).await {
                eprintln!("registry-svc failed: {error}");
            }
        }
    });
    let waited = ra_client::health::wait_serving(
        &format!("http://{health}"),
        ra_proto::service_names::REGISTRY,
        Duration::from_secs(20),
        Duration::from_millis(20),
        |_| async { None },
    )
    .await;
    assert!(waited.is_ok(), "{waited:?}");
    Secured {
        address,
        health,
        shutdown,
        _dir: dir,
        pki,
        foreign,
    }
}

fn experiment(name: &str) -> reg::CreateExperimentRequest {
    reg::CreateExperimentRequest {
        name: name.to_owned(),
        ..Default::default()
    }
}

async fn experiments(secured: &Secured) -> Vec<String> {
    secured
        .registry(&secured.token(EVALUATOR_TOKEN))
        .list_experiments(reg::ListExperimentsRequest::default())
        .await
        .expect("the evaluator reads")
        .into_inner()
        .experiments
        .into_iter()
        .map(|e| e.name)
        .collect()
}

#[tokio::test]
async fn callers_without_the_right_credentials_are_refused_and_nothing_is_recorded() {
    let secured = secured_registry().await;
    let tls_only = secured.credentials(ClientSettings::default());
    let refused = [
        ("no token", tls_only.clone(), Code::Unauthenticated),
        (
            "a wrong token",
            secured.token("not-a-token-this-registry-knows"),
            Code::Unauthenticated,
        ),
        (
            "the planner's token (read only)",
            secured.token(PLANNER_TOKEN),
            Code::PermissionDenied,
        ),
        (
            "the planner's certificate (read only)",
            secured.certificate(&secured.pki, "planner"),
            Code::PermissionDenied,
        ),
        (
            "a certificate of an unknown identity",
            secured.certificate(&secured.pki, "intruder"),
            Code::PermissionDenied,
        ),
    ];
    for (who, credentials, code) in refused {
        let answer = secured
            .registry(&credentials)
            .create_experiment(experiment(who))
            .await;
        let status = answer.expect_err(who);
        assert_eq!(status.code(), code, "{who}: {status:?}");
        assert!(!status.message().is_empty(), "{who}");
    }
    // A certificate from another CA does not get through the handshake: nothing reaches the
    // service (the client sees the connection fail).
    let foreign = secured.certificate(&secured.foreign, "evaluator");
    let answer = secured
        .registry(&foreign)
        .create_experiment(experiment("foreign"))
        .await;
    let status = answer.expect_err("a foreign certificate");
    assert!(
        matches!(status.code(), Code::Unavailable | Code::Unknown),
        "{status:?}"
    );
    assert!(experiments(&secured).await.is_empty());

    // The planner may read; the evaluator, by token or by certificate, may write.
    let planner = secured.registry(&secured.token(PLANNER_TOKEN));
    let read = planner
        .clone()
        .list_experiments(reg::ListExperimentsRequest::default())
        .await;
    assert!(read.is_ok(), "{read:?}");
    for (who, credentials) in [
        ("by token", secured.token(EVALUATOR_TOKEN)),
        (
            "by certificate",
            secured.certificate(&secured.pki, "evaluator"),
        ),
    ] {
        let created = secured
            .registry(&credentials)
            .create_experiment(experiment(who))
            .await;
        assert!(created.is_ok(), "{who}: {created:?}");
    }
    let mut names = experiments(&secured).await;
    names.sort();
    assert_eq!(names, ["by certificate", "by token"]);

    // Probes need nothing: plaintext health on its own port, and health over TLS without a
    // token.
    let health = ra_client::health::check(
        &format!("http://{}", secured.health),
        ra_proto::service_names::REGISTRY,
    )
    .await;
    assert_eq!(health, Ok(ra_client::health::ServingStatus::Serving));
    let over_tls =
        ra_client::health::check_with(&secured.url(), ra_proto::service_names::REGISTRY, &tls_only)
            .await;
    assert_eq!(over_tls, Ok(ra_client::health::ServingStatus::Serving));
    // A plaintext client of a TLS port gets no answer from the service.
    let plaintext = ra_client::registry("registry", &format!("http://{}", secured.address))
        .expect("a client")
        .client()
        .list_experiments(reg::ListExperimentsRequest::default())
        .await;
    assert!(plaintext.is_err(), "{plaintext:?}");
    secured.shutdown.trigger();
}

#[tokio::test]
async fn an_https_peer_without_a_ca_is_refused_before_dialling() {
    let refused = ra_client::registry_with(
        "evaluator.registry_url",
        "https://registry.example:50055",
        &Credentials::none(),
    );
    let error = refused.expect_err("no CA for an https peer");
    assert!(
        error.to_string().contains("evaluator.registry_url")
            && error.to_string().contains("ca_file"),
        "{error}"
    );
}
