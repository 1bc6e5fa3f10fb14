//! Sending what the outbox holds: at least once, in order, each webhook on
//! its own.
//!
//! [`Deliverer::tick`] runs about every quarter second. It asks for the
//! enabled webhooks whose oldest undelivered notification is due, and sends
//! each one's next batch (up to [`BATCH`] notifications, oldest first) in a
//! task of its own, so a slow or failing receiver never holds another back;
//! at most [`CONCURRENT_SENDS`] run at once, and the webhooks due beyond
//! them wait for a later tick.
//! A server holds a webhook (a lease in the database) while it sends, so two
//! servers never send the same batch at once. The request is a `POST` of
//! `{"data":[…]}` signed as the Standard Webhooks specification says
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`; Corral's own
//! deprecated `Corral-Webhook-Id` and `Corral-Signature` beside them: see
//! [`super::signing`]); a 2xx within [`TIMEOUT`] delivers the batch.
//! Anything else is tried again after [`backoff`] (exponential, with
//! jitter, at most an hour apart); a webhook failing for [`DISABLE_AFTER`]
//! is disabled. The target is checked again before each request
//! ([`super::target`]), and the request goes to the very addresses
//! checked, never through a proxy.

use super::{signing, target};
use crate::clock::{Clock, SystemClock};
use crate::storage::Store;
use crate::storage::webhooks::{Attempt, Webhook};
use async_trait::async_trait;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Notifications per request, at most.
pub const BATCH: usize = 100;
/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a webhook may fail before it is disabled.
pub const DISABLE_AFTER: i64 = 3 * 24 * 3_600_000;
/// How long a server holds a webhook while sending (longer than a request).
const LEASE_MS: i64 = 60_000;

/// The wait before the next attempt after `attempts` failed ones: 1 s
/// doubled each time, at most an hour, times 0.75–1.25 chosen by `spread`
/// (the webhook's id), so that webhooks failing together come back apart,
/// and the same failure always waits the same time (a replayed run repeats).
pub fn backoff(attempts: i64, spread: i64) -> i64 {
    let base = 1_000_i64
        .saturating_mul(1 << attempts.clamp(0, 12))
        .min(3_600_000);
    let mut hash =
        (spread as u64 ^ (attempts as u64).rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    hash ^= hash >> 29;
    let jitter = 0.75 + (hash % 1_000) as f64 / 2_000.0;
    (base as f64 * jitter) as i64
}

/// Where a batch goes. [`Http`] posts it to the webhook's URL; a test puts
/// a receiver of its own in its place.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Sends one batch at `now_ms`: the receiver's status, or what kept it
    /// from answering.
    async fn post(
        &self,
        webhook: &Webhook,
        body: &str,
        now_ms: i64,
    ) -> (Option<i64>, Option<String>);
}

/// Posting over HTTP(S) to the webhook's URL, signed, to addresses checked
/// again before each request.
pub struct Http {
    pub allow_private: bool,
}

#[async_trait]
impl Transport for Http {
    async fn post(
        &self,
        webhook: &Webhook,
        body: &str,
        now_ms: i64,
    ) -> (Option<i64>, Option<String>) {
        post(webhook, body, self.allow_private, now_ms).await
    }
}

/// Sends to at most this many webhooks at once (one server): a receiver
/// that hangs holds one of them for at most [`TIMEOUT`], and the others go
/// on; webhooks due beyond it wait for the next tick.
pub const CONCURRENT_SENDS: usize = 32;

/// Sends the outbox's notifications.
pub struct Deliverer {
    /// Woken when the tracker wrote notifications, so they need not wait
    /// for the next tick.
    pub wake: Arc<tokio::sync::Notify>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    transport: Arc<dyn Transport>,
    /// Webhooks this server is sending to now.
    sending: Arc<Mutex<HashSet<i64>>>,
    /// One permit a send in flight.
    slots: Arc<Semaphore>,
    concurrency: usize,
}

/// What one send works with.
struct Target<'a> {
    store: &'a Arc<dyn Store>,
    clock: &'a dyn Clock,
    transport: &'a dyn Transport,
}

impl Deliverer {
    /// A deliverer posting over HTTP, on the system's clock.
    pub fn new(store: Arc<dyn Store>, allow_private: bool) -> Self {
        Self::with_clock(store, allow_private, Arc::new(SystemClock))
    }

    /// A deliverer posting over HTTP that reads the time (attempts, leases,
    /// backoff, the signatures' timestamp) from `clock`.
    pub fn with_clock(store: Arc<dyn Store>, allow_private: bool, clock: Arc<dyn Clock>) -> Self {
        Self::with_transport(store, clock, Arc::new(Http { allow_private }))
    }

    /// A deliverer that sends through `transport`, on `clock`.
    pub fn with_transport(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        transport: Arc<dyn Transport>,
    ) -> Self {
        Self {
            wake: Arc::default(),
            store,
            clock,
            transport,
            sending: Arc::default(),
            slots: Arc::new(Semaphore::new(CONCURRENT_SENDS)),
            concurrency: CONCURRENT_SENDS,
        }
    }

    /// Sends to at most `sends` webhooks at once instead of
    /// [`CONCURRENT_SENDS`].
    pub fn at_most(mut self, sends: usize) -> Self {
        self.slots = Arc::new(Semaphore::new(sends));
        self.concurrency = sends;
        self
    }

    /// Starts a send, in a task of its own, for every due webhook not being
    /// sent to already, while fewer than the bound are in flight; returns
    /// how many it started. It does not wait for them ([`Deliverer::idle`]
    /// does).
    pub async fn tick(&self, now: i64) -> usize {
        let due = match self.store.due_webhooks(now).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "due webhooks could not be read");
                return 0;
            }
        };
        let mut started = 0;
        for (site_id, id) in due {
            let slot = {
                let mut sending = self.sending.lock().unwrap_or_else(|e| e.into_inner());
                if sending.contains(&id) {
                    continue;
                }
                let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
                    tracing::debug!("every delivery slot is taken; the rest wait for a later tick");
                    break;
                };
                sending.insert(id);
                slot
            };
            started += 1;
            let store = Arc::clone(&self.store);
            let clock = Arc::clone(&self.clock);
            let transport = Arc::clone(&self.transport);
            let sending = Arc::clone(&self.sending);
            tokio::spawn(async move {
                let to = Target {
                    store: &store,
                    clock: clock.as_ref(),
                    transport: transport.as_ref(),
                };
                if let Err(error) = send(&to, site_id, id).await {
                    tracing::warn!(site_id, webhook_id = id, %error, "a webhook delivery failed to run");
                }
                sending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                drop(slot);
            });
        }
        started
    }

    /// How many sends this deliverer has in flight now.
    pub fn in_flight(&self) -> usize {
        self.sending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Waits until no send this deliverer started is in flight.
    pub async fn idle(&self) {
        let all = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        let _all = self
            .slots
            .acquire_many(all)
            .await
            .expect("the slots are never closed");
    }
}

/// Sends a webhook's next batch, and records how it went.
async fn send(to: &Target<'_>, site_id: i64, id: i64) -> Result<(), crate::storage::StorageError> {
    // While batches go through whole, the next follows at once: a busy
    // webhook is not held to one batch a tick.
    for _ in 0..ROUNDS {
        if !send_batch(to, site_id, id).await? {
            break;
        }
    }
    Ok(())
}

/// Batches one send may deliver back to back (10,000 notifications).
const ROUNDS: usize = 100;

/// Sends a webhook's next batch and records how it went; whether a full
/// batch was delivered (so more may wait).
async fn send_batch(
    to: &Target<'_>,
    site_id: i64,
    id: i64,
) -> Result<bool, crate::storage::StorageError> {
    let store = to.store;
    let now = to.clock.now_ms();
    if !store
        .lease_webhook(site_id, id, now, now + LEASE_MS)
        .await?
    {
        return Ok(false);
    }
    let Some(webhook) = store.get_webhook(site_id, id).await? else {
        return Ok(false);
    };
    let batch = store.pending_deliveries(site_id, id, BATCH).await?;
    let Some(first) = batch.first() else {
        let attempt = Attempt {
            at: now,
            status: None,
            error: None,
            delivered: true,
            next_attempt_at: now,
            disable_if_failing_since: now - DISABLE_AFTER,
        };
        store.record_attempt(site_id, id, &[], &attempt).await?;
        return Ok(false);
    };
    let body = format!(
        "{{\"data\":[{}]}}",
        batch
            .iter()
            .map(|d| d.body.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    let (status, error) = to.transport.post(&webhook, &body, now).await;
    crate::crash_point!("delivery.after_send");
    let at = to.clock.now_ms();
    let delivered = status.is_some_and(|s| (200..300).contains(&s));
    let attempt = Attempt {
        at,
        status,
        error: if delivered {
            None
        } else {
            Some(error.unwrap_or_else(|| format!("answered {}", status.unwrap_or_default())))
        },
        delivered,
        next_attempt_at: at + backoff(first.attempts, id),
        disable_if_failing_since: at - DISABLE_AFTER,
    };
    if !delivered {
        tracing::info!(
            site_id,
            webhook_id = id,
            status,
            error = attempt.error.as_deref(),
            attempts = first.attempts + 1,
            "a webhook delivery will be tried again"
        );
    }
    let ids: Vec<i64> = batch.iter().map(|d| d.id).collect();
    store.record_attempt(site_id, id, &ids, &attempt).await?;
    Ok(delivered && batch.len() == BATCH)
}

/// Chooses the TLS implementation `https` targets are reached with (ring,
/// checking certificates against the system's roots), once per process:
/// before it, building an HTTP client panics.
pub fn install_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Already chosen (by an embedding program): keep that one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client that sends to the addresses checked for `host`, follows no
/// redirect, gives up after [`TIMEOUT`] and uses no proxy: one named by the
/// environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`) would resolve the
/// host itself and reach whatever it names, past the address check.
fn client(host: &str, addrs: &[std::net::SocketAddr]) -> reqwest::Result<reqwest::Client> {
    install_tls();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .resolve_to_addrs(host, addrs)
        .build()
}

