//! Who is calling: the authenticated caller of the request being served,
//! carried as a task-local [`RequestContext`]. A front door's guard sets it
//! ([`scope`]); the node consults it for tenant scope
//! (`OpsState::authorize`) and the decision log.

use std::future::Future;
use std::sync::{Arc, OnceLock};

tokio::task_local! {
    static REQUEST: Arc<RequestContext>;
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The admin key: every tenant and the admin services.
    Admin,
    /// A tenant key: that tenant only.
    Tenant {
        /// The key id.
        key_id: String,
        /// The tenant it is scoped to.
        tenant: String,
    },
    /// No authentication (`--insecure-no-auth`).
    Anonymous,
}

/// The authenticated caller of one request.
#[derive(Debug)]
pub struct RequestContext {
    /// The request id.
    pub request_id: String,
    /// Who is calling.
    pub principal: Principal,
    tenant: OnceLock<String>,
}

impl RequestContext {
    /// The context of request `request_id` made by `principal`.
    pub fn new(request_id: String, principal: Principal) -> Self {
        RequestContext {
            request_id,
            principal,
            tenant: OnceLock::new(),
        }
    }

    /// The key id services see (`admin`, `anonymous` or a tenant key id).
    pub fn key_id(&self) -> &str {
        match &self.principal {
            Principal::Admin => "admin",
            Principal::Tenant { key_id, .. } => key_id,
            Principal::Anonymous => "anonymous",
        }
    }

    /// Records the tenant the request was admitted to (first one wins).
    pub fn set_tenant(&self, tenant: &str) {
        let _ = self.tenant.set(tenant.to_string());
    }

    /// The tenant the request was admitted to, if any yet.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.get().map(String::as_str)
    }
}

/// The context of the request being served on this task, if any.
pub fn current() -> Option<Arc<RequestContext>> {
    REQUEST.try_with(Arc::clone).ok()
}

/// Runs `served` with `context` as the current request context.
pub fn scope<F: Future>(
    context: Arc<RequestContext>,
    served: F,
) -> impl Future<Output = F::Output> {
    REQUEST.scope(context, served)
}
