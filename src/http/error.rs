//! [`ApiError`]: the one error type handlers return, and the only place that
//! decides a failure's status code and body.
//!
//! Bento answers errors in two shapes, both JSON: `{"error":"Message"}` and,
//! for a well-formed request that breaks rules, `{"errors":[{"field","message"}]}`.
//! Storage and validation errors convert with `From`, so handlers read as a
//! column of `?`. A server fault is logged here with its detail and answered
//! with a generic message: internals never reach a client.

use super::respond::json_response;
use crate::live::LiveError;
use crate::segment::FieldErrors;
use crate::service::{EvaluationError, SegmentError};
use crate::storage::StorageError;
use crate::wire::{BodyError, ErrorBody, ValidationErrorBody};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use corral_core::engine::EvalError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `{"error":"Malformed JSON: …"}`: the body is not JSON at all.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// 400 `{"error":"Duplicate key \"tag\" at /segment/visitor_event_query"}`:
    /// an object of the body names a key twice (`at the top level` for the
    /// body's own keys). The key and the JSON Pointer of its object are cut
    /// short when long.
    #[error("duplicate key {key:?} at {pointer:?}")]
    DuplicateKey { key: String, pointer: String },
    /// 400 `{"error":"Invalid query string: …"}`: the query string cannot be
    /// read (a parameter given twice, for one).
    #[error("invalid query string: {0}")]
    InvalidQueryString(String),
    /// 400 `{"error":"Malformed body: …"}`, with `Connection: close`: the
    /// body's framing is broken (a chunk size that is not one) or it ended
    /// before its declared length.
    #[error("malformed body: {0}")]
    MalformedBody(&'static str),
    /// 400 `{"error":"Malformed request: …"}`, with `Connection: close`: the
    /// request line or a header cannot be read (a NUL in the target, a
    /// header line without a colon), or the body's length cannot be told
    /// (two different `Content-Length`s). Answered before any route.
    #[error("malformed request: {0}")]
    MalformedRequest(&'static str),
    /// 401 `{"error":"Unauthorized"}`: any credential or site problem, never
    /// saying which.
    #[error("unauthorized")]
    Unauthorized,
    /// 404 `{"error":"Segment not found"}`: unknown, discarded, or another
    /// site's segment, indistinguishably.
    #[error("segment not found")]
    SegmentNotFound,
    /// 404 `{"error":"Version not found"}`: the segment has no saved
    /// definition of that version.
    #[error("version not found")]
    VersionNotFound,
    /// 404 `{"error":"Webhook not found"}`.
    #[error("webhook not found")]
    WebhookNotFound,
    /// 404 `{"error":"Delivery not found"}`.
    #[error("delivery not found")]
    DeliveryNotFound,
    /// 404 `{"error":"Subscriber not found"}`: no such subscriber on the
    /// caller's site.
    #[error("subscriber not found")]
    SubscriberNotFound,
    /// 404 `{"error":"Tag not found"}`: no tag of that id on the caller's
    /// site.
    #[error("tag not found")]
    TagNotFound,
    /// 404 `{"error":"Not Found"}`: no such route.
    #[error("no such route")]
    RouteNotFound,
    /// 405 `{"error":"Method Not Allowed"}`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 412 `{"error":"Precondition Failed"}`: `If-Match` named another version.
    #[error("precondition failed")]
    PreconditionFailed,
    /// 413 `{"error":"Payload Too Large"}`: the body is over the limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 414 `{"error":"URI Too Long"}`, with `Connection: close`: a request
    /// target over 65,534 bytes. Answered before any route.
    #[error("request target too long")]
    UriTooLong,
    /// 431 `{"error":"Request Header Fields Too Large"}`, with `Connection:
    /// close`: a request head over about 400 KiB, or with more than 100
    /// headers. Answered before any route.
    #[error("request head too large")]
    HeadTooLarge,
    /// 415 `{"error":"Unsupported Media Type"}`: a body that does not say it
    /// is JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 415 `{"error":"Unsupported Content-Encoding \"gzip\": send the body
    /// as it is"}` with `Accept-Encoding: identity`: bodies are not decoded,
    /// so one in any encoding but `identity` is refused rather than read as
    /// if it were plain.
    #[error("unsupported content encoding {0:?}")]
    UnsupportedEncoding(String),
    /// 422 `{"errors":[…]}`: well-formed, but breaks the rules listed.
    #[error("invalid: {0}")]
    Invalid(FieldErrors),
    /// 429 `{"error":"Too Many Requests"}` with `Retry-After` in seconds.
    #[error("rate limited for {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    /// 503 `{"error":"Request timed out"}`: the request ran past its timeout.
    #[error("request timed out")]
    Timeout,
    /// 503 `{"error":"The site's audience is being loaded (42% read); try
    /// again in 18 s"}` with `Retry-After` in seconds: the request ran past
    /// its timeout waiting for its site's audience to be read. The read goes
    /// on without it.
    #[error("{message}")]
    Loading {
        message: String,
        retry_after_secs: u64,
    },
    /// 503 `{"error":"Service Unavailable"}`: the database does not answer.
    #[error("not ready: {0}")]
    NotReady(String),
    /// 500 `{"error":"Internal Server Error"}`; the detail is logged only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_)
            | Self::DuplicateKey { .. }
            | Self::InvalidQueryString(_)
            | Self::MalformedBody(_)
            | Self::MalformedRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::SegmentNotFound
            | Self::SubscriberNotFound
            | Self::TagNotFound
            | Self::RouteNotFound
            | Self::WebhookNotFound
            | Self::VersionNotFound
            | Self::DeliveryNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType | Self::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout | Self::Loading { .. } | Self::NotReady(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::MalformedJson(detail) => format!("Malformed JSON: {detail}"),
            Self::DuplicateKey { key, pointer } => {
                let key = serde_json::to_string(&shortened(key, 64)).unwrap_or_default();
                if pointer.is_empty() {
                    format!("Duplicate key {key} at the top level")
                } else {
                    format!("Duplicate key {key} at {}", shortened(pointer, 256))
                }
            }
            Self::InvalidQueryString(detail) => format!("Invalid query string: {detail}"),
            Self::MalformedBody(detail) => format!("Malformed body: {detail}"),
            Self::MalformedRequest(detail) => format!("Malformed request: {detail}"),
            Self::Unauthorized => "Unauthorized".into(),
            Self::SegmentNotFound => "Segment not found".into(),
            Self::VersionNotFound => "Version not found".into(),
            Self::WebhookNotFound => "Webhook not found".into(),
            Self::DeliveryNotFound => "Delivery not found".into(),
            Self::SubscriberNotFound => "Subscriber not found".into(),
            Self::TagNotFound => "Tag not found".into(),
            Self::RouteNotFound => "Not Found".into(),
            Self::MethodNotAllowed => "Method Not Allowed".into(),
            Self::PreconditionFailed => "Precondition Failed".into(),
            Self::PayloadTooLarge => "Payload Too Large".into(),
            Self::UriTooLong => "URI Too Long".into(),
            Self::HeadTooLarge => "Request Header Fields Too Large".into(),
            Self::UnsupportedMediaType => "Unsupported Media Type".into(),
            Self::UnsupportedEncoding(coding) => {
                let coding = serde_json::to_string(&shortened(coding, 32)).unwrap_or_default();
                format!("Unsupported Content-Encoding {coding}: send the body as it is")
            }
            Self::Invalid(_) => "Unprocessable Entity".into(),
            Self::RateLimited { .. } => "Too Many Requests".into(),
            Self::Timeout => "Request timed out".into(),
            Self::Loading { message, .. } => message.clone(),
            Self::NotReady(_) => "Service Unavailable".into(),
            Self::Internal(_) => "Internal Server Error".into(),
        }
    }
}

