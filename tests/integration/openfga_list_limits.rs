//! OpenFGA's ListObjects bounds on the real `verdict serve`: the result
//! cap (`--openfga-list-objects-max-results`, OpenFGA's 1000) applies to
//! ListObjects and not to StreamedListObjects; past the deadline
//! (`--openfga-list-objects-deadline`, OpenFGA's 3 s) both answer what was
//! found so far, silently partial, as OpenFGA does; the HTTP stream is
//! sent as it is produced (chunked), not as one body.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::io::{Read as _, Write as _};
use std::time::Duration;

use crate::openfga_api::{call, create_store, model, post, tk, write_model};
use crate::support::Server;

use serde_json::{json, Value};

/// A store with the test model where user:anne views doc:0..5.
fn store_with_five_docs(server: &Server) -> String {
    let store = create_store(server, "list limits");
    write_model(server, &store, model());
    let keys: Vec<Value> = (0..5)
        .map(|i| tk("user:anne", "viewer", &format!("doc:{i}")))
        .collect();
    let (status, body) = post(
        server,
        &format!("/stores/{store}/write"),
        json!({"writes": {"tuple_keys": keys}}),
    );
    assert_eq!(status, 200, "{body}");
    store
}

fn list(server: &Server, store: &str) -> Vec<String> {
    let (status, body) = post(
        server,
        &format!("/stores/{store}/list-objects"),
        json!({"type": "doc", "relation": "viewer", "user": "user:anne"}),
    );
    assert_eq!(status, 200, "{body}");
    let mut objects: Vec<String> = body["objects"]
        .as_array()
        .map(|a| a.iter().map(|o| o.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    objects.sort();
    objects
}

/// StreamedListObjects over raw HTTP: the response head and the objects.
fn streamed(server: &Server, store: &str) -> (String, Vec<String>) {
    let mut stream = std::net::TcpStream::connect(&server.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let payload = json!({"type": "doc", "relation": "viewer", "user": "user:anne"}).to_string();
    write!(
        stream,
        "POST /stores/{store}/streamed-list-objects HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = crate::openfga_api::dechunk(head, body);
    let mut objects: Vec<String> = body
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .map(|v| {
            assert!(v.get("error").is_none(), "{v}");
            v["result"]["object"].as_str().unwrap().to_string()
        })
        .collect();
    objects.sort();
    (head.to_ascii_lowercase(), objects)
}

#[test]
fn the_result_cap_bounds_list_objects_but_not_the_stream() {
    let server = Server::start(&[
        "--insecure-no-auth",
        "--openfga-list-objects-max-results",
        "2",
    ]);
    let store = store_with_five_docs(&server);
    let listed = list(&server, &store);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let all: Vec<String> = (0..5).map(|i| format!("doc:{i}")).collect();
    assert!(listed.iter().all(|o| all.contains(o)), "{listed:?}");
    let (head, objects) = streamed(&server, &store);
    assert_eq!(objects, all, "the stream has no cap");
    assert!(
        head.contains("transfer-encoding: chunked"),
        "streamed as found, not sent as one body: {head}"
    );
    // Errors found before any object are the call's own.
    let (status, body) = call(
        &server,
        "POST",
        &format!("/stores/{store}/streamed-list-objects"),
        Some(&json!({"type": "folder", "relation": "viewer", "user": "user:anne"})),
        None,
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("type_not_found")),
        "{body}"
    );
}

#[test]
fn past_the_deadline_the_answer_is_what_was_found() {
    let server = Server::start(&[
        "--insecure-no-auth",
        "--openfga-list-objects-deadline",
        "0s",
    ]);
    let store = store_with_five_docs(&server);
    assert_eq!(
        list(&server, &store),
        Vec::<String>::new(),
        "nothing found in no time"
    );
    assert_eq!(streamed(&server, &store).1, Vec::<String>::new());
    // The default deadline leaves room for all of them.
    let data = server.stop();
    let server = Server::start_in(data, &["--insecure-no-auth"]);
    assert_eq!(list(&server, &store).len(), 5);
}
