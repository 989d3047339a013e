//! `verdict serve` settings: flags, then `VERDICT_*` environment variables,
//! then a TOML file (`--config`), then defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

/// Flags of `verdict serve` (each also readable from `VERDICT_<NAME>`).
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Data directory (RocksDB store, tenant registry, cluster id).
    /// Default = ./verdict-data
    #[arg(long, env = "VERDICT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// gRPC listen address. Default = 127.0.0.1:50051
    #[arg(long, env = "VERDICT_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// HTTP listen address (/healthz, /readyz, /metrics). Default = 127.0.0.1:8080
    #[arg(long, env = "VERDICT_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Serve without API keys (development only; prints a warning).
    #[arg(long, env = "VERDICT_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// A TOML file with the same settings (kebab-case keys).
    #[arg(long, env = "VERDICT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Upper bound on how stale a minimize_latency read may be. Default = 5s
    #[arg(long, env = "VERDICT_MAX_STALENESS", value_parser = parse_duration)]
    pub max_staleness: Option<Duration>,
    /// How long a read waits for a revision this node has not applied yet. Default = 2s
    #[arg(long, env = "VERDICT_MAX_WAIT", value_parser = parse_duration)]
    pub max_wait: Option<Duration>,
    /// Deepest chain of sub-problems a check may follow. Default = 50
    #[arg(long, env = "VERDICT_MAX_DEPTH")]
    pub max_depth: Option<u32>,
    /// Decision cache size in bytes. Default = 64 MiB
    #[arg(long, env = "VERDICT_CACHE_BYTES")]
    pub cache_bytes: Option<usize>,
    /// fsync every write before acknowledging it. Default = true
    #[arg(long, env = "VERDICT_SYNC_WRITES")]
    pub sync_writes: Option<bool>,
    /// Time allowed for in-flight requests at shutdown. Default = 10s
    #[arg(long, env = "VERDICT_SHUTDOWN_GRACE", value_parser = parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// How long history stays readable (at_exact_snapshot, watch resume). Default = 24h
    #[arg(long, env = "VERDICT_GC_RETENTION", value_parser = parse_duration)]
    pub gc_retention: Option<Duration>,
    /// How often garbage collection runs (old history, expired tuples). Default = 1m
    #[arg(long, env = "VERDICT_GC_INTERVAL", value_parser = parse_duration)]
    pub gc_interval: Option<Duration>,
    /// Answer nested-group questions from the in-memory group index
    /// (`on`/`off`). Default = on
    #[arg(long, env = "VERDICT_GROUP_INDEX", value_parser = parse_on_off)]
    pub group_index: Option<bool>,
    /// Let concurrent writes share one Raft entry and fsync (`on`/`off`).
    /// Default = on
    #[arg(long, env = "VERDICT_GROUP_COMMIT", value_parser = parse_on_off)]
    pub group_commit: Option<bool>,
    /// How long a write that finds no entry in flight waits for others
    /// before it is proposed (e.g. `200us`). Default = 0s
    #[arg(long, env = "VERDICT_GROUP_COMMIT_LINGER", value_parser = parse_duration)]
    pub group_commit_linger: Option<Duration>,
    /// Most writes in one Raft entry. Default = 256
    #[arg(long, env = "VERDICT_GROUP_COMMIT_MAX_BATCH")]
    pub group_commit_max_batch: Option<usize>,
    /// Grouped entries proposed before the first is answered. Default = 2
    #[arg(long, env = "VERDICT_GROUP_COMMIT_IN_FLIGHT")]
    pub group_commit_in_flight: Option<usize>,
    #[command(flatten)]
    pub ops: super::ops_config::OpsArgs,
    /// OpenFGA front door flags.
    #[command(flatten)]
    pub openfga: super::openfga_config::OpenfgaArgs,
    /// Cluster flags.
    #[command(flatten)]
    pub cluster: super::cluster::ClusterArgs,
}

