//! The one layer in front of every gRPC service: request ids, API key
//! authentication, admin-only services, load shedding, the server-side
//! deadline and request metrics. The authenticated caller travels with the
//! request as the node's task-local [`RequestContext`], which
//! [`OpsState::authorize`] consults for tenant scope. The statuses it answers
//! come from [`NodeError`]s through the one mapping in [`super::error`].
//!
//! [`OpsState::authorize`]: crate::server::ops::OpsState::authorize

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Request, Response};
use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::Status;
use tracing::Instrument as _;

use super::error::status;
use crate::server::error::NodeError;
use crate::server::keys::{constant_time_eq, sha256_hex};
use crate::server::metrics::RequestMetrics;
pub use crate::server::request_context::{current, Principal, RequestContext};
use crate::server::state::AppState;

/// Metadata carrying the request id (accepted from the client, else
/// generated; echoed in the response).
pub const REQUEST_ID: &str = "x-request-id";
/// Metadata the layer sets to the authenticated key id for the services.
pub const KEY_ID: &str = "x-verdict-key-id";

/// Services only the admin key may call.
const ADMIN_SERVICES: [&str; 2] = ["/verdict.v1.TenantService/", "/verdict.v1.KeyService/"];

/// What the layer shares across requests.
#[derive(Debug)]
struct Guard {
    state: Arc<AppState>,
    admin_hash: Option<String>,
    slots: Arc<Semaphore>,
}

/// The tower layer (see the module docs).
#[derive(Debug, Clone)]
pub struct GuardLayer {
    guard: Arc<Guard>,
}

impl GuardLayer {
    /// A layer enforcing `state.settings`.
    pub fn new(state: Arc<AppState>) -> Self {
        let ops = &state.settings.ops;
        GuardLayer {
            guard: Arc::new(Guard {
                admin_hash: ops.admin_key.as_deref().map(|k| sha256_hex(k.as_bytes())),
                slots: Arc::new(Semaphore::new(ops.max_concurrent_requests)),
                state,
            }),
        }
    }
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = GuardService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            guard: self.guard.clone(),
        }
    }
}

/// The service [`GuardLayer`] wraps around the gRPC routes.
#[derive(Debug, Clone)]
pub struct GuardService<S> {
    inner: S,
    guard: Arc<Guard>,
}

fn unauthenticated(reason: &str) -> NodeError {
    NodeError::Unauthenticated(format!(
        "{reason}; send `authorization: Bearer <key>` metadata (the admin key or a tenant key)"
    ))
}

impl Guard {
    fn authenticate(&self, method: &str, headers: &HeaderMap) -> Result<Principal, Status> {
        // SpiceDB's rules (`authzed.api.v1`, and every service when only
        // `--grpc-preshared-key` enables authentication).
        let preshared_only =
            self.admin_hash.is_none() && !self.state.settings.ops.grpc_preshared_keys.is_empty();
        if method.starts_with(crate::api::openfga::auth::SERVICE_PREFIX) {
            return crate::api::openfga::auth::authenticate(&self.state, headers)
                .map_err(Status::from);
        }
        if preshared_only || method.starts_with(crate::api::spicedb::auth::SERVICE_PREFIX) {
            return crate::api::spicedb::auth::authenticate(
                &self.state,
                self.admin_hash.as_deref(),
                headers,
            );
        }
        self.authenticate_verdict(headers).map_err(status)
    }

    /// Verdict's own rules: the admin key or a tenant key, when `--admin-key` is set.
    fn authenticate_verdict(&self, headers: &HeaderMap) -> Result<Principal, NodeError> {
        let Some(admin_hash) = &self.admin_hash else {
            return Ok(Principal::Anonymous);
        };
        let Some(value) = headers.get("authorization") else {
            return Err(unauthenticated("missing API key"));
        };
        let text = value
            .to_str()
            .map_err(|_| unauthenticated("the authorization metadata is not text"))?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| unauthenticated("the authorization metadata is not `Bearer <key>`"))?;
        let hash = sha256_hex(token.as_bytes());
        if constant_time_eq(hash.as_bytes(), admin_hash.as_bytes()) {
            return Ok(Principal::Admin);
        }
        match self.state.keys.authenticate_hashed(token, &hash) {
            Some(record) => Ok(Principal::Tenant {
                key_id: record.id,
                tenant: record.tenant,
            }),
            None => Err(unauthenticated("invalid or revoked API key")),
        }
    }

    fn metrics(&self) -> &RequestMetrics {
        &self.state.ops.metrics
    }
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()))
}

