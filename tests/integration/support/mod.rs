//! Shared by the operations tests (auth, bad input, TLS, limits, decision
//! log): the real `verdict serve` on free loopback ports, killed on drop,
//! plus gRPC clients that send a bearer token.

#![allow(
    dead_code,
    reason = "each test binary that includes `mod support;` uses only part of it"
)]

pub mod cluster;
pub mod nemesis;
pub mod rng;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use verdict::api::pb;

/// The admin key the tests start servers with.
pub const ADMIN: &str = "test-admin-key-0123456789";

/// A small schema: users, nested groups, documents.
pub const SCHEMA: &str = "definition user {}
definition group {
  relation member: user | group#member
}
definition document {
  relation viewer: user | group#member
  permission view = viewer
}
";

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT` of gRPC.
    pub grpc: String,
    /// `127.0.0.1:PORT` of HTTP.
    pub http: String,
    data: tempfile::TempDir,
    /// Everything the server printed on stderr is discarded; stdout lines
    /// after `ready` land here.
    pub lines: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `verdict serve` with `extra` flags (add `--insecure-no-auth`
    /// or `--admin-key` yourself).
    pub fn start(extra: &[&str]) -> Server {
        Self::start_in(tempfile::tempdir().unwrap(), extra)
    }

    /// Starts with the data directory `data`.
    pub fn start_in(data: tempfile::TempDir, extra: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_verdict"));
        command
            .args(["serve", "--data-dir"])
            .arg(data.path())
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(extra);
        Self::spawn(command, data)
    }

    /// Starts `verdict serve-testing` with `extra` flags (its data
    /// directory is its own temporary one; `data_dir()` is unused).
    pub fn start_testing(extra: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_verdict"));
        command
            .arg("serve-testing")
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(extra);
        Self::spawn(command, tempfile::tempdir().unwrap())
    }

    /// Runs `command` and waits for its `ready` line.
    fn spawn(mut command: Command, data: tempfile::TempDir) -> Server {
        let mut child = command
            .env_remove("VERDICT_ADMIN_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("verdict serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut server = Server {
            child,
            grpc: String::new(),
            http: String::new(),
            data,
            lines: rx,
        };
        loop {
            let line = server
                .lines
                .recv_timeout(Duration::from_secs(60))
                .expect("server prints `ready` within a minute");
            if let Some(addr) = line.strip_prefix("grpc listening on ") {
                server.grpc = addr.to_string();
            }
            if let Some(addr) = line.strip_prefix("http listening on ") {
                server.http = addr.to_string();
            }
            if line == "ready" {
                break;
            }
        }
        server
    }

    /// Stops the server (kills it and waits) and hands back its data
    /// directory, to start another server on it.
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.data, tempfile::tempdir().unwrap())
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Runs `verdict ARGS` against this server.
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut all = vec![("VERDICT_ENDPOINT", self.grpc.as_str())];
        all.extend_from_slice(env);
        run(args, &all)
    }

    /// A gRPC channel (plain text).
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.grpc))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .expect("connects")
    }

    /// Clients sending `token` (if any).
    pub async fn clients(&self, token: Option<&str>) -> Clients {
        Clients::new(self.channel().await, token)
    }

    /// GET `path` on the HTTP port (plain text); the body.
    pub fn http_get(&self, path: &str) -> String {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(&self.http).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One CLI run.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

impl Run {
    /// Asserts success; returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success: {self:?}");
        &self.stdout
    }
}

/// Runs the binary with `args` and `env` (VERDICT_* cleared first).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_verdict"));
    command
        .args(args)
        .env_remove("VERDICT_ENDPOINT")
        .env_remove("VERDICT_TOKEN")
        .env_remove("VERDICT_TENANT")
        .env_remove("VERDICT_ADMIN_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("verdict runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Adds `authorization: Bearer <token>`.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert("authorization", v.clone());
        }
        Ok(r)
    }
}

type Svc = InterceptedService<Channel, Bearer>;

/// Every service client, sharing one channel and token.
#[derive(Clone)]
pub struct Clients {
    /// SchemaService.
    pub schema: pb::schema_service_client::SchemaServiceClient<Svc>,
    /// RelationshipService.
    pub rel: pb::relationship_service_client::RelationshipServiceClient<Svc>,
    /// PermissionService.
    pub perm: pb::permission_service_client::PermissionServiceClient<Svc>,
    /// WatchService.
    pub watch: pb::watch_service_client::WatchServiceClient<Svc>,
    /// TenantService.
    pub tenants: pb::tenant_service_client::TenantServiceClient<Svc>,
    /// KeyService.
    pub keys: pb::key_service_client::KeyServiceClient<Svc>,
}

impl Clients {
    /// Clients over `channel` sending `token`.
    pub fn new(channel: Channel, token: Option<&str>) -> Clients {
        let bearer = Bearer(token.map(|t| format!("Bearer {t}").parse().unwrap()));
        let svc = || InterceptedService::new(channel.clone(), bearer.clone());
        let big = 64 << 20;
        Clients {
            schema: pb::schema_service_client::SchemaServiceClient::new(svc())
                .max_encoding_message_size(big),
            rel: pb::relationship_service_client::RelationshipServiceClient::new(svc())
                .max_encoding_message_size(big),
            perm: pb::permission_service_client::PermissionServiceClient::new(svc())
                .max_encoding_message_size(big),
            watch: pb::watch_service_client::WatchServiceClient::new(svc()),
            tenants: pb::tenant_service_client::TenantServiceClient::new(svc()),
            keys: pb::key_service_client::KeyServiceClient::new(svc()),
        }
    }

    /// Writes [`SCHEMA`] to `tenant`.
    pub async fn write_schema(&mut self, tenant: &str) {
        self.schema
            .write_schema(pb::WriteSchemaRequest {
                tenant: tenant.into(),
                schema: SCHEMA.into(),
                ..Default::default()
            })
            .await
            .expect("schema write");
    }

    /// Touches tuples `(resource_type, id, relation, subject_type, subject_id, subject_rel)`.
    pub async fn write(
        &mut self,
        tenant: &str,
        tuples: &[(&str, &str, &str, &str, &str, &str)],
    ) -> Result<(), tonic::Status> {
        let updates = tuples.iter().map(|t| update(*t)).collect();
        self.rel
            .write_relationships(pb::WriteRelationshipsRequest {
                tenant: tenant.into(),
                updates,
                preconditions: vec![],
            })
            .await
            .map(|_| ())
    }

    /// Checks `document:doc#view@user:user` fully consistently.
    pub async fn check(
        &mut self,
        tenant: &str,
        doc: &str,
        user: &str,
    ) -> Result<pb::Permissionship, tonic::Status> {
        let r = self
            .perm
            .check(check_request(tenant, doc, user))
            .await?
            .into_inner();
        Ok(r.permissionship())
    }
}