/// The same settings in a TOML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    grpc_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    insecure_no_auth: Option<bool>,
    max_staleness: Option<String>,
    max_wait: Option<String>,
    max_depth: Option<u32>,
    cache_bytes: Option<usize>,
    sync_writes: Option<bool>,
    shutdown_grace: Option<String>,
    gc_retention: Option<String>,
    gc_interval: Option<String>,
    group_index: Option<bool>,
    group_commit: Option<bool>,
    group_commit_linger: Option<String>,
    group_commit_max_batch: Option<usize>,
    group_commit_in_flight: Option<usize>,
    admin_key: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    request_timeout: Option<String>,
    max_message_bytes: Option<usize>,
    tenant_rate_limit: Option<String>,
    max_concurrent_requests: Option<usize>,
    decision_log: Option<PathBuf>,
}

/// Resolved server settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    /// Data directory. Default = ./verdict-data
    pub data_dir: PathBuf,
    /// gRPC address. Default = 127.0.0.1:50051
    pub grpc_addr: SocketAddr,
    /// HTTP address. Default = 127.0.0.1:8080
    pub http_addr: SocketAddr,
    /// No API keys. Default = false
    pub insecure_no_auth: bool,
    /// Staleness bound for minimize_latency. Default = 5s
    pub max_staleness: Duration,
    /// Wait bound for unapplied revisions. Default = 2s
    pub max_wait: Duration,
    /// Engine depth bound. Default = 50
    pub max_depth: u32,
    /// Decision cache bytes. Default = 64 MiB
    pub cache_bytes: usize,
    /// fsync writes. Default = true
    pub sync_writes: bool,
    /// Shutdown grace period. Default = 10s
    pub shutdown_grace: Duration,
    /// History retention. Default = 24h
    pub gc_retention: Duration,
    /// GC period. Default = 1m
    pub gc_interval: Duration,
    /// The group index. Default = on
    pub group_index: bool,
    /// Group commit of concurrent writes. Default = on, no linger
    pub group_commit: super::group_commit::GroupCommitSettings,
    /// API keys, TLS, limits and the decision log.
    pub ops: super::ops_config::OpsSettings,
    /// The OpenFGA front door's limits.
    pub openfga: super::openfga_config::OpenfgaSettings,
    /// Raft cluster settings.
    pub cluster: super::cluster::ClusterSettings,
}

/// A settings problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML for these settings.
    #[error("config file `{path}`: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The cluster flags are inconsistent.
    #[error("{0}")]
    Cluster(String),
}

/// Parses `on`/`off` (also `true`/`false`).
fn parse_on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        other => Err(format!("expected `on` or `off`, got `{other}`")),
    }
}

/// Parses `500ms`, `5s`, `2m`, `1h` (or a bare number of seconds, or a
/// fraction such as `1.5s`). Hand-written rather than `humantime`, which
/// refuses both a bare number and fractions that `verdict serve` has
/// always accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like `5s` or `500ms`"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "us" | "µs" => value / 1_000_000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use us, ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is not a valid duration"))
}

impl ServerSettings {
    /// Defaults with `data_dir` and ephemeral loopback ports (for tests).
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        ServerSettings {
            data_dir: data_dir.into(),
            grpc_addr: ([127, 0, 0, 1], 0).into(),
            http_addr: ([127, 0, 0, 1], 0).into(),
            insecure_no_auth: true,
            max_staleness: Duration::from_secs(5),
            max_wait: Duration::from_secs(2),
            max_depth: 50,
            cache_bytes: 64 << 20,
            sync_writes: false,
            shutdown_grace: Duration::from_secs(10),
            gc_retention: Duration::from_secs(24 * 3600),
            gc_interval: Duration::from_secs(60),
            group_index: true,
            group_commit: super::group_commit::GroupCommitSettings::default(),
            ops: super::ops_config::OpsSettings::default(),
            openfga: super::openfga_config::OpenfgaSettings::default(),
            cluster: super::cluster::ClusterSettings::default(),
        }
    }
}

