//! The domain services: what the front ends (the HTTP layer and the CLI) call
//! to change a site's data, so that both follow one set of rules whatever
//! the backend. A service takes values already parsed at the edge, checks
//! the rules that need the site's data, calls the [`crate::storage::Store`]
//! (whose backends check again, inside the write's transaction, what a
//! concurrent write could break) and answers with one error type of its own.

pub mod segments;

pub use segments::{Budget, SegmentError, Segments};
