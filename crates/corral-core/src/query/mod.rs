//! The segment query language: `visitor_event_query`, the JSON object saved
//! with each segment that defines who is in its audience.
//!
//! A query travels three ways. It is kept as the client's own JSON text
//! ([`RawQuery`]: same keys in the same order, number literals unchanged), so
//! it comes back exactly as saved. It is validated into a tree ([`ast`], by
//! [`parse`]) with every problem pointed at by a JSON pointer. And the tree is
//! evaluated against an audience held as columns ([`crate::engine`]): to a
//! set of members, or, for one subscriber, to the outcome of every
//! condition. `docs/query-language.md` is
//! the grammar's reference; `docs/query-language.schema.json` its JSON Schema.

pub mod ast;
pub mod manual;
pub mod parse;
mod raw;
pub mod sample;

pub use ast::{Condition, Query, SampleTest};
pub use parse::{Problem, parse};
pub use raw::{MAX_QUERY_BYTES, ParseError, QueryError, RawQuery};
