//! The audit log (Corral's): `GET /api/v1/fetch/audit`, the site's
//! management actions newest first, a page at a time. Every action is
//! recorded in the transaction of the write it describes, with its instant
//! and its actor (the publishable key of the key pair that made it, or
//! `cli`); no secret is ever part of it. Another site's actions are never
//! seen.

use super::auth::Caller;
use super::extract::QueryParams;
use super::respond::bytes_response;
use super::{ApiError, AppState};
use crate::segment::{FieldError, FieldErrors};
use crate::storage::audit::AuditQuery;
use crate::wire::ValidationErrorBody;
use crate::wire::history::{
    AUDIT_PAGE, AuditListEnvelope, MAX_AUDIT_PAGE, audit_cursor, audit_list_body, instant,
    read_audit_cursor,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only actions at or after this instant (ISO 8601 with a time zone,
    /// such as `2026-11-26T09:00:00Z`).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Entries per page, 1 to 1,000 (default 100).
    #[param(value_type = Option<u16>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `meta.next_cursor` of the previous page; absent for the first.
    cursor: Option<String>,
}

/// Reads the parameters, every problem at once.
fn audit_query(params: &AuditParams) -> Result<AuditQuery, ApiError> {
    let mut errors = FieldErrors::default();
    let since = params
        .since
        .as_deref()
        .map(|text| instant(text).map_err(|m| errors.push("since", m)).ok())
        .unwrap_or_default();
    let limit = crate::wire::whole_number(params.limit.as_deref(), AUDIT_PAGE, 1, MAX_AUDIT_PAGE)
        .map_err(|m| errors.push("limit", m))
        .unwrap_or_default();
    let before = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(cursor) => read_audit_cursor(cursor)
            .ok_or_else(|| {
                errors.0.push(FieldError::new(
                    "cursor",
                    "is not a cursor this API gave out (use meta.next_cursor)",
                ))
            })
            .ok(),
    };
    errors
        .finish(|| AuditQuery {
            since,
            before,
            limit,
        })
        .map_err(ApiError::Invalid)
}

/// The site's management actions, newest first.
///
/// Corral extension. Segments created, updated (with the definitions
/// before and after), discarded, restored and set back to an earlier
/// version; webhooks created, changed and deleted; key pairs added and
/// revoked: each with its instant and its actor, the publishable key of the
/// key pair that made it or `cli`. Never a secret. `meta.next_cursor`
/// continues with older entries.
#[utoipa::path(get, path = "/api/v1/fetch/audit", tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "One page of the audit log, newest first", body = AuditListEnvelope),
        (status = 422, description = "A bad since, limit or cursor", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<AuditParams>,
) -> Result<Response, ApiError> {
    let query = audit_query(&params)?;
    // One more than asked tells whether another page follows.
    let asked = AuditQuery {
        limit: query.limit + 1,
        ..query
    };
    let mut entries = state.store.audit_log(caller.site_id, &asked).await?;
    let more = entries.len() > query.limit;
    entries.truncate(query.limit);
    let next_cursor = more
        .then(|| entries.last().map(|e| audit_cursor(e.id)))
        .flatten();
    Ok(bytes_response(
        StatusCode::OK,
        audit_list_body(&entries, next_cursor),
    ))
}
