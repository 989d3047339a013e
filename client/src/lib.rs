//! The Rust client for Verdict.
//!
//! - [`Client`]: one tonic channel reused by every call, a deadline per
//!   call, a bearer key, retries with exponential backoff and jitter for
//!   idempotent calls (checks, reads, lookups), typed requests
//!   ([`Check`], [`Update`], [`Filter`]).
//! - [`Session`]: read-your-writes — remembers the newest zookie it wrote
//!   and reads at least as fresh as it.
//! - [`LocalCache`]: check answers kept in-process with their footprints,
//!   invalidated exactly from the watch feed, served only while the feed
//!   is proved current within the permission's `max_staleness`, failing
//!   closed (to the server) when the stream breaks or lags.
//!
//! The footprint keys are derived by [`verdict_footprint`], the same
//! functions the server's decision cache uses.

pub mod cache;
mod client;
mod error;
pub mod pb;
mod retry;
mod session;
mod types;
mod zookie;

pub use cache::{CachePolicy, CacheStats, LocalCache};
pub use client::{Client, ClientConfig};
pub use error::ClientError;
pub use retry::{retryable, RetryPolicy};
pub use session::Session;
pub use types::{
    AnswerSource, Check, CheckAnswer, Consistency, Filter, Object, Permissionship, Relationship,
    Subject, Update,
};
pub use verdict_footprint as footprint;
pub use zookie::Zookie;
