//! Queries given to the command line: read from a file or stdin, kept
//! exactly as written. The services check them (the grammar, references to
//! other segments of the site) with every other field, as for the API.
//! Shared by the segment commands and the evaluating ones.

use corral_core::query::RawQuery;
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
