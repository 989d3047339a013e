//! Verdict: a Zanzibar-style authorization database.
//!
//! This crate holds the `verdict` binary's library: the schema language
//! ([`schema`]), the graph engine (`engine`) and the command line ([`cli`]). Storage lives in
//! `verdict-storage`, replication in `verdict-raft`.
//!
//! ```text
//! cli ─▶ schema (lexer ─▶ parser ─▶ compiler ─▶ IR)
//! ```

#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "server")]
pub mod bench;
pub mod cli;
#[cfg(feature = "engine")]
pub mod engine;
pub mod migrate;
#[cfg(feature = "server")]
pub mod relationships;
pub mod schema;
#[cfg(feature = "server")]
pub mod serve;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod validate;
#[cfg(feature = "server")]
pub mod workload;
#[cfg(feature = "engine")]
pub mod zookie;
