//! JSON kept as the client wrote it.
//!
//! Saved queries and event details must come back with the same keys in the
//! same order and the same number literals, so they are never parsed into a
//! tree and printed again: they are kept as text, minus the insignificant
//! whitespace between tokens.
//!
//! JSON text is also checked here for what a parser into a map would hide:
//! an object that names a key twice ([`duplicate_key`]), which one reader
//! takes as the first value and another as the last.

use std::borrow::Cow;
use std::collections::HashSet;

/// Removes the whitespace between tokens of valid JSON text, leaving every
/// token (strings, escapes and number literals included) byte for byte.
pub fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for ch in text.chars() {
        if in_string {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
        } else if !matches!(ch, ' ' | '\t' | '\n' | '\r') {
            if ch == '"' {
                in_string = true;
            }
            out.push(ch);
        }
    }
    out
}

/// A key named twice in one JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    /// The key, unescaped.
    pub key: String,
    /// The JSON Pointer (RFC 6901) of the object that names it twice; empty
    /// for the top level.
    pub pointer: String,
}

/// The first key that an object of `bytes` names twice, in document order,
/// or `None` when every object's keys are distinct. Text that is not JSON is
/// an error (serde_json's, with its position).
///
/// serde_json checks the syntax and the UTF-8 first, skipping values without
/// building or converting them (so without a depth limit, and with numbers
/// beyond `f64` such as `1e400` read as written, as everywhere else). Then one pass over
/// the bytes, with a stack of the objects and arrays it is in rather than
/// recursion, keeps each object's keys (borrowed from the input unless
/// escaped) and stops at the first repeated one.
pub fn duplicate_key(bytes: &[u8]) -> Result<Option<DuplicateKey>, serde_json::Error> {
    serde_json::from_slice::<&serde_json::value::RawValue>(bytes)?;
    Ok(first_duplicate(bytes))
}

/// An object or array the scan is inside.
enum Frame<'a> {
    Object {
        keys: Keys<'a>,
        /// The key whose value is being read.
        current: Cow<'a, str>,
    },
    Array {
        index: usize,
    },
}

/// The keys of one object so far.
#[derive(Default)]
struct Keys<'a> {
    listed: Vec<Cow<'a, str>>,
    hashed: HashSet<Cow<'a, str>>,
}

/// Keys of small objects are compared in a list; past this many, in a hash
/// set, so that an object of a million keys costs a million lookups.
const LINEAR_KEYS: usize = 16;

impl<'a> Keys<'a> {
    /// Adds `key`; false when it was there already.
    fn insert(&mut self, key: Cow<'a, str>) -> bool {
        if self.hashed.is_empty() && self.listed.len() < LINEAR_KEYS {
            if self.listed.contains(&key) {
                return false;
            }
            self.listed.push(key);
            return true;
        }
        self.hashed.extend(self.listed.drain(..));
        self.hashed.insert(key)
    }
}

