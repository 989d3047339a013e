//! End-to-end migrations with the real binaries: a relation rename run by
//! `verdict migrate run` while a writer and a checker keep going (no check
//! answers what neither schema would; no acknowledged write is lost), and
//! a migration killed mid-copy that resumes from its checkpoint.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_stream::StreamExt;
use tonic::transport::Channel;
use verdict::api::pb;
use verdict::api::pb::permission_service_client::PermissionServiceClient;
use verdict::api::pb::relationship_service_client::RelationshipServiceClient;
use verdict::api::pb::schema_service_client::SchemaServiceClient;

/// A child process killed on drop so a failing test never leaks it.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `verdict serve`.
struct Server {
    _child: Guard,
    endpoint: String,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_verdict"))
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args([
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--insecure-no-auth",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("verdict serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let guard = Guard(child);
        let mut endpoint = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("stdout line");
            if let Some(addr) = line.strip_prefix("grpc listening on ") {
                endpoint = format!("http://{addr}");
            }
            if line == "ready" {
                break;
            }
        }
        assert!(!endpoint.is_empty(), "server never printed its address");
        Server {
            _child: guard,
            endpoint,
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint.clone())
            .expect("endpoint")
            .connect()
            .await
            .expect("connects")
    }

    /// `verdict migrate run` (or any verb) against this server.
    fn verdict(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_verdict"));
        c.args(args)
            .args(["--endpoint", &self.endpoint])
            .env_remove("VERDICT_ENDPOINT")
            .env_remove("VERDICT_TOKEN")
            .env_remove("VERDICT_TENANT")
            .env_remove("VERDICT_PROFILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }
}

fn full() -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
    })
}

fn update(tuple: &str) -> pb::RelationshipUpdate {
    pb::RelationshipUpdate {
        operation: pb::relationship_update::Operation::Touch as i32,
        relationship: Some(verdict::api::convert::tuple_to_pb(
            &verdict_storage::Tuple::parse(tuple).expect("tuple"),
        )),
    }
}

async fn write(
    client: &mut RelationshipServiceClient<Channel>,
    tuples: &[String],
) -> Result<(), tonic::Status> {
    for chunk in tuples.chunks(1000) {
        client
            .write_relationships(pb::WriteRelationshipsRequest {
                tenant: String::new(),
                updates: chunk.iter().map(|t| update(t)).collect(),
                preconditions: Vec::new(),
            })
            .await?;
    }
    Ok(())
}

async fn read_all(client: &mut RelationshipServiceClient<Channel>, relation: &str) -> Vec<String> {
    let mut stream = client
        .read_relationships(pb::ReadRelationshipsRequest {
            tenant: String::new(),
            consistency: full(),
            filter: Some(pb::RelationshipFilter {
                resource_type: "document".into(),
                optional_relation: relation.into(),
                ..Default::default()
            }),
            limit: 0,
            cursor: String::new(),
        })
        .await
        .expect("read")
        .into_inner();
    let mut out = Vec::new();
    while let Some(r) = stream.next().await {
        let r = r.expect("read item").relationship.expect("relationship");
        out.push(verdict::cli::parse::relationship_text(&r));
    }
    out
}

async fn write_schema(client: &mut SchemaServiceClient<Channel>, text: &str) {
    client
        .write_schema(pb::WriteSchemaRequest {
            tenant: String::new(),
            schema: text.into(),
            expected_version: 0,
            comment: String::new(),
        })
        .await
        .expect("schema write");
}

const V1: &str = "definition user {}
definition document {
    relation reader: user
    permission view = reader
}";

/// Step 1 of the rename: both relations, both count.
const V2: &str = "definition user {}
definition document {
    relation reader: user
    relation viewer: user
    permission view = reader + viewer
}";

/// The end state: only `viewer`.
const V3: &str = "definition user {}
definition document {
    relation viewer: user
    permission view = viewer
}";

