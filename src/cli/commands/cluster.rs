//! `verdict cluster status|add-learner|promote|remove`: cluster
//! administration over a node's internal service (`--raft-endpoint`),
//! authenticated with the cluster key.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::server::error::PeerError;
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
    pub conn: ClusterArgs,
}

/// Arguments naming a member.
#[derive(Debug, Args)]
pub struct MemberIdArgs {
    /// The member's node id.
    #[arg(long)]
    pub id: u64,
    #[command(flatten)]
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
    serde_json::from_slice::<Result<Value, PeerError>>(&reply)
        .map_err(|e| e.to_string())?
        .map_err(|e| e.message)
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
    for m in field(&local, "members")
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let addr = field(&m, "address")
            .as_str()
            .unwrap_or_default()
            .to_string();
        let own = admin(&addr, key, &AdminRequest::Status, Duration::from_secs(2)).await;
        let (applied, state, reachable) = match &own {
            Ok(s) => (
                field(s, "applied_index").clone(),
                field(s, "state").clone(),
                true,
            ),
            Err(_) => (Value::Null, Value::Null, false),
        };
        members.push(json!({
            "id": field(&m, "id"),
            "address": addr,
            "role": field(&m, "role"),
            "state": state,
            "applied_index": applied,
            "reachable": reachable,
        }));
    }
    Ok(json!({
        "leader_id": field(&local, "leader_id"),
        "term": field(&local, "term"),
        "queried_node": field(&local, "node_id"),
        "cluster_id": field(&local, "cluster_id"),
        "members": members,
    }))
}

/// `value[key]` without the `Index` operator: `null` when `value` is not an
/// object or has no such key.
fn field<'a>(value: &'a Value, key: &str) -> &'a Value {
    value.get(key).unwrap_or(&Value::Null)
}

fn print(value: &Value, json_out: bool) {
    if json_out {
        println!("{value}");
        return;
    }
    println!(
        "leader: {}  term: {}",
        field(value, "leader_id"),
        field(value, "term")
    );
    for m in field(value, "members")
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        println!(
            "{}\t{}\t{}\t{}\tapplied={}",
            field(&m, "id"),
            field(&m, "address").as_str().unwrap_or_default(),
            field(&m, "role").as_str().unwrap_or_default(),
            field(&m, "state").as_str().unwrap_or("unreachable"),
            field(&m, "applied_index")
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