/// The scan of [`duplicate_key`], over text known to be valid JSON.
fn first_duplicate(bytes: &[u8]) -> Option<DuplicateKey> {
    let mut stack: Vec<Frame> = Vec::new();
    // After `{` or an object's `,`, the next string is a key.
    let mut expect_key = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                stack.push(Frame::Object {
                    keys: Keys::default(),
                    current: Cow::Borrowed(""),
                });
                expect_key = true;
            }
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { .. }) => expect_key = true,
                None => {}
            },
            b'"' => {
                let end = string_end(bytes, i);
                if expect_key {
                    expect_key = false;
                    let key = unescaped(&bytes[i..end]);
                    if let Some(Frame::Object { keys, current }) = stack.last_mut() {
                        if !keys.insert(key.clone()) {
                            return Some(DuplicateKey {
                                key: key.into_owned(),
                                pointer: pointer(&stack[..stack.len() - 1]),
                            });
                        }
                        *current = key;
                    }
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Where the string that opens at `start` ends: just past its closing quote.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// A string token's text, borrowed unless it has escapes to undo.
fn unescaped(token: &[u8]) -> Cow<'_, str> {
    let inner = &token[1..token.len() - 1];
    if !inner.contains(&b'\\')
        && let Ok(text) = std::str::from_utf8(inner)
    {
        return Cow::Borrowed(text);
    }
    // Checked by serde_json before the scan, so this cannot fail.
    Cow::Owned(serde_json::from_slice(token).unwrap_or_default())
}

/// The JSON Pointer of the value the frames lead to.
fn pointer(frames: &[Frame]) -> String {
    let mut pointer = String::new();
    for frame in frames {
        pointer.push('/');
        match frame {
            Frame::Object { current, .. } => {
                pointer.push_str(&current.replace('~', "~0").replace('/', "~1"));
            }
            Frame::Array { index } => pointer.push_str(&index.to_string()),
        }
    }
    pointer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate(text: &str) -> Option<(String, String)> {
        duplicate_key(text.as_bytes())
            .unwrap()
            .map(|d| (d.key, d.pointer))
    }

    fn found(key: &str, pointer: &str) -> Option<(String, String)> {
        Some((key.to_owned(), pointer.to_owned()))
    }

    #[test]
    fn distinct_keys_pass_at_every_depth() {
        for text in [
            "{}",
            "[]",
            "5",
            r#""a""#,
            r#"{"a":1,"b":{"a":2,"b":[{"a":3},{"a":4}]}}"#,
            r#"[{"a":1},{"a":1}]"#,
            r#"{"a":"a","b":"a"}"#,
            r#"{"a":{"a":{"a":{}}}}"#,
        ] {
            assert_eq!(duplicate(text), None, "{text}");
        }
    }

    #[test]
    fn a_key_named_twice_is_found_with_the_pointer_of_its_object() {
        assert_eq!(duplicate(r#"{"a":1,"a":2}"#), found("a", ""));
        assert_eq!(
            duplicate(
                r#"{"segment":{"visitor_event_query":{"tag":{"has":"a"},"tag":{"has":"b"}}}}"#
            ),
            found("tag", "/segment/visitor_event_query")
        );
        assert_eq!(
            duplicate(r#"{"events":[{"type":"x"},{"type":"y","details":{"k":1,"k":1}}]}"#),
            found("k", "/events/1/details")
        );
        assert_eq!(duplicate(r#"[[{}],[{"x":1,"x":1}]]"#), found("x", "/1/0"));
    }

    #[test]
    fn keys_compare_unescaped_and_pointers_escape() {
        assert_eq!(duplicate(r#"{"a":1,"\u0061":2}"#), found("a", ""));
        assert_eq!(
            duplicate(r#"{"a/b":{"c~d":{"é":1,"\u00e9":2}}}"#),
            found("é", "/a~1b/c~0d")
        );
        assert_eq!(duplicate(r#"{"":{"":1,"":2}}"#), found("", "/"));
    }

    #[test]
    fn the_first_duplicate_in_document_order_is_reported() {
        assert_eq!(
            duplicate(r#"{"b":{"y":1,"y":2},"b":3,"a":1,"a":2}"#),
            found("y", "/b")
        );
    }

    #[test]
    fn large_objects_are_checked_by_hash() {
        let keys: Vec<String> = (0..1000).map(|i| format!("\"k{i}\":{i}")).collect();
        let unique = format!("{{{}}}", keys.join(","));
        assert_eq!(duplicate(&unique), None);
        let repeated = format!("{{{},\"k999\":0}}", keys.join(","));
        assert_eq!(duplicate(&repeated), found("k999", ""));
        let early = format!("{{\"k3\":0,{}}}", keys.join(","));
        assert_eq!(duplicate(&early), found("k3", ""));
    }

    #[test]
    fn numbers_beyond_f64_are_read_as_written_elsewhere() {
        assert_eq!(
            duplicate(r#"{"foreign":{"n":1e400,"m":-123456789e99999,"s":"1e400"}}"#),
            None
        );
        assert_eq!(
            duplicate(r#"{"foreign":{"n":1e400,"k":"\"}","k":2}}"#),
            found("k", "/foreign")
        );
        assert!(duplicate_key(br#"{"n":1e400,"x":01}"#).is_err());
        assert!(duplicate_key(br#"{"n":1e400,"x":}"#).is_err());
    }

    #[test]
    fn depth_has_no_limit() {
        let depth = 10_000;
        let deep = format!("{}{{}}{}", r#"{"a":["#.repeat(depth), "]}".repeat(depth));
        assert_eq!(duplicate(&deep), None);
        let repeated = format!(
            "{}{{\"k\":1,\"k\":2}}{}",
            r#"{"a":["#.repeat(3),
            "]}".repeat(3)
        );
        assert_eq!(duplicate(&repeated), found("k", "/a/0/a/0/a/0"));
    }

    #[test]
    fn strings_that_look_like_structure_are_only_strings() {
        assert_eq!(
            duplicate(r#"{"a":"{\"a\":1,\"a\":2}","b":["\\",",\"a\":"],"c":"}"}"#),
            None
        );
        assert_eq!(
            duplicate(r#"{"a\\":1,"b":"x\"","a\\":2}"#),
            found("a\\", "")
        );
    }

    #[test]
    fn text_that_is_not_json_is_an_error() {
        for text in [
            "",
            "{",
            r#"{"a":1,}"#,
            "{} {}",
            "{'a':1}",
            "[1,]",
            "\"\\x\"",
        ] {
            assert!(duplicate_key(text.as_bytes()).is_err(), "{text}");
        }
        assert!(duplicate_key(b"{\"a\":\"\xff\"}").is_err());
    }

    #[test]
    fn drops_whitespace_between_tokens_only() {
        assert_eq!(
            compact("{ \"a b\" : [ 1 , 2.50 ] }\n"),
            "{\"a b\":[1,2.50]}"
        );
        assert_eq!(compact(r#"{"k":"x \" y"}"#), r#"{"k":"x \" y"}"#);
    }
}
