//! Cluster flags of `verdict serve` (`--node-id`, `--raft-addr`,
//! `--initial-cluster`, `--join`, `--cluster-key`, `--snapshot-logs`) and
//! their resolved form.

use std::net::SocketAddr;

use clap::Args;

use super::error::ServerError;

/// Cluster flags (flattened into `verdict serve`).
#[derive(Debug, Clone, Default, Args)]
pub struct ClusterArgs {
    /// This node's id in the Raft cluster (default 1).
    #[arg(long, env = "VERDICT_NODE_ID")]
    pub node_id: Option<u64>,
    /// Address of the internal node-to-node service (HOST:PORT). Required
    /// for multi-node clusters; a single node without it serves no Raft port.
    #[arg(long, env = "VERDICT_RAFT_ADDR")]
    pub raft_addr: Option<SocketAddr>,
    /// The static cluster to bootstrap: `1=HOST:PORT,2=HOST:PORT,...`
    /// (raft addresses). Without it (and without --join) the node is a
    /// single-node cluster of itself.
    #[arg(long, env = "VERDICT_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// Join a running cluster through any member's raft address (becomes a
    /// learner, catches up, then a voter).
    #[arg(long, env = "VERDICT_JOIN")]
    pub join: Option<String>,
    /// Shared secret every node presents to its peers.
    #[arg(long, env = "VERDICT_CLUSTER_KEY", hide_env_values = true)]
    pub cluster_key: Option<String>,
    /// Build a snapshot (and compact the log) every N entries (default 10000).
    #[arg(long, env = "VERDICT_SNAPSHOT_LOGS")]
    pub snapshot_logs: Option<u64>,
}

/// Resolved cluster settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// This node's id.
    pub node_id: u64,
    /// The internal service address, if any.
    pub raft_addr: Option<SocketAddr>,
    /// Initial members (id, raft address), sorted by id; empty = just this node.
    pub initial_cluster: Vec<(u64, String)>,
    /// A member to join through.
    pub join: Option<String>,
    /// The shared peer secret.
    pub cluster_key: Option<String>,
    /// Snapshot every this many log entries.
    pub snapshot_logs: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            node_id: 1,
            raft_addr: None,
            initial_cluster: Vec::new(),
            join: None,
            cluster_key: None,
            snapshot_logs: 10_000,
        }
    }
}

/// A parsed `--initial-cluster` value.
///
/// # Errors
/// Names the malformed member and why.
pub fn parse_initial_cluster(text: &str) -> Result<Vec<(u64, String)>, String> {
    let mut out: Vec<(u64, String)> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not ID=HOST:PORT"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("`{part}`: node id `{id}` is not a number"))?;
        let addr = addr.trim();
        if addr
            .rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(format!("`{part}`: address `{addr}` is not HOST:PORT"));
        }
        if out.iter().any(|(i, _)| *i == id) {
            return Err(format!("node id {id} is listed twice"));
        }
        out.push((id, addr.to_string()));
    }
    out.sort();
    Ok(out)
}

impl ClusterArgs {
    /// Resolves and validates the flags.
    ///
    /// # Errors
    /// A message naming the flag and the problem.
    pub fn resolve(&self) -> Result<ClusterSettings, String> {
        let initial_cluster = match &self.initial_cluster {
            Some(text) => {
                parse_initial_cluster(text).map_err(|e| format!("--initial-cluster: {e}"))?
            }
            None => Vec::new(),
        };
        let node_id = self.node_id.unwrap_or(1);
        if !initial_cluster.is_empty() && !initial_cluster.iter().any(|(id, _)| *id == node_id) {
            return Err(format!(
                "--initial-cluster does not list this node (--node-id {node_id})"
            ));
        }
        if initial_cluster.len() > 1 && self.raft_addr.is_none() {
            return Err("--raft-addr is required with a multi-node --initial-cluster".into());
        }
        if self.join.is_some() && self.raft_addr.is_none() {
            return Err("--raft-addr is required with --join".into());
        }
        if self.join.is_some() && !initial_cluster.is_empty() {
            return Err("use either --join or --initial-cluster, not both".into());
        }
        let snapshot_logs = self.snapshot_logs.unwrap_or(10_000);
        if snapshot_logs == 0 {
            return Err("--snapshot-logs must be at least 1".into());
        }
        Ok(ClusterSettings {
            node_id,
            raft_addr: self.raft_addr,
            initial_cluster,
            join: self.join.clone(),
            cluster_key: self.cluster_key.clone().filter(|k| !k.is_empty()),
            snapshot_logs,
        })
    }
}

