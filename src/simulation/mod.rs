//! A deterministic simulation of the write path: audience writes through
//! the change log, snapshots caught up from it, the tracker turning
//! membership changes into the outbox, and the deliverer sending it, on two
//! servers sharing one database (SQLite or PostgreSQL), with a clock, a
//! random number source and faults the simulation alone controls.
//!
//! One seed drives everything: which server does what, each write, when the
//! clock moves, when the change log or the membership journal is trimmed,
//! when a server dies (anywhere, or at a named crash point of
//! [`crate::faults`]) and comes back, and how the receiver answers
//! ([`receiver`]). Everything runs on one thread, and a step ends only once
//! every send it started has finished or is parked at the receiver, so the
//! same seed replays the same run. A failure names its seed and step;
//! `CORRAL_SIM_SEED` and `CORRAL_SIM_STEPS` replay it.
//!
//! Checked after every step: each server's snapshot that the step brought
//! forward to the site's head (a snapshot moves only in a job of its own: a
//! read, a catch-up) equals a fresh read of the database, position, audience
//! and every definition; a snapshot left behind is not forced forward, so
//! that snapshots lag as a server's do between reads and trims find them
//! behind. A notification keeps its id and body however often it is sent.
//! After every write and every trim (the steps that add or delete events),
//! the events added since the last look are read, each change the step
//! acknowledged must be among them, and the events table's count must be
//! the rows seen before plus those, so none acknowledged earlier went; after
//! every death, and at the end, the whole table is read again and every
//! change ever acknowledged must be in it. Checked at the end, once the
//! receiver is healthy and the outbox is drained: replaying each segment's
//! notifications (joins and leaves, in order, duplicates dropped) gives the
//! segment's members now, with no join of someone already in, no leave of
//! someone out, and no subscriber that was never committed.

mod receiver;

use crate::clock::{Clock, ManualClock};
use crate::faults;
use crate::live::Live;
use crate::live::tests::same_as_fresh;
use crate::segment::{NewSegment, SegmentId, SegmentName, SegmentPatch};
use crate::service::webhooks::{WebhookInput, Webhooks};
use crate::storage::actor::Actor;
use crate::storage::transfer::{Cursor, Rows, Table};
use crate::storage::webhooks::WebhookPatch;
use crate::storage::{Precondition, Store};
use crate::webhooks::delivery::{BATCH, Deliverer};
use crate::webhooks::tracker::Tracker;
use corral_core::audience::{
    Email, FieldKey, NewEvent, Outcome, SubscriberChange, Subscription, TagName,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use receiver::Receiver;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// The database a run is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What a run does.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub backend: Backend,
    pub seed: u64,
    pub steps: usize,
    /// Snapshots whose catch-ups drop changes to subscribers they hold.
    pub broken_catch_up: bool,
    /// A tracker that forgets to notify leaves.
    pub broken_tracker: bool,
}

/// An invariant that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A snapshot caught up from the log differs from a fresh read.
    Snapshot(String),
    /// An acknowledged write is missing.
    Lost(String),
    /// Notifications that do not tell the segment's membership.
    Notifications(String),
    /// The outbox did not drain once the receiver was healthy.
    Undelivered(String),
    /// A send neither finished nor reached the receiver.
    Stuck(String),
    /// A step panicked where no crash point fired.
    Panicked(String),
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Snapshot(s) => write!(f, "snapshot: {s}"),
            Self::Lost(s) => write!(f, "lost: {s}"),
            Self::Notifications(s) => write!(f, "notifications: {s}"),
            Self::Undelivered(s) => write!(f, "undelivered: {s}"),
            Self::Stuck(s) => write!(f, "stuck: {s}"),
            Self::Panicked(s) => write!(f, "panicked: {s}"),
        }
    }
}

