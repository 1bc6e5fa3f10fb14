//! The extractors handlers use, in place of axum's: the same data, but every
//! rejection is an [`ApiError`], so a request that cannot be read is answered
//! in Bento's JSON shapes like any other error, never in axum's plain text.
//!
//! - [`Query`]: the query string as a struct of parameters (unknown ones
//!   ignored, as Rails does); one that cannot be read, such as a parameter
//!   given twice, is `400 {"error":"Invalid query string: …"}`.
//! - [`SegmentPath`]: the `{id}` of a segment route; anything that cannot be
//!   a segment's id (not a positive decimal number, or bytes that are not
//!   UTF-8 once percent-decoded) names no segment:
//!   `404 {"error":"Segment not found"}`, as an unknown id does.
//! - [`Extension`]: a value the middleware put on the request (the
//!   authenticated [`super::Caller`]); its absence is a server fault, answered
//!   500 and logged.
//!
//! `clippy.toml` disallows axum's own `Query`, `Path` and `Extension`, so a
//! handler cannot take them by mistake.

use super::ApiError;
use crate::segment::SegmentId;
use axum::extract::FromRequestParts;
use axum::http::Uri;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// Query-string parameters of type `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned> QueryParams<T> {
    /// Reads the parameters of `uri`; none at all is the empty query.
    pub fn from_uri(uri: &Uri) -> Result<Self, ApiError> {
        #[allow(clippy::disallowed_types)]
        let read = axum::extract::Query::<T>::try_from_uri(uri);
        read.map(|query| Self(query.0))
            .map_err(|rejection| ApiError::InvalidQueryString(query_problem(&rejection)))
    }
}

/// What is wrong with a query string, without axum's prefix.
#[allow(clippy::disallowed_types)]
fn query_problem(rejection: &axum::extract::rejection::QueryRejection) -> String {
    let text = rejection.body_text();
    text.strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text)
        .to_owned()
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Self::from_uri(&parts.uri)
    }
}

/// The segment a route's `{id}` names, read as a [`SegmentId`].
#[derive(Debug, Clone, Copy)]
pub struct SegmentPath(pub SegmentId);

impl<S: Send + Sync> FromRequestParts<S> for SegmentPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        #[allow(clippy::disallowed_types)]
        let id = axum::extract::Path::<String>::from_request_parts(parts, state).await;
        match id {
            Ok(axum::extract::Path(id)) => SegmentId::parse(&id)
                .map(Self)
                .ok_or(ApiError::SegmentNotFound),
            #[allow(clippy::disallowed_types)]
            Err(axum::extract::rejection::PathRejection::MissingPathParams(e)) => Err(
                ApiError::Internal(format!("segment route without an id: {e}")),
            ),
            Err(_) => Err(ApiError::SegmentNotFound),
        }
    }
}

/// A value of type `T` put on the request by middleware.
#[derive(Debug, Clone, Copy)]
pub struct Extension<T>(pub T);

impl<T: Clone + Send + Sync + 'static, S: Send + Sync> FromRequestParts<S> for Extension<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<T>()
            .cloned()
            .map(Self)
            .ok_or_else(|| {
                ApiError::Internal(format!(
                    "{} missing: the route is mounted without its middleware",
                    std::any::type_name::<T>()
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Params {
        segment_id: Option<String>,
    }

    #[test]
    fn reads_parameters_and_ignores_unknown_ones() {
        let uri: Uri = "/x?segment_id=7&other=1&other=2".parse().unwrap();
        let QueryParams(params) = QueryParams::<Params>::from_uri(&uri).unwrap();
        assert_eq!(params.segment_id.as_deref(), Some("7"));
        let none: Uri = "/x".parse().unwrap();
        assert!(
            QueryParams::<Params>::from_uri(&none)
                .unwrap()
                .0
                .segment_id
                .is_none()
        );
    }

    #[test]
    fn a_parameter_given_twice_is_an_invalid_query_string() {
        let uri: Uri = "/x?segment_id=1&segment_id=2".parse().unwrap();
        match QueryParams::<Params>::from_uri(&uri) {
            Err(ApiError::InvalidQueryString(detail)) => {
                assert_eq!(detail, "duplicate field `segment_id`");
            }
            other => panic!("expected an invalid query string, got {other:?}"),
        }
    }
}
