//! Health checks for orchestrators: `/healthz` says the process serves
//! requests; `/readyz` says the database answers and every site named to be
//! preloaded (`corral serve --preload`) is resident, and while one is not,
//! how far its read is.

use super::respond::JSON_CONTENT_TYPE;
use super::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Serving")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// How long readiness waits for the database's answer.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// `/readyz` when not ready: `{"error":"Service Unavailable"}` while the
/// database does not answer; with `status` and `sites` while preloaded
/// sites are still being read.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotReadyBody {
    #[schema(example = "1 of 2 preloaded sites are not resident yet")]
    pub error: String,
    /// `loading` while preloaded sites are being read.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "loading")]
    pub status: Option<&'static str>,
    /// Every preloaded site, in the order named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sites: Option<Vec<PreloadedSite>>,
}

/// One preloaded site, as `/readyz` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreloadedSite {
    pub site_uuid: String,
    /// `resident`, `loading` (being read now), `queued` (waiting for
    /// another site's read) or `failed` (its last read failed; tried again
    /// every 5 s).
    #[schema(example = "loading")]
    pub state: &'static str,
    /// What the read is reading now: `checkpoint`, `subscribers`, `tags`,
    /// `events`, `changes`, `details` or `building`.
    #[schema(example = "events")]
    pub stage: Option<&'static str>,
    /// `rows`, or `bytes` while a checkpoint file is read.
    #[schema(example = "rows")]
    pub unit: Option<&'static str>,
    /// How much was read so far.
    pub read: Option<u64>,
    /// How much there is to read, at most, when known.
    pub expected: Option<u64>,
    /// How long the read has taken so far.
    pub seconds: Option<f64>,
    /// Why the last read failed.
    pub error: Option<String>,
}

/// Readiness: the database answers, and every preloaded site is resident.
///
/// Within 2 s: a database that does not answer by then is a 503. While a
/// site named by `corral serve --preload` is not resident yet, a 503 says
/// which sites are loading, for how long and how far.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready"),
        (status = 503, description = "The database does not answer, or preloaded sites are still being read", body = NotReadyBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    tokio::time::timeout(READY_WITHIN, state.store.ping())
        .await
        .map_err(|_| ApiError::NotReady("the database did not answer within 2 s".into()))?
        .map_err(|e| ApiError::NotReady(e.to_string()))?;
    let preloaded = state.live.preload_report();
    let (total, waiting) = (
        preloaded.len(),
        preloaded.iter().filter(|p| !p.resident).count(),
    );
    if waiting == 0 {
        return Ok(Json(json!({"status": "ready"})).into_response());
    }
    let sites = preloaded
        .into_iter()
        .map(|p| {
            let progress = p.job.as_ref().map(|job| &job.progress);
            PreloadedSite {
                site_uuid: p.site_uuid,
                state: match (&p.job, &p.error) {
                    _ if p.resident => "resident",
                    (Some(_), _) => "loading",
                    (None, Some(_)) => "failed",
                    (None, None) => "queued",
                },
                stage: progress.map(|r| r.stage.name()),
                unit: progress.map(|r| r.stage.unit()),
                read: progress.map(|r| r.read),
                expected: progress.and_then(|r| r.expected),
                seconds: progress.map(|r| (r.elapsed.as_secs_f64() * 10.0).round() / 10.0),
                error: p.error,
            }
        })
        .collect();
    let body = NotReadyBody {
        error: format!(
            "{waiting} of {total} preloaded {} not resident yet",
            if waiting == 1 { "site is" } else { "sites are" }
        ),
        status: Some("loading"),
        sites: Some(sites),
    };
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    Ok(response)
}