impl ServeArgs {
    /// Merges flags/env (already in `self`), the TOML file and defaults.
    ///
    /// # Errors
    /// An unreadable or invalid config file.
    pub fn resolve(&self) -> Result<ServerSettings, ConfigError> {
        let file = match &self.config {
            None => FileSettings::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
        };
        let file_duration =
            |v: &Option<String>, key: &str| -> Result<Option<Duration>, ConfigError> {
                v.as_deref()
                    .map(parse_duration)
                    .transpose()
                    .map_err(|message| ConfigError::Parse {
                        path: self.config.clone().unwrap_or_default(),
                        message: format!("{key}: {message}"),
                    })
            };
        Ok(ServerSettings {
            data_dir: self
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("verdict-data")),
            grpc_addr: self
                .grpc_addr
                .or(file.grpc_addr)
                .unwrap_or(([127, 0, 0, 1], 50051).into()),
            http_addr: self
                .http_addr
                .or(file.http_addr)
                .unwrap_or(([127, 0, 0, 1], 8080).into()),
            insecure_no_auth: self.insecure_no_auth || file.insecure_no_auth.unwrap_or(false),
            max_staleness: self
                .max_staleness
                .or(file_duration(&file.max_staleness, "max-staleness")?)
                .unwrap_or(Duration::from_secs(5)),
            max_wait: self
                .max_wait
                .or(file_duration(&file.max_wait, "max-wait")?)
                .unwrap_or(Duration::from_secs(2)),
            max_depth: self.max_depth.or(file.max_depth).unwrap_or(50),
            cache_bytes: self.cache_bytes.or(file.cache_bytes).unwrap_or(64 << 20),
            sync_writes: self.sync_writes.or(file.sync_writes).unwrap_or(true),
            shutdown_grace: self
                .shutdown_grace
                .or(file_duration(&file.shutdown_grace, "shutdown-grace")?)
                .unwrap_or(Duration::from_secs(10)),
            gc_retention: self
                .gc_retention
                .or(file_duration(&file.gc_retention, "gc-retention")?)
                .unwrap_or(Duration::from_secs(24 * 3600)),
            gc_interval: self
                .gc_interval
                .or(file_duration(&file.gc_interval, "gc-interval")?)
                .unwrap_or(Duration::from_secs(60)),
            group_index: self.group_index.or(file.group_index).unwrap_or(true),
            group_commit: {
                let default = super::group_commit::GroupCommitSettings::default();
                super::group_commit::GroupCommitSettings {
                    enabled: self
                        .group_commit
                        .or(file.group_commit)
                        .unwrap_or(default.enabled),
                    linger: self
                        .group_commit_linger
                        .or(file_duration(
                            &file.group_commit_linger,
                            "group-commit-linger",
                        )?)
                        .unwrap_or(default.linger),
                    max_batch: self
                        .group_commit_max_batch
                        .or(file.group_commit_max_batch)
                        .unwrap_or(default.max_batch),
                    max_in_flight: self
                        .group_commit_in_flight
                        .or(file.group_commit_in_flight)
                        .unwrap_or(default.max_in_flight),
                }
            },
            ops: self.ops.resolve(
                super::ops_config::OpsFile {
                    admin_key: file.admin_key,
                    tls_cert: file.tls_cert,
                    tls_key: file.tls_key,
                    request_timeout: file.request_timeout,
                    max_message_bytes: file.max_message_bytes,
                    tenant_rate_limit: file.tenant_rate_limit,
                    max_concurrent_requests: file.max_concurrent_requests,
                    decision_log: file.decision_log,
                },
                self.config.as_deref(),
            )?,
            openfga: self.openfga.resolve(),
            cluster: self.cluster.resolve().map_err(ConfigError::Cluster)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        // Too large for a Duration: an error, not a panic.
        assert!(parse_duration("99999999999999999999999h").is_err());
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn flags_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.toml");
        std::fs::write(&path, "grpc-addr = \"127.0.0.1:6000\"\nhttp-addr = \"127.0.0.1:6001\"\nmax-staleness = \"2s\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            grpc_addr: Some("127.0.0.1:7000".parse().unwrap()),
            ..ServeArgs::default()
        };
        let s = args.resolve().unwrap();
        assert_eq!(s.grpc_addr, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(s.http_addr, "127.0.0.1:6001".parse().unwrap());
        assert_eq!(s.max_staleness, Duration::from_secs(2));
        assert_eq!(s.data_dir, PathBuf::from("verdict-data"));
        std::fs::write(&path, "no-such-key = 1\n").unwrap();
        assert!(matches!(args.resolve(), Err(ConfigError::Parse { .. })));
    }
}
