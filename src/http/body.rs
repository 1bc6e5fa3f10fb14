//! Reading JSON request bodies into what handlers need, with Bento's answers
//! for what does not fit: text that is not JSON is a 400; JSON of the wrong
//! shape is a 422 that lists every problem at once (unknown fields by name,
//! wrong types, missing fields).
//!
//! Before any handler sees a body, [`admit`] (called by the middleware that
//! reads it) refuses one that does not say it is JSON (415), is not JSON
//! (400), or has an object naming a key twice (400), on every route alike.
//!
//! Values are kept as raw JSON until a handler asks for a type, so a saved
//! query or event details reach storage exactly as written.

use super::ApiError;
use crate::segment::{FieldError, FieldErrors};
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Admits a request body: an empty one always (GET, DELETE and restore need
/// none); any other must be declared JSON ([`declares_json`]), be JSON, and
/// name no key twice in any object at any depth, foreign queries and batch
/// items included. One pass over the bytes, building nothing.
pub fn admit(headers: &HeaderMap, bytes: &[u8]) -> Result<(), ApiError> {
    if bytes.is_empty() {
        return Ok(());
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

/// A body that may carry nothing but `site_uuid` (DELETE and restore, which
/// the Node SDK sends `{"site_uuid":"…"}`): empty, or an object without
/// other keys, each of which is a 422.
pub fn site_only(bytes: &[u8]) -> Result<(), ApiError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let mut top = top_object(bytes)?;
    top.remove("site_uuid");
    let mut errors = FieldErrors::default();
    for unknown in top.keys() {
        errors.push(unknown.as_str(), "is not a known field");
    }
    errors.finish(|| ()).map_err(ApiError::from)
}

/// A JSON object with its values unparsed.
pub type Object = BTreeMap<String, Box<RawValue>>;

/// The body as a JSON object.
pub fn top_object(bytes: &[u8]) -> Result<Object, ApiError> {
    serde_json::from_slice::<Object>(bytes).map_err(|e| {
        if e.is_data() {
            ApiError::Invalid(FieldError::new("body", "must be a JSON object").into())
        } else {
            ApiError::MalformedJson(e.to_string())
        }
    })
}

/// A body `{"<key>": …}` (with `site_uuid` allowed beside it, as the Node SDK
/// sends it): the value under `key`, and the errors found so far.
pub fn wrapped(bytes: &[u8], key: &str) -> Result<(Option<Box<RawValue>>, FieldErrors), ApiError> {
    let mut top = top_object(bytes)?;
    let mut errors = FieldErrors::default();
    let value = top.remove(key);
    top.remove("site_uuid");
    for unknown in top.keys() {
        errors.push(unknown.as_str(), "is not a known field");
    }
    if value.is_none() {
        errors.push(key, "is required");
    }
    Ok((value, errors))
}

/// `raw` as an object, or an empty one and an error naming `field`.
pub fn object(raw: Option<&RawValue>, field: &str, errors: &mut FieldErrors) -> Object {
    match raw.map(|r| serde_json::from_str::<Object>(r.get())) {
        Some(Ok(object)) => object,
        Some(Err(_)) => {
            errors.push(field, "must be a JSON object");
            Object::new()
        }
        None => Object::new(),
    }
}

/// Takes the `known` fields out of `object`; whatever remains is reported as
/// unknown.
pub fn take_known<const N: usize>(
    object: &mut Object,
    known: [&str; N],
    errors: &mut FieldErrors,
) -> [Option<Box<RawValue>>; N] {
    let taken = known.map(|key| object.remove(key));
    for unknown in object.keys() {
        errors.push(unknown.as_str(), "is not a known field");
    }
    taken
}

/// A required field of type `T`: `null` or absent is "can't be blank", another
/// type is "must be a {what}".
pub fn required<T: DeserializeOwned>(
    raw: Option<&RawValue>,
    field: &str,
    what: &str,
    errors: &mut FieldErrors,
) -> Option<T> {
    match raw.map(|r| serde_json::from_str::<Option<T>>(r.get())) {
        Some(Ok(Some(value))) => Some(value),
        Some(Ok(None)) | None => {
            errors.push(field, "can't be blank");
            None
        }
        Some(Err(_)) => {
            errors.push(field, format!("must be a {what}"));
            None
        }
    }
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

    #[test]
    fn wrapped_bodies_report_unknown_and_missing_keys() {
        let (value, errors) = wrapped(br#"{"tag":{"name":"x"},"site_uuid":"s"}"#, "tag").unwrap();
        assert!(value.is_some() && errors.is_empty());
        let (value, errors) = wrapped(br#"{"name":"x"}"#, "tag").unwrap();
        assert!(value.is_none());
        assert_eq!(
            errors.0,
            vec![
                FieldError::new("name", "is not a known field"),
                FieldError::new("tag", "is required")
            ]
        );
        assert!(matches!(
            wrapped(b"{", "tag"),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(wrapped(b"[]", "tag"), Err(ApiError::Invalid(_))));
    }

    #[test]
    fn site_only_bodies_hold_nothing_else() {
        assert!(site_only(b"").is_ok());
        assert!(site_only(br#"{"site_uuid":"s"}"#).is_ok());
        assert!(site_only(b"{}").is_ok());
        assert!(matches!(site_only(b"null"), Err(ApiError::Invalid(_))));
        assert!(matches!(site_only(b"[1]"), Err(ApiError::Invalid(_))));
        match site_only(br#"{"site_uuid":"s","segment":{}}"#) {
            Err(ApiError::Invalid(errors)) => assert_eq!(
                errors.0,
                vec![FieldError::new("segment", "is not a known field")]
            ),
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn required_fields_name_their_type() {
        let mut errors = FieldErrors::default();
        let raw: Box<RawValue> = serde_json::from_str("5").unwrap();
        assert_eq!(
            required::<String>(Some(&raw), "email", "string", &mut errors),
            None
        );
        assert_eq!(
            required::<String>(None, "name", "string", &mut errors),
            None
        );
        assert_eq!(
            errors.0,
            vec![
                FieldError::new("email", "must be a string"),
                FieldError::new("name", "can't be blank")
            ]
        );
    }
}
