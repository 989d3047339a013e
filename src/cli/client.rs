//! What every client verb shares: the connection flags, the channel with the
//! API key attached, errors and their exit codes, and buffered output.

use std::fmt::Display;
use std::future::Future;
use std::io::{BufWriter, Stdout, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use crate::api::pb;

/// How long a connection attempt may take before the command gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest response message the CLI accepts (exports come in big pages).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Flags shared by every client verb. Each falls back to the named
/// profile (`--profile`), then to the default.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The server's gRPC address. Default = 127.0.0.1:50051
    #[arg(long, env = "VERDICT_ENDPOINT", value_name = "HOST:PORT")]
    pub endpoint: Option<String>,
    /// API key, sent as `authorization: Bearer KEY`.
    #[arg(
        long,
        env = "VERDICT_TOKEN",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub token: Option<String>,
    /// The tenant to address. Default = default
    #[arg(long, env = "VERDICT_TENANT", value_name = "NAME")]
    pub tenant: Option<String>,
    /// A profile from the profiles file (`VERDICT_PROFILES`, else
    /// `~/.config/verdict/profiles.toml`): `[profiles.NAME]` with
    /// `endpoint`, `token`, `tenant`, `tls_ca`.
    #[arg(long, env = "VERDICT_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// Machine-readable output (JSON; one object per line for streams).
    #[arg(long)]
    pub json: bool,
    /// PEM CA certificate to verify a TLS server with (implies https://).
    #[arg(long, env = "VERDICT_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
}

/// One `[profiles.NAME]` table.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    endpoint: Option<String>,
    token: Option<String>,
    tenant: Option<String>,
    tls_ca: Option<std::path::PathBuf>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    #[serde(default)]
    profiles: std::collections::BTreeMap<String, Profile>,
}

/// Endpoint, key and tenant after flags, env, profile and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `HOST:PORT` or a URL.
    pub endpoint: String,
    /// The API key, if any.
    pub token: Option<String>,
    /// The tenant.
    pub tenant: String,
    /// The CA to verify a TLS server with.
    pub tls_ca: Option<std::path::PathBuf>,
}

fn profiles_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("VERDICT_PROFILES") {
        return Some(p.into());
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("verdict/profiles.toml"))
}

impl ClientArgs {
    /// Resolves flags/env over the profile over defaults.
    ///
    /// # Errors
    /// A named profile that does not exist, or an unreadable profiles file.
    pub fn resolve(&self) -> Result<Resolved, CliError> {
        let profile = match &self.profile {
            None => Profile::default(),
            Some(name) => {
                let path = profiles_path().ok_or_else(|| {
                    CliError::Usage("no profiles file: set VERDICT_PROFILES".into())
                })?;
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    CliError::Usage(format!(
                        "cannot read profiles file `{}`: {e}",
                        path.display()
                    ))
                })?;
                let file: ProfilesFile = toml::from_str(&text).map_err(|e| {
                    CliError::Usage(format!("profiles file `{}`: {e}", path.display()))
                })?;
                file.profiles.get(name).cloned().ok_or_else(|| {
                    CliError::Usage(format!(
                        "profile `{name}` not found in `{}`",
                        path.display()
                    ))
                })?
            }
        };
        Ok(Resolved {
            endpoint: self
                .endpoint
                .clone()
                .or(profile.endpoint)
                .unwrap_or_else(|| "127.0.0.1:50051".to_string()),
            token: self.token.clone().or(profile.token),
            tenant: self
                .tenant
                .clone()
                .or(profile.tenant)
                .unwrap_or_else(|| "default".to_string()),
            tls_ca: self.tls_ca.clone().or(profile.tls_ca),
        })
    }
}

/// Why a client command failed; decides the exit code and what stderr says.
#[derive(Debug)]
pub enum CliError {
    /// The server refused the request (exit 1).
    Status(Status),
    /// Input the command could not use: a malformed tuple, filter or file
    /// (exit 1, reported as `INVALID_ARGUMENT`, like the server would).
    Invalid(String),
    /// The command line itself is wrong (exit 2, like clap).
    Usage(String),
    /// Stdout was closed (e.g. piped into `head`): stop quietly.
    BrokenPipe,
}

