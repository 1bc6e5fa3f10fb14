//! JSON text as segment files hold it: re-indented or compacted token by
//! token, so that every string and number literal and the order of keys stay
//! exactly as the server saved them (a round trip through a JSON value would
//! sort keys and could rewrite numbers), and segment references rewritten
//! in place, between an id and `name:NAME`.

/// One token of valid JSON text: a string or another scalar literal as
/// written, or one of `{}[]:,`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Text(&'a str),
    Scalar(&'a str),
    Punct(u8),
}

/// The tokens of `text`, which must be valid JSON (checked by the caller).
fn tokens(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b @ (b'{' | b'}' | b'[' | b']' | b':' | b',') => {
                out.push(Token::Punct(b));
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push(Token::Text(&text[start..i.min(bytes.len())]));
            }
            _ => {
                let start = i;
                while i < bytes.len() && !b" \t\n\r{}[]:,\"".contains(&bytes[i]) {
                    i += 1;
                }
                out.push(Token::Scalar(&text[start..i]));
            }
        }
    }
    out
}

fn write_token(out: &mut String, token: Token<'_>) {
    match token {
        Token::Text(t) | Token::Scalar(t) => out.push_str(t),
        Token::Punct(b) => out.push(b as char),
    }
}

/// `text` without the whitespace between its tokens, as the server stores
/// a query.
pub fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for token in tokens(text) {
        write_token(&mut out, token);
    }
    out
}

/// `text` indented by two spaces a level, one member or element a line,
/// `"key": value`; empty objects and arrays stay `{}` and `[]`. Nested
/// values start at `indent` levels.
pub fn pretty(text: &str, indent: usize) -> String {
    let tokens = tokens(text);
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = indent;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i];
        match token {
            Token::Punct(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                out.push(open as char);
                if tokens.get(i + 1) == Some(&Token::Punct(close)) {
                    out.push(close as char);
                    i += 2;
                    continue;
                }
                depth += 1;
                newline(&mut out, depth);
            }
            Token::Punct(close @ (b'}' | b']')) => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(close as char);
            }
            Token::Punct(b',') => {
                out.push(',');
                newline(&mut out, depth);
            }
            Token::Punct(b':') => out.push_str(": "),
            other => write_token(&mut out, other),
        }
        i += 1;
    }
    out
}

/// Where a token stands while walking: in an object (with the key of the
/// member being read) or an array.
#[derive(Debug, Clone)]
enum Frame {
    Object {
        key: Option<String>,
        expect_key: bool,
    },
    Array,
}

/// `text` with each segment reference's target (the string of a
/// `member_of` or `not_member_of` inside a `segment` test) replaced by what
/// `rewrite` makes of it; `rewrite` is given the JSON pointer of the target
/// and its value, and answers the new value, or an error. The rest of the
/// text is kept token for token (whitespace dropped).
pub fn rewrite_refs(
    text: &str,
    mut rewrite: impl FnMut(&str, &str) -> Result<String, String>,
) -> Result<String, String> {
    let tokens = tokens(text);
    let mut out = String::with_capacity(text.len());
    let mut stack: Vec<Frame> = Vec::new();
    // Each open container's member key or element index, for the pointer.
    let mut path: Vec<String> = Vec::new();
    let mut index: Vec<usize> = Vec::new();
    for token in tokens {
        match token {
            Token::Punct(b'{') => {
                stack.push(Frame::Object {
                    key: None,
                    expect_key: true,
                });
                index.push(0);
                write_token(&mut out, token);
                continue;
            }
            Token::Punct(b'[') => {
                stack.push(Frame::Array);
                index.push(0);
                path.push("0".into());
                write_token(&mut out, token);
                continue;
            }
            Token::Punct(b'}') | Token::Punct(b']') => {
                if let Some(Frame::Array) | Some(Frame::Object { key: Some(_), .. }) = stack.last()
                {
                    path.pop();
                }
                stack.pop();
                index.pop();
                write_token(&mut out, token);
                continue;
            }
            Token::Punct(b',') => {
                match stack.last_mut() {
                    Some(Frame::Object { key, expect_key }) => {
                        if key.take().is_some() {
                            path.pop();
                        }
                        *expect_key = true;
                    }
                    Some(Frame::Array) => {
                        if let Some(n) = index.last_mut() {
                            *n += 1;
                            path.pop();
                            path.push(n.to_string());
                        }
                    }
                    None => {}
                }
                write_token(&mut out, token);
                continue;
            }
            Token::Punct(_) => {
                write_token(&mut out, token);
                continue;
            }
            Token::Text(raw) => {
                if let Some(Frame::Object { key, expect_key }) = stack.last_mut()
                    && *expect_key
                {
                    let name: String = serde_json::from_str(raw).map_err(|e| e.to_string())?;
                    path.push(escape_pointer(&name));
                    *key = Some(name);
                    *expect_key = false;
                    write_token(&mut out, token);
                    continue;
                }
                let depth = stack.len();
                let is_ref = depth >= 2
                    && matches!(
                        &stack[depth - 1],
                        Frame::Object { key: Some(k), .. } if k == "member_of" || k == "not_member_of"
                    )
                    && matches!(&stack[depth - 2], Frame::Object { key: Some(k), .. } if k == "segment");
                if is_ref {
                    let value: String = serde_json::from_str(raw).map_err(|e| e.to_string())?;
                    let pointer = format!("/{}", path.join("/"));
                    let new = rewrite(&pointer, &value)?;
                    out.push_str(&serde_json::to_string(&new).expect("a string serialises"));
                } else {
                    write_token(&mut out, token);
                }
            }
            Token::Scalar(_) => write_token(&mut out, token),
        }
    }
    Ok(out)
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVED: &str = r#"{"all":[{"tag":{"has":"vip"}},{"event":{"type":"$purchase","sum":{"of":"value.amount","more_than":12345678901234567890}}},{"not":{"segment":{"member_of":"12"}}},{"field":{"key":"note","equals":"a \"b\" {c}, [d]: e"}},{"groups":[]},{}]}"#;

    #[test]
    fn pretty_text_compacts_back_to_the_saved_bytes() {
        let pretty = pretty(SAVED, 0);
        assert!(pretty.contains("\n  \"all\": [\n    {\n      \"tag\": {"));
        assert!(pretty.contains("12345678901234567890"));
        assert!(pretty.contains("\"groups\": []"));
        assert_eq!(compact(&pretty), SAVED);
        assert_eq!(compact(&super::pretty(SAVED, 3)), SAVED);
    }

    #[test]
    fn references_are_rewritten_in_place_with_their_pointers() {
        let mut seen = Vec::new();
        let named = rewrite_refs(SAVED, |pointer, value| {
            seen.push((pointer.to_owned(), value.to_owned()));
            Ok(format!("name:VIP \"{value}\""))
        })
        .unwrap();
        assert_eq!(
            seen,
            [("/all/2/not/segment/member_of".to_owned(), "12".to_owned())]
        );
        assert!(named.contains(r#"{"member_of":"name:VIP \"12\""}"#));
        // Everything else is as it was.
        let back = rewrite_refs(&named, |_, _| Ok("12".into())).unwrap();
        assert_eq!(back, SAVED);
        // A string that only looks like a reference is left alone.
        let field = r#"{"field":{"key":"member_of","equals":"12"}}"#;
        assert_eq!(rewrite_refs(field, |_, _| Err("no".into())).unwrap(), field);
    }
}
