//! `GET /fetch/site` (Corral extension): the caller's site as the console's
//! header names it, `{"data":{"uuid","name","created_at"}}`. A key pair
//! belongs to one site, so the answer is always the site the request
//! authenticated for.

use super::auth::Caller;
use super::respond::json_response;
use super::{ApiError, AppState};
use crate::clock::format_ms;
use crate::wire::audience::{SiteAttributes, SiteEnvelope};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

/// The caller's site: its uuid, name and when it was created.
///
/// Corral extension.
#[utoipa::path(get, path = "/api/v1/fetch/site", tag = "audience",
    operation_id = "show_site",
    responses(
        (status = 200, description = "The caller's site", body = SiteEnvelope),
    ),
    security(("basic" = [])))]
pub async fn show(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    // The request authenticated for this site a moment ago: a site is
    // never deleted, so it is there.
    let site = state
        .store
        .site_by_id(caller.site_id)
        .await?
        .ok_or_else(|| ApiError::Internal("the caller's site is not in the database".into()))?;
    Ok(json_response(
        StatusCode::OK,
        &SiteEnvelope {
            data: SiteAttributes {
                uuid: site.uuid,
                name: site.name,
                created_at: format_ms(site.created_at),
            },
        },
    ))
}
