//! The HTTP layer: Bento-compatible routes under `/api/v1`, Corral's
//! extensions beside them, health checks and the OpenAPI document.
//!
//! [`router`] is a pure function of [`AppState`], so tests and `corral serve`
//! build the same application; [`serve`] runs it on a listener it is given
//! (tests bind port 0) until the shutdown signal, then lets in-flight requests
//! finish. Each request gets an id (`x-request-id`, kept if the client sent
//! one of at most 64 safe characters, [`kept_request_id`]), a span with the
//! route template, a timeout, and on `/fetch/*` authentication followed by
//! the per-key rate limit. The web console
//! ([`console`]) is served beside the API, at `/` and `/console/…`.

mod audience;
mod audit;
mod auth;
mod batch;
mod body;
mod cache;
mod conditional;
pub mod conn;
mod console;
mod error;
mod evaluation;
mod export;
mod extract;
mod health;
mod history;
mod manual;
pub mod openapi;
mod overlap;
mod rate_limit;
mod respond;
mod segments;
mod site;
mod subscribers;
mod webhooks;

pub use auth::Caller;
pub use error::ApiError;

use crate::clock::Clock;
use crate::storage::{ChangeFeed, Store};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use rate_limit::RateLimits;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Knobs of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Requests a minute per key pair on `/fetch/*` and `/batch/*`; 0 turns
    /// limiting off.
    pub rate_limit_per_minute: u32,
    /// Requests an hour per key pair on `/stats/*`; 0 turns limiting off.
    pub stats_rate_limit_per_hour: u32,
    /// Failed authentications a minute per client address (a burst, refilled
    /// evenly); over it the address is refused 429 whatever it sends. 0
    /// turns the limit off.
    pub auth_failures_per_minute: u32,
    /// How long one request may take before it is answered 503.
    pub request_timeout: Duration,
    /// The largest request body accepted (413 above), except on `/batch/*`.
    pub max_body_bytes: usize,
    /// The largest body of `/batch/*`: 1,000 items, each up to about 16 KiB.
    pub max_batch_body_bytes: usize,
    /// Where live evaluation keeps the checkpoints of its snapshots; `None`
    /// keeps none.
    pub checkpoints: Option<crate::live::CheckpointSettings>,
    /// The evaluation budget: refused above, a narrow lane for the heavy.
    pub eval_limits: corral_core::engine::cost::Budget,
    /// Timeouts and the cap of connections.
    pub connections: conn::ConnectionSettings,
    /// Whether webhooks may send to loopback, private and link-local
    /// addresses (`--allow-private-webhook-targets`).
    pub allow_private_webhook_targets: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: 100,
            stats_rate_limit_per_hour: 60,
            auth_failures_per_minute: 30,
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            max_batch_body_bytes: 16 * 1024 * 1024,
            checkpoints: None,
            eval_limits: Default::default(),
            allow_private_webhook_targets: false,
            connections: Default::default(),
        }
    }
}

/// What every handler can reach: one shared allocation, so the clones that
/// each middleware layer and extractor make cost one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub settings: HttpSettings,
    /// Live evaluation, with the audience snapshots it keeps.
    pub live: Arc<crate::live::Live>,
    limits: RateLimits,
    failures: Option<rate_limit::FailedAuthentications>,
    cache: cache::ReadCache,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: HttpSettings) -> Self {
        let feed: Arc<dyn ChangeFeed> = store.clone();
        Self::with_feed(store, feed, clock, settings)
    }

    /// The same, with the snapshots and heads read through `feed` rather
    /// than `store` itself (the same database, seen through a wrapper: tests
    /// hold reads back with it).
    pub fn with_feed(
        store: Arc<dyn Store>,
        feed: Arc<dyn ChangeFeed>,
        clock: Arc<dyn Clock>,
        settings: HttpSettings,
    ) -> Self {
        let limits = RateLimits::new(
            settings.rate_limit_per_minute,
            settings.stats_rate_limit_per_hour,
        );
        let failures = rate_limit::FailedAuthentications::per_minute(
            settings.auth_failures_per_minute,
            Arc::clone(&clock),
        );
        let heads = Arc::new(crate::live::Heads::new(Arc::clone(&feed)));
        let live = Arc::new(
            crate::live::Live::with_heads(feed, heads, settings.checkpoints.clone())
                .with_limits(settings.eval_limits),
        );
        // The journal evaluates definition changes and sweeps over these.
        let evaluator: Arc<dyn crate::storage::journal::Evaluator> = live.clone();
        store.set_evaluator(Arc::downgrade(&evaluator));
        Self(Arc::new(Shared {
            live,
            store,
            clock,
            settings,
            limits,
            failures,
            cache: cache::ReadCache::default(),
        }))
    }
}

