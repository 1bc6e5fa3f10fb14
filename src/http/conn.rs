//! Serving connections: HTTP/1.1 on a listener, with the limits a public
//! server needs against slow and idle clients.
//!
//! Every connection's bytes pass through a wrapper that notes when it last
//! read or wrote, and whether a request's head has begun to arrive; a
//! request's body passes through another that notes when the handler began
//! waiting for more of it. A sweeper looks at every connection five times a
//! second and
//!
//! - closes a connection whose request head has been arriving for longer
//!   than the header read timeout (a half-sent request, "slowloris"),
//! - answers `408 {"error":"Request Timeout"}` (and closes) a request whose
//!   body has sent nothing for longer than the body read timeout while the
//!   handler waits for it (a stalled body: the gap between two reads, as
//!   nginx's `client_body_timeout`),
//! - closes a connection with no request in flight that has been silent for
//!   longer than the keep-alive idle timeout, and
//! - closes a connection whose response the client has taken nothing of
//!   (every write blocked) for longer than that same timeout.
//!
//! A request is in flight from its head to the last byte of its response
//! handed to the socket, and is otherwise never cut (the request timeout
//! bounds its handling). At most `max_connections` are open: at the cap,
//! the longest idle connection is closed to make room for a new one, and
//! when none is idle the next connection waits in the kernel's backlog until
//! one ends, so that a flood of silent connections cannot keep `/healthz`
//! from answering. One client address holds at most
//! `max_connections_per_address` of them: over that, its own longest idle
//! connection makes room, and when none of its connections is idle the new
//! one is closed at once, so that one host's slow requests cannot take every
//! connection. On shutdown the listener is closed (a new connection is
//! refused), idle connections are closed and the requests in flight finish,
//! their responses sent whole and stalled bodies still answered 408; what is
//! still open after the shutdown's grace (the request timeout plus the body
//! read timeout) is closed, so that a client that never reads its response
//! cannot hold the shutdown up.
//!
//! Every request head is checked before hyper reads it ([`gate`]): one that
//! hyper would answer with a bare status and an empty body (a request line
//! or header it cannot read, 414, 431) is held back, and hyper is handed a
//! stand-in head in its place, which the service answers with Bento's JSON
//! error and `Connection: close`, after the responses before it and in the
//! order hyper keeps. What the client sends after the refused head is read
//! and dropped until it closes (for at most the header read timeout), so
//! that closing does not reset the connection before the answer is read.

mod gate;

use axum::Router;
use axum::body::Bytes;
use axum::response::IntoResponse;
use gate::{Gate, Refusal};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, ready};
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
    /// How long a request's body may send nothing while it is waited for.
    pub body_read_timeout: Duration,
    /// How long a connection with no request in flight may stay silent, and
    /// a response the client takes nothing of may wait.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one client address; 0 for no such cap.
    pub max_connections_per_address: usize,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_address: 256,
        }
    }
}

/// How often connections are looked at.
const SWEEP_EVERY: Duration = Duration::from_millis(200);

/// What the sweeper knows of one connection. Times are microseconds since
/// the server started; 0 is "not since".
struct Watch {
    /// The client's address (an IPv4 address mapped into IPv6 as itself).
    address: IpAddr,
    last_activity: AtomicU64,
    /// When the head of a request began to arrive, while no request is
    /// being handled.
    head_since: AtomicU64,
    in_flight: AtomicUsize,
    /// Since when the request being handled has waited for its body with
    /// nothing arriving.
    body_waiting_since: AtomicU64,
    /// Since when the socket has taken none of what is being written to it.
    write_blocked_since: AtomicU64,
    /// Notified while the request's body has stalled.
    body_stalled: Notify,
    /// Set (and `close` notified) when the connection must end: it is not
    /// picked again to make room.
    closing: AtomicBool,
    close: Notify,
    /// Requests hyper has handed to the service.
    requests: AtomicU64,
    /// A refused head: the index among those requests of the stand-in that
    /// takes its place, and why.
    refused: OnceLock<(u64, Refusal)>,
}

