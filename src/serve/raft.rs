//! The Raft parts of the server lifecycle: the internal service on
//! `--raft-addr`, joining a cluster, waiting for a leader, stopping.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt as _;

use crate::api::raft_service::InternalService;
use crate::server::config::ServerSettings;
use crate::server::error::{PeerError, ServerError};
use crate::server::raft_commit::AdminRequest;
use crate::server::raft_net::{pb, PeerClient, Rpc};
use crate::server::state::AppState;

/// Reset-but-unaccepted h2 streams tolerated per connection on the Raft port.
const PENDING_ACCEPT_RESET_STREAMS: usize = 1024;

/// The running internal service.
pub(crate) struct InternalServer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Binds and serves the internal service when `--raft-addr` is set.
pub(crate) async fn serve_internal(
    state: &Arc<AppState>,
    settings: &ServerSettings,
) -> Result<Option<InternalServer>, ServerError> {
    let Some(addr) = settings.cluster.raft_addr else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let committer = state.committer.clone();
    let service = InternalService::new(
        committer.raft().clone(),
        settings.cluster.cluster_key.clone(),
        committer.contact(),
        Arc::new(committer),
    );
    // Small request/response messages: no Nagle delay on accepted sockets.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|s| {
            let _ = s.set_nodelay(true);
        })
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        // A paused or partitioned node wakes up to every append its leader
        // sent and then reset on timeout (heartbeats every 250 ms, 2 s
        // timeouts): h2's default of 20 pending-accept reset streams would
        // drop the connection with ENHANCE_YOUR_CALM after a 5 s pause.
        // 1024 covers minutes of backlog and still bounds a rapid-reset
        // flood (CVE-2023-44487).
        .http2_max_pending_accept_reset_streams(Some(PENDING_ACCEPT_RESET_STREAMS))
        .add_service(
            pb::raft_internal_server::RaftInternalServer::new(service)
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20),
        )
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stopped.await;
        });
    let task = tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "raft service failed");
        }
    });
    println!("raft listening on {addr}");
    Ok(Some(InternalServer { stop, task }))
}

/// Joins the cluster (`--join`), or for a single node waits until it leads,
/// so that "ready" means writes are accepted.
pub(crate) async fn settle(state: &AppState, settings: &ServerSettings) -> Result<(), ServerError> {
    let c = &settings.cluster;
    let fail = |message: String| ServerError::DataDir {
        path: settings.data_dir.display().to_string(),
        message,
    };
    if let (Some(join), Some(addr)) = (&c.join, c.raft_addr) {
        let already = state
            .committer
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&c.node_id)
            .is_some();
        if !already {
            let client = PeerClient::new(join, c.cluster_key.as_deref()).map_err(fail)?;
            let req = AdminRequest::Join {
                id: c.node_id,
                addr: addr.to_string(),
            };
            let data = serde_json::to_vec(&req).map_err(|e| fail(e.to_string()))?;
            // Joining is idempotent: retry through leader changes, bounded.
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            loop {
                let attempt = match client
                    .call(Rpc::Admin, data.clone(), Duration::from_secs(60))
                    .await
                {
                    Ok(reply) => {
                        serde_json::from_slice::<Result<serde_json::Value, PeerError>>(&reply)
                            .map_err(|e| e.to_string())
                            .and_then(|r| r.map_err(|e| e.message))
                    }
                    Err(s) => Err(s.message().to_string()),
                };
                match attempt {
                    Ok(_) => break,
                    Err(e) if std::time::Instant::now() >= deadline => {
                        return Err(fail(format!("--join {join}: {e}")));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, %join, "join attempt failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            tracing::info!(node_id = c.node_id, %join, "joined the cluster");
        }
    } else if !c.is_multi_node() {
        state
            .committer
            .wait_for_leader(Duration::from_secs(10))
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    Ok(())
}

/// Stops the internal service and Raft.
pub(crate) async fn stop(state: &AppState, server: Option<InternalServer>) {
    if let Err(e) = state.committer.raft().shutdown().await {
        tracing::warn!(error = %e, "raft did not shut down cleanly");
    }
    if let Some(s) = server {
        let _ = s.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(2), s.task).await;
    }
}
