//! The README's API examples, run as printed against `corral serve --demo`:
//! every `curl` line of its API section answers 2xx, and where the README
//! shows the answer (a `# {…}` comment under the command) the answer is that,
//! `…` standing for what differs from run to run.

use crate::cli::{Cli, start_demo};
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
