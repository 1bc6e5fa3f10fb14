//! `corral segment history|changes` and `segment members --at`: a segment's
//! membership history on the command line, read from its journal with the
//! API's parameter parsing ([`crate::wire::history`]) and the API's service
//! ([`crate::service::history`]), so that `--json` prints exactly the body
//! `GET /api/v1/stats/segment/history` or `…/changes` would answer, and the
//! same refusals say the same thing. Without `--json`, a table with a
//! header.

use super::{CliError, outln, site_by_uuid};
use super::{parse_id, segment_error};
use crate::clock::{Clock, SystemClock, format_ms};
use crate::segment::{FieldError, FieldErrors};
use crate::service::history::Series;
use crate::storage::journal::NamedChange;
use crate::storage::{Site, Store};
use crate::wire::history::{
    changes_body, changes_cursor, changes_query, history_body, history_query, instant,
};
use std::sync::Arc;

/// What `segment history` was given.
pub struct HistoryArgs {
    pub from: Option<String>,
    pub to: Option<String>,
    pub interval: Option<String>,
    pub json: bool,
}

/// `segment history`: the segment's size by interval, and when its
/// history begins.
pub async fn history(
    store: &Arc<dyn Store>,
    site: &str,
    id: &str,
    args: HistoryArgs,
) -> Result<(), CliError> {
    let site = site_by_uuid(store, site).await?;
    let id = parse_id(id)?;
    let (from, to, interval) = history_query(
        args.from.as_deref(),
        args.to.as_deref(),
        args.interval.as_deref(),
        SystemClock.now_ms(),
    )?;
    let series = crate::service::history::series(store.as_ref(), site.id, id, from, to, interval)
        .await
        .map_err(|e| segment_error(e, id))?;
    if args.json {
        return outln!("{}", String::from_utf8_lossy(&history_body(&series)));
    }
    print_series(&series)
}

fn print_series(series: &Series) -> Result<(), CliError> {
    match series.begins_at {
        Some(at) => outln!("history begins at {}", format_ms(at))?,
        None => outln!("no history yet: a running server takes the segment's baseline")?,
    }
    outln!(
        "{:<24}  {:>10}  {:>8}  {:>8}",
        "at",
        "members",
        "added",
        "removed"
    )?;
    for p in &series.points {
        outln!(
            "{:<24}  {:>10}  {:>8}  {:>8}",
            format_ms(p.at),
            p.members,
            p.added,
            p.removed
        )?;
    }
    Ok(())
}

/// What `segment changes` was given.
pub struct ChangesArgs {
    pub since: Option<String>,
    pub after: Option<String>,
    pub limit: Option<String>,
    pub json: bool,
}

/// `segment changes`: a page of the segment's joins and leaves in commit
/// order. The cursor to resume from is in the body with `--json`; in a
/// table it is told on stderr, so that stdout holds the table only.
pub async fn changes(
    store: &Arc<dyn Store>,
    site: &str,
    id: &str,
    args: ChangesArgs,
) -> Result<(), CliError> {
    let site = site_by_uuid(store, site).await?;
    let id = parse_id(id)?;
    let (from, limit) = changes_query(
        args.since.as_deref(),
        args.after.as_deref(),
        args.limit.as_deref(),
    )?;
    let (segment, changes, next) =
        crate::service::history::changes(store.as_ref(), site.id, id, from, limit)
            .await
            .map_err(|e| segment_error(e, id))?;
    let next = next.map(|(at, id)| changes_cursor(at, id));
    if args.json {
        return outln!(
            "{}",
            String::from_utf8_lossy(&changes_body(&segment, &changes, next))
        );
    }
    print_changes(&changes)?;
    if let Some(next) = next {
        eprintln!("resume with --after {next}");
    }
    Ok(())
}

fn print_changes(changes: &[NamedChange]) -> Result<(), CliError> {
    outln!(
        "{:<24}  {:<7}  {:<18}  {:<32}  email",
        "occurred_at",
        "change",
        "reason",
        "subscriber"
    )?;
    for c in changes {
        outln!(
            "{:<24}  {:<7}  {:<18}  {:<32}  {}",
            format_ms(c.change.at),
            if c.change.added { "added" } else { "removed" },
            c.change.reason.as_str(),
            c.subscriber_uuid,
            c.email
        )?;
    }
    Ok(())
}

/// `segment members --at`: the site and the ids of the segment's members
/// at that instant, as its journal recorded them, ascending.
pub async fn members_at(
    store: &Arc<dyn Store>,
    site: &str,
    id: &str,
    at: &str,
) -> Result<(Site, Vec<i64>), CliError> {
    let site = site_by_uuid(store, site).await?;
    let id = parse_id(id)?;
    let at = instant(at).map_err(|m| FieldErrors::from(FieldError::new("at", m)))?;
    let ids = crate::service::history::members_at(store.as_ref(), site.id, id, at)
        .await
        .map_err(|e| segment_error(e, id))?;
    Ok((site, ids.to_vec()))
}