impl CliError {
    /// An `UNAVAILABLE` error for a failed connection attempt.
    pub fn connect(endpoint: &str, detail: impl Display) -> CliError {
        CliError::Status(Status::unavailable(format!(
            "cannot connect to {endpoint}: {detail}"
        )))
    }

    /// Prints the error to stderr and returns the exit code.
    pub fn report(&self) -> ExitCode {
        match self {
            CliError::Status(s) => {
                eprintln!("error: {}: {}", code_name(s.code()), s.message());
                ExitCode::FAILURE
            }
            CliError::Invalid(m) => {
                eprintln!("error: INVALID_ARGUMENT: {m}");
                ExitCode::FAILURE
            }
            CliError::Usage(m) => {
                eprintln!("error: {m}");
                ExitCode::from(2)
            }
            CliError::BrokenPipe => ExitCode::SUCCESS,
        }
    }
}

impl From<Status> for CliError {
    fn from(s: Status) -> Self {
        CliError::Status(s)
    }
}

/// The canonical upper-case name of a gRPC status code.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Attaches the API key to every request.
#[derive(Debug, Clone)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The transport every client uses.
pub type Svc = InterceptedService<Channel, Auth>;

/// A connected client: the channel, the key and the tenant.
#[derive(Debug, Clone)]
pub struct Conn {
    channel: Channel,
    auth: Auth,
    /// The tenant every request names.
    pub tenant: String,
    /// `--json`.
    pub json: bool,
}

