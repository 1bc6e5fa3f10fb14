//! The README's API examples, run as printed against `corral serve --demo`:
//! every `curl` line of its API section answers 2xx, and where the README
//! shows the answer (a `# {…}` comment under the command) the answer is that,
//! `…` standing for what differs from run to run. Every query the README and
//! the query language's reference show selects someone in that demo, and
//! every table of the docs has rows as wide as its header.

use crate::cli::{Cli, start_demo};
use serde_json::Value;
use std::process::Command;

/// One `curl` example: where it starts in the README, and the answer the
/// README shows for it, if any.
#[derive(Debug)]
struct Example {
    line: usize,
    shown: Option<String>,
}

/// The `sh` blocks of the README's API section that run `curl`, in order,
/// with the examples they hold. An answer is shown as comment lines right
/// under its command, the first starting with `{` or `[`.
fn api_examples(readme: &str) -> (Vec<String>, Vec<Example>) {
    let start = readme
        .find("\n## API\n")
        .expect("the README has an API section");
    let end = start
        + 1
        + readme[start + 1..]
            .find("\n## ")
            .expect("a section follows");
    // `start` is the newline ending this line; enumeration counts from it.
    let before = readme[..start].lines().count();
    let mut blocks = Vec::new();
    let mut examples: Vec<Example> = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    // Whether comment lines now continue the last example's answer.
    let mut showing = false;
    for (n, line) in readme[start..end].lines().enumerate() {
        let text = line.trim();
        let Some(lines) = &mut block else {
            if text == "```sh" {
                block = Some(Vec::new());
            }
            continue;
        };
        if text == "```" {
            if lines.iter().any(|l| l.trim_start().starts_with("curl ")) {
                blocks.push(lines.join("\n"));
            }
            block = None;
            showing = false;
            continue;
        }
        lines.push(line);
        match text.strip_prefix('#').map(str::trim_start) {
            Some(comment) if showing || comment.starts_with(['{', '[']) => {
                let example = examples
                    .last_mut()
                    .expect("an answer is shown under a curl line");
                example
                    .shown
                    .get_or_insert_with(String::new)
                    .push_str(comment);
                showing = true;
            }
            Some(_) => showing = false,
            None => {
                showing = false;
                if text.starts_with("curl ") {
                    examples.push(Example {
                        line: before + n,
                        shown: None,
                    });
                }
            }
        }
    }
    (blocks, examples)
}

/// Whether `text` is `pattern`, where each `…` in the pattern stands for any
/// text.
fn matches_shown(text: &str, pattern: &str) -> bool {
    let pieces: Vec<&str> = pattern.split('…').collect();
    let (first, rest) = pieces.split_first().unwrap();
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for piece in middle {
        match remaining.find(piece) {
            Some(at) => remaining = &remaining[at + piece.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

#[test]
fn shown_answers_match_with_ellipses_standing_for_anything() {
    assert!(matches_shown("{\"a\":1}", "{\"a\":1}"));
    assert!(!matches_shown("{\"a\":12}", "{\"a\":1}"));
    assert!(matches_shown(
        "{\"a\":\"xyz\",\"b\":2}",
        "{\"a\":\"…\",\"b\":2}"
    ));
    assert!(matches_shown("{\"a\":1,\"b\":2,\"c\":3}", "{…\"b\":2…}"));
    assert!(!matches_shown("{\"a\":1,\"c\":3}", "{…\"b\":2…}"));
    assert!(!matches_shown("ab", "a…ab"));
}

#[test]
fn every_curl_example_of_the_readme_works_as_printed_against_serve_demo() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let (blocks, examples) = api_examples(&readme);
    assert!(examples.len() >= 9, "{examples:?}");
    let cli = Cli::new();
    let server = start_demo(&cli, &["serve", "--listen", "127.0.0.1:0", "--demo"]);
    let answers = cli.dir.path().join("answers");
    std::fs::create_dir(&answers).unwrap();
    // The blocks run unchanged, in README order, in one shell, after the
    // banner's export line; `curl` keeps each answer and its status.
    let script = format!(
        "{export}\nn=0\ncurl() {{\n  n=$((n + 1))\n  command curl --silent --show-error \
         --output \"$ANSWERS/$n.body\" --write-out '%{{http_code}}' \"$@\" >\"$ANSWERS/$n.status\"\n}}\n{blocks}\n",
        export = server.export_line(),
        blocks = blocks.join("\n"),
    );
    let output = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("ANSWERS", &answers)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{script}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (i, example) in examples.iter().enumerate() {
        let read = |ext: &str| {
            std::fs::read_to_string(answers.join(format!("{}.{ext}", i + 1)))
                .unwrap_or_else(|e| panic!("README line {}: no answer ({e})", example.line))
        };
        let (status, body) = (read("status"), read("body"));
        assert!(
            status.starts_with('2'),
            "README line {}: {status} {body}",
            example.line
        );
        if let Some(shown) = &example.shown {
            assert!(
                matches_shown(body.trim_end(), shown),
                "README line {}:\n shown: {shown}\nanswer: {body}",
                example.line
            );
        }
    }
    assert!(
        !answers
            .join(format!("{}.status", examples.len() + 1))
            .exists(),
        "more curl calls ran than the README's curl lines"
    );
}

/// The cells of a Markdown table row: split on `|` outside backticks (a
/// `|` inside code belongs to the cell), without the outer pipes.
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = vec![String::new()];
    let mut in_code = false;
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                in_code = !in_code;
                cells.last_mut().unwrap().push(c);
            }
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut().unwrap().push(chars.next().unwrap());
            }
            '|' if !in_code => cells.push(String::new()),
            _ => cells.last_mut().unwrap().push(c),
        }
    }
    cells
}

