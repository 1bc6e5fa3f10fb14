//! Serving connections: HTTP/1.1 on a listener, with the limits a public
//! server needs against slow and idle clients.
//!
//! Every connection's bytes pass through a wrapper that notes when it last
//! read or wrote, and whether a request's head has begun to arrive; a
//! sweeper looks at every connection five times a second and closes
//!
//! - a connection whose request head has been arriving for longer than the
//!   header read timeout (a half-sent request, "slowloris"), and
//! - a connection with no request in flight that has been silent for longer
//!   than the keep-alive idle timeout.
//!
//! A request being handled is never closed by these (the request timeout
//! bounds it). At most `max_connections` are open: at the cap, the longest
//! idle connection is closed to make room for a new one, and when none is
//! idle the next connection waits in the kernel's backlog until one ends, so
//! that a flood of silent connections cannot keep `/healthz` from answering.
//! On shutdown no connection is accepted any more, idle ones are closed and
//! requests in flight finish.

use axum::Router;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::ServiceExt;

/// How the server treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// How long a request's head may take to arrive once it has begun.
    pub header_read_timeout: Duration,
    /// How long a connection with no request in flight may stay silent.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

/// How often connections are looked at.
const SWEEP_EVERY: Duration = Duration::from_millis(200);

/// What the sweeper knows of one connection. Times are microseconds since
/// the server started; 0 is "not since".
struct Watch {
    last_activity: AtomicU64,
    /// When the head of a request began to arrive, while no request is
    /// being handled.
    head_since: AtomicU64,
    in_flight: AtomicUsize,
    /// Set (and `close` notified) when the connection must end: it is not
    /// picked again to make room.
    closing: AtomicBool,
    close: Notify,
}

impl Watch {
    fn new(now: u64) -> Self {
        Self {
            last_activity: AtomicU64::new(now),
            head_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        }
    }

    fn end(&self) {
        self.closing.store(true, Ordering::Relaxed);
        self.close.notify_one();
    }

    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
    }
}

struct Registry {
    started: Instant,
    connections: Mutex<HashMap<u64, Arc<Watch>>>,
    next_id: AtomicU64,
    /// Notified whenever a connection ends.
    ended: Notify,
    shutting_down: AtomicBool,
}

impl Registry {
    fn now(&self) -> u64 {
        self.started.elapsed().as_micros() as u64 + 1
    }

    fn len(&self) -> usize {
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Closes the connection idle the longest; whether there was one.
    fn evict_one(&self) -> bool {
        let connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        // The longest silent; between equals, the one accepted first.
        let oldest = connections
            .iter()
            .filter(|(_, w)| w.idle() && !w.closing.load(Ordering::Relaxed))
            .min_by_key(|(id, w)| (w.last_activity.load(Ordering::Relaxed), **id));
        match oldest {
            Some((_, watch)) => {
                watch.end();
                true
            }
            None => false,
        }
    }

    fn sweep(&self, settings: &ConnectionSettings) {
        let now = self.now();
        let connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        for watch in connections.values() {
            if !watch.idle() {
                continue;
            }
            let head_since = watch.head_since.load(Ordering::Relaxed);
            let silent = now.saturating_sub(watch.last_activity.load(Ordering::Relaxed));
            let expired = if head_since != 0 {
                now.saturating_sub(head_since) > settings.header_read_timeout.as_micros() as u64
            } else {
                silent > settings.idle_timeout.as_micros() as u64
            };
            if expired {
                watch.end();
            }
        }
    }
}

/// A connection's bytes, noting activity for the sweeper.
struct Watched {
    stream: TcpStream,
    watch: Arc<Watch>,
    registry: Arc<Registry>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            let now = self.registry.now();
            self.watch.last_activity.store(now, Ordering::Relaxed);
            if self.watch.idle() {
                let _ = self.watch.head_since.compare_exchange(
                    0,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            let now = self.registry.now();
            self.watch.last_activity.store(now, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Marks a request as in flight for as long as it lives.
struct InFlight {
    watch: Arc<Watch>,
    registry: Arc<Registry>,
}

impl InFlight {
    fn start(watch: Arc<Watch>, registry: Arc<Registry>) -> Self {
        watch.in_flight.fetch_add(1, Ordering::Relaxed);
        watch.head_since.store(0, Ordering::Relaxed);
        Self { watch, registry }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.watch
            .last_activity
            .store(self.registry.now(), Ordering::Relaxed);
        self.watch.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the
/// requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry {
        started: Instant::now(),
        connections: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        ended: Notify::new(),
        shutting_down: AtomicBool::new(false),
    });
    let sweeper = {
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            loop {
                every.tick().await;
                registry.sweep(&settings);
            }
        })
    };
    tokio::pin!(shutdown);
    loop {
        // At the cap: make room by closing the longest idle connection, or
        // wait for one to end; new connections wait in the backlog.
        while registry.len() >= settings.max_connections.max(1) {
            let ended = registry.ended.notified();
            registry.evict_one();
            tokio::select! {
                _ = ended => {}
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
                _ = &mut shutdown => return finish(registry, sweeper).await,
            }
        }
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a moment rather than spin.
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return finish(registry, sweeper).await,
        };
        let _ = stream.set_nodelay(true);
        let id = registry.next_id.fetch_add(1, Ordering::Relaxed);
        let watch = Arc::new(Watch::new(registry.now()));
        registry
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::clone(&watch));
        tokio::spawn(connection(
            stream,
            router.clone(),
            Arc::clone(&registry),
            id,
            watch,
        ));
    }
}

async fn connection(
    stream: TcpStream,
    router: Router,
    registry: Arc<Registry>,
    id: u64,
    watch: Arc<Watch>,
) {
    // The client's address, for what is decided per address (the
    // throttling of failed authentications).
    let peer = stream.peer_addr().ok().map(axum::extract::ConnectInfo);
    let io = TokioIo::new(Watched {
        stream,
        watch: Arc::clone(&watch),
        registry: Arc::clone(&registry),
    });
    let service = {
        let (watch, registry) = (Arc::clone(&watch), Arc::clone(&registry));
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            if let Some(peer) = peer {
                request.extensions_mut().insert(peer);
            }
            let in_flight = InFlight::start(Arc::clone(&watch), Arc::clone(&registry));
            let router = router.clone();
            async move {
                let response = router.oneshot(request.map(axum::body::Body::new)).await;
                drop(in_flight);
                response
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut graceful = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = watch.close.notified(), if !graceful => {
                if watch.idle() {
                    // Nothing is being answered: a half-sent request, an
                    // idle keep-alive, or shutdown.
                    break;
                }
                // Answer what is in flight, then close.
                conn.as_mut().graceful_shutdown();
                graceful = true;
            }
        }
    }
    registry
        .connections
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    registry.ended.notify_waiters();
}

/// Stops accepting, asks every connection to finish, and waits for them.
async fn finish(
    registry: Arc<Registry>,
    sweeper: tokio::task::JoinHandle<()>,
) -> std::io::Result<()> {
    sweeper.abort();
    registry.shutting_down.store(true, Ordering::Relaxed);
    loop {
        let ended = registry.ended.notified();
        {
            let connections = registry
                .connections
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if connections.is_empty() {
                return Ok(());
            }
            for watch in connections.values() {
                watch.close.notify_one();
            }
        }
        ended.await;
    }
}