/// `text` cut to its first `max` characters, with `…` when cut: client text
/// echoed in an error stays short.
fn shortened(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::Malformed(detail) => Self::MalformedJson(detail),
            BodyError::Invalid(errors) => Self::Invalid(errors),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound => Self::RouteNotFound,
            StorageError::NameTaken => Self::Invalid(
                crate::segment::FieldError::new("name", "has already been taken").into(),
            ),
            StorageError::PreconditionFailed => Self::PreconditionFailed,
            StorageError::Refused(errors) => Self::Invalid(errors),
            StorageError::Unavailable(detail) => Self::NotReady(detail),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<LiveError> for ApiError {
    fn from(error: LiveError) -> Self {
        match error {
            LiveError::Storage(e) => e.into(),
            LiveError::NotEvaluable(EvalError::DetailsNotLoaded(detail)) => {
                Self::Internal(format!("event details not loaded: {detail}"))
            }
            // Only ever seen by a request that is gone.
            LiveError::NotEvaluable(EvalError::Cancelled) => Self::Timeout,
            LiveError::NotEvaluable(e) => Self::Invalid(
                crate::segment::FieldError::new(crate::segment::QUERY_FIELD, e.to_string()).into(),
            ),
        }
    }
}

impl From<SegmentError> for ApiError {
    fn from(error: SegmentError) -> Self {
        match error {
            SegmentError::Invalid(errors) => Self::Invalid(errors),
            SegmentError::NotFound => Self::SegmentNotFound,
            SegmentError::VersionNotFound => Self::VersionNotFound,
            SegmentError::PreconditionFailed => Self::PreconditionFailed,
            SegmentError::Storage(e) => e.into(),
        }
    }
}

impl From<EvaluationError> for ApiError {
    fn from(error: EvaluationError) -> Self {
        match error {
            EvaluationError::SegmentNotFound => Self::SegmentNotFound,
            EvaluationError::Invalid(errors) => Self::Invalid(errors),
            EvaluationError::Live(e) => e.into(),
        }
    }
}

impl From<FieldErrors> for ApiError {
    fn from(errors: FieldErrors) -> Self {
        Self::Invalid(errors)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(detail) => tracing::error!(error = %detail, "request failed"),
            Self::NotReady(detail) => tracing::warn!(error = %detail, "not ready"),
            _ => {}
        }
        let status = self.status();
        let mut response = match &self {
            Self::Invalid(errors) => json_response(
                status,
                &ValidationErrorBody {
                    errors: errors.0.clone(),
                },
            ),
            _ => json_response(
                status,
                &ErrorBody {
                    error: self.message(),
                },
            ),
        };
        let headers = response.headers_mut();
        match self {
            // The body (or the head) was not read whole: the connection
            // cannot carry another request, and the client should know it.
            Self::PayloadTooLarge
            | Self::MalformedBody(_)
            | Self::MalformedRequest(_)
            | Self::UriTooLong
            | Self::HeadTooLarge => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Self::UnsupportedEncoding(_) => {
                headers.insert(
                    header::ACCEPT_ENCODING,
                    HeaderValue::from_static("identity"),
                );
            }
            Self::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"corral\""),
                );
            }
            Self::RateLimited { retry_after_secs }
            | Self::Loading {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            // A database restarting is usually back within seconds.
            Self::NotReady(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(1u64));
            }
            _ => {}
        }
        response
    }
}