/// Every table of the README and of `docs/` and `bench/README.md` has as
/// many cells in each row as in its header (a row pasted from another
/// table shows as a broken one).
#[test]
fn every_table_of_the_docs_has_rows_as_wide_as_its_header() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md"), root.join("bench/README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut in_fence = false;
        let mut header: Option<usize> = None;
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_fence = !in_fence;
                continue;
            }
            let is_row = !in_fence && line.trim_start().starts_with('|');
            if !is_row {
                header = None;
                continue;
            }
            let width = cells(line).len();
            match header {
                None => header = Some(width),
                Some(expected) if width != expected => broken.push(format!(
                    "{}:{}: {width} cells where the header has {expected}: {line}",
                    file.strip_prefix(root).unwrap().display(),
                    n + 1
                )),
                Some(_) => {}
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn a_table_row_with_a_stray_cell_is_found() {
    assert_eq!(cells("| a | `b|c` | d |").len(), 3);
    assert_eq!(cells("| a | b \\| c |").len(), 2);
    assert_eq!(cells("|---|---|").len(), 2);
}

/// The kinds of condition a query's one key may be (docs/query-language.md).
const QUERY_KINDS: [&str; 13] = [
    "all",
    "any",
    "not",
    "groups",
    "email",
    "subscribed",
    "created",
    "tag",
    "field",
    "event",
    "segment",
    "sample",
    "foreign",
];

/// Whether `value` has the shape of a query: `{}`, or an object with one
/// key that is a kind of condition.
fn is_query(value: &Value) -> bool {
    value.as_object().is_some_and(|object| {
        object.is_empty()
            || (object.len() == 1 && QUERY_KINDS.contains(&object.keys().next().unwrap().as_str()))
    })
}

/// A query a document shows: where, and the query.
#[derive(Debug)]
struct Shown {
    at: String,
    query: Value,
}

/// The queries `text` (the file `name`) shows: each `json` block that is a
/// query, or each line of one that holds a query a line; and each
/// `"visitor_event_query":` value written out whole (in a command, an
/// answer or a block, over several lines and `#` comment lines if need be).
/// Values with `…` in them are placeholders, not examples.
fn shown_queries(name: &str, text: &str) -> Vec<Shown> {
    let mut shown = Vec::new();
    let mut block: Option<(usize, Vec<&str>)> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        match &mut block {
            None if trimmed == "```json" => block = Some((n + 2, Vec::new())),
            None => {}
            Some((first, lines)) if trimmed == "```" => {
                let whole = lines.join("\n");
                if let Ok(query) = serde_json::from_str::<Value>(&whole) {
                    if is_query(&query) {
                        shown.push(Shown {
                            at: format!("{name}:{first}"),
                            query,
                        });
                    }
                } else {
                    for (k, line) in lines.iter().enumerate() {
                        if let Ok(query) = serde_json::from_str::<Value>(line)
                            && is_query(&query)
                        {
                            shown.push(Shown {
                                at: format!("{name}:{}", *first + k),
                                query,
                            });
                        }
                    }
                }
                block = None;
            }
            Some((_, lines)) => lines.push(line),
        }
    }
    const KEY: &str = "\"visitor_event_query\":";
    for (start, _) in text.match_indices(KEY) {
        let line = text[..start].matches('\n').count() + 1;
        if let Some(written) = json_object_at(&text[start + KEY.len()..])
            && let Ok(query) = serde_json::from_str::<Value>(&written)
        {
            shown.push(Shown {
                at: format!("{name}:{line}"),
                query,
            });
        }
    }
    shown
}

