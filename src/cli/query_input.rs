//! Queries given to the command line: read from a file or stdin, then
//! checked as saving would check them (the grammar, and references to other
//! segments of the site). Shared by the segment commands and the evaluating
//! ones.

use super::CliError;
use crate::segment::{FieldErrors, SegmentId};
use crate::service::{SegmentError, Segments};
use crate::storage::Store;
use corral_core::query::{Query, RawQuery};
use std::io::{IsTerminal, Read};

/// Reads a query from a file, or from stdin for `-` or no path.
pub(super) fn read_query(path: Option<&std::path::Path>) -> Result<RawQuery, String> {
    let text = match path {
        Some(p) if p.as_os_str() != "-" => std::fs::read_to_string(p)
            .map_err(|e| format!("cannot be read from {}: {e}", p.display()))?,
        _ => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                // Otherwise the command would seem to hang.
                eprintln!(
                    "reading the query (visitor_event_query JSON) from stdin; end with Ctrl-D"
                );
            }
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot be read from stdin: {e}"))?;
            text
        }
    };
    RawQuery::parse(&text).map_err(|e| e.to_string())
}

/// Checks a query read from a file as the segment service would for saving
/// it as the query of `saving` (the grammar, then its references to other
/// segments of the site): problems are added to `errors`.
pub(super) async fn check_query(
    store: &dyn Store,
    site_id: i64,
    saving: Option<SegmentId>,
    query: &RawQuery,
    errors: &mut FieldErrors,
) -> Result<Option<Query>, CliError> {
    match Segments::new(store)
        .check_query(site_id, saving, query)
        .await
    {
        Ok(query) => Ok(Some(query)),
        Err(SegmentError::Invalid(found)) => {
            errors.0.extend(found.0);
            Ok(None)
        }
        Err(other) => Err(other.into()),
    }
}