/// `http://HOST:PORT` for a `--endpoint` value (a URL is taken as is).
pub fn endpoint_url(endpoint: &str) -> String {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

/// The error and its sources, `: `-joined (tonic's own message is terse).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

impl Conn {
    /// Connects to `args.endpoint` (bounded by [`CONNECT_TIMEOUT`]).
    ///
    /// # Errors
    /// A bad endpoint or key is a usage error; an unreachable server is
    /// `UNAVAILABLE`.
    pub async fn connect(args: &ClientArgs) -> Result<Conn, CliError> {
        let resolved = args.resolve()?;
        let auth = match &resolved.token {
            None => Auth(None),
            Some(token) => Auth(Some(
                MetadataValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| CliError::Usage("--token contains invalid characters".into()))?,
            )),
        };
        let target = &resolved.endpoint;
        let url = match &resolved.tls_ca {
            Some(_) if !target.contains("://") => format!("https://{target}"),
            _ => endpoint_url(target),
        };
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| CliError::Usage(format!("invalid --endpoint `{target}`: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        if url.starts_with("https://") {
            endpoint = super::tls::client_tls(endpoint, resolved.tls_ca.as_deref())?;
        }
        let channel = match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => return Err(CliError::connect(target, error_chain(&e))),
            Err(_) => {
                return Err(CliError::connect(
                    target,
                    format!("timed out after {}s", CONNECT_TIMEOUT.as_secs()),
                ))
            }
        };
        Ok(Conn {
            channel,
            auth,
            tenant: resolved.tenant,
            json: args.json,
        })
    }

    fn svc(&self) -> Svc {
        InterceptedService::new(self.channel.clone(), self.auth.clone())
    }

    /// A SchemaService client.
    pub fn schema(&self) -> pb::schema_service_client::SchemaServiceClient<Svc> {
        pb::schema_service_client::SchemaServiceClient::new(self.svc())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// A RelationshipService client.
    pub fn relationships(&self) -> pb::relationship_service_client::RelationshipServiceClient<Svc> {
        pb::relationship_service_client::RelationshipServiceClient::new(self.svc())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// A PermissionService client.
    pub fn permissions(&self) -> pb::permission_service_client::PermissionServiceClient<Svc> {
        pb::permission_service_client::PermissionServiceClient::new(self.svc())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// SpiceDB's `authzed.api.v1` PermissionsService (the bearer token
    /// selects the tenant: the admin key serves the default one).
    pub fn authzed_permissions(
        &self,
    ) -> crate::api::spicedb::pb::permissions_service_client::PermissionsServiceClient<Svc> {
        crate::api::spicedb::pb::permissions_service_client::PermissionsServiceClient::new(
            self.svc(),
        )
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// A WatchService client.
    pub fn watch(&self) -> pb::watch_service_client::WatchServiceClient<Svc> {
        pb::watch_service_client::WatchServiceClient::new(self.svc())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// A grpc.health.v1 client (the cheapest RPC: `verdict bench`'s
    /// ceiling).
    pub fn health(&self) -> tonic_health::pb::health_client::HealthClient<Svc> {
        tonic_health::pb::health_client::HealthClient::new(self.svc())
    }

    /// A TenantService client.
    pub fn tenants(&self) -> pb::tenant_service_client::TenantServiceClient<Svc> {
        pb::tenant_service_client::TenantServiceClient::new(self.svc())
    }

    /// A KeyService client.
    pub fn keys(&self) -> pb::key_service_client::KeyServiceClient<Svc> {
        pb::key_service_client::KeyServiceClient::new(self.svc())
    }
}

/// Runs one client command: a single-threaded runtime, a connection, the
/// command; maps the outcome to an exit code.
pub fn run_client<F, Fut>(args: &ClientArgs, command: F) -> ExitCode
where
    F: FnOnce(Conn) -> Fut,
    Fut: Future<Output = Result<(), CliError>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: INTERNAL: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let conn = Conn::connect(args).await?;
        command(conn).await
    });
    // Don't wait for a reader still blocked on stdin (e.g. an import the
    // server refused early).
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

/// Buffered stdout that turns a closed pipe into [`CliError::BrokenPipe`].
#[derive(Debug)]
pub struct Out {
    w: BufWriter<Stdout>,
}

impl Default for Out {
    fn default() -> Self {
        Out::new()
    }
}

impl Out {
    /// Buffered stdout.
    pub fn new() -> Out {
        Out {
            w: BufWriter::new(std::io::stdout()),
        }
    }

    /// Writes one line.
    ///
    /// # Errors
    /// Stdout is closed or failing.
    pub fn line(&mut self, line: impl Display) -> Result<(), CliError> {
        writeln!(self.w, "{line}").map_err(io_out)
    }

    /// Writes one JSON value as a line.
    ///
    /// # Errors
    /// Stdout is closed or failing.
    pub fn json(&mut self, value: &serde_json::Value) -> Result<(), CliError> {
        self.line(value)
    }

    /// Flushes what was written.
    ///
    /// # Errors
    /// Stdout is closed or failing.
    pub fn flush(&mut self) -> Result<(), CliError> {
        self.w.flush().map_err(io_out)
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        let _ = self.w.flush();
    }
}

fn io_out(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        CliError::BrokenPipe
    } else {
        CliError::Status(Status::internal(format!("cannot write to stdout: {e}")))
    }
}

#[cfg(test)]
mod profile_tests {
    use super::*;

    fn args() -> ClientArgs {
        ClientArgs {
            endpoint: None,
            token: None,
            tenant: None,
            profile: None,
            json: false,
            tls_ca: None,
        }
    }

    #[test]
    fn flags_beat_profile_beat_defaults() {
        let d = args().resolve().unwrap();
        assert_eq!(
            (d.endpoint.as_str(), d.tenant.as_str(), d.token),
            ("127.0.0.1:50051", "default", None)
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.toml");
        std::fs::write(
            &path,
            "[profiles.prod]\nendpoint = \"10.0.0.1:50051\"\ntoken = \"k\"\ntenant = \"acme\"\ntls_ca = \"ca.pem\"\n",
        )
        .unwrap();
        std::env::set_var("VERDICT_PROFILES", &path);
        let mut a = args();
        a.profile = Some("prod".into());
        let r = a.resolve().unwrap();
        assert_eq!(
            (r.endpoint.as_str(), r.tenant.as_str(), r.token.as_deref()),
            ("10.0.0.1:50051", "acme", Some("k"))
        );
        assert_eq!(r.tls_ca, Some(std::path::PathBuf::from("ca.pem")));
        a.tenant = Some("other".into());
        assert_eq!(a.resolve().unwrap().tenant, "other");
        a.profile = Some("missing".into());
        assert!(matches!(a.resolve(), Err(CliError::Usage(_))));
        std::env::remove_var("VERDICT_PROFILES");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_urls() {
        assert_eq!(endpoint_url("127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(endpoint_url("http://h:1"), "http://h:1");
    }

    #[test]
    fn status_codes_have_canonical_names() {
        assert_eq!(code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
        assert_eq!(code_name(Code::Unavailable), "UNAVAILABLE");
    }
}
