//! `corral audit`: a site's management actions, newest first, as `GET
//! /api/v1/fetch/audit` answers them (with `--json`, the same body): who
//! made each (a publishable key, or `cli`), when, and what changed.

use super::{CliError, outln, site_by_uuid};
use crate::clock::format_ms;
use crate::segment::{FieldError, FieldErrors};
use crate::storage::Store;
use crate::storage::audit::AuditQuery;
use crate::wire::history::{AUDIT_PAGE, MAX_AUDIT_PAGE, audit_list_body, instant};
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
    /// Print {"data":[…],"meta":{"next_cursor":null}} as the API does.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: AuditArgs, store: &Arc<dyn Store>) -> Result<(), CliError> {
    let mut errors = FieldErrors::default();
    let since = args
        .since
        .as_deref()
        .map(|text| instant(text).map_err(|m| errors.push("since", m)).ok())
        .unwrap_or_default();
    let limit = crate::wire::whole_number(Some(&args.limit), AUDIT_PAGE, 1, MAX_AUDIT_PAGE)
        .map_err(|m| errors.0.push(FieldError::new("limit", m)))
        .unwrap_or_default();
    errors.finish(|| ())?;
    let site = site_by_uuid(store, &args.site).await?;
    let query = AuditQuery {
        since,
        before: None,
        limit,
    };
    let entries = store.audit_log(site.id, &query).await?;
    if args.json {
        return outln!(
            "{}",
            String::from_utf8_lossy(&audit_list_body(&entries, None))
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
