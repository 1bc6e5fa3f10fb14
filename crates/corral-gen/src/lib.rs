//! `corral gen`: a synthetic audience, for demos, load tests and benchmarks.
//!
//! From a seed, it writes N subscribers and M events as the JSON lines
//! Corral's importer reads (the items of `corral_core::audience::event`), with the
//! skew real audiences have, so that segment queries meet realistic data:
//!
//! - **Subscribers** (`subscribers.jsonl`, one
//!   `{"email","tags"?,"first_name"?,"plan","company_size"?,"lifetime_value"?,"signed_up_on","beta"?}`
//!   object a line; every key but `email` and `tags` is a field). Emails are
//!   `user{i}@{domain}` for i = 1..=N, so unique, with the domain weighted
//!   (gmail.com 40%, outlook.com 12%, yahoo.com 10%, …, company domains 22%).
//!   `plan` is free 60% / pro 30% / team 8% / enterprise 2%; `company_size`
//!   (an integer, present for half) is log-normal-ish (2^k with k binomial,
//!   larger for team and enterprise); `lifetime_value` (a number with two
//!   decimals) follows the plan; `signed_up_on` (`YYYY-MM-DD`) spans the three
//!   years before `--until`, denser recently; `beta` is a boolean for 80%;
//!   `first_name` is missing for 10%. Tags: 0–6 per subscriber, drawn Zipf
//!   (weight 1/rank) over 200 names, so `newsletter`, `lead` and `customer`
//!   are common and most tags are rare; paying subscribers always have
//!   `customer`. With `--csv`, the same rows also go to `subscribers.csv`
//!   (header `email,tags,first_name,plan,company_size,lifetime_value,signed_up_on,beta`,
//!   RFC 4180 quoting, empty cells for missing values).
//! - **Events** (`events.jsonl`, one `{"type","email","date","details"}`
//!   object a line). Types are Zipf-skewed over 40 names (and `$unsubscribe`):
//!   `$pageview` about a third (details `{"url"}`), then `$click`, `$login`,
//!   `$view_product`, …, most of them rare; `$purchase` is 3%
//!   (details `{"unique":{"key":"order-<n>"},"value":{"currency":"USD","amount":<cents>},"cart":{"items":[…]}}`,
//!   keys unique across the file, amounts 500–500,000 cents, most small);
//!   `$tag` 1% (details `{"tag"}`, Zipf like the subscribers' tags) and
//!   `$subscribe` 0.5%. Exactly one `$unsubscribe` goes to each of about 8% of
//!   the subscribers (those never get a `$subscribe`, so they end up
//!   unsubscribed whatever the order of import), spread evenly through the file.
//!   Who acts is heavy-tailed: the subscriber of an event is drawn with density
//!   ∝ (x + 0.02)^-1.5 over the activity rank x ∈ [0, 1], so the most active
//!   20% produce about 80% of the events and the least active hardly any
//!   (the most active about 30 times the average); ranks are
//!   mapped to subscribers by a fixed permutation, so activity does not follow
//!   the numbering. Dates (UTC, milliseconds) fall in the 365 days before
//!   `--until`, fewer at weekends and at night (UTC), and a little more towards
//!   the end (a growing audience). The file is not sorted by date.
//!
//! Same arguments, same bytes: the generator is its own splitmix64 (not
//! `rand`, whose algorithms may change), every distribution is integer
//! arithmetic or exactly rounded IEEE operations, and `--until` is fixed rather
//! than "now". Subscriber `i` depends only on the seed and `i`, not on N.
//! Memory stays flat: both files are streamed through a `BufWriter`, and the
//! only tables are the fixed ones of `tables.rs`.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use plan::{Plan, rfc3339};

mod plan;
mod random;
mod tables;

/// The `until` used when none is given, so output is reproducible.
pub const DEFAULT_UNTIL: &str = "2026-11-01T00:00:00Z";

/// `corral gen --help`: what the command writes, and why its year ends on a
/// fixed date rather than today.
pub const GEN_ABOUT: &str = "\
Generate a realistic synthetic audience (deterministic from a seed).

Writes subscribers.jsonl (and subscribers.csv with --csv) and events.jsonl into
--out, ready for `corral import`. The same arguments write the same bytes, which
benchmarks rely on.