/// A failed run: where, and what did not hold.
#[derive(Debug)]
pub struct Failure {
    pub step: usize,
    pub violation: Violation,
    /// The last steps, oldest first.
    pub trail: Vec<String>,
    /// What the run did until then.
    pub report: Report,
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub steps: usize,
    pub writes: usize,
    pub acknowledged: usize,
    pub crashes: usize,
    pub crash_points: BTreeMap<&'static str, usize>,
    pub trims: usize,
    pub journal_trims: usize,
    pub catch_ups: usize,
    /// Snapshots compared with a fresh read.
    pub snapshot_checks: usize,
    pub notifications: usize,
    pub copies: usize,
}

const EMAILS: usize = 14;
const TAGS: &[&str] = &["vip", "lead", "churned"];
const PLANS: &[&str] = &["free", "pro"];
/// The segments watched, and what each may be changed to.
const QUERIES: &[&str] = &[
    r#"{"tag":{"has":"vip"}}"#,
    r#"{"field":{"key":"plan","equals":"pro"}}"#,
    r#"{"event":{"type":"purchase","when":{"within_last":{"hours":1}}}}"#,
    r#"{"all":[{"subscribed":true},{"not":{"tag":{"has":"churned"}}}]}"#,
    r#"{"event":{"type":"purchase","count":{"at_least":2}}}"#,
    r#"{"any":[{"tag":{"has":"lead"}},{"field":{"key":"plan","equals":"free"}}]}"#,
];
const START: i64 = 1_767_225_600_000;

/// One server: its own connections, snapshots, tracker and deliverer.
struct Server {
    store: Arc<dyn Store>,
    live: Arc<Live>,
    tracker: Arc<Tracker>,
    deliverer: Arc<Deliverer>,
    generation: u64,
    /// The snapshot's count of jobs (reads, catch-ups) when it was last
    /// found equal to a fresh read: a snapshot moves only in a job.
    checked: Option<u64>,
}

/// The acknowledged changes' markers the events table holds, kept up to
/// date a step at a time.
#[derive(Default)]
struct Stored {
    markers: BTreeSet<String>,
    /// Rows of the events table seen.
    rows: u64,
    /// Where the rows seen end, when known.
    end: Option<Cursor>,
}

struct Sim {
    settings: Settings,
    url: String,
    rng: StdRng,
    clock: Arc<ManualClock>,
    receiver: Arc<Receiver>,
    servers: Vec<Server>,
    generations: u64,
    site: i64,
    segments: Vec<i64>,
    /// Markers of every acknowledged change.
    acknowledged: BTreeSet<String>,
    /// The markers acknowledged in this step.
    just_acknowledged: Vec<String>,
    stored: Stored,
    report: Report,
    trail: Vec<String>,
    step: usize,
    /// The server whose code the step ran (a parked send's, for a release).
    acting: usize,
}

/// Runs a simulation; `None` when it needs PostgreSQL and no test cluster
/// is set up.
pub async fn run(settings: Settings) -> Option<Result<Report, Failure>> {
    let (url, _dir) = match settings.backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("sim.db");
            (format!("sqlite://{}", path.display()), Some(dir))
        }
        Backend::Postgres => (crate::storage::testing::fresh_postgres().await?, None),
    };
    let mut sim = Sim::start(settings, url).await;
    let outcome = sim.run().await;
    Some(
        outcome
            .map(|()| sim.report.clone())
            .map_err(|violation| Failure {
                step: sim.step,
                violation,
                trail: sim.trail.clone(),
                report: Report {
                    steps: sim.step,
                    ..sim.report.clone()
                },
            }),
    )
}

