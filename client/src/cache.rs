//! The local decision cache: check answers kept in-process with their
//! footprints, invalidated exactly from the watch feed, served only while
//! the feed is proved current within the permission's staleness bound.
//!
//! ```text
//!  LocalCache::check ──hit (position current within bound)──▶ answer
//!        │ miss / stale
//!        ▼
//!  server Check (with_footprint) ──▶ Store::insert (refused if a change
//!                                     the watch applied already voids it)
//!  watcher task: Watch(from position) ──▶ Store::apply_changes (drops the
//!        entries whose footprint a change touches; a schema change drops
//!        all) and Store::advance (checkpoints prove currency)
//! ```
//!
//! Fail closed: when the stream breaks, lags past a bound or has not yet
//! caught up, entries stop answering and checks go to the server, until a
//! checkpoint arrives on the stream resumed from the last position.

mod store;
mod watcher;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use store::Store;
pub use store::{Lookup, Refused};

use crate::client::Client;
use crate::error::ClientError;
use crate::types::{AnswerSource, Check, CheckAnswer, Consistency};

/// The server's default tenant name (what an empty tenant resolves to).
pub const DEFAULT_TENANT: &str = "default";

/// How the local cache behaves.
#[derive(Debug, Clone)]
pub struct CachePolicy {
    /// How stale the watch position may be for a cached answer to be
    /// served, unless `per_permission` says otherwise. Zero = always ask
    /// the server. Default = 5s (the server checkpoints a watch every
    /// second).
    pub default_max_staleness: Duration,
    /// Bounds per `type#permission` (e.g. `"account#transfer" => 0`).
    pub per_permission: HashMap<String, Duration>,
    /// Approximate bytes of entries held before the oldest are evicted.
    /// Default = 64 MiB
    pub max_bytes: usize,
    /// The first wait before reconnecting a broken watch (doubles up to
    /// `max_reconnect_backoff`, with jitter). Default = 50ms
    pub reconnect_backoff: Duration,
    /// Default = 2s
    pub max_reconnect_backoff: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            default_max_staleness: Duration::from_secs(5),
            per_permission: HashMap::new(),
            max_bytes: 64 << 20,
            reconnect_backoff: Duration::from_millis(50),
            max_reconnect_backoff: Duration::from_secs(2),
        }
    }
}

impl CachePolicy {
    /// The same with a bound for `type#permission`.
    pub fn with_bound(mut self, type_permission: impl Into<String>, bound: Duration) -> Self {
        self.per_permission.insert(type_permission.into(), bound);
        self
    }

    /// The bound for `check`'s `type#permission`.
    pub fn bound(&self, check: &Check) -> Duration {
        if self.per_permission.is_empty() {
            return self.default_max_staleness;
        }
        self.per_permission
            .get(&check.type_permission())
            .copied()
            .unwrap_or(self.default_max_staleness)
    }
}

/// Counters of one cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Checks answered locally.
    pub hits: u64,
    /// Checks with no entry.
    pub misses: u64,
    /// Checks whose entry was not served: the position was not current
    /// within the bound (stream down, lagging, behind the session).
    pub stale: u64,
    /// Checks whose bound is zero (always the server).
    pub bypassed: u64,
    /// Entries dropped by changes, schema changes and resets.
    pub invalidations: u64,
    /// Entries evicted for room.
    pub evictions: u64,
    /// Server answers not stored (no footprint, or already outdated).
    pub not_stored: u64,
    /// Watch (re)connections.
    pub watch_connects: u64,
    /// Entries held now.
    pub entries: u64,
    /// Approximate bytes held now.
    pub bytes: u64,
    /// Revision the watch has applied through (0 before it started).
    pub position: u64,
    /// Milliseconds since a checkpoint proved the position current
    /// (`None`: the stream is down or has not caught up).
    pub staleness_ms: Option<u64>,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    bypassed: AtomicU64,
    invalidations: AtomicU64,
    evictions: AtomicU64,
    not_stored: AtomicU64,
    watch_connects: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// What the cache and its watcher task share.