/// The gRPC status number of a response (trailers-only errors carry it in
/// the headers; a success sends it in the trailers).
fn status_code(headers: &HeaderMap) -> usize {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// tonic reports an oversized request as OUT_OF_RANGE and an undecodable
/// one (bad bytes, nesting past the decoder's recursion limit) as INTERNAL;
/// both are the client's fault: answer INVALID_ARGUMENT saying why.
fn rewrite_decode_errors(response: Response<Body>, limit: usize) -> Response<Body> {
    let code = status_code(response.headers());
    if code != tonic::Code::OutOfRange as usize && code != tonic::Code::Internal as usize {
        return response;
    }
    match Status::from_header_map(response.headers()) {
        Some(s) if s.message().contains("decoded message length too large") => {
            status(NodeError::MessageTooLarge {
                detail: s.message().to_string(),
                limit,
            })
            .into_http()
        }
        Some(s) if s.message().starts_with("failed to decode Protobuf message") => {
            status(NodeError::Undecodable(s.message().to_string())).into_http()
        }
        _ => response,
    }
}

/// Counts a request in the in-flight gauge until dropped (also when the
/// client goes away and the request future is dropped mid-way).
struct InFlight(Arc<AppState>);

impl InFlight {
    fn enter(state: Arc<AppState>) -> Self {
        state.ops.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.ops.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Decrements the watch-consumer gauge when the stream's body is dropped.
struct Tracked {
    inner: Body,
    metrics: Arc<AppState>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.metrics
            .ops
            .metrics
            .watch_consumers
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = Status;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<S, B> tower::Service<Request<B>> for GuardService<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        Box::pin(async move {
            let start = Instant::now();
            let method = req.uri().path().to_string();
            let request_id = request_id(req.headers());
            let exempt = method.starts_with("/grpc.health.v1.");
            let finish = |mut response: Response<Body>, tenant: &str| {
                if let Ok(v) = HeaderValue::from_str(&request_id) {
                    response.headers_mut().insert(REQUEST_ID, v);
                }
                let code = status_code(response.headers());
                // Unknown paths share one series: clients cannot grow the map.
                let label = if code == tonic::Code::Unimplemented as usize {
                    "unknown"
                } else {
                    method.as_str()
                };
                guard.metrics().record(label, tenant, code, start.elapsed());
                response
            };
            let principal = if exempt {
                Principal::Anonymous
            } else {
                match guard.authenticate(&method, req.headers()) {
                    Ok(p) => p,
                    Err(denied) => return Ok(finish(denied.into_http(), "")),
                }
            };
            // serve-testing: a token's tenant is created on its first use.
            if let Err(failed) = crate::api::spicedb::testing::admit(&guard.state, &principal).await
            {
                return Ok(finish(failed.into_http(), ""));
            }
            if let Principal::Tenant { key_id, tenant } = &principal {
                if ADMIN_SERVICES.iter().any(|s| method.starts_with(s)) {
                    let denied = status(NodeError::AdminOnly {
                        key_id: key_id.clone(),
                        tenant: tenant.clone(),
                        method: method.clone(),
                    });
                    return Ok(finish(denied.into_http(), tenant));
                }
            }
            let context = Arc::new(RequestContext::new(request_id.clone(), principal));
            let headers = req.headers_mut();
            headers.remove(KEY_ID);
            if let Ok(v) = HeaderValue::from_str(context.key_id()) {
                headers.insert(KEY_ID, v);
            }
            let ops = &guard.state.settings.ops;
            let permit = if exempt {
                None
            } else {
                match guard.slots.clone().try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) => {
                        guard.metrics().shed.fetch_add(1, Ordering::Relaxed);
                        let shed = status(NodeError::Overloaded {
                            limit: ops.max_concurrent_requests,
                        });
                        return Ok(finish(shed.into_http(), ""));
                    }
                }
            };
            let in_flight = InFlight::enter(guard.state.clone());
            let span = tracing::info_span!(
                "grpc",
                method = %method,
                request_id = %request_id,
                key_id = %context.key_id()
            );
            let served = crate::server::request_context::scope(context.clone(), async move {
                inner.call(req).await
            })
            .instrument(span);
            // A client-streaming import runs as long as its upload; every
            // other request answers (or starts its stream) within the deadline.
            let result = if method.ends_with("/ImportRelationships")
                || method.ends_with("/ImportBulkRelationships")
            {
                Ok(served.await)
            } else {
                tokio::time::timeout(ops.request_timeout, served).await
            };
            drop(in_flight);
            drop(permit);
            let tenant = context.tenant().unwrap_or("");
            let response = match result {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => return Err(e),
                Err(_) => status(NodeError::DeadlineExceeded {
                    timeout: ops.request_timeout,
                })
                .into_http(),
            };
            let mut response = rewrite_decode_errors(response, ops.max_message_bytes);
            if method.starts_with(crate::api::openfga::auth::SERVICE_PREFIX) {
                response = crate::api::openfga::rewrite_grpc_status(response);
            }
            if method == "/verdict.v1.WatchService/Watch" && status_code(response.headers()) == 0 {
                guard
                    .metrics()
                    .watch_consumers
                    .fetch_add(1, Ordering::Relaxed);
                let state = guard.state.clone();
                response = response.map(|inner| {
                    Body::new(Tracked {
                        inner,
                        metrics: state,
                    })
                });
            }
            Ok(finish(response, tenant))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::{Layer as _, Service as _};

    const ADMIN: &str = "unit-admin-key-0123456789";

    async fn state(dir: &std::path::Path) -> Arc<AppState> {
        let mut settings = crate::server::config::ServerSettings::for_data_dir(dir);
        settings.insecure_no_auth = false;
        settings.ops.admin_key = Some(ADMIN.into());
        Arc::new(AppState::open(settings).await.unwrap())
    }

    /// Calls the layer over a service that echoes the key id it saw.
    async fn call(state: &Arc<AppState>, token: &str, forged: &str) -> Response<Body> {
        let inner = tower::service_fn(|req: Request<Body>| async move {
            let seen = req.headers().get(KEY_ID).cloned();
            let scoped = current()
                .map(|c| c.key_id().to_string())
                .unwrap_or_default();
            let mut response = Response::new(Body::empty());
            if let Some(v) = seen {
                response.headers_mut().insert("seen-key-id", v);
            }
            if let Ok(v) = HeaderValue::from_str(&scoped) {
                response.headers_mut().insert("context-key-id", v);
            }
            Ok::<_, Infallible>(response)
        });
        let mut svc = GuardLayer::new(state.clone()).layer(inner);
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        let mut request = Request::builder()
            .uri("/verdict.v1.PermissionService/Check")
            .header("authorization", format!("Bearer {token}"))
            .header(KEY_ID, forged)
            .body(Body::empty())
            .unwrap();
        request
            .headers_mut()
            .insert(REQUEST_ID, HeaderValue::from_static("r-1"));
        svc.call(request).await.unwrap()
    }

    #[tokio::test]
    async fn the_key_id_header_is_always_the_authenticated_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        state.tenants.create("acme").unwrap();
        let (record, token) = state.keys.create("acme").unwrap();
        // A tenant key that claims to be the admin is seen as itself.
        let r = call(&state, &token, "admin").await;
        assert_eq!(r.headers()["seen-key-id"], record.id.as_str());
        assert_eq!(r.headers()["context-key-id"], record.id.as_str());
        assert_eq!(r.headers()[REQUEST_ID], "r-1");
        let r = call(&state, ADMIN, "someone-else").await;
        assert_eq!(r.headers()["seen-key-id"], "admin");
        // A bad key never reaches the service.
        let r = call(&state, "wrong", "admin").await;
        assert!(r.headers().get("seen-key-id").is_none());
        assert_eq!(
            status_code(r.headers()),
            tonic::Code::Unauthenticated as usize
        );
    }

    #[tokio::test]
    async fn unknown_methods_share_one_metrics_series() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let inner = tower::service_fn(|_req: Request<Body>| async move {
            Ok::<_, Infallible>(Status::unimplemented("no such method").into_http())
        });
        let mut svc = GuardLayer::new(state.clone()).layer(inner);
        for i in 0..50 {
            std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
            let request = Request::builder()
                .uri(format!("/random.Service{i}/M"))
                .header("authorization", format!("Bearer {ADMIN}"))
                .body(Body::empty())
                .unwrap();
            svc.call(request).await.unwrap();
        }
        let out = crate::server::node_metrics::render(&state);
        assert!(
            out.contains("method=\"unknown\",tenant=\"\",code=\"UNIMPLEMENTED\"} 50"),
            "{out}"
        );
        assert!(!out.contains("random.Service"));
    }

    /// Per-request cost of the layer (auth with a tenant key, request id,
    /// metrics, semaphore, task-local) over a service that does nothing.
    /// `cargo test --release --lib guard::tests::layer_overhead -- --ignored --nocapture`
    #[tokio::test]
    #[ignore]
    async fn layer_overhead() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        state.tenants.create("acme").unwrap();
        let (_, token) = state.keys.create("acme").unwrap();
        let inner = tower::service_fn(|_req: Request<Body>| async move {
            if let Some(c) = current() {
                c.set_tenant("acme");
            }
            Ok::<_, Infallible>(Response::new(Body::empty()))
        });
        let mut svc = GuardLayer::new(state.clone()).layer(inner);
        let n = 200_000;
        let started = std::time::Instant::now();
        for _ in 0..n {
            std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
            let request = Request::builder()
                .uri("/verdict.v1.PermissionService/Check")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            svc.call(request).await.unwrap();
        }
        let per = started.elapsed() / n;
        eprintln!("guard layer: {per:?} per request (tenant key, metrics, request id)");
    }

    #[tokio::test]
    async fn without_a_request_context_auth_mode_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        assert!(matches!(
            state.tenant(""),
            Err(NodeError::PermissionDenied(_))
        ));
    }
}