The events span the year before --until, which is 2026-11-01T00:00:00Z unless
given: a fixed date, not today. Relative conditions count back from the moment
a segment is evaluated, so a segment such as {\"within_last\":{\"days\":30}}
matches almost nobody in the default data once that date is past. To end the
year now, pass --until now (or a date: --until \"$(date -u +%FT%TZ)\"); the
output then depends on when it is generated.";

/// `corral gen`: write a synthetic audience for Corral's importer.
#[derive(Debug, Clone, clap::Args)]
pub struct GenArgs {
    /// Number of subscribers
    #[arg(long, default_value_t = 100_000)]
    pub subscribers: u64,
    /// Number of events
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Seed: the same arguments write the same bytes
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output directory (created if missing); writes subscribers.jsonl and events.jsonl
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Also write subscribers.csv
    #[arg(long)]
    pub csv: bool,
    /// The end of the year the events span: an RFC 3339 date-time, or `now`
    /// [default: 2026-11-01T00:00:00Z, fixed so the output is reproducible]
    #[arg(long, value_name = "RFC3339|now")]
    pub until: Option<String>,
}

/// What [`run`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub subscribers: u64,
    pub events: u64,
    /// `$purchase` events among `events`.
    pub purchases: u64,
    /// Subscribers given an `$unsubscribe` (each exactly one).
    pub unsubscribed: u64,
    pub subscribers_path: PathBuf,
    pub events_path: PathBuf,
    pub csv_path: Option<PathBuf>,
    pub seed: u64,
    /// The span of the events' dates, RFC 3339: `[from, until)`.
    pub from: String,
    pub until: String,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Wrote {} subscribers to {}",
            self.subscribers,
            self.subscribers_path.display()
        )?;
        if let Some(csv) = &self.csv_path {
            write!(f, " (and {})", csv.display())?;
        }
        write!(
            f,
            " and {} events to {} ({} purchases; {} subscribers unsubscribe), \
             dated from {} to {}, seed {}.",
            self.events,
            self.events_path.display(),
            self.purchases,
            self.unsubscribed,
            self.from,
            self.until,
            self.seed
        )
    }
}

/// Writes `subscribers.jsonl`, `events.jsonl` and (with `--csv`)
/// `subscribers.csv` into `args.out`, creating it if needed.
///
/// Fails with [`io::ErrorKind::InvalidInput`] when `--until` is not an
/// RFC 3339 date-time between the years 1900 and 9998, or when events are
/// asked for without subscribers to perform them.
pub fn run(args: &GenArgs) -> io::Result<Summary> {
    let plan = Plan::new(args)?;
    std::fs::create_dir_all(&args.out)?;
    let subscribers_path = args.out.join("subscribers.jsonl");
    let events_path = args.out.join("events.jsonl");
    let csv_path = args.csv.then(|| args.out.join("subscribers.csv"));

    {
        let mut jsonl = writer(&subscribers_path)?;
        let mut csv = csv_path.as_deref().map(writer).transpose()?;
        plan.write_subscribers(&mut jsonl, csv.as_mut())?;
        jsonl.flush()?;
        if let Some(csv) = csv.as_mut() {
            csv.flush()?;
        }
    }
    let mut events = writer(&events_path)?;
    let counts = plan.write_events(&mut events)?;
    events.flush()?;

    Ok(Summary {
        subscribers: args.subscribers,
        events: args.events,
        purchases: counts.purchases,
        unsubscribed: counts.unsubscribes,
        subscribers_path,
        events_path,
        csv_path,
        seed: args.seed,
        from: rfc3339(plan.from_ms),
        until: rfc3339(plan.until_ms),
    })
}