const RENAME: &str = "steps:
  - apply_schema: {file: v2.zed}
  - copy_relation: {from: document#reader, to: document#viewer, delete_source: true, batch_size: 20}
  - apply_schema: {file: v3.zed}
";

fn files(dir: &Path) -> std::path::PathBuf {
    std::fs::write(dir.join("v2.zed"), V2).unwrap();
    std::fs::write(dir.join("v3.zed"), V3).unwrap();
    let m = dir.join("rename.yaml");
    std::fs::write(&m, RENAME).unwrap();
    m
}

const SEEDED: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_under_live_traffic_keeps_answers_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let channel = server.channel().await;
    write_schema(&mut SchemaServiceClient::new(channel.clone()), V1).await;
    let seeded: Vec<String> = (0..SEEDED)
        .map(|i| format!("document:d{i}#reader@user:u{i}"))
        .collect();
    write(
        &mut RelationshipServiceClient::new(channel.clone()),
        &seeded,
    )
    .await
    .unwrap();
    let migration = files(dir.path());

    let stop = Arc::new(AtomicBool::new(false));
    // Acknowledged writes: (k, relation written).
    let acked: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();

    // The writer writes the relation the schema it just read expects.
    let writer = {
        let (stop, acked, channel) = (stop.clone(), acked.clone(), channel.clone());
        tokio::spawn(async move {
            let mut schema = SchemaServiceClient::new(channel.clone());
            let mut rels = RelationshipServiceClient::new(channel);
            let mut k = 0;
            let mut refused = 0;
            while !stop.load(Ordering::Relaxed) {
                let text = schema
                    .read_schema(pb::ReadSchemaRequest {
                        tenant: String::new(),
                        consistency: full(),
                        version: 0,
                    })
                    .await
                    .expect("read schema")
                    .into_inner()
                    .schema_text;
                let relation = if text.contains("relation viewer") {
                    "viewer"
                } else {
                    "reader"
                };
                let tuple = format!("document:w{k}#{relation}@user:w{k}");
                match write(&mut rels, &[tuple]).await {
                    Ok(()) => {
                        acked.lock().unwrap().push((k, relation.to_string()));
                        k += 1;
                    }
                    // The schema moved under the write: not acknowledged;
                    // re-read and retry.
                    Err(s) => {
                        assert!(
                            matches!(
                                s.code(),
                                tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument
                            ),
                            "unexpected write error {s:?}"
                        );
                        refused += 1;
                    }
                }
            }
            refused
        })
    };

    // The checker: granted pairs (seeded, or acknowledged before the check
    // was sent) must be ALLOWED under both schemas; never-granted pairs
    // DENIED under both.
    let checker = {
        let (stop, acked, channel) = (stop.clone(), acked.clone(), channel.clone());
        tokio::spawn(async move {
            let mut perms = PermissionServiceClient::new(channel);
            let mut violations = Vec::new();
            let mut checks = 0u64;
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let known: Vec<usize> = acked.lock().unwrap().iter().map(|(k, _)| *k).collect();
                let (resource, subject, expect) = match n % 3 {
                    0 => (format!("d{}", n % SEEDED), format!("u{}", n % SEEDED), true),
                    1 if !known.is_empty() => {
                        let k = known[n % known.len()];
                        (format!("w{k}"), format!("w{k}"), true)
                    }
                    _ => (
                        format!("d{}", n % SEEDED),
                        format!("u{}", (n + 1) % SEEDED),
                        false,
                    ),
                };
                let r = perms
                    .check(pb::CheckRequest {
                        tenant: String::new(),
                        consistency: full(),
                        resource: Some(pb::ObjectRef {
                            object_type: "document".into(),
                            object_id: resource.clone(),
                        }),
                        permission: "view".into(),
                        subject: Some(pb::SubjectRef {
                            object: Some(pb::ObjectRef {
                                object_type: "user".into(),
                                object_id: subject.clone(),
                            }),
                            optional_relation: String::new(),
                        }),
                        context: None,
                        with_trace: false,
                        with_footprint: false,
                    })
                    .await
                    .expect("check")
                    .into_inner();
                checks += 1;
                let allowed = r.permissionship == pb::Permissionship::Allowed as i32;
                if allowed != expect {
                    violations.push(format!(
                        "document:{resource}#view@user:{subject}: got {}, both schemas say {expect}",
                        r.permissionship
                    ));
                }
            }
            (checks, violations)
        })
    };

    // Let traffic run under v1 first, then migrate.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let acked_before = acked.lock().unwrap().len();
    let out = server
        .verdict(&["migrate", "run"])
        .arg(&migration)
        .output()
        .expect("migrate runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "migrate failed: {stderr}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let refused = writer.await.unwrap();
    let (checks, violations) = checker.await.unwrap();
    assert!(
        violations.is_empty(),
        "{} bad answers: {:?}",
        violations.len(),
        &violations[..violations.len().min(5)]
    );
    assert!(checks > 50, "the checker ran only {checks} checks");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > acked_before, "no writes during the migration");
    assert!(
        acked.iter().any(|(_, r)| r == "reader") && acked.iter().any(|(_, r)| r == "viewer"),
        "the writer switched relations during the migration"
    );

    // Every acknowledged and seeded grant survives, under the new name.
    let mut rels = RelationshipServiceClient::new(channel.clone());
    assert_eq!(read_all(&mut rels, "reader").await, Vec::<String>::new());
    let viewers: BTreeSet<String> = read_all(&mut rels, "viewer").await.into_iter().collect();
    for i in 0..SEEDED {
        let t = format!("document:d{i}#viewer@user:u{i}");
        assert!(viewers.contains(&t), "seeded {t} lost");
    }
    for (k, _) in &acked {
        let t = format!("document:w{k}#viewer@user:w{k}");
        assert!(viewers.contains(&t), "acknowledged write {t} lost");
    }
    assert_eq!(viewers.len(), SEEDED + acked.len());
    eprintln!(
        "rename under traffic: {checks} checks, {} acked writes ({} refused and retried), migrate stderr:\n{stderr}",
        acked.len(),
        refused
    );
}

