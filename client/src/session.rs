//! Read-your-writes without passing tokens by hand: a session remembers
//! the newest zookie it wrote (or was shown) and sends it as
//! `at_least_as_fresh` on its later reads.

use std::sync::{Arc, Mutex, PoisonError};

use crate::cache::LocalCache;
use crate::client::Client;
use crate::error::ClientError;
use crate::types::{
    Check, CheckAnswer, Consistency, Filter, Object, Relationship, Subject, Update,
};
use crate::zookie::Zookie;

/// A client bound to one tenant that reads its own writes. Cheap to
/// clone: clones share the newest zookie.
#[derive(Debug, Clone)]
pub struct Session {
    client: Client,
    tenant: String,
    newest: Arc<Mutex<Option<Zookie>>>,
    cache: Option<Arc<LocalCache>>,
}

impl Session {
    /// A session of `tenant` over `client`.
    pub fn new(client: Client, tenant: impl Into<String>) -> Self {
        Session {
            client,
            tenant: tenant.into(),
            newest: Arc::new(Mutex::new(None)),
            cache: None,
        }
    }

    /// Checks through `cache` (same tenant): a local answer is served only
    /// when the cache's watch has applied the session's newest write.
    pub fn with_cache(mut self, cache: Arc<LocalCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The newest zookie the session has seen.
    pub fn newest(&self) -> Option<Zookie> {
        self.newest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes later reads at least as fresh as `zookie` (e.g. one another
    /// service passed along). Keeps the newer of the two.
    pub fn observe(&self, zookie: &Zookie) {
        let mut newest = self.newest.lock().unwrap_or_else(PoisonError::into_inner);
        if newest
            .as_ref()
            .is_none_or(|n| n.revision() < zookie.revision())
        {
            *newest = Some(zookie.clone());
        }
    }

    /// `at_least_as_fresh` the newest zookie, or minimize_latency.
    pub fn consistency(&self) -> Consistency {
        self.newest()
            .map_or(Consistency::MinimizeLatency, Consistency::AtLeastAsFresh)
    }

    /// Writes and remembers the new revision.
    ///
    /// # Errors
    /// As [`Client::write`].
    pub async fn write(&self, updates: &[Update]) -> Result<Zookie, ClientError> {
        let z = self.client.write(&self.tenant, updates).await?;
        self.observe(&z);
        Ok(z)
    }

    /// Deletes and remembers the new revision.
    ///
    /// # Errors
    /// As [`Client::delete`].
    pub async fn delete(&self, filter: &Filter) -> Result<(Zookie, u64), ClientError> {
        let (z, n) = self.client.delete(&self.tenant, filter).await?;
        self.observe(&z);
        Ok((z, n))
    }

    /// A check that sees every write of this session.
    ///
    /// # Errors
    /// As [`Client::check`].
    pub async fn check(&self, check: &Check) -> Result<CheckAnswer, ClientError> {
        let newest = self.newest();
        match &self.cache {
            Some(cache) => cache.check_at_least(check, newest.as_ref()).await,
            None => {
                let consistency =
                    newest.map_or(Consistency::MinimizeLatency, Consistency::AtLeastAsFresh);
                self.client.check(&self.tenant, check, &consistency).await
            }
        }
    }

    /// Relationships `filter` matches, seeing every write of this session.
    ///
    /// # Errors
    /// As [`Client::read`].
    pub async fn read(&self, filter: &Filter) -> Result<Vec<Relationship>, ClientError> {
        self.client
            .read(&self.tenant, filter, &self.consistency())
            .await
    }

    /// Resources `subject` has `permission` on, seeing this session's writes.
    ///
    /// # Errors
    /// As [`Client::lookup_resources`].
    pub async fn lookup_resources(
        &self,
        resource_type: &str,
        permission: &str,
        subject: &Subject,
    ) -> Result<Vec<String>, ClientError> {
        self.client
            .lookup_resources(
                &self.tenant,
                resource_type,
                permission,
                subject,
                &self.consistency(),
            )
            .await
    }

    /// Subjects with `permission` on `resource`, seeing this session's writes.
    ///
    /// # Errors
    /// As [`Client::lookup_subjects`].
    pub async fn lookup_subjects(
        &self,
        resource: &Object,
        permission: &str,
        subject_type: &str,
    ) -> Result<Vec<String>, ClientError> {
        self.client
            .lookup_subjects(
                &self.tenant,
                resource,
                permission,
                subject_type,
                &self.consistency(),
            )
            .await
    }
}