impl Watch {
    fn new(now: u64, address: IpAddr) -> Self {
        Self {
            address,
            last_activity: AtomicU64::new(now),
            head_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            body_waiting_since: AtomicU64::new(0),
            write_blocked_since: AtomicU64::new(0),
            body_stalled: Notify::new(),
            closing: AtomicBool::new(false),
            close: Notify::new(),
            requests: AtomicU64::new(0),
            refused: OnceLock::new(),
        }
    }

    fn end(&self) {
        self.closing.store(true, Ordering::Relaxed);
        self.close.notify_one();
    }

    /// Nothing to answer and nothing waiting to be written.
    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && self.write_blocked_since.load(Ordering::Relaxed) == 0
    }

    /// Whether the connection may be closed to make room: nothing in flight,
    /// and not already closing.
    fn evictable(&self) -> bool {
        self.idle() && !self.closing.load(Ordering::Relaxed)
    }
}

/// The open connections, and how many each client address holds.
#[derive(Default)]
struct Open {
    by_id: HashMap<u64, Arc<Watch>>,
    per_address: HashMap<IpAddr, usize>,
}

impl Open {
    fn insert(&mut self, id: u64, watch: Arc<Watch>) {
        *self.per_address.entry(watch.address).or_default() += 1;
        self.by_id.insert(id, watch);
    }

    fn remove(&mut self, id: u64) {
        let Some(watch) = self.by_id.remove(&id) else {
            return;
        };
        if let Some(count) = self.per_address.get_mut(&watch.address) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&watch.address);
            }
        }
    }

    /// Closes the connection idle the longest (of `address` only, when
    /// given); whether there was one.
    fn evict_one(&self, address: Option<IpAddr>) -> bool {
        // The longest silent; between equals, the one accepted first.
        let oldest = self
            .by_id
            .iter()
            .filter(|(_, w)| w.evictable() && address.is_none_or(|a| w.address == a))
            .min_by_key(|(id, w)| (w.last_activity.load(Ordering::Relaxed), **id));
        match oldest {
            Some((_, watch)) => {
                watch.end();
                true
            }
            None => false,
        }
    }
}

struct Registry {
    started: Instant,
    open: Mutex<Open>,
    next_id: AtomicU64,
    /// Notified whenever a connection ends.
    ended: Notify,
}

impl Registry {
    fn now(&self) -> u64 {
        self.started.elapsed().as_micros() as u64 + 1
    }

    fn open(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sweep(&self, settings: &ConnectionSettings) {
        let now = self.now();
        let since = |at: &AtomicU64| match at.load(Ordering::Relaxed) {
            0 => None,
            at => Some(Duration::from_micros(now.saturating_sub(at))),
        };
        let open = self.open();
        for watch in open.by_id.values() {
            // A response nobody takes: the client reads nothing.
            if since(&watch.write_blocked_since).is_some_and(|d| d > settings.idle_timeout) {
                watch.end();
                continue;
            }
            if !watch.idle() {
                if since(&watch.body_waiting_since).is_some_and(|d| d > settings.body_read_timeout)
                {
                    watch.body_stalled.notify_waiters();
                }
                continue;
            }
            let expired = match since(&watch.head_since) {
                Some(arriving) => arriving > settings.header_read_timeout,
                None => since(&watch.last_activity).is_some_and(|d| d > settings.idle_timeout),
            };
            if expired {
                watch.end();
            }
        }
    }
}

/// The request head hyper is handed in place of a refused one.
const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n";

/// Bytes read at a time while a head is held back, or dropped.
const READ_CHUNK: usize = 8192;

/// A connection's bytes, noting activity for the sweeper, and handed to
/// hyper only once the gate has checked them.
struct Watched {
    stream: TcpStream,
    watch: Arc<Watch>,
    registry: Arc<Registry>,
    gate: Gate,
    /// Bytes read and not yet handed to hyper: the first `cleared` of them
    /// (from `given` on) may be, the rest is a head not yet whole.
    held: Vec<u8>,
    given: usize,
    cleared: usize,
    /// What is left to hand of the stand-in for a refused head.
    stand_in: &'static [u8],
    /// A head was refused: from the stand-in on, what the client sends is
    /// dropped.
    refusing: bool,
    /// The socket's sending side is shut, while the rest is dropped.
    shut: bool,
}

impl Watched {
    fn new(stream: TcpStream, watch: Arc<Watch>, registry: Arc<Registry>) -> Self {
        Self {
            stream,
            watch,
            registry,
            gate: Gate::new(),
            held: Vec::new(),
            given: 0,
            cleared: 0,
            stand_in: &[],
            refusing: false,
            shut: false,
        }
    }