/// The JSON object `text` starts with (after spaces), its lines joined: a
/// line break, the spaces after it and a `#` comment marker there are left
/// out. `None` when it does not start with `{` or never closes.
fn json_object_at(text: &str) -> Option<String> {
    let text = text.trim_start_matches(' ');
    if !text.starts_with('{') {
        return None;
    }
    let (mut written, mut depth, mut in_string, mut escaped) = (String::new(), 0, false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.next_if_eq(&'#').is_some() {
                while chars.next_if(|c| c.is_whitespace()).is_some() {}
            }
            continue;
        }
        written.push(c);
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(written);
                }
            }
            _ => {}
        }
    }
    None
}

#[test]
fn queries_are_found_in_blocks_commands_and_answers() {
    let text = "```json\n{\"tag\": {\"has\": \"a\"}}\n```\n\
        ```json\n{\"all\":[]}\n{\"any\":[]}\n```\n\
        ```json\n{\"data\":{}}\n```\n\
        ```sh\ncurl -d '{\"segment\":{\"visitor_event_query\":{\"groups\":\n  [{\"filters\":[]}]}}}'\n\
        # {\"visitor_event_query\":{\"not\":\n#   {\"tag\":{\"has\":\"}\"}}},…}\n\
        # {\"visitor_event_query\":{…}}\n```\n";
    let shown: Vec<(String, String)> = shown_queries("x.md", text)
        .into_iter()
        .map(|s| (s.at, s.query.to_string()))
        .collect();
    assert_eq!(
        shown,
        [
            ("x.md:2", r#"{"tag":{"has":"a"}}"#),
            ("x.md:5", r#"{"all":[]}"#),
            ("x.md:6", r#"{"any":[]}"#),
            ("x.md:12", r#"{"groups":[{"filters":[]}]}"#),
            ("x.md:14", r#"{"not":{"tag":{"has":"}"}}}"#),
        ]
        .map(|(at, query)| (at.to_owned(), query.to_owned()))
    );
}

/// Examples that select nobody in the demo on purpose, or for a reason
/// other than the demo's data, each with that reason.
const NOT_IN_THE_DEMO: &[(&str, &str)] = &[
    (
        r#"{"email": {"equals": "Ada@Example.com"}}"#,
        "an address the demo does not have (its are NAMEi@example.com)",
    ),
    (
        r#"{"email": {"in": ["ada@example.com", "grace@example.com"]}}"#,
        "addresses the demo does not have",
    ),
    (
        r#"{"email": {"contains": "+test"}}"#,
        "no demo address holds +test",
    ),
    (
        r#"{"email": {"starts_with": "billing@"}}"#,
        "no demo address starts so",
    ),
    (
        r#"{"email": {"ends_with": ".edu"}}"#,
        "every demo address ends .com",
    ),
    (
        r#"{"email": {"domain": "gmail.com"}}"#,
        "every demo address is at example.com",
    ),
    (
        r#"{"email": {"domain": "outlook.com"}}"#,
        "every demo address is at example.com",
    ),
];

/// Why `query` is not held to selecting someone in the demo, if it is not:
/// it is kept but never evaluated (foreign), deliberately empty, refers to a
/// segment the demo does not have (not one of `segments`), names an absolute
/// date (whom it selects depends on the day the demo was made), or is a
/// sample of under a quarter (forty random uuids may all fall outside it:
/// a tenth is nobody in one demo in 70); or it is one of [`NOT_IN_THE_DEMO`].
fn not_held(query: &Value, segments: &[String]) -> Option<String> {
    if query.get("foreign").is_some() {
        return Some("foreign: kept, never evaluated".into());
    }
    if query == &serde_json::json!({"groups": []}) {
        return Some("an empty groups list, which matches nobody".into());
    }
    let mut reason = None;
    walk(query, &mut |key, value| match key {
        "member_of" | "not_member_of" => {
            let id = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            if !segments.contains(&id) {
                reason = Some(format!(
                    "refers to segment {id}, which the demo does not have"
                ));
            }
        }
        "sample" => {
            let bound = |end: &str| value[end].as_f64().unwrap_or_default();
            let width = bound("to") - bound("from");
            if width < 25.0 {
                reason.get_or_insert(format!("a sample of {width}%: it may be nobody of forty"));
            }
        }
        _ => {
            let is_date = value.as_str().is_some_and(|s| {
                let b = s.as_bytes();
                b.len() >= 10
                    && b[..4].iter().all(u8::is_ascii_digit)
                    && b[4] == b'-'
                    && b[7] == b'-'
            });
            if is_date {
                reason.get_or_insert(format!("names an absolute date ({value})"));
            }
        }
    });
    reason.or_else(|| {
        NOT_IN_THE_DEMO
            .iter()
            .find(|(listed, _)| serde_json::from_str::<Value>(listed).unwrap() == *query)
            .map(|(_, why)| (*why).to_owned())
    })
}

/// Calls `visit(key, value)` for every key of every object in `value`, and
/// with `""` for every value in a list.
fn walk(value: &Value, visit: &mut impl FnMut(&str, &Value)) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                visit(key, inner);
                walk(inner, visit);
            }
        }
        Value::Array(items) => {
            for item in items {
                visit("", item);
                walk(item, visit);
            }
        }
        _ => {}
    }
}

/// Every query README.md and docs/query-language.md show selects someone in
/// a fresh demo: its preview counts at least one subscriber. Those that
/// cannot ([`not_held`]) are listed with why when the test is run with
/// `--nocapture`.
#[tokio::test]
async fn every_query_the_readme_and_the_reference_show_selects_someone_in_the_demo() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut shown = Vec::new();
    for name in ["README.md", "docs/query-language.md"] {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        shown.extend(shown_queries(name, &text));
    }
    assert!(shown.len() >= 60, "{shown:?}");
    let cli = Cli::new();
    let server = start_demo(&cli, &["serve", "--listen", "127.0.0.1:0", "--demo"]);
    let demo = crate::demo::DemoApi::of(&server);
    let segments: Vec<String> = demo
        .segments()
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut failed = Vec::new();
    let mut listed_seen = Vec::new();
    for Shown { at, query } in &shown {
        if let Some(why) = not_held(query, &segments) {
            println!("{at}: not held to it: {why}: {query}");
            listed_seen.push(query.clone());
            continue;
        }
        match demo.count(query).await {
            Ok(n) if n >= 1 => {}
            Ok(n) => failed.push(format!("{at}: {n} members: {query}")),
            Err(answer) => failed.push(format!("{at}: {answer}: {query}")),
        }
    }
    assert!(
        failed.is_empty(),
        "queries that select nobody in the demo:\n{}",
        failed.join("\n")
    );
    // Every exception listed is still shown somewhere.
    for (listed, _) in NOT_IN_THE_DEMO {
        let listed: Value = serde_json::from_str(listed).unwrap();
        assert!(
            listed_seen.contains(&listed),
            "{listed} is shown nowhere now"
        );
    }
}