impl ApiError {
    /// The answer to a request whose time ran out while it waited for its
    /// site's audience to be read: when to come back, from the read's pace
    /// so far (at least a second; as long as it has taken so far when
    /// nothing tells the pace yet).
    pub fn loading(loading: &crate::live::Loading) -> Self {
        let progress = &loading.progress;
        let wait = progress.remaining().unwrap_or(progress.elapsed);
        let retry_after_secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let message = match progress.share() {
            Some(share) => format!(
                "The site's audience is being loaded ({}% read); try again in {retry_after_secs} s",
                (share * 100.0).floor() as u64
            ),
            None => {
                format!("The site's audience is being loaded; try again in {retry_after_secs} s")
            }
        };
        Self::Loading {
            message,
            retry_after_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::progress::{ProgressReport, Stage};
    use std::time::Duration;

    fn loading(read: u64, expected: Option<u64>, secs: f64) -> ApiError {
        ApiError::loading(&crate::live::Loading {
            site_id: 1,
            progress: ProgressReport {
                stage: Stage::Events,
                elapsed: Duration::from_secs_f64(secs),
                read,
                expected,
            },
        })
    }

    #[test]
    fn a_request_waiting_for_a_read_learns_when_to_come_back() {
        let ApiError::Loading {
            message,
            retry_after_secs,
        } = loading(250, Some(1000), 10.0)
        else {
            panic!("not a loading answer");
        };
        assert_eq!(retry_after_secs, 30);
        assert_eq!(
            message,
            "The site's audience is being loaded (25% read); try again in 30 s"
        );
        let response = loading(250, Some(1000), 10.0).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "30");
    }

    #[test]
    fn retry_after_is_at_least_a_second_and_falls_back_to_the_time_taken() {
        let retry = |e: ApiError| match e {
            ApiError::Loading {
                retry_after_secs, ..
            } => retry_after_secs,
            _ => panic!("not a loading answer"),
        };
        assert_eq!(retry(loading(999, Some(1000), 0.2)), 1);
        assert_eq!(retry(loading(0, Some(1000), 4.5)), 5);
        assert_eq!(retry(loading(10, None, 0.0)), 1);
    }

    #[test]
    fn duplicate_keys_name_the_key_and_its_object() {
        let nested = ApiError::DuplicateKey {
            key: "tag".into(),
            pointer: "/segment/visitor_event_query".into(),
        };
        assert_eq!(nested.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            nested.message(),
            r#"Duplicate key "tag" at /segment/visitor_event_query"#
        );
        let top = ApiError::DuplicateKey {
            key: "say \"hi\"".into(),
            pointer: String::new(),
        };
        assert_eq!(
            top.message(),
            r#"Duplicate key "say \"hi\"" at the top level"#
        );
    }

    #[test]
    fn long_client_text_is_cut_short() {
        let long = ApiError::DuplicateKey {
            key: "é".repeat(100),
            pointer: "/a".repeat(200),
        };
        let message = long.message();
        assert!(
            message.contains(&format!("\"{}…\"", "é".repeat(64))),
            "{message}"
        );
        assert!(
            message.ends_with(&format!("{}…", "/a".repeat(128))),
            "{message}"
        );
    }
}
