//! The engine: a query tree evaluated over one site's [`Columns`].
//!
//! [`members`] turns each condition into a bit set over the subscribers;
//! [`explain`] answers for one subscriber with the outcome of every
//! condition; [`cost`] says what an evaluation will examine before it runs.
//! [`overlap`] works out several segments' members together and counts the
//! regions of their Venn diagram.
//! All are pure functions of the columns, the query and `now`: keeping the
//! columns current is the caller's job. `naive` is an independent,
//! row-at-a-time evaluator the tests hold the engine to (built for tests, and
//! with the `testing` feature for the server's).
//!
//! # Design, and why
//!
//! - **Only the facts a test reads**: "performed" is one bit per subscriber,
//!   a count a `u32`; sums, first and last times only when tested.
//! - **Both cores for big scans**: 500,000 events or more are scanned in two
//!   halves on two threads, each into its own accumulator, then merged;
//!   not a scan that sums, whose result would then hang on the number of
//!   cores (floating point addition depends on the order).
//! - **Work done once per evaluation**: a referenced segment, and an event
//!   test written twice, are computed once ([`members`] memoises both).
//! - **Work done once per snapshot**: a sample's buckets (a SHA-256 per
//!   subscriber) are worked out the first time its salt is asked for and
//!   kept with the snapshot, then read off like a column.
//! - **A cost known before running** ([`cost`]): values examined, estimated
//!   from the sizes; the server refuses or queues by it, and checks a
//!   [`Cancel`] flag between conditions and every 65,536 events.

pub mod cost;
mod explain;
mod members;
#[cfg(any(test, feature = "testing"))]
pub mod naive;
pub mod overlap;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use explain::{Explanation, Node, explain, explain_unless};
#[cfg(test)]
pub(crate) use members::mutant;
pub use members::{Cancel, EvalError, Resolver, members, members_on, members_unless};

use crate::columns::Columns;
use crate::query::ast::{Condition, DetailPath, Query};

/// The (type, path) detail columns `queries` need that `columns` does not
/// hold yet. For an event test without a type, every type's column is
/// needed.
pub fn missing_details(columns: &Columns, queries: &[&Query]) -> Vec<(String, DetailPath)> {
    let loaded = columns.detail_columns();
    let mut out = Vec::new();
    for query in queries {
        let Query::Condition(c) = query else { continue };
        c.walk(&mut |c| {
            let Condition::Event(test) = c else {
                return;
            };
            for path in test.paths() {
                let kinds: Vec<&str> = match &test.kind {
                    Some(kind) if columns.event_count_of(kind) > 0 => vec![kind.as_str()],
                    Some(_) => vec![],
                    None => columns.event_types().collect(),
                };
                for kind in kinds {
                    let key = (kind.to_owned(), path.clone());
                    if !loaded.contains(&key) && !out.contains(&key) {
                        out.push(key);
                    }
                }
            }
        });
    }
    out
}
