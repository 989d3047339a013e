//! `verdict serve` settings for running safely: the admin key, TLS, request
//! limits, load shedding and the decision log (flags, `VERDICT_*`
//! variables and TOML keys of the same names).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::config::{parse_duration, ConfigError};

/// Default largest request message, in bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 << 20;
/// Default server-side deadline of one request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of requests evaluated at once before shedding load.
pub const DEFAULT_MAX_CONCURRENT: usize = 1024;

/// The flags (each also `VERDICT_<NAME>`).
#[derive(Debug, Clone, Default, Args)]
pub struct OpsArgs {
    /// Enable API keys: this key may do everything (all tenants, tenant and
    /// key administration). Without it the server refuses to start unless
    /// `--insecure-no-auth` is given.
    #[arg(long, env = "VERDICT_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// PEM certificate chain: serve gRPC and HTTP over TLS (with --tls-key).
    #[arg(long, env = "VERDICT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "VERDICT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Server-side deadline of one request (DEADLINE_EXCEEDED after). Default = 30s
    #[arg(long, env = "VERDICT_REQUEST_TIMEOUT", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,
    /// Largest request message in bytes. Default = 4 MiB
    #[arg(long, env = "VERDICT_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Requests per second each tenant may make (`N` or `N/s`;
    /// RESOURCE_EXHAUSTED beyond). Default = off
    #[arg(long, env = "VERDICT_TENANT_RATE_LIMIT", value_parser = parse_rate)]
    pub tenant_rate_limit: Option<f64>,
    /// Requests evaluated at once; excess is shed with UNAVAILABLE. Default = 1024
    #[arg(long, env = "VERDICT_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<usize>,
    /// Append one JSON line per check decision to this file.
    #[arg(long, env = "VERDICT_DECISION_LOG")]
    pub decision_log: Option<PathBuf>,
    /// SpiceDB's flag: holders of this bearer token may use the default
    /// tenant (SpiceDB's `authzed.api.v1` and `verdict.v1`). Repeatable or
    /// comma-separated; enables authentication like --admin-key.
    #[arg(
        long = "grpc-preshared-key",
        env = "VERDICT_GRPC_PRESHARED_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub grpc_preshared_keys: Vec<String>,
}

/// The same settings read from the TOML file.
#[derive(Debug, Clone, Default)]
pub struct OpsFile {
    pub admin_key: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub request_timeout: Option<String>,
    pub max_message_bytes: Option<usize>,
    pub tenant_rate_limit: Option<String>,
    pub max_concurrent_requests: Option<usize>,
    pub decision_log: Option<PathBuf>,
}

/// Resolved settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OpsSettings {
    /// The admin key; `None` = auth off (only with insecure_no_auth).
    pub admin_key: Option<String>,
    /// Certificate and key files, when serving TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Server-side request deadline.
    pub request_timeout: Duration,
    /// Largest request message.
    pub max_message_bytes: usize,
    /// Per-tenant requests per second (`None` = unlimited).
    pub tenant_rate_limit: Option<f64>,
    /// Concurrent requests before shedding.
    pub max_concurrent_requests: usize,
    /// Decision log file.
    pub decision_log: Option<PathBuf>,
    /// Bearer tokens that serve the default tenant (`--grpc-preshared-key`).
    pub grpc_preshared_keys: Vec<String>,
    /// `verdict serve-testing`: every bearer token gets its own tenant,
    /// preloaded with these SpiceDB validation files (`None` = not testing).
    pub serve_testing: Option<Vec<PathBuf>>,
}

impl Default for OpsSettings {
    fn default() -> Self {
        OpsSettings {
            admin_key: None,
            tls: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            tenant_rate_limit: None,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT,
            decision_log: None,
            grpc_preshared_keys: Vec::new(),
            serve_testing: None,
        }
    }
}