/// One request: the receiver's status, or what kept it from answering.
async fn post(
    webhook: &Webhook,
    body: &str,
    allow_private: bool,
    now_ms: i64,
) -> (Option<i64>, Option<String>) {
    let url = match target::parse(&webhook.url) {
        Ok(url) => url,
        Err(message) => return (None, Some(format!("the URL {message}"))),
    };
    let addrs = match target::resolve(&url, allow_private).await {
        Ok(addrs) => addrs,
        Err(message) => return (None, Some(format!("the target {message}"))),
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    let client = match client(&host, &addrs) {
        Ok(client) => client,
        Err(error) => return (None, Some(error.to_string())),
    };
    // Unix seconds of this attempt (whole, rounded down as the
    // specification's libraries round them).
    let seconds = now_ms.div_euclid(1000);
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("Corral/", env!("CARGO_PKG_VERSION")));
    for (name, value) in signing::headers(webhook.id, &webhook.secret, seconds, body) {
        request = request.header(name, value);
    }
    let sent = request.body(body.to_owned()).send().await;
    match sent {
        Ok(response) => (Some(i64::from(response.status().as_u16())), None),
        Err(error) if error.is_timeout() => (None, Some("no answer within 10 s".into())),
        Err(error) => (None, Some(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn https_targets_are_reached_with_tls_and_a_bad_peer_is_an_error_not_a_crash() {
        // A peer that answers in plain text: the TLS handshake must fail.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            if let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
            }
        });
        let client = client("hooks.example.com", &[addr]).expect("a TLS client builds");
        let sent = client
            .post(format!("https://hooks.example.com:{}/x", addr.port()))
            .send()
            .await;
        assert!(sent.is_err(), "{sent:?}");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_an_hour() {
        for attempts in 0..20 {
            let waits: HashSet<i64> = (1..50).map(|webhook| backoff(attempts, webhook)).collect();
            let base = (1_000_i64 << attempts.min(12)).min(3_600_000) as f64;
            for &wait in &waits {
                assert!(
                    wait as f64 >= base * 0.75 && wait as f64 <= base * 1.25,
                    "{attempts}: {wait}"
                );
            }
            // Webhooks failing together come back apart, each the same way
            // every time.
            assert!(waits.len() > 25, "{attempts}: {waits:?}");
            assert_eq!(backoff(attempts, 7), backoff(attempts, 7));
        }
    }
}
