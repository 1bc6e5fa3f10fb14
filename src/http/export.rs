//! Every member of a segment as CSV, streamed:
//! `GET /fetch/segments/{id}/members.csv` (Corral extension), now or, with
//! `?at=ISO`, at a past instant as the segment's journal recorded them.
//!
//! The segment is evaluated once, when the request arrives; the answer then
//! streams the members' records a thousand at a time, read from the store as
//! the client takes them, so neither the server nor the client holds the
//! whole file. Columns, as `corral segment members --format csv` writes
//! them: `uuid`, `email`, `created_at`, `unsubscribed_at` (empty while
//! subscribed), then a `field:KEY` column per field key the site has (its
//! value as text), or with `?fields=json` one `fields` column holding them
//! as a JSON object ([`MemberColumns`]).

use super::auth::Caller;
use super::evaluation::evaluations;
use super::extract::{QueryParams, SegmentPath};
use super::{ApiError, AppState};
use crate::wire::evaluation::MemberColumns;
use crate::wire::strings::SegmentIdText;
use crate::wire::{ErrorBody, ValidationErrorBody};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use corral_core::audience::Subscriber;
use std::sync::Arc;

/// The query parameters of the export.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// The members at this instant (ISO 8601 with a time zone), from the
    /// segment's journal, rather than now; before its history begins is a
    /// 422 that says when it begins.
    #[param(value_type = Option<String>, format = DateTime)]
    at: Option<String>,
    /// How the fields are written: `columns` (the default), a `field:KEY`
    /// column per field key of the site, each value as text; `json`, one
    /// `fields` column holding them as a JSON object.
    #[param(value_type = Option<String>, pattern = "^(columns|json)$")]
    fields: Option<String>,
}

/// Member records read and sent at a time.
const CHUNK: usize = 1_000;

/// CSV text of `rows` in `columns`, after the header row when `header` is
/// set.
fn csv_chunk(
    columns: &MemberColumns,
    rows: &[Subscriber],
    header: bool,
) -> Result<Bytes, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 128 + 64));
    if header {
        writer.write_record(columns.header())?;
    }
    for row in rows {
        writer.write_record(columns.record(row))?;
    }
    writer
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| csv::Error::from(e.into_error()))
}

/// Every member of a segment, as CSV.
///
/// Corral extension. The members as of the request, in subscriber order
/// (the order of `GET /fetch/segments/{id}/members`), after a header row:
/// `uuid,email,created_at,unsubscribed_at`, then a `field:KEY` column per
/// field key of the site in key order (a value as text: a string as it is,
/// a number or `true`/`false` as JSON writes it; empty when the subscriber
/// has none), or with `fields=json` one `fields` column of JSON. Streamed,
/// for segments of any size. With `at`, the members at that instant as the
/// segment's journal recorded them (a discarded segment's too).
#[utoipa::path(get, path = "/api/v1/fetch/segments/{id}/members.csv", tag = "evaluation",
    params(("id" = SegmentIdText, Path, description = "The segment's id"), ExportParams),
    responses(
        (status = 200, description = "Every member, one CSV record each, after a header row", content_type = "text/csv", body = String),
        (status = 404, description = "No such kept segment on this site", body = ErrorBody),
        (status = 422, description = "The query cannot be evaluated, or a bad `at` or `fields`", body = ValidationErrorBody),
    ),
    security(("basic" = [])))]
pub async fn members_csv(
    State(state): State<AppState>,
    caller: Caller,
    SegmentPath(id): SegmentPath,
    QueryParams(params): QueryParams<ExportParams>,
) -> Result<Response, ApiError> {
    let invalid = |field: &str, message: String| {
        ApiError::Invalid(crate::segment::FieldError::new(field, message).into())
    };
    let json = params.fields.as_deref() == Some("json");
    let keys = match json {
        true => Vec::new(),
        false => state.store.field_keys(caller.site_id).await?,
    };
    let columns =
        MemberColumns::chosen(params.fields.as_deref(), keys).map_err(|m| invalid("fields", m))?;
    let ids: Arc<[i64]> = match params.at.as_deref().filter(|at| !at.is_empty()) {
        Some(at) => {
            let at = crate::wire::history::instant(at).map_err(|m| invalid("at", m))?;
            let members =
                crate::service::history::members_at(state.store.as_ref(), caller.site_id, id, at)
                    .await?;
            members.as_slice().into()
        }
        None => {
            let evaluation = evaluations(&state)
                .segment(caller.site_id, id, state.clock.now_ms())
                .await?;
            // Released before streaming: the client sets the pace.
            evaluation.member_ids().into()
        }
    };
    let site_id = caller.site_id;
    let columns = Arc::new(columns);
    let stream = futures_util::stream::unfold(Some(0usize), move |next| {
        let state = state.clone();
        let ids = Arc::clone(&ids);
        let columns = Arc::clone(&columns);
        async move {
            let start = next?;
            let end = (start + CHUNK).min(ids.len());
            let chunk = match state
                .store
                .subscribers_by_ids(site_id, &ids[start..end])
                .await
            {
                Ok(rows) => csv_chunk(&columns, &rows, start == 0).map_err(std::io::Error::other),
                Err(e) => {
                    tracing::error!(error = %e, "members export failed; the download is cut short");
                    Err(std::io::Error::other(e.to_string()))
                }
            };
            let next = (chunk.is_ok() && end < ids.len()).then_some(end);
            Some((chunk, next))
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"segment-{id}-members.csv\""
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