fn writer(path: &Path) -> io::Result<BufWriter<File>> {
    Ok(BufWriter::with_capacity(1 << 20, File::create(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::push_csv_cell;
    use serde_json::Value;
    use std::collections::{HashMap, HashSet};

    fn args(out: &Path, subscribers: u64, events: u64) -> GenArgs {
        GenArgs {
            subscribers,
            events,
            seed: 7,
            out: out.to_path_buf(),
            csv: true,
            until: None,
        }
    }

    fn lines(path: &Path) -> Vec<serde_json::Map<String, Value>> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| match serde_json::from_str(line) {
                Ok(Value::Object(map)) => map,
                other => panic!("not a JSON object: {line} ({other:?})"),
            })
            .collect()
    }

    fn str_of<'a>(item: &'a serde_json::Map<String, Value>, key: &str) -> &'a str {
        item.get(key)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{key} in {item:?}"))
    }

    #[test]
    fn the_same_arguments_write_the_same_bytes() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = run(&args(a.path(), 300, 3_000)).unwrap();
        let second = run(&args(b.path(), 300, 3_000)).unwrap();
        assert_eq!(first.purchases, second.purchases);
        for name in ["subscribers.jsonl", "events.jsonl", "subscribers.csv"] {
            let left = std::fs::read(a.path().join(name)).unwrap();
            let right = std::fs::read(b.path().join(name)).unwrap();
            assert!(!left.is_empty(), "{name}");
            assert!(left == right, "{name} differs between two runs");
        }
        let other = tempfile::tempdir().unwrap();
        run(&GenArgs {
            seed: 8,
            ..args(other.path(), 300, 3_000)
        })
        .unwrap();
        assert_ne!(
            std::fs::read(a.path().join("events.jsonl")).unwrap(),
            std::fs::read(other.path().join("events.jsonl")).unwrap()
        );
    }

    #[test]
    fn a_subscriber_does_not_depend_on_how_many_there_are() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        run(&args(a.path(), 50, 0)).unwrap();
        run(&args(b.path(), 80, 0)).unwrap();
        let small = std::fs::read_to_string(a.path().join("subscribers.jsonl")).unwrap();
        let large = std::fs::read_to_string(b.path().join("subscribers.jsonl")).unwrap();
        assert!(large.starts_with(&small));
        assert_eq!(std::fs::read(b.path().join("events.jsonl")).unwrap(), b"");
    }

    /// The files the importer reads, with the skew asked for.
    #[test]
    fn output_has_the_shapes_and_the_skew_of_a_real_audience() {
        let dir = tempfile::tempdir().unwrap();
        let n = 2_000;
        let m = 60_000;
        let summary = run(&args(dir.path(), n, m)).unwrap();
        assert_eq!((summary.subscribers, summary.events), (n, m));

        // Subscribers: unique emails, the importer's shape, fields typed.
        let subscribers = lines(&summary.subscribers_path);
        assert_eq!(subscribers.len() as u64, n);
        let mut emails = HashSet::new();
        let mut plans: HashMap<String, u64> = HashMap::new();
        let mut tag_counts: HashMap<String, u64> = HashMap::new();
        let mut with_size = 0;
        for s in &subscribers {
            let raw = serde_json::value::to_raw_value(s).unwrap();
            corral_core::audience::event::parse_subscriber(&raw).unwrap();
            assert!(emails.insert(str_of(s, "email").to_lowercase()));
            *plans.entry(str_of(s, "plan").to_owned()).or_default() += 1;
            let tags: Vec<&str> = s
                .get("tags")
                .map(|t| t.as_str().unwrap().split(',').collect())
                .unwrap_or_default();
            assert!(tags.len() <= 6, "{s:?}");
            assert_eq!(tags.iter().collect::<HashSet<_>>().len(), tags.len());
            for tag in tags {
                *tag_counts.entry(tag.to_owned()).or_default() += 1;
            }
            if let Some(size) = s.get("company_size") {
                assert!(size.as_u64().unwrap() >= 1);
                with_size += 1;
            }
            if let Some(value) = s.get("lifetime_value") {
                assert!(value.as_f64().unwrap() >= 0.0);
            }
            if let Some(beta) = s.get("beta") {
                assert!(beta.is_boolean());
            }
            let day = str_of(s, "signed_up_on");
            assert!(
                chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok(),
                "{day}"
            );
        }
        let share = |count: u64| count as f64 / n as f64;
        assert!((0.55..0.65).contains(&share(plans["free"])), "{plans:?}");
        assert!((0.26..0.34).contains(&share(plans["pro"])), "{plans:?}");
        assert!((0.44..0.56).contains(&share(with_size)));
        let most_tagged = tag_counts.iter().max_by_key(|(_, c)| **c).unwrap().0;
        assert!(["customer", "newsletter"].contains(&most_tagged.as_str()));
        assert!(tag_counts.len() > 100, "most of the 200 tags appear");

        // Events: the importer's shape, known subscribers, unique purchases.
        let events = lines(&summary.events_path);
        assert_eq!(events.len() as u64, m);
        let mut per_type: HashMap<&str, u64> = HashMap::new();
        let mut per_subscriber: HashMap<&str, u64> = HashMap::new();
        let mut keys = HashSet::new();
        let mut unsubscribed = HashSet::new();
        let mut subscribed = HashSet::new();
        let (from, until) = (
            chrono::DateTime::parse_from_rfc3339(&summary.from).unwrap(),
            chrono::DateTime::parse_from_rfc3339(&summary.until).unwrap(),
        );
        for e in &events {
            let raw = serde_json::value::to_raw_value(e).unwrap();
            let change = corral_core::audience::event::parse_event(&raw, 0).unwrap();
            let kind = str_of(e, "type");
            let email = str_of(e, "email");
            assert!(emails.contains(email), "{email}");
            let date = chrono::DateTime::parse_from_rfc3339(str_of(e, "date")).unwrap();
            assert!(from <= date && date < until, "{date}");
            assert_eq!(str_of(e, "date").len(), 24);
            assert!(e["details"].is_object());
            *per_type.entry(kind).or_default() += 1;
            *per_subscriber.entry(email).or_default() += 1;
            match kind {
                "$purchase" => {
                    let event = change.event.unwrap();
                    let key = event.unique_key.unwrap();
                    assert!(key.starts_with("order-"));
                    assert!(keys.insert(key), "purchase keys are unique");
                    let amount = e["details"]["value"]["amount"].as_u64().unwrap();
                    assert!((500..=500_000).contains(&amount));
                    let items = e["details"]["cart"]["items"].as_array().unwrap();
                    let sum: u64 = items
                        .iter()
                        .map(|i| i["product_price"].as_u64().unwrap())
                        .sum();
                    assert_eq!(sum, amount);
                }
                "$unsubscribe" => assert!(unsubscribed.insert(email), "one each"),
                "$subscribe" => {
                    subscribed.insert(email);
                }
                "$tag" => assert!(!change.add_tags.is_empty()),
                _ => {}
            }
        }
        assert_eq!(keys.len() as u64, summary.purchases);
        assert_eq!(unsubscribed.len() as u64, summary.unsubscribed);
        assert!(unsubscribed.is_disjoint(&subscribed));

        let top_type = per_type.iter().max_by_key(|(_, c)| **c).unwrap().0;
        assert_eq!(*top_type, "$pageview");
        assert!(per_type.len() >= 38, "{per_type:?}");
        let purchases = per_type["$purchase"] as f64 / m as f64;
        assert!((0.025..0.035).contains(&purchases), "{purchases}");
        let unsubscribed_share = share(unsubscribed.len() as u64);
        assert!(
            (0.065..0.095).contains(&unsubscribed_share),
            "{unsubscribed_share}"
        );

        let mut activity: Vec<u64> = emails
            .iter()
            .map(|e| per_subscriber.get(e.as_str()).copied().unwrap_or(0))
            .collect();
        activity.sort_unstable_by(|a, b| b.cmp(a));
        let top: u64 = activity[..(n / 5) as usize].iter().sum();
        let top_share = top as f64 / m as f64;
        assert!((0.7..0.9).contains(&top_share), "top 20% hold {top_share}");
        assert!(activity[0] < m / 20, "no one subscriber dominates");

        // Weekends are quieter than weekdays.
        let weekend = events
            .iter()
            .filter(|e| {
                let date = chrono::DateTime::parse_from_rfc3339(str_of(e, "date")).unwrap();
                chrono::Datelike::weekday(&date).number_from_monday() >= 6
            })
            .count() as f64
            / m as f64;
        assert!(weekend < 2.0 / 7.0 - 0.03, "{weekend}");

        // The CSV: header, one row per subscriber, the same emails.
        let csv = std::fs::read_to_string(summary.csv_path.unwrap()).unwrap();
        let mut rows = csv.lines();
        assert_eq!(
            rows.next(),
            Some("email,tags,first_name,plan,company_size,lifetime_value,signed_up_on,beta")
        );
        let rows: Vec<Vec<String>> = rows.map(parse_csv_row).collect();
        assert_eq!(rows.len() as u64, n);
        for (row, s) in rows.iter().zip(&subscribers) {
            assert_eq!(row.len(), 8);
            assert_eq!(row[0], str_of(s, "email"));
            assert_eq!(row[1], s.get("tags").and_then(Value::as_str).unwrap_or(""));
            assert_eq!(row[3], str_of(s, "plan"));
            let number = |key: &str| s.get(key).map(Value::to_string).unwrap_or_default();
            assert_eq!(row[4], number("company_size"));
            assert_eq!(row[7], number("beta"));
        }
    }

    /// A minimal RFC 4180 row reader (no embedded newlines), for the test.
    fn parse_csv_row(line: &str) -> Vec<String> {
        let mut cells = vec![String::new()];
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', false) => quoted = true,
                ('"', true) if chars.peek() == Some(&'"') => {
                    chars.next();
                    cells.last_mut().unwrap().push('"');
                }
                ('"', true) => quoted = false,
                (',', false) => cells.push(String::new()),
                (c, _) => cells.last_mut().unwrap().push(c),
            }
        }
        cells
    }

    #[test]
    fn csv_cells_are_quoted_when_they_must_be() {
        let mut out = String::new();
        for cell in ["plain", "a,b", "say \"hi\"", "two\nlines", ""] {
            push_csv_cell(&mut out, cell);
            out.push('|');
        }
        assert_eq!(out, "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\"||");
        assert_eq!(
            parse_csv_row("\"a,b\",\"say \"\"hi\"\"\",,x"),
            ["a,b", "say \"hi\"", "", "x"]
        );
    }

    #[test]
    fn dates_match_chrono() {
        for ms in [
            0,
            -1,
            951_782_400_000,   // 2000-02-29
            1_772_600_767_123, // 2026-03-04
            -2_208_988_800_000,
            253_370_764_799_999,
        ] {
            let expected = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(rfc3339(ms), expected);
        }
    }

    #[test]
    fn bad_arguments_are_invalid_input() {
        let dir = tempfile::tempdir().unwrap();
        let bad_until = GenArgs {
            until: Some("tomorrow".into()),
            ..args(dir.path(), 1, 1)
        };
        assert_eq!(
            run(&bad_until).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let no_one = args(dir.path(), 0, 5);
        assert_eq!(
            run(&no_one).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let nothing = run(&args(dir.path(), 0, 0)).unwrap();
        assert_eq!(nothing.events, 0);
        let late = GenArgs {
            until: Some("2026-03-04T05:06:07.5+02:00".into()),
            ..args(dir.path(), 10, 500)
        };
        let summary = run(&late).unwrap();
        assert_eq!(summary.until, "2026-03-04T03:06:07.500Z");
        assert!(summary.to_string().contains("500 events"));
    }

    #[test]
    fn until_now_ends_the_year_at_the_time_of_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let before = chrono::Utc::now().timestamp_millis();
        let summary = run(&GenArgs {
            until: Some("now".into()),
            ..args(dir.path(), 10, 100)
        })
        .unwrap();
        let until = chrono::DateTime::parse_from_rfc3339(&summary.until)
            .unwrap()
            .timestamp_millis();
        assert!(
            before <= until && until <= chrono::Utc::now().timestamp_millis(),
            "{}",
            summary.until
        );
    }

    /// Throughput, by hand:
    /// `cargo test --release -p corral-gen --lib throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn throughput() {
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let summary = run(&args(dir.path(), 1_000_000, 10_000_000)).unwrap();
        let bytes = std::fs::metadata(&summary.events_path).unwrap().len();
        println!(
            "1,000,000 subscribers (with CSV) and 10,000,000 events ({} MB) in {:.2?}",
            bytes / 1_000_000,
            started.elapsed()
        );
    }
}
