//! The gRPC service on the Raft port (`--raft-addr`): openraft's RPCs
//! (append entries, vote, snapshot chunks) handed to the local Raft, and
//! forwarded commands, read index and administration handed to the node's
//! [`InternalHandler`]. Every call must carry the cluster key in
//! `x-verdict-cluster-key` (compared in constant time). Failures become
//! statuses through the one mapping in [`super::error`].

use std::sync::Arc;

use tonic::{Request, Response, Status};
use verdict_raft::openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use verdict_raft::{codec, NodeId, TypeConfig};

use super::error::status;
use crate::server::error::NodeError;
use crate::server::keys::constant_time_eq;
use crate::server::leader_contact::{sent_instant, LeaderContact, SENT_AT_HEADER};
use crate::server::raft_net::pb::{self, RaftPayload};
use crate::server::raft_net::{InternalHandler, KEY_HEADER};

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
            Err(status(NodeError::Unauthenticated(
                "missing or wrong cluster key (x-verdict-cluster-key)".into(),
            )))
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(req: &Request<RaftPayload>) -> Result<T, Status> {
    codec::decode(&req.get_ref().data).map_err(|e| status(NodeError::MalformedPayload(e)))
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    codec::encode(value)
        .map(|data| Response::new(RaftPayload { data }))
        .map_err(|e| status(NodeError::Codec(e)))
}

fn payload(data: Result<Vec<u8>, NodeError>) -> Result<Response<RaftPayload>, Status> {
    data.map(|data| Response::new(RaftPayload { data }))
        .map_err(status)
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
        payload(self.handler.forward(&request.get_ref().data).await)
    }

    async fn read_index(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check(&request)?;
        payload(self.handler.read_index().await)
    }

    async fn admin(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check(&request)?;
        payload(self.handler.admin(&request.get_ref().data).await)
    }
}
