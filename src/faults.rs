//! Named crash points on the write paths: places where a process may die
//! between two storage steps, so that tests can make it die there and check
//! what survives. Each is a `fail` crate fail point (`crash_point!`), which
//! compiles to nothing unless that crate's `failpoints` feature is on: the
//! tests turn it on (a dev-dependency), a release build does not.
//!
//! Two ways to fire them. The `corral` binary arms the points the
//! `FAILPOINTS` environment variable names (`name=panic`, or `name=2*off->panic`
//! for the third pass; `serve` once it listens), and dies on the spot when
//! one fires, as `kill -9` would. In one process (the deterministic simulation), [`arm`] arms one
//! point for the current thread only, so tests running beside it are not
//! touched; a point that fires panics, and the caller treats the task that
//! panicked as a process that died.

use std::cell::Cell;

/// Every crash point, in the order a write meets them.
pub const POINTS: &[&str] = &[
    // An audience write (the group commit of either backend).
    "audience.before_commit",
    "audience.after_commit",
    // Any other write of the shared SQL layer: segments, webhooks, a
    // membership transition with its outbox, a delivery attempt, trimming.
    "write.before_commit",
    "write.after_commit",
    // The tracker: a run of transitions read and made notifications, before
    // they are written.
    "tracker.before_transition",
    // The deliverer: the receiver answered, before the attempt is recorded.
    "delivery.after_send",
];

/// Fires the named crash point (see the module's doc).
#[macro_export]
macro_rules! crash_point {
    ($name:literal) => {
        fail::fail_point!($name)
    };
}

thread_local! {
    /// The point armed on this thread, and how many passes to let by first.
    static ARMED: Cell<Option<(&'static str, u32)>> = const { Cell::new(None) };
    /// Whether an armed point fired on this thread.
    static FIRED: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Arms `point` on this thread: its `skip + 1`th pass panics. Replaces any
/// point armed before.
pub fn arm(point: &'static str, skip: u32) {
    install_callbacks();
    ARMED.with(|a| a.set(Some((point, skip))));
    FIRED.with(|f| f.set(None));
}

/// Disarms this thread's point; the point that fired since [`arm`], if any.
pub fn disarm() -> Option<&'static str> {
    ARMED.with(|a| a.set(None));
    FIRED.with(|f| f.take())
}

/// Whether this thread's armed point has fired.
pub fn fired() -> bool {
    FIRED.with(|f| f.get().is_some())
}

/// The message a fired point panics with.
pub const FIRED_MESSAGE: &str = "crash point fired";

fn pass(point: &'static str) {
    let fire = ARMED.with(|a| match a.get() {
        Some((armed, 0)) if armed == point => {
            a.set(None);
            true
        }
        Some((armed, skip)) if armed == point => {
            a.set(Some((armed, skip - 1)));
            false
        }
        _ => false,
    });
    if fire {
        FIRED.with(|f| f.set(Some(point)));
        panic!("{FIRED_MESSAGE}: {point}");
    }
}

/// Registers a callback on every point, once per process: it consults the
/// calling thread's armed point.
fn install_callbacks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // A fired point is an expected death: say nothing of it, and pass
        // every other panic on as before.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .unwrap_or_default();
            if !message.starts_with(FIRED_MESSAGE) {
                previous(info);
            }
        }));
        for &point in POINTS {
            fail::cfg_callback(point, move || pass(point)).expect("a valid fail point");
        }
    });
}

/// Arms what `FAILPOINTS` names, for the whole process, and makes a point
/// that fires end the process at once (abort: no destructor, no flush, as
/// `kill -9`). Does nothing when the variable is unset or the points are
/// compiled out.
pub fn arm_from_env() {
    if std::env::var_os("FAILPOINTS").is_none() || !fail::has_failpoints() {
        return;
    }
    std::mem::forget(fail::FailScenario::setup());
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        std::process::abort();
    }));
    eprintln!("crash points armed from FAILPOINTS: this process dies where one fires");
}
