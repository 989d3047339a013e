//! Process start-up (`verdict serve`), above both layers: open the node
//! ([`AppState`]), bind the gRPC, HTTP and Raft ports with the front doors'
//! routers, serve until shutdown, drain in-flight requests, flush, exit.
//!
//! ```text
//! serve (this module) ──▶ api (front doors, transport) ──▶ server (the node)
//!        └──────────────────────────────────────────────▶ server
//! ```

mod raft;

use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;

use crate::api;
use crate::server::config::ServerSettings;
pub use crate::server::error::ServerError;
use crate::server::state::AppState;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt as _;

/// Runs a single node until `shutdown` resolves.
///
/// # Errors
/// See [`ServerError`].
pub async fn run(
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let dir = settings.data_dir.clone();
    if settings.cluster.is_multi_node()
        && settings.cluster.cluster_key.is_none()
        && !settings.insecure_no_auth
    {
        return Err(ServerError::DataDir {
            path: dir.display().to_string(),
            message: "a multi-node cluster needs --cluster-key (or --insecure-no-auth)".into(),
        });
    }
    if settings.ops.admin_key.is_none()
        && settings.ops.grpc_preshared_keys.is_empty()
        && !settings.insecure_no_auth
    {
        return Err(ServerError::Config(
            "refusing to start without authentication: pass --admin-key KEY (or VERDICT_ADMIN_KEY) to require API keys, --grpc-preshared-key KEY to serve the default tenant to holders of KEY, or --insecure-no-auth for development".into(),
        ));
    }
    let http_tls = match &settings.ops.tls {
        Some((cert, key)) => {
            Some(crate::api::tls::acceptor(cert, key).map_err(ServerError::Config)?)
        }
        None => None,
    };
    let state = AppState::open(settings.clone()).await?;
    if settings.insecure_no_auth
        && settings.ops.admin_key.is_none()
        && settings.ops.serve_testing.is_none()
    {
        tracing::warn!("serving WITHOUT authentication (--insecure-no-auth): any client can read and write every tenant");
        eprintln!("WARNING: --insecure-no-auth: any client can read and write every tenant");
    }
    let state = Arc::new(state);
    // Background GC: history older than the retention window, and tuples
    // expired for longer than a minute. Stops when dropped at shutdown.
    let gc = verdict_storage::GcWorker::spawn(
        state.store.clone(),
        settings.gc_interval,
        settings.gc_retention,
    );

    let grpc = TcpListener::bind(settings.grpc_addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: settings.grpc_addr,
            source,
        })?;
    let http = TcpListener::bind(settings.http_addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: settings.http_addr,
            source,
        })?;
    let raft_service = raft::serve_internal(&state, &settings).await?;
    let grpc_addr = grpc.local_addr().unwrap_or(settings.grpc_addr);
    let http_addr = http.local_addr().unwrap_or(settings.http_addr);

    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut stop_http = stop_tx.subscribe();
    let router = api::http_router(state.clone());
    let stopped = async move {
        let _ = stop_http.recv().await;
    };
    let http_task = match http_tls {
        Some(acceptor) => {
            let listener = crate::api::tls::TlsListener::new(http, acceptor).map_err(|source| {
                ServerError::Bind {
                    addr: http_addr,
                    source,
                }
            })?;
            let server = axum::serve(listener, router).with_graceful_shutdown(stopped);
            tokio::spawn(async move { server.await })
        }
        None => {
            let server = axum::serve(http, router).with_graceful_shutdown(stopped);
            tokio::spawn(async move { server.await })
        }
    };

    let mut stop_grpc = stop_tx.subscribe();
    // Small request/response messages: without TCP_NODELAY, Nagle's
    // algorithm and delayed ACKs stall some answers by 40 ms.
    let incoming = TcpListenerStream::new(grpc).map(|conn| {
        conn.inspect(|s| {
            let _ = s.set_nodelay(true);
        })
    });
    let grpc_server = api::grpc_router(state.clone())
        .map_err(ServerError::Grpc)?
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop_grpc.recv().await;
        });
    let grpc_task = tokio::spawn(grpc_server);

    raft::settle(&state, &settings).await?;
    tracing::info!(%grpc_addr, %http_addr, data_dir = %dir.display(), "verdict serving");
    println!("grpc listening on {grpc_addr}");
    println!("http listening on {http_addr}");
    println!("ready");
    let _ = std::io::stdout().flush();

    shutdown.await;
    tracing::info!("shutting down: draining in-flight requests");
    let _ = stop_tx.send(());
    let grace = settings.shutdown_grace;
    let drained = tokio::time::timeout(grace, async {
        let g = grpc_task.await;
        let _ = http_task.await;
        g
    })
    .await;
    match drained {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(ServerError::Grpc(e.to_string())),
        Ok(Err(e)) => return Err(ServerError::Grpc(e.to_string())),
        Err(_) => tracing::warn!(
            ?grace,
            "in-flight requests did not finish within the grace period"
        ),
    }
    // Stop Raft and GC, then drop the last reference: RocksDB closes cleanly.
    raft::stop(&state, raft_service).await;
    drop(gc);
    drop(state);
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
