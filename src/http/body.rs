//! Reading JSON request bodies into what handlers need, with Bento's answers
//! for what does not fit: text that is not JSON is a 400; JSON of the wrong
//! shape is a 422 that lists every problem at once (unknown fields by name,
//! wrong types, missing fields).
//!
//! Values are kept as raw JSON until a handler asks for a type, so a saved
//! query or event details reach storage exactly as written.

use super::ApiError;
use crate::segment::{FieldError, FieldErrors};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

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
