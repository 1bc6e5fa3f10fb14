//! Sending a wire value ([`crate::wire`]) as a response: JSON with the
//! content type Rails sends.

use crate::wire::to_json;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

/// The content type of every body Corral sends, as Rails sends it.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// A JSON response with Rails' content type.
pub fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    bytes_response(status, to_json(value))
}

/// A response carrying already-serialized JSON.
pub fn bytes_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}
