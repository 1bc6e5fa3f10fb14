//! `corral audit`: a site's management actions, newest first, as `GET
//! /api/v1/fetch/audit` answers them (with `--json`, the same body): who
//! made each (a publishable key, or `cli`), when, and what changed.

use super::{CliError, outln, site_by_uuid};
use crate::clock::format_ms;
use crate::storage::Store;
use crate::wire::history::{AUDIT_PAGE, audit_list_body, audit_query};
use clap::Args;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The site's uuid.
    #[arg(long)]
    site: String,
    /// Only actions at or after this instant (ISO 8601, such as
    /// 2026-11-26T09:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// How many actions, newest first (1 to 1,000).
    #[arg(long, default_value_t = AUDIT_PAGE.to_string())]
    limit: String,
    /// `meta.next_cursor` of the page before (with --json), for the next.
    #[arg(long)]
    cursor: Option<String>,
    /// Print {"data":[…],"meta":{"next_cursor":…}} as the API does.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: AuditArgs, store: &Arc<dyn Store>) -> Result<(), CliError> {
    let query = audit_query(
        args.since.as_deref(),
        Some(&args.limit),
        args.cursor.as_deref(),
    )?;
    let site = site_by_uuid(store, &args.site).await?;
    let (entries, next_cursor) =
        crate::service::audit::page(store.as_ref(), site.id, &query).await?;
    if args.json {
        return outln!(
            "{}",
            String::from_utf8_lossy(&audit_list_body(&entries, next_cursor))
        );
    }
    for e in &entries {
        outln!(
            "{}  {:<32}  {:<24}  {} {}",
            format_ms(e.at),
            e.actor.as_str(),
            e.action.as_str(),
            e.action.subject_type(),
            e.subject
        )?;
    }
    Ok(())
}