#[derive(Debug)]
struct Shared {
    client: Client,
    tenant: String,
    /// The tenant name footprint keys are derived with.
    key_tenant: String,
    policy: CachePolicy,
    store: Mutex<Store>,
    counters: Counters,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        // The store's invariants hold between statements; a panic elsewhere
        // while holding the lock leaves it usable.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A check client for one tenant with a local decision cache. Starts a
/// background task following the tenant's watch feed (stopped on drop).
#[derive(Debug)]
pub struct LocalCache {
    shared: Arc<Shared>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for LocalCache {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl LocalCache {
    /// A cache over `client` for `tenant` (empty = the default tenant).
    /// Must be called inside a tokio runtime.
    pub fn new(client: Client, tenant: &str, policy: CachePolicy) -> LocalCache {
        let key_tenant = if tenant.is_empty() {
            DEFAULT_TENANT.to_string()
        } else {
            tenant.to_string()
        };
        let shared = Arc::new(Shared {
            client,
            tenant: tenant.to_string(),
            key_tenant,
            store: Mutex::new(Store::new(policy.max_bytes)),
            policy,
            counters: Counters::default(),
        });
        let watcher = tokio::spawn(watcher::run(shared.clone()));
        LocalCache { shared, watcher }
    }

    /// The tenant this cache serves.
    pub fn tenant(&self) -> &str {
        &self.shared.tenant
    }

    /// The cached answer if it may be served now, without asking the
    /// server: `Hit`, `Miss` or `Stale`.
    pub fn lookup(&self, check: &Check, min_revision: u64) -> Lookup {
        let bound = self.shared.policy.bound(check);
        if bound.is_zero() {
            return Lookup::Miss;
        }
        self.shared
            .store()
            .lookup(&check.to_string(), bound, min_revision, Instant::now())
    }

    /// Answers `check` locally when an entry may be served, else asks the
    /// server (minimize_latency) and remembers the answer with its
    /// footprint.
    ///
    /// # Errors
    /// As [`Client::check`].
    pub async fn check(&self, check: &Check) -> Result<CheckAnswer, ClientError> {
        self.check_at_least(check, None).await
    }

    /// As [`LocalCache::check`], but never older than `min` (a session's
    /// newest write): a local entry answers only when the watch has
    /// applied `min`, and a server check asks for at least `min`.
    ///
    /// # Errors
    /// As [`Client::check`].
    #[tracing::instrument(level = "debug", skip_all, fields(check = %check))]
    pub async fn check_at_least(
        &self,
        check: &Check,
        min: Option<&crate::Zookie>,
    ) -> Result<CheckAnswer, ClientError> {
        let shared = &self.shared;
        let bound = shared.policy.bound(check);
        let key = check.to_string();
        if bound.is_zero() {
            bump(&shared.counters.bypassed, 1);
        } else {
            let min_revision = min.map_or(0, crate::Zookie::revision);
            match shared
                .store()
                .lookup(&key, bound, min_revision, Instant::now())
            {
                Lookup::Hit(permissionship) => {
                    bump(&shared.counters.hits, 1);
                    return Ok(CheckAnswer {
                        permissionship,
                        checked_at: None,
                        source: AnswerSource::LocalCache,
                    });
                }
                Lookup::Miss => bump(&shared.counters.misses, 1),
                Lookup::Stale => bump(&shared.counters.stale, 1),
            }
        }
        let consistency = min.map_or(Consistency::MinimizeLatency, |z| {
            Consistency::AtLeastAsFresh(z.clone())
        });
        let answer = shared
            .client
            .check_on_server(&shared.tenant, check, &consistency, !bound.is_zero())
            .await?;
        if !bound.is_zero() {
            self.remember(key, &answer);
        }
        Ok(CheckAnswer {
            permissionship: answer.permissionship,
            checked_at: Some(answer.checked_at),
            source: AnswerSource::Server,
        })
    }

    fn remember(&self, key: String, answer: &crate::types::ServerCheck) {
        let counters = &self.shared.counters;
        let Some((tenant, keys)) = &answer.footprint else {
            bump(&counters.not_stored, 1);
            return;
        };
        if *tenant != self.shared.key_tenant {
            bump(&counters.not_stored, 1);
            return;
        }
        let stored = self.shared.store().insert(
            key,
            answer.permissionship,
            answer.checked_at.revision(),
            keys.clone(),
        );
        match stored {
            Ok(evicted) => bump(&counters.evictions, evicted),
            Err(_) => bump(&counters.not_stored, 1),
        }
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        let c = &self.shared.counters;
        let (entries, bytes, position, staleness) = {
            let store = self.shared.store();
            let (entries, bytes) = store.size();
            (
                entries,
                bytes,
                store.position().map_or(0, crate::Zookie::revision),
                store.staleness(Instant::now()),
            )
        };
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            stale: c.stale.load(Ordering::Relaxed),
            bypassed: c.bypassed.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            not_stored: c.not_stored.load(Ordering::Relaxed),
            watch_connects: c.watch_connects.load(Ordering::Relaxed),
            entries,
            bytes,
            position,
            staleness_ms: staleness.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}