/// `document:doc#view@user:user`, fully consistent.
pub fn check_request(tenant: &str, doc: &str, user: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        tenant: tenant.into(),
        consistency: Some(full()),
        resource: Some(obj("document", doc)),
        permission: "view".into(),
        subject: Some(subj("user", user, "")),
        ..Default::default()
    }
}

/// Fully consistent reads.
pub fn full() -> pb::Consistency {
    pb::Consistency {
        requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
    }
}

/// An object reference.
pub fn obj(t: &str, id: &str) -> pb::ObjectRef {
    pb::ObjectRef {
        object_type: t.into(),
        object_id: id.into(),
    }
}

/// A subject reference.
pub fn subj(t: &str, id: &str, rel: &str) -> pb::SubjectRef {
    pb::SubjectRef {
        object: Some(obj(t, id)),
        optional_relation: rel.into(),
    }
}

/// A TOUCH update.
pub fn update(t: (&str, &str, &str, &str, &str, &str)) -> pb::RelationshipUpdate {
    pb::RelationshipUpdate {
        operation: pb::relationship_update::Operation::Touch as i32,
        relationship: Some(pb::Relationship {
            resource: Some(obj(t.0, t.1)),
            relation: t.2.into(),
            subject: Some(subj(t.3, t.4, t.5)),
            ..Default::default()
        }),
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