impl Sim {
    async fn start(settings: Settings, url: String) -> Self {
        let store = crate::storage::open(&url).await.unwrap();
        let site = store
            .create_site(
                "sim",
                "site-sim",
                &crate::credentials::KeyPair::generate(),
                false,
                START,
            )
            .await
            .unwrap()
            .id;
        let mut segments = Vec::new();
        for (i, query) in QUERIES.iter().enumerate() {
            let new = NewSegment {
                name: SegmentName::parse(&format!("segment {i}")).unwrap(),
                description: None,
                query: corral_core::query::RawQuery::from_stored((*query).to_owned()),
            };
            segments.push(
                store
                    .create_segment(site, &new, START, &Actor::Cli)
                    .await
                    .unwrap()
                    .id
                    .0,
            );
        }
        let mut sim = Self {
            settings,
            url,
            rng: StdRng::seed_from_u64(settings.seed),
            clock: ManualClock::new(START),
            receiver: Receiver::new(settings.seed),
            servers: Vec::new(),
            generations: 0,
            site,
            segments,
            acknowledged: BTreeSet::new(),
            just_acknowledged: Vec::new(),
            stored: Stored::default(),
            report: Report::default(),
            trail: Vec::new(),
            step: 0,
            acting: 0,
        };
        for _ in 0..2 {
            let server = sim.boot(sim.servers.len()).await;
            sim.servers.push(server);
        }
        // Two webhooks: one on every segment, one on two of them, made
        // before any data (their baselines are empty).
        let live = Arc::clone(&sim.servers[0].live);
        let evaluator: Arc<dyn crate::storage::journal::Evaluator> = live.clone();
        store.set_evaluator(Arc::downgrade(&evaluator));
        let hooks = Webhooks::new(&store, &live, true);
        for ids in [sim.segments.clone(), sim.segments[..2].to_vec()] {
            let input = WebhookInput {
                url: Some("http://127.0.0.1:9/hook".into()),
                segment_ids: Some(ids),
                events: None,
                disabled: None,
            };
            hooks
                .create(site, input, START, &crate::storage::audit::Actor::Cli)
                .await
                .unwrap();
        }
        store.close().await;
        sim
    }

    async fn boot(&mut self, index: usize) -> Server {
        self.generations += 1;
        let store = crate::storage::open(&self.url).await.unwrap();
        let live = Arc::new(Live::new(store.clone()));
        if self.settings.broken_catch_up {
            live.break_catch_up(self.site);
        }
        // The journal evaluates segment writes and sweeps over this
        // server's snapshots, as a server's state sets it up.
        let evaluator: Arc<dyn crate::storage::journal::Evaluator> = live.clone();
        store.set_evaluator(Arc::downgrade(&evaluator));
        let tracker = Tracker::new(Arc::clone(&store));
        if self.settings.broken_tracker {
            tracker.break_leaves();
        }
        let clock: Arc<dyn Clock> = Arc::clone(&self.clock) as _;
        // One send at a time: which of two concurrent sends meets an armed
        // crash point first would depend on the scheduler, not the seed.
        let deliverer = Deliverer::with_transport(
            Arc::clone(&store),
            clock,
            self.receiver.end(index, self.generations),
        )
        .at_most(1);
        Server {
            store,
            live,
            tracker: Arc::new(tracker),
            deliverer: Arc::new(deliverer),
            generation: self.generations,
            checked: None,
        }
    }

    fn note(&mut self, what: String) {
        if self.trail.len() == 40 {
            self.trail.remove(0);
        }
        self.trail.push(format!("{}: {what}", self.step));
    }

