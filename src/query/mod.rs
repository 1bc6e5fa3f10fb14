//! The segment query language: `visitor_event_query`, the JSON object saved
//! with each segment that defines who is in its audience.
//!
//! This module owns how a query is accepted and kept. A saved query must come
//! back exactly as it was sent: the same keys in the same order, number literals
//! unchanged (`12345678901234567890` and `1.10` stay as written), any Unicode and
//! any nesting the size limit allows. So a query is never parsed into a tree and
//! printed again: it is kept as the client's own JSON text ([`RawQuery`]), with
//! only the insignificant whitespace between tokens removed.

mod raw;

pub use raw::{MAX_QUERY_BYTES, ParseError, QueryError, RawQuery};
