//! JSON kept as the client wrote it.
//!
//! Saved queries and event details must come back with the same keys in the
//! same order and the same number literals, so they are never parsed into a
//! tree and printed again: they are kept as text, minus the insignificant
//! whitespace between tokens.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_whitespace_between_tokens_only() {
        assert_eq!(
            compact("{ \"a b\" : [ 1 , 2.50 ] }\n"),
            "{\"a b\":[1,2.50]}"
        );
        assert_eq!(compact(r#"{"k":"x \" y"}"#), r#"{"k":"x \" y"}"#);
    }
}
