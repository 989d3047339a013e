//! `verdict cluster status|add-learner|promote|remove`: cluster
//! administration over a node's internal service (`--raft-endpoint`),
//! authenticated with the cluster key.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::server::raft_commit::AdminRequest;
use crate::server::raft_net::{PeerClient, Rpc};

/// `verdict cluster ...`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Leader, term and every member's id, address, role and applied index.
    Status(ClusterArgs),
    /// Add a non-voting member that starts replicating (waits until it caught up).
    AddLearner(MemberAddArgs),
    /// Make a learner a voter.
    Promote(MemberIdArgs),
    /// Remove a member.
    Remove(MemberIdArgs),
}

/// Connection flags of `verdict cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Any member's raft address (HOST:PORT).
    #[arg(long, env = "VERDICT_RAFT_ENDPOINT", default_value = "127.0.0.1:7001")]
    pub raft_endpoint: String,
    /// The cluster key.
    #[arg(long, env = "VERDICT_CLUSTER_KEY", hide_env_values = true)]
    pub cluster_key: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments naming a new member.
#[derive(Debug, Args)]
pub struct MemberAddArgs {
    /// The new member's node id.
    #[arg(long)]
    pub id: u64,
    /// The new member's raft address (HOST:PORT).
    #[arg(long)]
    pub addr: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub conn: ClusterArgs,
}

/// Arguments naming a member.
#[derive(Debug, Args)]
pub struct MemberIdArgs {
    /// The member's node id.
    #[arg(long)]
    pub id: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub conn: ClusterArgs,
}

async fn admin(
    addr: &str,
    key: Option<&str>,
    req: &AdminRequest,
    timeout: Duration,
) -> Result<Value, String> {
    let client = PeerClient::new(addr, key)?;
    let data = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    let reply = client
        .call(Rpc::Admin, data, timeout)
        .await
        .map_err(|s| format!("{addr}: {:?}: {}", s.code(), s.message()))?;
    serde_json::from_slice::<Result<Value, String>>(&reply).map_err(|e| e.to_string())?
}

/// The cluster status seen from `conn`, with each member's own applied index.
async fn status(conn: &ClusterArgs) -> Result<Value, String> {
    let key = conn.cluster_key.as_deref();
    let local = admin(
        &conn.raft_endpoint,
        key,
        &AdminRequest::Status,
        Duration::from_secs(5),
    )
    .await?;
    let mut members = Vec::new();
    for m in local["members"].as_array().cloned().unwrap_or_default() {
        let addr = m["address"].as_str().unwrap_or_default().to_string();
        let own = admin(&addr, key, &AdminRequest::Status, Duration::from_secs(2)).await;
        let (applied, state, reachable) = match &own {
            Ok(s) => (s["applied_index"].clone(), s["state"].clone(), true),
            Err(_) => (Value::Null, Value::Null, false),
        };
        members.push(json!({
            "id": m["id"],
            "address": addr,
            "role": m["role"],
            "state": state,
            "applied_index": applied,
            "reachable": reachable,
        }));
    }
    Ok(json!({
        "leader_id": local["leader_id"],
        "term": local["term"],
        "queried_node": local["node_id"],
        "cluster_id": local["cluster_id"],
        "members": members,
    }))
}

fn print(value: &Value, json_out: bool) {
    if json_out {
        println!("{value}");
        return;
    }
    println!("leader: {}  term: {}", value["leader_id"], value["term"]);
    for m in value["members"].as_array().cloned().unwrap_or_default() {
        println!(
            "{}\t{}\t{}\t{}\tapplied={}",
            m["id"],
            m["address"].as_str().unwrap_or_default(),
            m["role"].as_str().unwrap_or_default(),
            m["state"].as_str().unwrap_or("unreachable"),
            m["applied_index"]
        );
    }
}

/// Runs `verdict cluster ...`.
pub fn run(command: &ClusterCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match command {
            ClusterCommand::Status(conn) => status(conn).await.map(|v| (v, conn.json)),
            ClusterCommand::AddLearner(a) => {
                let req = AdminRequest::AddLearner {
                    id: a.id,
                    addr: a.addr.clone(),
                };
                admin(
                    &a.conn.raft_endpoint,
                    a.conn.cluster_key.as_deref(),
                    &req,
                    Duration::from_secs(120),
                )
                .await?;
                status(&a.conn).await.map(|v| (v, a.conn.json))
            }
            ClusterCommand::Promote(a) | ClusterCommand::Remove(a) => {
                let req = match command {
                    ClusterCommand::Promote(_) => AdminRequest::Promote { id: a.id },
                    _ => AdminRequest::Remove { id: a.id },
                };
                admin(
                    &a.conn.raft_endpoint,
                    a.conn.cluster_key.as_deref(),
                    &req,
                    Duration::from_secs(60),
                )
                .await?;
                status(&a.conn).await.map(|v| (v, a.conn.json))
            }
        }
    });
    match result {
        Ok((v, json_out)) => {
            print(&v, json_out);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: UNAVAILABLE: {e}");
            ExitCode::from(1)
        }
    }
}
