//! Per-request policy the services consult through [`AppState::tenant`]:
//! the tenant scope of the caller's key and the tenant's rate budget; and
//! the operational state they share (metrics, rate limiter, decision log).
//!
//! [`AppState::tenant`]: super::state::AppState::tenant

use std::sync::atomic::Ordering;
use std::sync::Arc;

use verdict_storage::Tenant;

use super::config::ServerSettings;
use super::decision_log::DecisionLog;
use super::error::NodeError;
use super::metrics::RequestMetrics;
use super::rate_limit::RateLimiter;
use super::request_context::{self, Principal};

/// Metrics, rate budgets and the decision log of a node.
#[derive(Debug, Default)]
pub struct OpsState {
    /// Request metrics.
    pub metrics: Arc<RequestMetrics>,
    /// Per-tenant budgets (`None` = unlimited).
    pub limiter: Option<RateLimiter>,
    /// The decision log, when enabled.
    pub decision_log: Option<DecisionLog>,
    /// Whether API keys are required.
    pub auth_required: bool,
}

impl OpsState {
    /// The state for `settings` (no decision log: see [`OpsState::open`]).
    pub fn new(settings: &ServerSettings) -> Self {
        OpsState {
            metrics: Arc::default(),
            limiter: settings.ops.tenant_rate_limit.map(RateLimiter::new),
            decision_log: None,
            auth_required: settings.ops.admin_key.is_some()
                || !settings.ops.grpc_preshared_keys.is_empty(),
        }
    }

    /// The state for `settings`, opening the decision log if configured.
    ///
    /// # Errors
    /// The decision log file cannot be opened.
    pub fn open(settings: &ServerSettings) -> Result<Self, String> {
        let mut ops = OpsState::new(settings);
        if let Some(path) = &settings.ops.decision_log {
            ops.decision_log = Some(
                DecisionLog::open(path, ops.metrics.clone())
                    .map_err(|e| format!("decision log `{}`: {e}", path.display()))?,
            );
        }
        Ok(ops)
    }

    /// Whether the caller's key may use tenant `name` (`""` = default).
    ///
    /// # Errors
    /// PERMISSION_DENIED for a key of another tenant.
    pub fn authorize(&self, name: &str) -> Result<(), NodeError> {
        let default = Tenant::default_tenant();
        let wanted = if name.is_empty() {
            default.as_str()
        } else {
            name
        };
        let context = request_context::current();
        match context.as_deref().map(|c| &c.principal) {
            None if self.auth_required => {
                return Err(NodeError::PermissionDenied(
                    "the request carries no authenticated key".into(),
                ))
            }
            Some(Principal::Tenant { key_id, tenant }) if tenant != wanted => {
                return Err(NodeError::PermissionDenied(format!(
                    "key `{key_id}` is scoped to tenant `{tenant}` and may not access tenant `{wanted}`"
                )))
            }
            _ => {}
        }
        Ok(())
    }

    /// Charges one request to existing tenant `wanted`'s rate budget (and
    /// labels the request's metrics with it).
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED when the budget is spent.
    pub fn charge(&self, wanted: &str) -> Result<(), NodeError> {
        if let Some(c) = request_context::current() {
            c.set_tenant(wanted);
        }
        if let Some(limiter) = &self.limiter {
            if let Err(wait) = limiter.try_acquire(wanted) {
                self.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                return Err(NodeError::RateLimited {
                    tenant: wanted.to_string(),
                    per_second: limiter.per_second(),
                    retry_in: wait,
                });
            }
        }
        Ok(())
    }
}
