//! Reading a JSON request body into its request type, with Bento's answers
//! for what does not fit: text that is not JSON is [`BodyError::Malformed`]
//! (a 400); JSON of the wrong shape is [`BodyError::Invalid`] (a 422) listing
//! every problem at once: unknown fields by name, wrong types, missing fields.
//!
//! A request type is a plain struct deriving `Deserialize` and `ToSchema`
//! whose fields are [`Given`]: the value as sent, unparsed. [`read`] and
//! [`nested`] take the struct's field names from its `Deserialize` derive
//! (so the keys refused as unknown are exactly those the struct does not
//! name), and the handler then parses each field, collecting every problem;
//! the same struct's `ToSchema` derive is what the OpenAPI document says of
//! the body. Values stay raw JSON until a field is parsed, so a saved query
//! or event details reach storage exactly as written.

use crate::segment::{FieldError, FieldErrors};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// What cannot be read from a body.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Not JSON at all.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// JSON of the wrong shape, or breaking a rule: every problem, by field.
    #[error("{0}")]
    Invalid(FieldErrors),
}

impl From<FieldErrors> for BodyError {
    fn from(errors: FieldErrors) -> Self {
        Self::Invalid(errors)
    }
}

/// A JSON object with its values unparsed.
pub type Object = BTreeMap<String, Box<RawValue>>;

/// A field as sent: absent (`None`), or its JSON exactly as written, `null`
/// included (unlike `Option<Box<RawValue>>`, which reads `null` as absent).
/// Request types mark each such field `#[serde(default)]` and say its real
/// type to the OpenAPI document with `#[schema(value_type = …)]`.
#[derive(Debug, Default)]
pub struct Given(pub Option<Box<RawValue>>);

impl<'de> Deserialize<'de> for Given {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(|raw| Self(Some(raw)))
    }
}

impl Serialize for Given {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl Given {
    /// The raw JSON, when the field was sent.
    pub fn raw(&self) -> Option<&RawValue> {
        self.0.as_deref()
    }

    /// The raw JSON, unless absent or `null`.
    pub fn non_null(&self) -> Option<&RawValue> {
        self.raw().filter(|raw| raw.get() != "null")
    }

    /// A required value of type `T`: `null` or absent is "can't be blank",
    /// another type is "must be a {what}".
    pub fn required<T: DeserializeOwned>(
        &self,
        field: &str,
        what: &str,
        errors: &mut FieldErrors,
    ) -> Option<T> {
        match self
            .raw()
            .map(|r| serde_json::from_str::<Option<T>>(r.get()))
        {
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

    /// An optional value of type `T`: absent is `None`; another type is
    /// "must be a {what}" (and `None`).
    pub fn optional<T: DeserializeOwned>(
        &self,
        field: &str,
        what: &str,
        errors: &mut FieldErrors,
    ) -> Option<T> {
        let raw = self.raw()?;
        serde_json::from_str::<T>(raw.get())
            .map_err(|_| errors.push(field, format!("must be a {what}")))
            .ok()
    }
}

/// The body as a JSON object, its values unparsed.
pub fn top_object(bytes: &[u8]) -> Result<Object, BodyError> {
    serde_json::from_slice::<Object>(bytes).map_err(|e| {
        if e.is_data() {
            BodyError::Invalid(FieldError::new("body", "must be a JSON object").into())
        } else {
            BodyError::Malformed(e.to_string())
        }
    })
}

/// Reads a body into the request type `T`: a JSON object whose keys `T`
/// names; each other key is an error ("is not a known field"), returned
/// with the value for the caller to add its own.
pub fn read<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, FieldErrors), BodyError> {
    if let Some(value) = at_once(bytes) {
        return Ok((value, FieldErrors::default()));
    }
    let object = top_object(bytes)?;
    let mut errors = FieldErrors::default();
    let value = known::<T>(object, &mut errors).map_err(|e| BodyError::Malformed(e.to_string()))?;
    Ok((value, errors))
}

/// Reads the object under `field` into `T` as [`read`] does, adding its
/// problems to `errors`: absent is `T::default()`; not an object is "must be
/// a JSON object" (and the default).
pub fn nested<T: DeserializeOwned + Default>(
    given: &Given,
    field: &str,
    errors: &mut FieldErrors,
) -> T {
    let Some(raw) = given.raw() else {
        return T::default();
    };
    if let Some(value) = at_once(raw.get().as_bytes()) {
        return value;
    }
    match serde_json::from_str::<Object>(raw.get()) {
        Ok(object) => known::<T>(object, errors).unwrap_or_default(),
        Err(_) => {
            errors.push(field, "must be a JSON object");
            T::default()
        }
    }
}

/// A body that carries nothing but, optionally, the `site_uuid` (the Node
/// SDK sends `{"site_uuid":"…"}` with every DELETE).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteOnlyRequest {
    /// Sent by the Node SDK; may instead be in the query string.
    #[serde(default)]
    #[schema(value_type = Option<super::strings::SiteUuidText>, nullable = false)]
    pub site_uuid: Given,
}

/// Reads a body that may be empty (DELETE and restore need none) or
/// [`SiteOnlyRequest`]; any other key is a 422.
pub fn site_only(bytes: &[u8]) -> Result<(), BodyError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let (_, errors) = read::<SiteOnlyRequest>(bytes)?;
    errors.finish(|| ()).map_err(BodyError::from)
}

