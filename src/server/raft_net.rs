//! The internal node-to-node service on `--raft-addr`: openraft's RPCs
//! (append entries, vote, snapshot chunks), forwarded client commands, read
//! index and cluster administration. Payloads are JSON (serde) in a bytes
//! field; every call carries the cluster key in `x-verdict-cluster-key`,
//! compared in constant time.

use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use verdict_raft::openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use verdict_raft::openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use verdict_raft::openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use verdict_raft::{codec, Node, NodeId, TypeConfig};

use super::keys::constant_time_eq;
use super::leader_contact::{sent_instant, wall_clock_micros, LeaderContact, SENT_AT_HEADER};

/// Generated types of `verdict.v1.internal`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("verdict.v1.internal");
}

use pb::raft_internal_client::RaftInternalClient;
use pb::RaftPayload;

/// The metadata key carrying the cluster key.
pub const KEY_HEADER: &str = "x-verdict-cluster-key";

/// Per-call timeout for replication and votes.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);
/// Per-call timeout for snapshot chunks and forwarded commands.
const LONG_TIMEOUT: Duration = Duration::from_secs(15);

/// A client for one peer's internal service (reconnects lazily).
#[derive(Debug, Clone)]
pub struct PeerClient {
    client: RaftInternalClient<Channel>,
    key: Option<MetadataValue<tonic::metadata::Ascii>>,
}

/// Which internal RPC to call.
#[derive(Debug, Clone, Copy)]
pub enum Rpc {
    /// openraft AppendEntries.
    AppendEntries,
    /// openraft Vote.
    Vote,
    /// A snapshot chunk.
    InstallSnapshot,
    /// A forwarded client command.
    Forward,
    /// The leader's read index.
    ReadIndex,
    /// Administration.
    Admin,
}

impl PeerClient {
    /// A client for `addr` (`HOST:PORT`), presenting `key`.
    ///
    /// # Errors
    /// A malformed address or key.
    pub fn new(addr: &str, key: Option<&str>) -> Result<PeerClient, String> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("bad peer address `{addr}`: {e}"))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true);
        let key = key
            .map(|k| {
                k.parse::<MetadataValue<tonic::metadata::Ascii>>()
                    .map_err(|_| "the cluster key must be printable ASCII".to_string())
            })
            .transpose()?;
        Ok(PeerClient {
            client: RaftInternalClient::new(endpoint.connect_lazy()),
            key,
        })
    }

    /// Calls `rpc` with a JSON payload and a timeout; returns the reply bytes.
    ///
    /// # Errors
    /// The transport or the peer's status.
    pub async fn call(
        &self,
        rpc: Rpc,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, Status> {
        let mut req = Request::new(RaftPayload { data });
        req.set_timeout(timeout);
        if let Some(k) = &self.key {
            req.metadata_mut().insert(KEY_HEADER, k.clone());
        }
        req.metadata_mut()
            .insert(SENT_AT_HEADER, MetadataValue::from(wall_clock_micros()));
        let mut c = self.client.clone();
        let reply = match rpc {
            Rpc::AppendEntries => c.append_entries(req).await,
            Rpc::Vote => c.vote(req).await,
            Rpc::InstallSnapshot => c.install_snapshot(req).await,
            Rpc::Forward => c.forward(req).await,
            Rpc::ReadIndex => c.read_index(req).await,
            Rpc::Admin => c.admin(req).await,
        };
        let reply = tokio::time::timeout(timeout + Duration::from_millis(200), async { reply })
            .await
            .map_err(|_| Status::deadline_exceeded("peer did not answer in time"))??;
        Ok(reply.into_inner().data)
    }
}

/// openraft's network factory over [`PeerClient`]s.
#[derive(Debug, Clone)]
pub struct Network {
    /// The cluster key presented to peers.
    pub key: Option<String>,
}

/// One connection to a peer, as openraft uses it.
#[derive(Debug)]
pub struct Connection {
    target: NodeId,
    client: Result<PeerClient, String>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Connection {
        Connection {
            target,
            client: PeerClient::new(&node.addr, self.key.as_deref()),
        }
    }
}

fn unreachable<E: std::error::Error>(msg: impl std::fmt::Display) -> RPCError<NodeId, Node, E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(msg.to_string())))
}

