//! Every integration test in one crate: one binary links RocksDB once
//! instead of once per file (each file here was its own test binary).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

mod auth;
mod bad_input;
mod bench_e2e;
mod bulk_import;
mod cache_revisions;
mod cli;
mod cli_server;
mod client_cache;
mod cluster;
mod cluster_keys;
mod conformance;
mod engine_reference;
mod group_commit;
mod group_index;
mod group_index_cluster;
mod layers;
mod migration_e2e;
mod nemesis;
mod openfga_api;
mod openfga_assertions;
mod openfga_cli;
mod openfga_conformance;
mod openfga_conformance_api;
mod openfga_consistency_token;
mod openfga_differential;
mod openfga_list_limits;
mod openfga_sdk;
mod ops;
mod ops_overhead;
mod schema_examples;
mod schema_migration;
mod schema_roundtrip;
mod server_e2e;
mod setup_scripts;
mod spicedb_api;
mod spicedb_api_differential;
mod spicedb_differential;
mod spicedb_fuzz;
mod spicedb_http;
mod spicedb_regressions;
mod spicedb_schema_rpcs;
mod spicedb_sdk;
mod spicedb_serve_testing;
mod support;
mod tenant_isolation;