    /// Reads from the socket into `buf`, noting activity.
    fn read_socket(
        &mut self,
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

    /// Reads onto the head held back; how many bytes came (0: the end).
    fn read_held(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let mut chunk = [0u8; READ_CHUNK];
        let mut buf = ReadBuf::new(&mut chunk);
        ready!(self.read_socket(cx, &mut buf))?;
        self.held.extend_from_slice(buf.filled());
        Poll::Ready(Ok(buf.filled().len()))
    }

    /// Reads and drops what the client sends; `Ready` once it has closed
    /// its side (or the connection failed).
    fn poll_drop_input(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut chunk = [0u8; READ_CHUNK];
        // A bounded number of reads a turn, so that a client sending
        // without pause cannot keep the task from yielding.
        for _ in 0..16 {
            let mut buf = ReadBuf::new(&mut chunk);
            match self.read_socket(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Holds the refused head back and hands hyper the stand-in after what
    /// was cleared before it.
    fn refuse(&mut self, refusal: Refusal) {
        let _ = self.watch.refused.set((self.gate.heads(), refusal));
        self.stand_in = STAND_IN;
        self.refusing = true;
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            // First what the gate cleared, then the stand-in for a refused
            // head.
            if this.given < this.cleared {
                let n = (this.cleared - this.given).min(buf.remaining());
                buf.put_slice(&this.held[this.given..this.given + n]);
                this.given += n;
                if this.given == this.cleared {
                    this.held.drain(..this.cleared);
                    (this.given, this.cleared) = (0, 0);
                }
                return Poll::Ready(Ok(()));
            }
            if !this.stand_in.is_empty() {
                let n = this.stand_in.len().min(buf.remaining());
                buf.put_slice(&this.stand_in[..n]);
                this.stand_in = &this.stand_in[n..];
                return Poll::Ready(Ok(()));
            }
            if this.refusing {
                // hyper reads on while it answers the stand-in, only to
                // notice a client gone: it is never told, so that the
                // answer is written whole.
                ready!(this.poll_drop_input(cx));
                return Poll::Pending;
            }
            if this.held.is_empty() {
                // Straight into hyper's buffer; what the gate does not
                // clear is taken back out of it.
                let before = buf.filled().len();
                ready!(this.read_socket(cx, buf))?;
                let read = buf.filled().len() - before;
                if read == 0 {
                    return Poll::Ready(Ok(()));
                }
                let step = this.gate.advance(&buf.filled()[before..], false);
                if step.cleared < read {
                    let kept = before + step.cleared;
                    if step.refused.is_none() {
                        this.held.extend_from_slice(&buf.filled()[kept..]);
                    }
                    buf.set_filled(kept);
                }
                if let Some(refusal) = step.refused {
                    this.refuse(refusal);
                }
                if step.cleared > 0 {
                    return Poll::Ready(Ok(()));
                }
            } else {
                // A head is held back until it is whole.
                let eof = ready!(this.read_held(cx))? == 0;
                let step = this.gate.advance(&this.held, eof);
                this.cleared = step.cleared;
                if let Some(refusal) = step.refused {
                    this.held.truncate(step.cleared);
                    this.refuse(refusal);
                } else if eof && step.cleared == 0 {
                    // Ended half way through a head, as hyper would see it.
                    this.held.clear();
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        let blocked = &self.watch.write_blocked_since;
        match polled {
            Poll::Ready(Ok(n)) if n > 0 => {
                let now = self.registry.now();
                self.watch.last_activity.store(now, Ordering::Relaxed);
                blocked.store(0, Ordering::Relaxed);
            }
            Poll::Pending => {
                let now = self.registry.now();
                let _ = blocked.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
            }
            _ => {}
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if !this.refusing {
            return Pin::new(&mut this.stream).poll_shutdown(cx);
        }
        // The answer to a refused head is sent: what the client still sends
        // is dropped until it closes, so that closing with its bytes unread
        // does not reset the connection before it reads the answer. The
        // sweeper bounds this by the header read timeout.
        if !this.shut {
            ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            this.shut = true;
            let now = this.registry.now();
            let _ = this.watch.head_since.compare_exchange(
                0,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        ready!(this.poll_drop_input(cx));
        Poll::Ready(Ok(()))
    }
}

/// A request's body, noting for the sweeper since when the handler has
/// waited for more of it with nothing arriving.
struct WatchedBody {
    body: Incoming,
    watch: Arc<Watch>,
    registry: Arc<Registry>,
}

impl hyper::body::Body for WatchedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        let waiting = &self.watch.body_waiting_since;
        match polled {
            Poll::Pending => {
                let now = self.registry.now();
                let _ = waiting.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
            }
            Poll::Ready(_) => waiting.store(0, Ordering::Relaxed),
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        self.watch.body_waiting_since.store(0, Ordering::Relaxed);
    }
}

/// A response's body, holding its request in flight until hyper has taken
/// the whole of it (or dropped it).
struct Answering {
    body: axum::body::Body,
    in_flight: Option<InFlight>,
}

impl hyper::body::Body for Answering {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.in_flight = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
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
        watch.body_waiting_since.store(0, Ordering::Relaxed);
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

/// Serves `router` on `listener` until `shutdown` resolves, then closes the
/// listener and lets the requests in flight finish, for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ConnectionSettings,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry {
        started: Instant::now(),
        open: Mutex::new(Open::default()),
        next_id: AtomicU64::new(0),
        ended: Notify::new(),
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
        while registry.open().by_id.len() >= settings.max_connections.max(1) {
            let ended = registry.ended.notified();
            registry.open().evict_one(None);
            tokio::select! {
                _ = ended => {}
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
                _ = &mut shutdown => break,
            }
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a moment rather than spin.
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some((id, watch)) = admit(&registry, &settings, peer) else {
            // Over its address's cap with nothing of its own to close.
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            router.clone(),
            Arc::clone(&registry),
            id,
            watch,
        ));
    }
    // From here a new connection is refused rather than left in a backlog
    // nobody reads.
    drop(listener);
    finish(registry, sweeper, grace).await
}

/// Registers a connection from `peer`, unless its address holds its cap of
/// connections and none of them is idle to make room.
fn admit(
    registry: &Registry,
    settings: &ConnectionSettings,
    peer: SocketAddr,
) -> Option<(u64, Arc<Watch>)> {
    let address = peer.ip().to_canonical();
    let mut open = registry.open();
    let cap = settings.max_connections_per_address;
    if cap > 0
        && open.per_address.get(&address).copied().unwrap_or(0) >= cap
        && !open.evict_one(Some(address))
    {
        tracing::debug!(%address, "connection refused: the address holds its cap of connections");
        return None;
    }
    let id = registry.next_id.fetch_add(1, Ordering::Relaxed);
    let watch = Arc::new(Watch::new(registry.now(), address));
    open.insert(id, Arc::clone(&watch));
    Some((id, watch))
}

impl From<Refusal> for super::ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Malformed(detail) => Self::MalformedRequest(detail),
            Refusal::TargetTooLong => Self::UriTooLong,
            Refusal::HeadTooLarge => Self::HeadTooLarge,
        }
    }
}

/// `{"error":"Request Timeout"}`: the request's body stopped arriving. The
/// connection closes after it (the rest of the body was never read).
fn body_timed_out() -> hyper::Response<axum::body::Body> {
    use axum::http::{HeaderValue, StatusCode, header};
    let mut response = super::respond::json_response(
        StatusCode::REQUEST_TIMEOUT,
        &crate::wire::ErrorBody {
            error: "Request Timeout".into(),
        },
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
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
    let io = TokioIo::new(Watched::new(
        stream,
        Arc::clone(&watch),
        Arc::clone(&registry),
    ));
    let service = {
        let (watch, registry) = (Arc::clone(&watch), Arc::clone(&registry));
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            if let Some(peer) = peer {
                request.extensions_mut().insert(peer);
            }
            let index = watch.requests.fetch_add(1, Ordering::Relaxed);
            let refused = watch
                .refused
                .get()
                .and_then(|&(at, refusal)| (at == index).then_some(refusal));
            let in_flight = InFlight::start(Arc::clone(&watch), Arc::clone(&registry));
            let router = router.clone();
            let request = request.map(|body| {
                axum::body::Body::new(WatchedBody {
                    body,
                    watch: Arc::clone(&watch),
                    registry: Arc::clone(&registry),
                })
            });
            let watch = Arc::clone(&watch);
            async move {
                let stalled = watch.body_stalled.notified();
                let response = match refused {
                    Some(refusal) => {
                        let error = super::ApiError::from(refusal);
                        tracing::info!(%error, "request head refused");
                        Ok(error.into_response())
                    }
                    None => tokio::select! {
                        response = router.oneshot(request) => response,
                        () = stalled => {
                            tracing::info!("request body stalled: answered 408");
                            Ok(body_timed_out())
                        }
                    },
                };
                response.map(|response| {
                    response.map(|body| Answering {
                        body,
                        in_flight: Some(in_flight),
                    })
                })
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
            _ = watch.close.notified() => {
                if watch.closing.load(Ordering::Relaxed) || watch.idle() {
                    // Told to end (a response nobody reads, the shutdown's
                    // grace spent), or nothing is being answered: a
                    // half-sent request, an idle keep-alive, or shutdown.
                    break;
                }
                if !graceful {
                    // Answer what is in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    graceful = true;
                }
            }
        }
    }
    registry.open().remove(id);
    registry.ended.notify_waiters();
}

/// Asks every connection to finish, and waits for them; the sweeper goes on
/// meanwhile, so that a stalled body cannot hold the shutdown up. After
/// `grace`, what is still open is closed.
async fn finish(
    registry: Arc<Registry>,
    sweeper: tokio::task::JoinHandle<()>,
    grace: Duration,
) -> std::io::Result<()> {
    let deadline = Instant::now() + grace;
    let mut overdue = false;
    loop {
        let ended = registry.ended.notified();
        {
            let open = registry.open();
            if open.by_id.is_empty() {
                sweeper.abort();
                return Ok(());
            }
            for watch in open.by_id.values() {
                if overdue {
                    watch.end();
                } else {
                    watch.close.notify_one();
                }
            }
        }
        tokio::select! {
            () = ended => {}
            () = tokio::time::sleep_until(deadline), if !overdue => {
                tracing::warn!(
                    connections = registry.open().by_id.len(),
                    seconds = grace.as_secs(),
                    "shutdown: closing the connections still open after the grace period"
                );
                overdue = true;
            }
        }
    }
}
