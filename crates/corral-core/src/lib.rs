//! Corral's core: the segment query language, the audience's rules, the
//! columnar audience and the engine that evaluates segments over it. No
//! database, no HTTP, no async runtime: what is here is pure logic over
//! values, so it builds and tests on its own (and a mutation run of the
//! engine rebuilds this crate alone).
//!
//! # Layout
//!
//! - [`query`]: the query language, `visitor_event_query`: kept verbatim as
//!   the client wrote it ([`query::RawQuery`]), its tree ([`query::ast`]),
//!   and its validation with pointed errors ([`query::parse()`]).
//! - [`audience`]: subscribers, tags, fields and events: the one
//!   [`audience::SubscriberChange`] every write of audience data becomes,
//!   what a change does to a subscriber ([`audience::apply`], and a run of
//!   changes folded in memory, [`audience::fold`]), and the caps every write
//!   is held to ([`audience::limits`]).
//! - [`columns`]: one site's audience in memory as columns, how a loader
//!   builds it, how the change log brings it forward in place, and its
//!   checkpoint format ([`columns::persist`]).
//! - [`engine`]: a query evaluated over the columns: members, an
//!   explanation for one subscriber, the cost before running, and (for
//!   tests) the naive evaluator it is held to.
//! - [`json`]: JSON kept as the client wrote it, and the check that no
//!   object names a key twice.
//! - [`time`]: timestamps in Bento's wire form.
//!
//! # Errors
//!
//! [`query::Problem`] is one thing wrong with a query, at a JSON pointer;
//! [`engine::EvalError`] a query that cannot be evaluated (foreign, too
//! expensive, referring to a segment that is not there);
//! [`columns::NeedsReload`] a change the columns cannot take in place.
//!
//! The `testing` feature exposes, for the tests of crates built on this one,
//! the naive evaluator (`engine::naive`) and the random audiences and
//! queries of the property tests (`engine::testing`).

pub mod audience;
pub mod columns;
pub mod engine;
pub mod json;
pub mod query;
pub mod time;