#[tokio::test]
async fn a_killed_migration_resumes_from_its_checkpoint() {
    const N: usize = 3000;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let channel = server.channel().await;
    write_schema(&mut SchemaServiceClient::new(channel.clone()), V2).await;
    let seeded: Vec<String> = (0..N)
        .map(|i| format!("document:d{i:05}#reader@user:u{i}"))
        .collect();
    let mut rels = RelationshipServiceClient::new(channel.clone());
    write(&mut rels, &seeded).await.unwrap();
    std::fs::write(dir.path().join("v3.zed"), V3).unwrap();
    let migration = dir.path().join("move.yaml");
    std::fs::write(
        &migration,
        "steps:
  - copy_relation: {from: document#reader, to: document#viewer, delete_source: true, batch_size: 5}
  - apply_schema: {file: v3.zed}
",
    )
    .unwrap();
    let state_path = dir.path().join("move.yaml.state.json");

    // Start, wait until the checkpoint shows a copy in progress, SIGKILL.
    let child = Guard(
        server
            .verdict(&["migrate", "run"])
            .arg(&migration)
            .stderr(Stdio::null())
            .spawn()
            .expect("migrate starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let at_kill = loop {
        assert!(Instant::now() < deadline, "no copy checkpoint within 60s");
        if let Ok(text) = std::fs::read_to_string(&state_path) {
            if let Ok(state) = serde_json::from_str::<verdict::migrate::MigrationState>(&text) {
                if state.copy.as_ref().is_some_and(|c| c.copied >= 100) {
                    break state;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    drop(child); // SIGKILL
    let progress = at_kill.copy.clone().expect("copy progress");
    assert_eq!(at_kill.completed, 0);
    assert!(
        progress.copied < N as u64,
        "the copy finished before the kill"
    );

    // Mid-migration: every tuple is under exactly one of the two names
    // (each batch moves atomically). One read = one snapshot (a batch the
    // killed client sent may still commit).
    let all = read_all(&mut rels, "").await;
    let readers = all.iter().filter(|t| t.contains("#reader@")).count();
    let viewers = all.iter().filter(|t| t.contains("#viewer@")).count();
    assert_eq!(readers + viewers, N, "tuples lost or duplicated mid-move");
    assert!(viewers as u64 >= progress.copied);
    assert!(viewers < N);

    // Resume: continues at the cursor, finishes, applies v3.
    let out = server
        .verdict(&["migrate", "run"])
        .arg(&migration)
        .output()
        .expect("migrate runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "resume failed: {stderr}");
    assert!(stderr.contains("  resuming at cursor after "), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("migration complete: schema version 2"),
        "{out:?}"
    );
    assert_eq!(read_all(&mut rels, "reader").await.len(), 0);
    let viewers: BTreeSet<String> = read_all(&mut rels, "viewer").await.into_iter().collect();
    assert_eq!(viewers.len(), N);
    assert!(viewers.contains("document:d00000#viewer@user:u0"));
    assert!(viewers.contains(&format!("document:d{:05}#viewer@user:u{}", N - 1, N - 1)));
    let done: verdict::migrate::MigrationState =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    assert_eq!((done.completed, done.copy), (2, None));

    // A third run has nothing to do.
    let out = server
        .verdict(&["migrate", "run"])
        .arg(&migration)
        .output()
        .expect("migrate runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("migration already complete (2 steps)"));
}
