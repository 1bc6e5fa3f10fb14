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
use crate::wire::ValidationErrorBody;
use crate::wire::history::{AuditListEnvelope, audit_list_body, audit_query};
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
    let query = audit_query(
        params.since.as_deref(),
        params.limit.as_deref(),
        params.cursor.as_deref(),
    )
    .map_err(ApiError::Invalid)?;
    let (entries, next_cursor) =
        crate::service::audit::page(state.store.as_ref(), caller.site_id, &query).await?;
    Ok(bytes_response(
        StatusCode::OK,
        audit_list_body(&entries, next_cursor),
    ))
}
