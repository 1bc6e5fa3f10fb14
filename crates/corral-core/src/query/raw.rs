//! [`RawQuery`]: a `visitor_event_query` kept verbatim as compact JSON text.

use serde_json::value::RawValue;

/// The largest query accepted, in bytes of its compact form (64 KiB).
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// Why a value cannot be a segment's query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("must be a JSON object")]
    NotAnObject,
    #[error("is too large ({size} bytes; the maximum is {max} bytes)")]
    TooLarge { size: usize, max: usize },
}

/// A query as the client wrote it, minus insignificant whitespace.
///
/// Invariant: the text is one syntactically valid JSON object of at most
/// [`MAX_QUERY_BYTES`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawQuery(String);

impl RawQuery {
    /// Accepts a JSON value already checked for syntax by serde_json.
    pub fn from_raw_value(value: &RawValue) -> Result<Self, QueryError> {
        let text = value.get();
        if !text.trim_start().starts_with('{') {
            return Err(QueryError::NotAnObject);
        }
        let compact = crate::json::compact(text);
        if compact.len() > MAX_QUERY_BYTES {
            return Err(QueryError::TooLarge {
                size: compact.len(),
                max: MAX_QUERY_BYTES,
            });
        }
        Ok(Self(compact))
    }

    /// Parses JSON text (from a file or stdin), checking syntax as well.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let value: Box<RawValue> =
            serde_json::from_str(text).map_err(|e| ParseError::Syntax(e.to_string()))?;
        Self::from_raw_value(&value).map_err(ParseError::Invalid)
    }

    /// Wraps text read back from storage, where it was saved by this type.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The query as a raw JSON value, for embedding in a response unchanged.
    pub fn to_raw_value(&self) -> Box<RawValue> {
        // The invariant guarantees valid JSON; a failure here is a corrupted row.
        RawValue::from_string(self.0.clone())
            .unwrap_or_else(|_| RawValue::from_string("{}".to_owned()).expect("valid JSON"))
    }
}

/// Why text given on the command line is not a query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("is not valid JSON: {0}")]
    Syntax(String),
    #[error("{0}")]
    Invalid(QueryError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn keeps_key_order_and_number_literals() {
        let q =
            RawQuery::parse(r#"{ "z": 1.10, "a": 12345678901234567890, "m": -0.0e+5 }"#).unwrap();
        assert_eq!(
            q.as_str(),
            r#"{"z":1.10,"a":12345678901234567890,"m":-0.0e+5}"#
        );
    }

    #[test]
    fn keeps_whitespace_and_escapes_inside_strings() {
        let q = RawQuery::parse("{\"k\" :\n \"a b\\\" \\\\ \\u00e9 é\"}").unwrap();
        assert_eq!(q.as_str(), "{\"k\":\"a b\\\" \\\\ \\u00e9 é\"}");
    }

    #[test]
    fn refuses_anything_but_an_object() {
        for text in ["[]", "1", "\"{}\"", "null", "true"] {
            assert_eq!(
                RawQuery::from_raw_value(&raw(text)),
                Err(QueryError::NotAnObject),
                "{text}"
            );
        }
    }

    #[test]
    fn measures_the_limit_on_the_compact_form() {
        let filler = "x".repeat(MAX_QUERY_BYTES - 8);
        let exactly = format!(r#"{{"k":"{filler}"}}"#);
        assert_eq!(exactly.len(), MAX_QUERY_BYTES);
        let padded = format!("{{  \"k\" :   \"{filler}\"  }}");
        assert!(RawQuery::parse(&padded).is_ok());
        let over = format!(r#"{{"k":"{filler}x"}}"#);
        assert_eq!(
            RawQuery::parse(&over),
            Err(ParseError::Invalid(QueryError::TooLarge {
                size: MAX_QUERY_BYTES + 1,
                max: MAX_QUERY_BYTES
            }))
        );
    }

    #[test]
    fn accepts_nesting_deeper_than_serde_jsons_recursion_limit() {
        let depth = 5_000;
        let text = format!("{}{{}}{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        let q = RawQuery::parse(&text).unwrap();
        assert_eq!(q.as_str(), text);
    }

    #[test]
    fn reports_syntax_errors() {
        assert!(matches!(RawQuery::parse("{"), Err(ParseError::Syntax(_))));
    }
}
