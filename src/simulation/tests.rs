//! The simulation run as tests: 10,000 steps on each backend with a seed
//! that changes per run (printed, and replayed by `CORRAL_SIM_SEED`), and
//! the same harness against a broken catch-up and a broken tracker, which it
//! must catch with the invariant each breaks.

use super::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The seed and steps of a run: from `CORRAL_SIM_SEED` and
/// `CORRAL_SIM_STEPS` when set (a replay, or a longer run), else a fresh
/// seed and `steps`.
fn settings(backend: Backend, steps: usize) -> Settings {
    let seed = std::env::var("CORRAL_SIM_SEED")
        .ok()
        .map(|s| s.parse().expect("CORRAL_SIM_SEED is a number"))
        .unwrap_or_else(rand::random);
    let steps = std::env::var("CORRAL_SIM_STEPS")
        .ok()
        .map(|s| s.parse().expect("CORRAL_SIM_STEPS is a number"))
        .unwrap_or(steps);
    Settings {
        backend,
        seed,
        steps,
        broken_catch_up: false,
        broken_tracker: false,
    }
}

fn hold(settings: Settings) {
    eprintln!(
        "simulation on {:?}: seed {}, {} steps (replay: CORRAL_SIM_SEED={} CORRAL_SIM_STEPS={})",
        settings.backend, settings.seed, settings.steps, settings.seed, settings.steps
    );
    let Some(outcome) = runtime().block_on(run(settings)) else {
        return eprintln!("skipped: CORRAL_TEST_POSTGRES names no PostgreSQL cluster");
    };
    match outcome {
        Ok(report) => {
            eprintln!("{report:?}");
            assert!(report.crashes > 0 && report.acknowledged > 0, "{report:?}");
        }
        Err(failure) => panic!(
            "the simulation failed at step {} of seed {} on {:?}: {}\n\
             replay: CORRAL_SIM_SEED={} CORRAL_SIM_STEPS={}\n{:?}\nlast steps:\n{}",
            failure.step,
            settings.seed,
            settings.backend,
            failure.violation,
            settings.seed,
            failure.step,
            failure.report,
            failure.trail.join("\n")
        ),
    }
}

#[test]
fn the_write_path_holds_its_invariants_on_sqlite() {
    hold(settings(Backend::Sqlite, 10_000));
}

#[test]
fn the_write_path_holds_its_invariants_on_postgres() {
    hold(settings(Backend::Postgres, 10_000));
}

/// Runs a broken variant with fixed seeds; the violation of the first seed
/// that fails broken and holds whole (so the failure is the break's, not
/// one the seed finds in the code as it is).
fn violation_of(broken: impl Fn(&mut Settings)) -> Violation {
    for seed in 1..=5 {
        let whole = Settings {
            backend: Backend::Sqlite,
            seed,
            steps: 1_500,
            broken_catch_up: false,
            broken_tracker: false,
        };
        let mut settings = whole;
        broken(&mut settings);
        let Some(Err(failure)) = runtime().block_on(run(settings)) else {
            continue;
        };
        match runtime().block_on(run(whole)) {
            Some(Ok(_)) => return failure.violation,
            Some(Err(other)) => eprintln!(
                "seed {seed} fails whole too (step {}: {}); not counted",
                other.step, other.violation
            ),
            None => unreachable!("SQLite needs no cluster"),
        }
    }
    panic!("no seed of five failed broken and held whole");
}

#[test]
fn the_simulation_catches_a_catch_up_that_drops_changes() {
    let violation = violation_of(|s| s.broken_catch_up = true);
    assert!(matches!(violation, Violation::Snapshot(_)), "{violation}");
}

#[test]
fn the_simulation_catches_a_tracker_that_forgets_leaves() {
    let violation = violation_of(|s| s.broken_tracker = true);
    assert!(
        matches!(violation, Violation::Notifications(_)),
        "{violation}"
    );
}

#[test]
fn a_seed_replays_the_same_run() {
    let settings = Settings {
        backend: Backend::Sqlite,
        seed: 7,
        steps: 600,
        broken_catch_up: false,
        broken_tracker: false,
    };
    let first = runtime().block_on(run(settings)).unwrap().unwrap();
    let second = runtime().block_on(run(settings)).unwrap().unwrap();
    assert_eq!(format!("{first:?}"), format!("{second:?}"));
    assert!(first.crashes > 0 && first.notifications > 0, "{first:?}");
}
