//! The domain services: what the front ends (the HTTP layer and the CLI) call
//! to read and change a site's data, so that both follow one set of rules
//! whatever the backend: [`segments`], [`webhooks`], [`membership`] (a
//! subscriber's segments), [`audit`] (the audit log a page at a time), [`manual`] (a segment's hand-made includes and excludes), [`evaluation`] (stats, members, match, preview
//! and explain over the live snapshots) and [`overlap`] (how segments' members overlap). A service takes values already parsed at the edge, checks
//! the rules that need the site's data, calls the [`crate::storage::Store`]
//! (whose backends check again, inside the write's transaction, what a
//! concurrent write could break) and answers with one error type of its own.

pub mod audit;
pub mod evaluation;
pub mod history;
pub mod manual;
pub mod membership;
pub mod overlap;
pub mod segments;
pub mod webhooks;

pub use evaluation::{EvaluationError, Evaluations};
pub use segments::{SegmentError, Segments};