impl Connection {
    async fn rpc<Req, Resp, E>(
        &self,
        rpc: Rpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let client = self.client.as_ref().map_err(unreachable)?;
        let data = codec::encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let reply = client.call(rpc, data, timeout).await.map_err(|s| {
            if s.code() == tonic::Code::Unauthenticated {
                RPCError::Network(NetworkError::new(&std::io::Error::other(
                    s.message().to_string(),
                )))
            } else {
                unreachable(format!("{}: {}", s.code(), s.message()))
            }
        })?;
        let result: Result<Resp, RaftError<NodeId, E>> =
            codec::decode(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn ttl(option: &RPCOption, floor: Duration) -> Duration {
    option.hard_ttl().max(floor)
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.rpc(Rpc::AppendEntries, &rpc, ttl(&option, RPC_TIMEOUT))
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc(Rpc::InstallSnapshot, &rpc, ttl(&option, LONG_TIMEOUT))
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.rpc(Rpc::Vote, &rpc, ttl(&option, RPC_TIMEOUT)).await
    }
}

/// What the internal service needs from the node.
#[tonic::async_trait]
pub trait InternalHandler: Send + Sync + 'static {
    /// A forwarded client command (JSON `Request`) → JSON `Result<Response, String>`.
    async fn forward(&self, data: &[u8]) -> Vec<u8>;
    /// The read index → JSON `Result<u64, String>`.
    async fn read_index(&self) -> Vec<u8>;
    /// An admin request → JSON reply.
    async fn admin(&self, data: &[u8]) -> Vec<u8>;
}

/// The internal service.
pub struct InternalService<H> {
    raft: verdict_raft::Raft,
    key: Option<String>,
    contact: Arc<LeaderContact>,
    handler: Arc<H>,
}

impl<H> InternalService<H> {
    /// The service for `raft`, requiring `key` (none = accept every peer).
    pub fn new(
        raft: verdict_raft::Raft,
        key: Option<String>,
        contact: Arc<LeaderContact>,
        handler: Arc<H>,
    ) -> Self {
        InternalService {
            raft,
            key,
            contact,
            handler,
        }
    }

    fn check(&self, req: &Request<RaftPayload>) -> Result<(), Status> {
        let Some(expected) = &self.key else {
            return Ok(());
        };
        let given = req
            .metadata()
            .get(KEY_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if constant_time_eq(given, expected.as_bytes()) {
            Ok(())
        } else {
            Err(Status::unauthenticated(
                "missing or wrong cluster key (x-verdict-cluster-key)",
            ))
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(req: &Request<RaftPayload>) -> Result<T, Status> {
    codec::decode(&req.get_ref().data)
        .map_err(|e| Status::invalid_argument(format!("malformed payload: {e}")))
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    codec::encode(value)
        .map(|data| Response::new(RaftPayload { data }))
        .map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl<H: InternalHandler> pb::raft_internal_server::RaftInternal for InternalService<H> {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check(&request)?;
        let sent = sent_instant(
            request
                .metadata()
                .get(SENT_AT_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
        );
        let req: AppendEntriesRequest<TypeConfig> = decode(&request)?;
        let commit = req.leader_commit.map_or(0, |l| l.index);
        let result = self.raft.append_entries(req).await;
        if let Ok(r) = &result {
            if r.is_success() {
                self.contact.record(commit, sent);
            }
        }
        reply(&result)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check(&request)?;
        let req: VoteRequest<NodeId> = decode(&request)?;
        reply(&self.raft.vote(req).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check(&request)?;
        let req: InstallSnapshotRequest<TypeConfig> = decode(&request)?;
        reply(&self.raft.install_snapshot(req).await)
    }

    async fn forward(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check(&request)?;
        Ok(Response::new(RaftPayload {
            data: self.handler.forward(&request.get_ref().data).await,
        }))
    }

    async fn read_index(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check(&request)?;
        Ok(Response::new(RaftPayload {
            data: self.handler.read_index().await,
        }))
    }

    async fn admin(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check(&request)?;
        Ok(Response::new(RaftPayload {
            data: self.handler.admin(&request.get_ref().data).await,
        }))
    }
}