/// The common case, in one pass over the text: an object that names only
/// `T`'s keys (each at most once). Anything else (`None`) takes the careful
/// way, which says what is wrong.
fn at_once<T: DeserializeOwned>(text: &[u8]) -> Option<T> {
    // Only an object: serde would also read a struct from an array, by
    // position.
    if !text.trim_ascii_start().starts_with(b"{") {
        return None;
    }
    serde_json::from_slice(text).ok()
}

/// `T` from the keys of `object` it names; each other key is reported and
/// left out (request types deny unknown fields, as the document says).
fn known<T: DeserializeOwned>(
    mut object: Object,
    errors: &mut FieldErrors,
) -> Result<T, serde_json::Error> {
    let names = field_names::<T>();
    object.retain(|key, _| {
        let known = names.contains(&key.as_str());
        if !known {
            errors.push(key.as_str(), "is not a known field");
        }
        known
    });
    // The values are raw JSON: written back exactly as they came.
    serde_json::from_str(&serde_json::to_string(&object)?)
}

/// The field names a struct's `Deserialize` derive reads, asked of the derive
/// itself: it hands them to `deserialize_struct`, which is all this
/// deserializer answers.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut names));
    names
}

struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("field names read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(default)]
        name: Given,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default)]
        site_uuid: Given,
        #[serde(default)]
        tag: Given,
        #[serde(default, rename = "type")]
        kind: Given,
    }

    #[test]
    fn field_names_come_from_the_derive() {
        assert_eq!(field_names::<Outer>(), ["site_uuid", "tag", "type"]);
        assert_eq!(field_names::<Inner>(), ["name"]);
    }

    #[test]
    fn bodies_report_unknown_keys_and_keep_null() {
        let (outer, errors) =
            read::<Outer>(br#"{"tag":{"name":null,"x":1},"site_uuid":"s","y":2}"#).unwrap();
        assert_eq!(errors.0, vec![FieldError::new("y", "is not a known field")]);
        assert_eq!(outer.site_uuid.raw().unwrap().get(), r#""s""#);
        assert!(outer.kind.raw().is_none());
        let mut errors = FieldErrors::default();
        let inner: Inner = nested(&outer.tag, "tag", &mut errors);
        assert_eq!(inner.name.raw().unwrap().get(), "null");
        assert!(inner.name.non_null().is_none());
        assert_eq!(errors.0, vec![FieldError::new("x", "is not a known field")]);
        let mut errors = FieldErrors::default();
        let inner: Inner = nested(
            &Given(Some(RawValue::from_string("[1]".into()).unwrap())),
            "tag",
            &mut errors,
        );
        assert!(inner.name.raw().is_none());
        assert_eq!(
            errors.0,
            vec![FieldError::new("tag", "must be a JSON object")]
        );
    }

    #[test]
    fn the_one_pass_read_takes_only_objects_of_known_keys() {
        let outer: Outer = at_once(br#" {"tag":{"name":1},"type":null}"#).unwrap();
        assert_eq!(outer.tag.raw().unwrap().get(), r#"{"name":1}"#);
        assert_eq!(outer.kind.raw().unwrap().get(), "null");
        assert!(at_once::<Outer>(br#"{"tag":1,"y":2}"#).is_none());
        assert!(at_once::<Outer>(br#"["s",1,2]"#).is_none());
        assert!(at_once::<Outer>(br#"{"tag":1,"tag":2}"#).is_none());
        assert!(at_once::<Outer>(b"").is_none());
    }

    #[test]
    fn a_body_must_be_a_json_object() {
        assert!(matches!(read::<Outer>(b"{"), Err(BodyError::Malformed(_))));
        assert!(matches!(read::<Outer>(b""), Err(BodyError::Malformed(_))));
        match read::<Outer>(b"[1]") {
            Err(BodyError::Invalid(errors)) => {
                assert_eq!(
                    errors.0,
                    vec![FieldError::new("body", "must be a JSON object")]
                )
            }
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn site_only_bodies_hold_nothing_else() {
        assert!(site_only(b"").is_ok());
        assert!(site_only(br#"{"site_uuid":"s"}"#).is_ok());
        assert!(site_only(b"{}").is_ok());
        assert!(matches!(site_only(b"null"), Err(BodyError::Invalid(_))));
        assert!(matches!(site_only(b"[1]"), Err(BodyError::Invalid(_))));
        match site_only(br#"{"site_uuid":"s","segment":{}}"#) {
            Err(BodyError::Invalid(errors)) => assert_eq!(
                errors.0,
                vec![FieldError::new("segment", "is not a known field")]
            ),
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn required_fields_name_their_type() {
        let mut errors = FieldErrors::default();
        let five = Given(Some(RawValue::from_string("5".into()).unwrap()));
        assert_eq!(
            five.required::<String>("email", "string", &mut errors),
            None
        );
        assert_eq!(
            Given::default().required::<String>("name", "string", &mut errors),
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
