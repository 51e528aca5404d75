//! Health that depends on peers: a service that needs other services (the evaluator, the
//! planner) is SERVING only while every peer it needs answers SERVING, and says why not in the
//! log whenever that changes.

use std::time::Duration;

use ra_client::Credentials;
use ra_client::health::{ServingStatus, check_with as check_health};

use crate::server::ServiceHealth;
use crate::shutdown::Shutdown;

/// A service this one needs.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its name in messages ("registry-svc").
    pub name: &'static str,
    pub url: String,
    /// Its fully qualified gRPC service name, as health checks take it.
    pub service: &'static str,
}

/// Why the peers are not all SERVING, `None` when they are.
pub async fn peers_not_ready(peers: &[Peer], credentials: &Credentials) -> Option<String> {
    let mut problems = Vec::new();
    for peer in peers {
        match check_health(&peer.url, peer.service, credentials).await {
            Ok(ServingStatus::Serving) => {}
            Ok(status) => problems.push(format!(
                "{} at {} is {}",
                peer.name,
                peer.url,
                status.as_str_name()
            )),
            Err(why) => problems.push(format!("{}: {why}", peer.name)),
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// Keeps `health` SERVING exactly while every peer is, until `shutdown`: checked every
/// 100 ms until the first time all answer, then every `interval`. Each change is logged with
/// its reason.
pub fn watch_peers(
    health: ServiceHealth,
    peers: Vec<Peer>,
    credentials: Credentials,
    interval: Duration,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ready: Option<bool> = None;
        loop {
            let problem = peers_not_ready(&peers, &credentials).await;
            if shutdown.is_triggered() || health.is_draining() {
                return;
            }
            match (&problem, ready) {
                (None, Some(true)) => {}
                (None, _) => {
                    health.set_serving().await;
                    if ready.is_some() {
                        tracing::info!("peers answer again: SERVING");
                    }
                    ready = Some(true);
                }
                (Some(why), Some(false)) => {
                    tracing::debug!(reason = %why, "still NOT_SERVING");
                }
                (Some(why), first) => {
                    health.set_not_serving().await;
                    // Peers starting beside us is normal; losing one that answered is not.
                    if first.is_none() {
                        tracing::info!(reason = %why, "NOT_SERVING until the peers answer");
                    } else {
                        tracing::warn!(reason = %why, "NOT_SERVING until the peers answer");
                    }
                    ready = Some(false);
                }
            }
            let wait = if ready == Some(true) {
                interval
            } else {
                Duration::from_millis(100)
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.requested() => return,
            }
        }
    })
}