    async fn run(&mut self) -> Result<(), Violation> {
        while self.step < self.settings.steps {
            self.step += 1;
            let server = self.rng.random_range(0..self.servers.len());
            let crash = self.rng.random_ratio(1, 10).then(|| {
                let point = faults::POINTS[self.rng.random_range(0..faults::POINTS.len())];
                (point, self.rng.random_range(0..4u32).saturating_sub(2))
            });
            if let Some((point, skip)) = crash {
                faults::arm(point, skip);
            }
            self.acting = server;
            let roll = self.rng.random_range(0..100);
            let step = match roll {
                0..35 => self.write(server).await,
                35..38 => self.change_segment(server).await,
                38..52 => self.catch_up(server).await,
                52..66 => self.track(server).await,
                66..80 => self.deliver(server).await,
                80..86 => self.release().await,
                86..95 => {
                    let ms = self.rng.random_range(1_000..2 * 3_600_000);
                    self.clock.advance_ms(ms);
                    self.note(format!("the clock moves {ms} ms"));
                    Ok(())
                }
                95..97 => self.trim(server).await,
                97..98 => self.trim_journal(server).await,
                _ => {
                    self.note(format!("server {server} is killed"));
                    self.restart(server).await
                }
            };
            if let Some(point) = faults::disarm() {
                *self.report.crash_points.entry(point).or_default() += 1;
                let server = self.acting;
                self.note(format!("server {server} dies at {point}"));
                self.restart(server).await?;
            } else {
                step?;
            }
            if let Some(unstable) = self.receiver.unstable() {
                return Err(Violation::Notifications(format!(
                    "an event id came again with another body: {unstable}"
                )));
            }
            // Only writes add events, and only trims delete rows by
            // design; a death reads the whole table again (in `restart`).
            if matches!(roll, 0..35 | 95..98) {
                self.check_acknowledged(false).await?;
            }
            for index in 0..self.servers.len() {
                self.check_snapshot(index).await?;
            }
        }
        self.report.steps = self.step;
        self.drain().await
    }