impl ClusterSettings {
    /// Whether this node is (or will be) part of a multi-node cluster.
    pub fn is_multi_node(&self) -> bool {
        self.initial_cluster.len() > 1 || self.join.is_some()
    }
}

/// The cluster id kept in `dir/cluster-id`, picked at random (and kept)
/// when there is none yet.
fn local_cluster_id(dir: &std::path::Path) -> Result<u64, ServerError> {
    let path = dir.join("cluster-id");
    let err = |message: String| ServerError::DataDir {
        path: dir.display().to_string(),
        message,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| err(format!("`{}` is corrupt", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id: u64 = rand::random();
            verdict_storage::durable_file::write_atomic(&path, id.to_string().as_bytes())
                .map_err(|e| err(e.to_string()))?;
            Ok(id)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// The zookie cluster id of this data directory: kept in `cluster-id`; on
/// first start a static multi-node cluster derives it from the sorted
/// `--initial-cluster` (so every member agrees), a joining node takes the
/// cluster's from the member it joins through, a single node picks one at
/// random.
///
/// # Errors
/// An unreadable/corrupt file, or the join target cannot be asked.
pub async fn cluster_id(dir: &std::path::Path, c: &ClusterSettings) -> Result<u64, String> {
    let path = dir.join("cluster-id");
    if path.exists() || (c.initial_cluster.len() <= 1 && c.join.is_none()) {
        return local_cluster_id(dir).map_err(|e| e.to_string());
    }
    let id = if let Some(join) = &c.join {
        fetch_cluster_id(join, c.cluster_key.as_deref()).await?
    } else {
        let canonical: Vec<String> = c
            .initial_cluster
            .iter()
            .map(|(id, addr)| format!("{id}={addr}"))
            .collect();
        canonical
            .join(",")
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
    };
    verdict_storage::durable_file::write_atomic(&path, id.to_string().as_bytes())
        .map_err(|e| format!("`{}`: {e}", path.display()))?;
    Ok(id)
}

async fn fetch_cluster_id(join: &str, key: Option<&str>) -> Result<u64, String> {
    use super::raft_commit::AdminRequest;
    use super::raft_net::{PeerClient, Rpc};
    let client = PeerClient::new(join, key)?;
    let data = serde_json::to_vec(&AdminRequest::Status).map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let attempt = client
            .call(Rpc::Admin, data.clone(), std::time::Duration::from_secs(2))
            .await
            .map_err(|s| format!("--join {join}: {}", s.message()))
            .and_then(|reply| {
                let status: Result<serde_json::Value, super::error::PeerError> =
                    serde_json::from_slice(&reply).map_err(|e| e.to_string())?;
                status
                    .map_err(|e| e.message)?
                    .get("cluster_id")
                    .and_then(|v| v.as_str())
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| format!("--join {join}: no cluster id in its status"))
            });
        match attempt {
            Ok(id) => return Ok(id),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_parses_and_rejects() {
        assert_eq!(
            parse_initial_cluster("2=127.0.0.1:2,1=127.0.0.1:1").unwrap(),
            vec![
                (1, "127.0.0.1:1".to_string()),
                (2, "127.0.0.1:2".to_string())
            ]
        );
        assert!(parse_initial_cluster("x=127.0.0.1:1").is_err());
        assert!(parse_initial_cluster("1=nohost").is_err());
        assert!(parse_initial_cluster("1=a:1,1=b:2").is_err());
        let args = ClusterArgs {
            node_id: Some(3),
            initial_cluster: Some("1=a:1,2=b:2".into()),
            raft_addr: Some("127.0.0.1:1".parse().unwrap()),
            ..ClusterArgs::default()
        };
        assert!(args.resolve().unwrap_err().contains("does not list"));
    }
}