impl AppState {
    /// Reads `sites` (id and uuid) in the background, from their checkpoints
    /// where they have one, and keeps them resident; `/readyz` is 503 until
    /// all of them are.
    pub fn start_preload(&self, sites: Vec<(i64, String)>) {
        if sites.is_empty() {
            return;
        }
        self.live.set_preload(sites);
        let state = self.clone();
        tokio::spawn(async move { state.live.preload().await });
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let fetch = Router::new()
        .route("/segments", get(segments::list).post(segments::create))
        .route(
            "/segments/{id}",
            get(segments::show)
                .patch(segments::update)
                .delete(segments::discard),
        )
        .route("/segments/preview", post(evaluation::preview))
        .route("/segments/{id}/restore", post(segments::restore))
        .route("/segments/{id}/versions", get(segments::versions))
        .route(
            "/segments/{id}/versions/{n}/restore",
            post(segments::restore_version),
        )
        .route("/audit", get(audit::list))
        .route("/segments/{id}/match", post(evaluation::match_subscriber))
        .route("/segments/{id}/members", get(evaluation::members))
        .route("/segments/{id}/members.csv", get(export::members_csv))
        .route("/segments/{id}/changes", get(history::changes))
        .route(
            "/segments/{id}/includes",
            get(manual::list_includes)
                .post(manual::add_includes)
                .delete(manual::remove_includes),
        )
        .route(
            "/segments/{id}/excludes",
            get(manual::list_excludes)
                .post(manual::add_excludes)
                .delete(manual::remove_excludes),
        )
        .route(
            "/subscribers",
            get(subscribers::find).post(subscribers::create),
        )
        .route("/subscribers/segments", get(subscribers::segments))
        .route("/subscribers/events", get(subscribers::events))
        .route("/subscribers/history", get(subscribers::history))
        .route("/subscribers/search", get(subscribers::search))
        .route("/site", get(site::show))
        .route("/tags", get(audience::list_tags).post(audience::create_tag))
        .route("/tags/{id}", delete(audience::delete_tag))
        .route(
            "/fields",
            get(audience::list_fields).post(audience::create_field),
        )
        .route("/commands", post(batch::commands))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/webhooks/{id}",
            get(webhooks::show)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/webhooks/{id}/deliveries/{delivery_id}/retry",
            post(webhooks::retry),
        );

    let authenticated = Router::new()
        .nest("/fetch", fetch)
        .route("/batch/subscribers", post(batch::import_subscribers))
        .route("/batch/events", post(batch::import_events))
        .route("/stats/site", get(audience::site_stats))
        .route("/stats/segment", get(evaluation::segment_stats))
        .route("/stats/segment/history", get(history::series))
        .route("/stats/overlap", post(overlap::overlap))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));

    Router::new()
        .nest("/api/v1", authenticated)
        .route("/api/openapi.json", get(openapi::serve))
        .route(
            "/api/query-language.schema.json",
            get(evaluation::query_schema),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(console::routes())
        // Bodies are limited (with Bento's JSON 413) by the auth middleware,
        // which reads them first; axum's own 2 MB default would answer first.
        .layer(DefaultBodyLimit::disable())
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), timeout))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(RequestIds::new()))
        .layer(middleware::map_request(drop_unsafe_request_id))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("a handler panicked".into()).into_response()
        }))
        .with_state(state)
}

/// Request ids: a random prefix drawn once per process and a counter, so
/// ids are unique across restarts and servers without asking the kernel
/// for randomness on every request (`7f3a9c2e1b4d-000000002a`).
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        Self {
            prefix: crate::credentials::random_hex_id()[..12].into(),
            next: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{}-{n:010x}", self.prefix);
        axum::http::HeaderValue::from_str(&id)
            .ok()
            .map(RequestId::new)
    }
}

/// The longest request id a client may give.
const MAX_REQUEST_ID_CHARS: usize = 64;

/// Whether a client's request id is kept: one `x-request-id` of 1 to
/// [`MAX_REQUEST_ID_CHARS`] characters from `A–Z a–z 0–9 . _ : -` (what
/// UUIDs, ULIDs and the ids of common proxies are made of). Anything else
/// (too long, spaces, control bytes, quotes, several values) would be
/// echoed and written into every log line of the request, and is replaced
/// by a fresh id.
fn kept_request_id(headers: &axum::http::HeaderMap) -> bool {
    let mut values = headers.get_all("x-request-id").iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let id = value.as_bytes();
    (1..=MAX_REQUEST_ID_CHARS).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(b))
}

/// Takes away a client's request id that is not kept, so that a fresh one
/// is made.
async fn drop_unsafe_request_id(mut request: Request) -> Request {
    if request.headers().contains_key("x-request-id") && !kept_request_id(request.headers()) {
        request.headers_mut().remove("x-request-id");
    }
    request
}

/// The span of one request: method, route template and request id; never the
/// query string or headers, which carry credentials.
fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", method = %request.method(), route, request_id)
}

/// Answers 503 when a request runs past the configured timeout, with
/// `Retry-After`, and how far the read is when it was waiting for its site's
/// audience to be read (the read goes on without it). Within it, the
/// request's waits for the database share one budget
/// ([`crate::storage::wait`]).
async fn timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let note = crate::live::WaitNote::default();
    let answer = tokio::time::timeout(
        state.settings.request_timeout,
        crate::storage::wait::scope(note.scope(next.run(request))),
    )
    .await;
    match answer {
        Ok(response) => response,
        Err(_) => match note.loading() {
            Some(loading) => {
                let error = ApiError::loading(&loading);
                let progress = &loading.progress;
                tracing::warn!(
                    site_id = loading.site_id,
                    stage = progress.stage.name(),
                    unit = progress.stage.unit(),
                    read = progress.read,
                    expected = progress.expected,
                    seconds = progress.elapsed.as_secs_f64(),
                    %error,
                    "request timed out while its site's audience is being loaded"
                );
                error.into_response()
            }
            None => retry_soon(ApiError::Timeout.into_response()),
        },
    }
}

/// `response` saying to try again in a second, as a database restarting
/// usually allows.
fn retry_soon(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(1u64),
    );
    response
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes the
/// requests in flight: for at most the request timeout (which bounds their
/// handling) plus the body read timeout (a response's last bytes, as long
/// as a body may pause), after which what is still open is closed.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let settings = state.settings.connections;
    let grace = state.settings.request_timeout + settings.body_read_timeout;
    conn::serve(listener, router(state), settings, grace, shutdown).await
}
