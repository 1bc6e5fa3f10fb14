//! The simulation's webhook receiver: it stands in for the network and the
//! far end, in place of [`crate::webhooks::delivery::Http`]. How it answers
//! a batch (at once, with a failure, late, never until a timeout, refused)
//! is chosen from the seed, the webhook and how many batches that webhook
//! sent before, never from the order in which concurrent sends arrive, so a
//! replayed run answers the same. A late or hanging answer is parked until
//! the simulation releases it, which lets the clock move (and a lease run
//! out) while a send is in flight.

use crate::storage::webhooks::Webhook;
use crate::webhooks::delivery::Transport;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// How the far end treats one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Takes it and answers 200.
    Ok,
    /// Takes it and answers 500 (it is sent again later).
    Fails,
    /// Takes it, and answers 200 only when released.
    Late,
    /// Never answers; when released, the sender's timeout has passed.
    Hangs,
    /// Nobody listens.
    Refused,
}

/// One notification as it arrived.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub webhook_id: i64,
    pub body: Value,
}

/// A send waiting for its answer.
struct Parked {
    server: usize,
    webhook_id: i64,
    answer: Answer,
    release: oneshot::Sender<()>,
}

#[derive(Default)]
struct State {
    /// Batches each webhook sent so far.
    sent: BTreeMap<i64, u64>,
    /// Every notification taken, in arrival order (copies included).
    arrivals: Vec<Arrival>,
    /// The body each event id first arrived with.
    bodies: BTreeMap<String, String>,
    /// An event id that came again with another body.
    unstable: Option<String>,
    parked: Vec<Parked>,
    /// Whether every batch is answered 200 at once from now on.
    healthy: bool,
    /// Servers that died: their parked sends never come back.
    dead: Vec<(usize, u64)>,
}

pub struct Receiver {
    seed: u64,
    state: Mutex<State>,
}

impl Receiver {
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            seed,
            state: Mutex::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The far end of server `server` (`generation` tells a restarted
    /// server from the one that died).
    pub fn end(self: &Arc<Self>, server: usize, generation: u64) -> Arc<End> {
        Arc::new(End {
            receiver: Arc::clone(self),
            server,
            generation,
        })
    }

    fn answer(&self, webhook_id: i64, nth: u64) -> Answer {
        let mut h = self.seed ^ (webhook_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= nth.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 31;
        h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 29;
        match h % 100 {
            0..60 => Answer::Ok,
            60..75 => Answer::Fails,
            75..85 => Answer::Late,
            85..95 => Answer::Hangs,
            _ => Answer::Refused,
        }
    }

    /// Sends parked on `server`.
    pub fn parked_on(&self, server: usize) -> usize {
        self.state()
            .parked
            .iter()
            .filter(|p| p.server == server)
            .count()
    }

    pub fn parked(&self) -> usize {
        self.state().parked.len()
    }

    /// Lets the `index`th parked send (modulo how many there are, in the
    /// order of server and webhook, not of arrival) answer: its server, and
    /// whether it was a late answer (`false`: a timeout).
    pub fn release(&self, index: usize) -> Option<(usize, bool)> {
        let mut state = self.state();
        if state.parked.is_empty() {
            return None;
        }
        state.parked.sort_by_key(|p| (p.server, p.webhook_id));
        let i = index % state.parked.len();
        let parked = state.parked.remove(i);
        let late = parked.answer == Answer::Late;
        let _ = parked.release.send(());
        Some((parked.server, late))
    }

    /// Every parked send of `server` is dropped: the process died with
    /// them in flight.
    pub fn server_died(&self, server: usize, generation: u64) {
        let mut state = self.state();
        state.dead.push((server, generation));
        state.parked.retain(|p| p.server != server);
    }

    /// From now on every batch is answered 200 at once.
    pub fn heal(&self) {
        self.state().healthy = true;
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state().arrivals.clone()
    }

    /// An event id that arrived twice with different bodies.
    pub fn unstable(&self) -> Option<String> {
        self.state().unstable.clone()
    }

    fn take(state: &mut State, webhook_id: i64, body: &str) {
        let Ok(batch) = serde_json::from_str::<Value>(body) else {
            state.unstable = Some(format!("a body that is not JSON: {body}"));
            return;
        };
        for notification in batch["data"].as_array().cloned().unwrap_or_default() {
            let id = notification["event_id"].as_str().unwrap_or("").to_owned();
            let text = notification.to_string();
            match state.bodies.get(&id) {
                Some(first) if *first != text => {
                    state.unstable = Some(format!("{id}: {first} then {text}"));
                }
                Some(_) => {}
                None => {
                    state.bodies.insert(id, text);
                }
            }
            state.arrivals.push(Arrival {
                webhook_id,
                body: notification,
            });
        }
    }
}

/// One server's way to the receiver.
pub struct End {
    receiver: Arc<Receiver>,
    server: usize,
    generation: u64,
}

#[async_trait]
impl Transport for End {
    async fn post(
        &self,
        webhook: &Webhook,
        body: &str,
        _now_ms: i64,
    ) -> (Option<i64>, Option<String>) {
        let waiting = {
            let mut state = self.receiver.state();
            if state.dead.contains(&(self.server, self.generation)) {
                None
            } else {
                let nth = state.sent.entry(webhook.id).or_default();
                *nth += 1;
                let nth = *nth;
                let answer = if state.healthy {
                    Answer::Ok
                } else {
                    self.receiver.answer(webhook.id, nth)
                };
                if matches!(answer, Answer::Ok | Answer::Fails | Answer::Late) {
                    Receiver::take(&mut state, webhook.id, body);
                }
                match answer {
                    Answer::Ok => return (Some(200), None),
                    Answer::Fails => return (Some(500), None),
                    Answer::Refused => return (None, Some("connection refused".into())),
                    Answer::Late | Answer::Hangs => {
                        let (release, released) = oneshot::channel();
                        state.parked.push(Parked {
                            server: self.server,
                            webhook_id: webhook.id,
                            answer,
                            release,
                        });
                        Some((answer, released))
                    }
                }
            }
        };
        let Some((answer, released)) = waiting else {
            // A send of a server that died: it never comes back.
            return std::future::pending().await;
        };
        if released.await.is_err() {
            // Dropped with its server.
            return std::future::pending().await;
        }
        match answer {
            Answer::Late => (Some(200), None),
            _ => (None, Some("no answer within 10 s".into())),
        }
    }
}