/// Parses `100`, `100/s` or `6000/m` into requests per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, per) = match text.split_once('/') {
        Some((n, unit)) => (n, unit.trim()),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a rate like `100/s`"))?;
    let per_second = match per {
        "s" => value,
        "m" => value / 60.0,
        _ => return Err(format!("`{text}`: unknown unit `{per}` (use /s or /m)")),
    };
    if !per_second.is_finite() || per_second <= 0.0 {
        return Err(format!("`{text}` must be a positive rate"));
    }
    Ok(per_second)
}

impl OpsArgs {
    /// Flags over the file over defaults.
    ///
    /// # Errors
    /// Invalid values in the file, or a certificate without a key.
    pub fn resolve(
        &self,
        file: OpsFile,
        config: Option<&Path>,
    ) -> Result<OpsSettings, ConfigError> {
        let bad = |message: String| ConfigError::Parse {
            path: config.map(Path::to_path_buf).unwrap_or_default(),
            message,
        };
        let file_timeout = file
            .request_timeout
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|m| bad(format!("request-timeout: {m}")))?;
        let file_rate = file
            .tenant_rate_limit
            .as_deref()
            .map(parse_rate)
            .transpose()
            .map_err(|m| bad(format!("tenant-rate-limit: {m}")))?;
        let tls = match (
            self.tls_cert.clone().or(file.tls_cert),
            self.tls_key.clone().or(file.tls_key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(bad(
                    "tls-cert and tls-key must be given together".to_string()
                ))
            }
        };
        let admin_key = self.admin_key.clone().or(file.admin_key);
        if admin_key.as_deref().is_some_and(|k| k.len() < 16) {
            return Err(bad(
                "admin-key must be at least 16 characters long".to_string()
            ));
        }
        let max_concurrent_requests = self
            .max_concurrent_requests
            .or(file.max_concurrent_requests)
            .unwrap_or(DEFAULT_MAX_CONCURRENT);
        if max_concurrent_requests == 0 {
            return Err(bad("max-concurrent-requests must be at least 1".into()));
        }
        Ok(OpsSettings {
            admin_key,
            tls,
            request_timeout: self
                .request_timeout
                .or(file_timeout)
                .unwrap_or(DEFAULT_REQUEST_TIMEOUT),
            max_message_bytes: self
                .max_message_bytes
                .or(file.max_message_bytes)
                .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
            tenant_rate_limit: self.tenant_rate_limit.or(file_rate),
            max_concurrent_requests,
            decision_log: self.decision_log.clone().or(file.decision_log),
            grpc_preshared_keys: self
                .grpc_preshared_keys
                .iter()
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect(),
            serve_testing: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("100/s"), Ok(100.0));
        assert_eq!(parse_rate("50"), Ok(50.0));
        assert_eq!(parse_rate("120/m"), Ok(2.0));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn toml_keys_flags_and_defaults() {
        use super::super::config::ServeArgs;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.toml");
        std::fs::write(
            &path,
            "admin-key = \"file-admin-key-0123456\"\ntenant-rate-limit = \"120/m\"\nrequest-timeout = \"2s\"\nmax-concurrent-requests = 8\ndecision-log = \"d.jsonl\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            ops: OpsArgs {
                max_concurrent_requests: Some(16),
                ..OpsArgs::default()
            },
            ..ServeArgs::default()
        };
        let s = args.resolve().unwrap().ops;
        assert_eq!(s.admin_key.as_deref(), Some("file-admin-key-0123456"));
        assert_eq!(s.tenant_rate_limit, Some(2.0));
        assert_eq!(s.request_timeout, Duration::from_secs(2));
        assert_eq!(s.max_concurrent_requests, 16);
        assert_eq!(s.decision_log, Some(PathBuf::from("d.jsonl")));
        assert_eq!(s.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(s.tls, None);
    }

    #[test]
    fn short_admin_keys_and_half_tls_are_refused() {
        let args = OpsArgs {
            admin_key: Some("short".into()),
            ..OpsArgs::default()
        };
        assert!(args.resolve(OpsFile::default(), None).is_err());
        let args = OpsArgs::default();
        let file = OpsFile {
            tls_cert: Some("c.pem".into()),
            ..OpsFile::default()
        };
        assert!(args.resolve(file, None).is_err());
    }
}