    /// Waits until every send of every server has finished or is parked at
    /// the receiver.
    async fn settle(&self) -> Result<(), Violation> {
        for _ in 0..20_000 {
            // A send that died at a crash point never finishes: its server
            // is restarted once the step ends.
            if faults::fired() {
                return Ok(());
            }
            if self
                .servers
                .iter()
                .enumerate()
                .all(|(i, s)| s.deliverer.in_flight() == self.receiver.parked_on(i))
            {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let state: Vec<_> = (0..self.servers.len())
            .map(|i| {
                (
                    self.servers[i].deliverer.in_flight(),
                    self.receiver.parked_on(i),
                )
            })
            .collect();
        Err(Violation::Stuck(format!(
            "sends did not settle in 20 s: (in flight, parked) by server {state:?}"
        )))
    }

    async fn restart(&mut self, index: usize) -> Result<(), Violation> {
        self.report.crashes += 1;
        let generation = self.servers[index].generation;
        self.receiver.server_died(index, generation);
        // The dead server's connections close with it, as a killed process's
        // would: sends it left parked keep its store alive, and over a long
        // run they would exhaust PostgreSQL's connections.
        let dead = Arc::clone(&self.servers[index].store);
        let server = self.boot(index).await;
        drop(std::mem::replace(&mut self.servers[index], server));
        if tokio::time::timeout(std::time::Duration::from_secs(10), dead.close())
            .await
            .is_err()
        {
            return Err(Violation::Stuck(
                "a dead server's connections did not close in 10 s".into(),
            ));
        }
        self.settle().await?;
        // Everything is read again: a death may lose what an older step
        // found stored.
        self.check_acknowledged(true).await
    }

    fn email(&mut self) -> Email {
        let n = self.rng.random_range(0..EMAILS);
        Email::parse(&format!("p{n}@sim.example")).unwrap()
    }

    async fn write(&mut self, index: usize) -> Result<(), Violation> {
        let count = self.rng.random_range(1..=3);
        let mut changes = Vec::new();
        let mut markers = Vec::new();
        for i in 0..count {
            let mut change = SubscriberChange::touch(self.email());
            match self.rng.random_range(0..8) {
                0 => change.add_tags.push(self.tag()),
                1 => change.remove_tags.push(self.tag()),
                2 => {
                    let plan = PLANS[self.rng.random_range(0..PLANS.len())];
                    change
                        .set_field(FieldKey::parse("plan").unwrap(), json!(plan))
                        .unwrap();
                }
                3 => change.remove_fields.push(FieldKey::parse("plan").unwrap()),
                4 => change.subscription = Some(Subscription::Unsubscribe(self.clock.now_ms())),
                5 => change.subscription = Some(Subscription::Subscribe),
                6 if self.rng.random_ratio(1, 4) => change.new_email = Some(self.email()),
                _ => {}
            }
            let marker = format!("{}.{i}", self.step);
            let purchase = self.rng.random_ratio(1, 2);
            let ago = self.rng.random_range(0..2 * 3_600_000);
            change.event = Some(NewEvent {
                kind: if purchase { "purchase" } else { "visit" }.to_owned(),
                occurred_at: self.clock.now_ms() - ago,
                details: json!({ "m": marker }).to_string(),
                unique_key: None,
                amount: None,
                currency: None,
            });
            markers.push(marker);
            changes.push(change);
        }
        self.report.writes += 1;
        self.note(format!("server {index} writes {changes:?}"));
        let store = Arc::clone(&self.servers[index].store);
        let (site, now) = (self.site, self.clock.now_ms());
        let done = step(async move { store.apply_changes(site, changes, now).await }).await?;
        if let Some(Ok(outcomes)) = done {
            for (marker, outcome) in markers.into_iter().zip(outcomes) {
                if outcome == Outcome::Applied {
                    self.report.acknowledged += 1;
                    self.acknowledged.insert(marker.clone());
                    self.just_acknowledged.push(marker);
                }
            }
        }
        Ok(())
    }

    fn tag(&mut self) -> TagName {
        TagName::parse(TAGS[self.rng.random_range(0..TAGS.len())]).unwrap()
    }

    async fn change_segment(&mut self, index: usize) -> Result<(), Violation> {
        let id = SegmentId(self.segments[self.rng.random_range(0..self.segments.len())]);
        let store = Arc::clone(&self.servers[index].store);
        let (site, now) = (self.site, self.clock.now_ms());
        let what = self.rng.random_range(0..4);
        let query = QUERIES[self.rng.random_range(0..QUERIES.len())];
        self.note(format!(
            "server {index} changes segment {id:?} ({what}: {query})"
        ));
        // A refused change (a segment others refer to, one discarded) is
        // an answer like any other.
        step(async move {
            let _ = match what {
                0 => {
                    store
                        .discard_segment(site, id, &Precondition::None, now, &Actor::Cli)
                        .await
                }
                1 => {
                    store
                        .restore_segment(site, id, &Precondition::None, now, &Actor::Cli)
                        .await
                }
                _ => {
                    let patch = SegmentPatch {
                        query: Some(corral_core::query::RawQuery::from_stored(query.to_owned())),
                        ..SegmentPatch::default()
                    };
                    store
                        .update_segment(site, id, &patch, &Precondition::None, now, &Actor::Cli)
                        .await
                }
            };
        })
        .await?;
        Ok(())
    }

    /// A read brings the server's snapshot forward, as a request's does
    /// (the check after the step compares it with a fresh read).
    async fn catch_up(&mut self, index: usize) -> Result<(), Violation> {
        self.note(format!("server {index} catches up"));
        self.report.catch_ups += 1;
        let (live, site) = (Arc::clone(&self.servers[index].live), self.site);
        match step(async move { live.resident(site).await.map(drop) }).await? {
            Some(Err(error)) => Err(Violation::Snapshot(format!(
                "the snapshot could not be brought forward: {error}"
            ))),
            // Brought forward, or the server died at a crash point (the
            // caller restarts it).
            Some(Ok(())) | None => Ok(()),
        }
    }

    async fn track(&mut self, index: usize) -> Result<(), Violation> {
        self.note(format!("server {index} tracks"));
        let server = &self.servers[index];
        let (live, tracker) = (Arc::clone(&server.live), Arc::clone(&server.tracker));
        let clock = Arc::clone(&self.clock);
        let store = Arc::clone(&server.store);
        // An error is logged and tried again at the next tick, as a server
        // does: the journal's sweep (time windows, baselines), then the
        // webhooks' tracker.
        let _ = step(async move {
            let swept = crate::live::journal::sweep(store.as_ref(), &live, clock.as_ref()).await;
            (swept, tracker.tick(clock.as_ref()).await)
        })
        .await?;
        Ok(())
    }

    async fn deliver(&mut self, index: usize) -> Result<(), Violation> {
        self.note(format!("server {index} delivers"));
        let deliverer = Arc::clone(&self.servers[index].deliverer);
        let now = self.clock.now_ms();
        step(async move { deliverer.tick(now).await }).await?;
        self.settle().await?;
        Ok(())
    }

    /// Lets one parked send answer, late (past its lease) or by timing out.
    async fn release(&mut self) -> Result<(), Violation> {
        if self.receiver.parked() == 0 {
            return Ok(());
        }
        let index = self.rng.random_range(0..64);
        self.clock.advance_ms(self.rng.random_range(10_000..90_000));
        if let Some((server, late)) = self.receiver.release(index) {
            self.acting = server;
            let how = if late { "late" } else { "with a timeout" };
            self.note(format!("a parked send of server {server} answers {how}"));
        }
        self.settle().await?;
        Ok(())
    }

    async fn trim(&mut self, index: usize) -> Result<(), Violation> {
        let before = self.clock.now_ms() - self.rng.random_range(0..3 * 3_600_000);
        self.note(format!("server {index} trims the log before {before}"));
        self.report.trims += 1;
        let store = Arc::clone(&self.servers[index].store);
        let _ = step(async move { store.trim_log(before).await }).await?;
        Ok(())
    }

    /// Trims the membership journal before an instant in the simulated
    /// past, as `--history-retention-days` does. Transitions a webhook's
    /// watch has not read yet must outlive it: one trimmed would be a
    /// notification never sent, which the replay at the end finds.
    async fn trim_journal(&mut self, index: usize) -> Result<(), Violation> {
        let before = self.clock.now_ms() - self.rng.random_range(0..3 * 3_600_000);
        self.note(format!("server {index} trims the journal before {before}"));
        self.report.journal_trims += 1;
        let store = Arc::clone(&self.servers[index].store);
        let _ = step(async move { store.trim_journal(before).await }).await?;
        Ok(())
    }

    /// Every change acknowledged so far must be stored. Cheaply, after a
    /// step: the events added since the last look are read, and the table's
    /// count must be the rows seen before plus those (so none of the older
    /// ones went; ids are never handed out twice); when it is not, or with
    /// `whole`, the whole table is read again.
    async fn check_acknowledged(&mut self, whole: bool) -> Result<(), Violation> {
        let fresh = std::mem::take(&mut self.just_acknowledged);
        let store = Arc::clone(&self.servers[0].store);
        let mut reader = store.begin_read().await.unwrap();
        let rows = reader.count(Table::Events).await.unwrap();
        let added = rows.checked_sub(self.stored.rows).filter(|_| !whole);
        let caught_up = match added {
            Some(0) => true,
            Some(added) => {
                let page = reader
                    .read_page(Table::Events, self.stored.end, added as usize)
                    .await
                    .unwrap();
                let complete = page.rows.len() as u64 == added && page.next.is_some();
                if complete {
                    self.stored
                        .markers
                        .extend(event_markers(page.rows, self.site));
                    self.stored.rows = rows;
                    self.stored.end = page.next;
                }
                complete
            }
            None => false,
        };
        let missing = if caught_up {
            fresh.into_iter().find(|m| !self.stored.markers.contains(m))
        } else {
            // One page holding every row, so that it ends with a cursor.
            let page = reader
                .read_page(Table::Events, None, rows.max(1) as usize)
                .await
                .unwrap();
            self.stored = Stored {
                markers: event_markers(page.rows, self.site).collect(),
                rows,
                end: page.next,
            };
            self.acknowledged
                .difference(&self.stored.markers)
                .next()
                .cloned()
        };
        match missing {
            Some(missing) => Err(Violation::Lost(format!(
                "the acknowledged change {missing} is not stored"
            ))),
            None => Ok(()),
        }
    }

    /// The server's snapshot, if a step brought it forward to the site's
    /// head since it was last checked, must equal a fresh read. One that
    /// is behind is left where it is.
    async fn check_snapshot(&mut self, index: usize) -> Result<(), Violation> {
        let server = &self.servers[index];
        let Some(stats) = server.live.site_stats(self.site) else {
            return Ok(());
        };
        let Some(position) = stats.position else {
            return Ok(());
        };
        if server.checked == Some(stats.jobs) {
            return Ok(());
        }
        let head = server.store.site_head(self.site).await.unwrap();
        if position.seq < head.seq {
            return Ok(());
        }
        self.report.snapshot_checks += 1;
        same_as_fresh(&server.live, server.store.as_ref(), self.site)
            .await
            .map_err(|mismatch| {
                Violation::Snapshot(format!("server {index}'s snapshot: {mismatch}"))
            })?;
        let jobs = server.live.site_stats(self.site).map(|s| s.jobs);
        self.servers[index].checked = jobs;
        Ok(())
    }

    /// Heals the receiver, lets every parked send answer, and runs the
    /// servers until the outbox is empty; then checks the notifications.
    async fn drain(&mut self) -> Result<(), Violation> {
        self.note("the receiver heals; the outbox drains".into());
        self.receiver.heal();
        while self.receiver.release(0).is_some() {}
        self.settle().await?;
        let store = Arc::clone(&self.servers[0].store);
        for webhook in store.list_webhooks(self.site).await.unwrap() {
            if webhook.disabled_at.is_some() {
                let enable = WebhookPatch {
                    disabled: Some(false),
                    ..WebhookPatch::default()
                };
                store
                    .update_webhook(
                        self.site,
                        webhook.id,
                        &enable,
                        self.clock.now_ms(),
                        &Actor::Cli,
                    )
                    .await
                    .unwrap();
            }
        }
        let mut rounds = 0;
        loop {
            rounds += 1;
            self.clock.advance_ms(2 * 3_600_000);
            for index in 0..self.servers.len() {
                self.track(index).await?;
                self.deliver(index).await?;
            }
            let watches = store.watches().await.unwrap();
            let mut behind = false;
            for (site, w) in &watches {
                let after = (w.after_at, w.after_id);
                behind |= !store
                    .journal_changes(*site, w.segment_id, after, 1)
                    .await
                    .unwrap()
                    .is_empty();
            }
            let mut pending = 0;
            for webhook in store.list_webhooks(self.site).await.unwrap() {
                pending += store
                    .pending_deliveries(self.site, webhook.id, BATCH)
                    .await
                    .unwrap()
                    .len();
            }
            if !behind && pending == 0 {
                break;
            }
            if rounds == 50 {
                return Err(Violation::Undelivered(format!(
                    "{pending} notifications still pending, watches behind: {behind}"
                )));
            }
        }
        self.check_acknowledged(true).await?;
        self.check_notifications().await
    }

    async fn check_notifications(&mut self) -> Result<(), Violation> {
        let store = Arc::clone(&self.servers[0].store);
        let arrivals = self.receiver.arrivals();
        self.report.copies = arrivals.len();
        let committed: BTreeSet<String> = all_subscribers(store.as_ref(), self.site)
            .await
            .into_iter()
            .collect();
        let mut seen = BTreeSet::new();
        // (webhook, segment) -> members as the notifications tell.
        let mut told: BTreeMap<(i64, String), BTreeSet<String>> = BTreeMap::new();
        for arrival in &arrivals {
            let body = &arrival.body;
            let id = body["event_id"].as_str().unwrap_or("").to_owned();
            // A transition has one event id, the same at every webhook
            // told of it: receivers deduplicate per webhook.
            if !seen.insert((arrival.webhook_id, id.clone())) {
                continue;
            }
            self.report.notifications += 1;
            let segment = body["segment"]["id"].as_str().unwrap_or("").to_owned();
            let uuid = body["subscriber"]["uuid"].as_str().unwrap_or("").to_owned();
            if !committed.contains(&uuid) {
                return Err(Violation::Notifications(format!(
                    "{id} names a subscriber never committed: {body}"
                )));
            }
            let members = told.entry((arrival.webhook_id, segment)).or_default();
            let fine = match body["type"].as_str() {
                Some("segment.member_added") => members.insert(uuid),
                Some("segment.member_removed") => members.remove(&uuid),
                _ => false,
            };
            if !fine {
                return Err(Violation::Notifications(format!(
                    "{id} does not follow from the ones before it: {body}"
                )));
            }
        }
        let live = Live::new(store.clone());
        let now = self.clock.now_ms();
        for webhook in store.list_webhooks(self.site).await.unwrap() {
            for &segment_id in &webhook.segment_ids {
                let segment = store
                    .get_segment(self.site, SegmentId(segment_id))
                    .await
                    .unwrap()
                    .filter(|s| s.is_kept());
                let mut members = BTreeSet::new();
                if let Some(segment) = segment {
                    let query = corral_core::query::parse(segment.query.as_str()).unwrap();
                    let evaluation = live.evaluate(self.site, &query, now).await.unwrap();
                    let ids = evaluation.member_ids();
                    for s in store.subscribers_by_ids(self.site, &ids).await.unwrap() {
                        members.insert(s.uuid);
                    }
                }
                let notified = told
                    .remove(&(webhook.id, segment_id.to_string()))
                    .unwrap_or_default();
                if notified != members {
                    return Err(Violation::Notifications(format!(
                        "webhook {} was told segment {segment_id} holds {} subscribers, it holds {}: \
                         missing {:?}, extra {:?}",
                        webhook.id,
                        notified.len(),
                        members.len(),
                        members.difference(&notified).collect::<Vec<_>>(),
                        notified.difference(&members).collect::<Vec<_>>(),
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Runs one step's work in a task of its own, as a server would: what it
/// gave, or `None` when the server died at a crash point (the caller then
/// restarts it); any other panic is a violation.
async fn step<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<Option<T>, Violation> {
    match tokio::spawn(work).await {
        Ok(done) => Ok(Some(done)),
        Err(_) if faults::fired() => Ok(None),
        Err(failed) => Err(Violation::Panicked(failed.to_string())),
    }
}

/// Every row of `table`, read through a snapshot of its own.
async fn all_rows(store: &dyn Store, table: Table) -> Vec<Rows> {
    let mut reader = store.begin_read().await.unwrap();
    crate::storage::testing::all_rows(reader.as_mut(), table).await
}

/// The markers of the site's events among `rows`.
fn event_markers(rows: Rows, site: i64) -> impl Iterator<Item = String> {
    let rows = match rows {
        Rows::Events(rows) => rows,
        _ => Vec::new(),
    };
    rows.into_iter()
        .filter(move |e| e.site_id == site)
        .filter_map(|e| {
            let details: Value = serde_json::from_str(&e.details).ok()?;
            Some(details["m"].as_str()?.to_owned())
        })
}

/// The uuids of every subscriber the site holds.
async fn all_subscribers(store: &dyn Store, site: i64) -> Vec<String> {
    all_rows(store, Table::Subscribers)
        .await
        .into_iter()
        .flat_map(|rows| match rows {
            Rows::Subscribers(rows) => rows,
            _ => Vec::new(),
        })
        .filter(|s| s.site_id == site)
        .map(|s| s.uuid)
        .collect()
}

#[cfg(test)]
mod tests;
