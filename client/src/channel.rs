//! The one channel policy: every client dials with the same connect timeout, TCP_NODELAY,
//! HTTP/2 keep-alive and message limits, and every peer URL setting is checked the same way.

use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::credentials::Credentials;

/// How long dialling a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 keep-alive pings on idle connections, so a peer that vanished is noticed.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// Largest message sent to or read from a peer (registry pages, sandbox results).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A peer URL setting that cannot be dialled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} = {url:?} is not a URL such as http://127.0.0.1:50055{detail}")]
pub struct ChannelError {
    pub field: String,
    pub url: String,
    detail: String,
}

/// Checks a peer URL setting: http or https, with a host.
pub fn validate_url(field: &str, url: &str) -> Result<(), ChannelError> {
    endpoint(field, url).map(|_| ())
}

fn endpoint(field: &str, url: &str) -> Result<Endpoint, ChannelError> {
    let refuse = |detail: String| ChannelError {
        field: field.to_owned(),
        url: url.chars().take(200).collect(),
        detail,
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(refuse(String::new()));
    }
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| refuse(format!(": {e}")))?;
    if endpoint.uri().host().is_none_or(str::is_empty) {
        return Err(refuse(": it names no host".to_owned()));
    }
    Ok(endpoint)
}

/// The endpoint of `url` under the channel policy, with TLS for `https://` (the credentials'
/// CA; an https URL without one is refused).
pub fn policy_endpoint(
    field: &str,
    url: &str,
    credentials: &Credentials,
) -> Result<Endpoint, ChannelError> {
    let endpoint = endpoint(field, url)?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_while_idle(true);
    if !url.starts_with("https://") {
        return Ok(endpoint);
    }
    let refuse = |detail: String| ChannelError {
        field: field.to_owned(),
        url: url.chars().take(200).collect(),
        detail,
    };
    let tls: ClientTlsConfig = credentials.tls.clone().ok_or_else(|| {
        refuse(": an https:// peer needs the CA that signs its certificate (client.ca_file, --ca-file)".to_owned())
    })?;
    endpoint
        .tls_config(tls)
        .map_err(|e| refuse(format!(": cannot use its TLS settings: {e}")))
}

/// A lazily connected channel to `url`: nothing is dialled until the first call, so a service
/// starts even while its peers are still coming up.
pub fn lazy_channel(
    field: &str,
    url: &str,
    credentials: &Credentials,
) -> Result<Channel, ChannelError> {
    Ok(policy_endpoint(field, url, credentials)?.connect_lazy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_once_for_everyone() {
        assert!(validate_url("evaluator.registry_url", "http://127.0.0.1:50055").is_ok());
        assert!(validate_url("x", "https://registry.example:443").is_ok());
        for bad in [
            "",
            "127.0.0.1:50055",
            "ftp://host",
            "http://",
            "http://exa mple",
        ] {
            let error = validate_url("planner.registry_url", bad).expect_err(bad);
            assert!(
                error.to_string().starts_with("planner.registry_url = "),
                "{error}"
            );
        }
    }
}
