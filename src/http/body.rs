//! Admitting a request body, before any handler sees it: [`admit`] (called
//! by the middleware that reads it) refuses one sent in a content encoding
//! (415: bodies are not decoded), one that does not say it is JSON (415), is
//! not JSON (400), or has an object naming a key twice (400), on every route
//! alike. Reading an admitted body into its request type is the
//! wire module's ([`crate::wire::body`]).

use super::ApiError;
use axum::http::{HeaderMap, header};

/// Admits a request body: an empty one always (GET, DELETE and restore need
/// none); any other must be declared JSON ([`declares_json`]), be JSON, and
/// name no key twice in any object at any depth, foreign queries and batch
/// items included. One pass over the bytes, building nothing.
pub fn admit(headers: &HeaderMap, bytes: &[u8]) -> Result<(), ApiError> {
    if bytes.is_empty() {
        return Ok(());
    }
    if let Some(coding) = content_coding(headers) {
        return Err(ApiError::UnsupportedEncoding(coding));
    }
    if !declares_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    match corral_core::json::duplicate_key(bytes) {
        Ok(None) => Ok(()),
        Ok(Some(duplicate)) => Err(ApiError::DuplicateKey {
            key: duplicate.key,
            pointer: duplicate.pointer,
        }),
        Err(e) => Err(ApiError::MalformedJson(e.to_string())),
    }
}

/// The first content coding of the body other than `identity`, if any
/// (`Content-Encoding: gzip`; several headers or a list count alike; one
/// that is not text is named `?`).
fn content_coding(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|value| match value.to_str() {
            Ok(text) => text.split(',').map(str::trim).collect::<Vec<_>>(),
            Err(_) => vec!["?"],
        })
        .find(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"))
        .map(str::to_owned)
}

/// Whether the request has one `Content-Type`, and it is JSON:
/// `application/json` or a structured `+json` type such as JSON:API's
/// `application/vnd.api+json`, in any case, with any parameters but a
/// charset other than UTF-8 (JSON is UTF-8, RFC 8259).
pub fn declares_json(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let json = match essence.strip_prefix("application/") {
        Some("json") => true,
        Some(subtype) => subtype.strip_suffix("+json").is_some_and(|prefix| {
            !prefix.is_empty()
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.".contains(&b))
        }),
        None => false,
    };
    json && parts.all(|parameter| match parameter.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let charset = value.trim().trim_matches('"');
            charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn typed(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn json_types_are_recognised_with_their_parameters() {
        for value in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            "application/json; charset=\"utf-8\"",
            "application/json;",
            "application/json; profile=x",
            "application/vnd.api+json",
            "application/merge-patch+json; charset=utf8",
        ] {
            assert!(declares_json(&typed(&[value])), "{value}");
        }
        for values in [
            &[][..],
            &["text/plain"],
            &["application/x-www-form-urlencoded"],
            &["multipart/form-data; boundary=x"],
            &["text/json"],
            &["application/jsonx"],
            &["application/+json"],
            &["application/json; charset=iso-8859-1"],
            &["application/json", "application/json"],
        ] {
            assert!(!declares_json(&typed(values)), "{values:?}");
        }
    }

    #[test]
    fn a_body_in_a_content_encoding_is_refused() {
        let encoded = |values: &[&str]| {
            let mut headers = typed(&["application/json"]);
            for value in values {
                headers.append(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            admit(&headers, b"{}")
        };
        assert!(encoded(&[]).is_ok());
        assert!(encoded(&["identity"]).is_ok());
        assert!(encoded(&["Identity, identity"]).is_ok());
        for (values, named) in [
            (&["gzip"][..], "gzip"),
            (&["identity, br"], "br"),
            (&["identity", "deflate"], "deflate"),
        ] {
            match encoded(values) {
                Err(ApiError::UnsupportedEncoding(coding)) => assert_eq!(coding, named),
                other => panic!("{values:?}: {other:?}"),
            }
        }
        // Nothing to decode in an empty body.
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(admit(&headers, b"").is_ok());
    }

    #[test]
    fn admitted_bodies_are_declared_json_with_distinct_keys() {
        let json = typed(&["application/json"]);
        assert!(admit(&HeaderMap::new(), b"").is_ok());
        assert!(admit(&typed(&["text/plain"]), b"").is_ok());
        assert!(admit(&json, br#"{"a":{"b":1},"b":[{"a":1}]}"#).is_ok());
        assert!(matches!(
            admit(&typed(&["text/plain"]), b"{}"),
            Err(ApiError::UnsupportedMediaType)
        ));
        assert!(matches!(
            admit(&HeaderMap::new(), b"{}"),
            Err(ApiError::UnsupportedMediaType)
        ));
        assert!(matches!(
            admit(&json, b"{"),
            Err(ApiError::MalformedJson(_))
        ));
        match admit(&json, br#"{"segment":{"name":"a","name":"b"}}"#) {
            Err(ApiError::DuplicateKey { key, pointer }) => {
                assert_eq!((key.as_str(), pointer.as_str()), ("name", "/segment"));
            }
            other => panic!("expected a duplicate key, got {other:?}"),
        }
    }
}
