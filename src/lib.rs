//! Verdict: a Zanzibar-style authorization database.
//!
//! This crate holds the `verdict` binary's library: the schema language
//! ([`schema`]) and the command line ([`cli`]). Storage lives in
//! `verdict-storage`, replication in `verdict-raft`.
//!
//! ```text
//! cli ─▶ schema (lexer ─▶ parser ─▶ compiler ─▶ IR)
//! ```

pub mod cli;
pub mod schema;
