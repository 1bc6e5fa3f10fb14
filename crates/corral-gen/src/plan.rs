//! The plan: what is written, and in what order. [`Plan`] holds what the
//! arguments decide once (the span of dates, the distributions); it writes
//! the subscribers in the order of their numbers, each a JSON line (and, with
//! `--csv`, a CSV row), then the events, with the `$unsubscribe`s spread
//! among them. Every line is formatted here by hand (JSON strings, CSV cells,
//! dates), so the bytes do not depend on any library's formatting.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::random::{
    Activity, Rng, STREAM_DOMAIN, STREAM_EVENTS, STREAM_SUBSCRIBER, STREAM_UNSUBSCRIBE, Weighted,
    skewed_recent,
};
use crate::tables::{
    AMOUNT_BUCKETS, BLOG_POSTS, CART_ITEMS, CLICK_ELEMENTS, COMMON_TAGS, DOMAINS, EVENT_TYPES,
    FIRST_NAMES, HOUR_WEIGHTS, LOGIN_METHODS, PAGES, PLAN_MONTHLY_CENTS, PLANS, PLATFORMS,
    PRODUCTS, SEARCH_TERMS, SIGNUP_SOURCES, TAG_COUNT, TAGS_PER_SUBSCRIBER, UNSUBSCRIBE_PER_10000,
    WEEKEND_KEEP, tag_names,
};
use crate::{DEFAULT_UNTIL, GenArgs};

const DAY_MS: i64 = 86_400_000;
const EVENT_SPAN_DAYS: i64 = 365;
const SIGNUP_SPAN_DAYS: u64 = 3 * 365;

/// Everything derived from the arguments once.
pub(crate) struct Plan {
    subscribers: u64,
    events: u64,
    seed: u64,
    pub(crate) from_ms: i64,
    pub(crate) until_ms: i64,
    tags: Vec<String>,
    tag_dist: Weighted,
    tags_per: Weighted,
    domains: Weighted,
    plans: Weighted,
    types: Weighted,
    pages: Weighted,
    posts: Weighted,
    products: Weighted,
    amounts: Weighted,
    cart_items: Weighted,
    hours: Weighted,
    logins: Weighted,
    platforms: Weighted,
    activity: Activity,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventCounts {
    pub(crate) purchases: u64,
    pub(crate) unsubscribes: u64,
}

/// One subscriber's attributes (tags as indexes into [`Plan::tags`]).
struct Subscriber {
    number: u64,
    domain: &'static str,
    tags: [usize; 7],
    tag_count: usize,
    first_name: Option<&'static str>,
    plan: &'static str,
    company_size: Option<u64>,
    lifetime_value_cents: Option<u64>,
    signed_up_on: i64,
    beta: Option<bool>,
}

impl Plan {
    pub(crate) fn new(args: &GenArgs) -> io::Result<Self> {
        let until_text = args.until.as_deref().unwrap_or(DEFAULT_UNTIL);
        let until_ms = if until_text.trim().eq_ignore_ascii_case("now") {
            chrono::Utc::now().timestamp_millis()
        } else {
            chrono::DateTime::parse_from_rfc3339(until_text.trim())
                .map_err(|e| {
                    invalid(format!(
                        "--until {until_text:?} is not an RFC 3339 date-time (nor `now`): {e}"
                    ))
                })?
                .timestamp_millis()
        };
        // 1900-01-01 .. 9999-01-01: four-digit years for every date written.
        if !(-2_208_988_800_000..253_370_764_800_000).contains(&until_ms) {
            return Err(invalid(format!(
                "--until {until_text:?} must fall between the years 1900 and 9998"
            )));
        }
        if args.events > 0 && args.subscribers == 0 {
            return Err(invalid(
                "events need subscribers to perform them: give --subscribers 1 or more".into(),
            ));
        }
        let weights = |table: &[(&str, u64)]| Weighted::new(table.iter().map(|&(_, w)| w));
        Ok(Self {
            subscribers: args.subscribers,
            events: args.events,
            seed: args.seed,
            from_ms: until_ms - EVENT_SPAN_DAYS * DAY_MS,
            until_ms,
            tags: tag_names(),
            tag_dist: Weighted::zipf(TAG_COUNT),
            tags_per: Weighted::new(TAGS_PER_SUBSCRIBER),
            domains: weights(DOMAINS),
            plans: weights(PLANS),
            types: weights(EVENT_TYPES),
            pages: Weighted::zipf(PAGES.len()),
            posts: Weighted::zipf(BLOG_POSTS),
            products: Weighted::zipf(PRODUCTS.len()),
            amounts: Weighted::new(AMOUNT_BUCKETS.iter().map(|&(_, _, w)| w)),
            cart_items: Weighted::new(CART_ITEMS),
            hours: Weighted::new(HOUR_WEIGHTS),
            logins: weights(LOGIN_METHODS),
            platforms: weights(PLATFORMS),
            activity: Activity::new(args.subscribers, args.seed),
        })
    }

    /// The domain of subscriber `index` (0-based), from its own stream so an
    /// event can name its subscriber without drawing the rest.
    fn domain(&self, index: u64) -> &'static str {
        DOMAINS[self
            .domains
            .sample(&mut Rng::new(self.seed, STREAM_DOMAIN, index))]
        .0
    }

    fn unsubscribes(&self, index: u64) -> bool {
        Rng::new(self.seed, STREAM_UNSUBSCRIBE, index).chance(UNSUBSCRIBE_PER_10000)
    }

    fn subscriber(&self, index: u64) -> Subscriber {
        let mut rng = Rng::new(self.seed, STREAM_SUBSCRIBER, index);
        let plan_index = self.plans.sample(&mut rng);
        let paying = plan_index > 0;

        let mut tags = [0; 7];
        let mut tag_count = 0;
        if paying {
            tags[0] = COMMON_TAGS
                .iter()
                .position(|t| *t == "customer")
                .unwrap_or(0);
            tag_count = 1;
        }
        let wanted = self.tags_per.sample(&mut rng).max(tag_count);
        let mut tries = 0;
        while tag_count < wanted && tries < 32 {
            tries += 1;
            let tag = self.tag_dist.sample(&mut rng);
            if !tags[..tag_count].contains(&tag) {
                tags[tag_count] = tag;
                tag_count += 1;
            }
        }

        let first_name = rng.chance(9_000).then(|| *rng.pick(FIRST_NAMES));
        let company_size = rng.chance(5_000).then(|| {
            // 2^k with k ~ Binomial(12, 1/2) (+1 team, +3 enterprise), then
            // uniform within [2^k, 2^(k+1)): log-normal-ish, median ~ 100.
            let k = u64::from((rng.next_u64() & 0xFFF).count_ones()) + [0, 0, 1, 3][plan_index];
            (1 << k) + rng.below(1 << k)
        });
        let monthly = PLAN_MONTHLY_CENTS[plan_index];
        let lifetime_value_cents = if paying {
            Some(monthly * (1 + rng.below(36)) + rng.below(monthly))
        } else if rng.chance(5_000) {
            Some(if rng.chance(8_000) {
                0
            } else {
                500 + rng.below(20_000)
            })
        } else {
            None
        };
        let until_day = (self.until_ms - 1).div_euclid(DAY_MS);
        let back = skewed_recent(&mut rng, SIGNUP_SPAN_DAYS);
        let signed_up_on = until_day - back as i64;
        let beta = rng.chance(8_000).then(|| rng.chance(2_000));

        Subscriber {
            number: index + 1,
            domain: self.domain(index),
            tags,
            tag_count,
            first_name,
            plan: PLANS[plan_index].0,
            company_size,
            lifetime_value_cents,
            signed_up_on,
            beta,
        }
    }

    pub(crate) fn write_subscribers(
        &self,
        jsonl: &mut impl Write,
        mut csv: Option<&mut impl Write>,
    ) -> io::Result<()> {
        let mut line = String::with_capacity(512);
        let mut cell = String::with_capacity(256);
        if let Some(csv) = csv.as_mut() {
            csv.write_all(
                b"email,tags,first_name,plan,company_size,lifetime_value,signed_up_on,beta\n",
            )?;
        }
        for index in 0..self.subscribers {
            let s = self.subscriber(index);
            line.clear();
            self.subscriber_json(&s, &mut line);
            jsonl.write_all(line.as_bytes())?;
            if let Some(csv) = csv.as_mut() {
                line.clear();
                self.subscriber_csv(&s, &mut line, &mut cell);
                csv.write_all(line.as_bytes())?;
            }
        }
        Ok(())
    }

    fn subscriber_json(&self, s: &Subscriber, out: &mut String) {
        let _ = write!(out, "{{\"email\":\"user{}@{}\"", s.number, s.domain);
        if s.tag_count > 0 {
            out.push_str(",\"tags\":\"");
            self.push_tags(s, out);
            out.push('"');
        }
        if let Some(name) = s.first_name {
            out.push_str(",\"first_name\":");
            push_json_str(out, name);
        }
        let _ = write!(out, ",\"plan\":\"{}\"", s.plan);
        if let Some(size) = s.company_size {
            let _ = write!(out, ",\"company_size\":{size}");
        }
        if let Some(cents) = s.lifetime_value_cents {
            let _ = write!(
                out,
                ",\"lifetime_value\":{}.{:02}",
                cents / 100,
                cents % 100
            );
        }
        out.push_str(",\"signed_up_on\":\"");
        push_date(out, s.signed_up_on);
        out.push('"');
        if let Some(beta) = s.beta {
            let _ = write!(out, ",\"beta\":{beta}");
        }
        out.push_str("}\n");
    }

    fn subscriber_csv(&self, s: &Subscriber, out: &mut String, cell: &mut String) {
        let _ = write!(out, "user{}@{},", s.number, s.domain);
        cell.clear();
        self.push_tags(s, cell);
        push_csv_cell(out, cell);
        out.push(',');
        push_csv_cell(out, s.first_name.unwrap_or(""));
        out.push(',');
        push_csv_cell(out, s.plan);
        out.push(',');
        if let Some(size) = s.company_size {
            let _ = write!(out, "{size}");
        }
        out.push(',');
        if let Some(cents) = s.lifetime_value_cents {
            let _ = write!(out, "{}.{:02}", cents / 100, cents % 100);
        }
        out.push(',');
        push_date(out, s.signed_up_on);
        out.push(',');
        if let Some(beta) = s.beta {
            let _ = write!(out, "{beta}");
        }
        out.push('\n');
    }

    fn push_tags(&self, s: &Subscriber, out: &mut String) {
        for (i, &tag) in s.tags[..s.tag_count].iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&self.tags[tag]);
        }
    }

    /// Writes the events. The `$unsubscribe`s (one for each subscriber whose
    /// flag is set, at most one per slot) are spread over the file by
    /// selection sampling, so their count is exact without any memory.
    pub(crate) fn write_events(&self, out: &mut impl Write) -> io::Result<EventCounts> {
        let mut rng = Rng::new(self.seed, STREAM_EVENTS, 0);
        let flagged = (0..self.subscribers)
            .filter(|&i| self.unsubscribes(i))
            .count() as u64;
        let mut unsubscribes_left = flagged.min(self.events);
        let mut next_unsubscriber = 0;
        let mut counts = EventCounts::default();
        let mut line = String::with_capacity(512);
        let unsubscribe_type = EVENT_TYPES.len();
        for slot in 0..self.events {
            let slots_left = self.events - slot;
            let (kind, subscriber) = if rng.below(slots_left) < unsubscribes_left {
                unsubscribes_left -= 1;
                while !self.unsubscribes(next_unsubscriber) {
                    next_unsubscriber += 1;
                }
                next_unsubscriber += 1;
                (unsubscribe_type, next_unsubscriber - 1)
            } else {
                let mut kind = self.types.sample(&mut rng);
                let mut subscriber = self.activity.sample(&mut rng);
                if EVENT_TYPES[kind].0 == "$subscribe" {
                    // Those who unsubscribe never subscribe again: draw
                    // another subscriber, or (when nearly everyone
                    // unsubscribes, as in tiny audiences) make it a page view.
                    let mut tries = 0;
                    while self.unsubscribes(subscriber) && tries < 64 {
                        subscriber = self.activity.sample(&mut rng);
                        tries += 1;
                    }
                    if self.unsubscribes(subscriber) {
                        kind = 0;
                    }
                }
                (kind, subscriber)
            };
            let name = EVENT_TYPES.get(kind).map_or("$unsubscribe", |t| t.0);
            line.clear();
            let _ = write!(
                line,
                "{{\"type\":\"{name}\",\"email\":\"user{}@{}\",\"date\":\"",
                subscriber + 1,
                self.domain(subscriber)
            );
            push_timestamp(&mut line, self.event_time(&mut rng));
            line.push_str("\",\"details\":");
            self.details(name, &mut rng, &mut counts, &mut line);
            line.push_str("}\n");
            out.write_all(line.as_bytes())?;
        }
        Ok(counts)
    }

    /// A date in `[from, until)`: days skewed towards the end, weekends
    /// thinned, hours by [`HOUR_WEIGHTS`] (UTC).
    fn event_time(&self, rng: &mut Rng) -> i64 {
        let first_day = self.from_ms.div_euclid(DAY_MS);
        let days = (self.until_ms + DAY_MS - 1).div_euclid(DAY_MS) - first_day;
        loop {
            let day = first_day + days - 1 - skewed_recent(rng, days as u64) as i64;
            let weekday = (day + 3).rem_euclid(7); // 1970-01-01 was a Thursday; Monday = 0
            if weekday >= 5 && rng.below(100) >= WEEKEND_KEEP {
                continue;
            }
            let hour = self.hours.sample(rng) as i64;
            let at = day * DAY_MS + hour * 3_600_000 + rng.below(3_600_000) as i64;
            if (self.from_ms..self.until_ms).contains(&at) {
                return at;
            }
        }
    }

    fn details(&self, kind: &str, rng: &mut Rng, counts: &mut EventCounts, out: &mut String) {
        match kind {
            "$pageview" => {
                out.push_str("{\"url\":\"");
                self.push_url(rng, out);
                out.push_str("\"}");
            }
            "$click" => {
                let _ = write!(
                    out,
                    "{{\"element\":\"{}\",\"url\":\"",
                    rng.pick(CLICK_ELEMENTS)
                );
                self.push_url(rng, out);
                out.push_str("\"}");
            }
            "$login" => {
                let method = LOGIN_METHODS[self.logins.sample(rng)].0;
                let _ = write!(out, "{{\"method\":\"{method}\"}}");
            }
            "$signup" => {
                let _ = write!(out, "{{\"source\":\"{}\"}}", rng.pick(SIGNUP_SOURCES));
            }
            "$search" => {
                let query = *rng.pick(SEARCH_TERMS);
                out.push_str("{\"query\":");
                push_json_str(out, query);
                out.push('}');
            }
            "$view_product" | "$add_to_cart" | "$remove_from_cart" | "$wishlist_add" => {
                let (sku, name) = PRODUCTS[self.products.sample(rng)];
                let _ = write!(out, "{{\"product_sku\":\"{sku}\",\"product_name\":");
                push_json_str(out, name);
                out.push('}');
            }
            "$tag" => {
                out.push_str("{\"tag\":");
                push_json_str(out, &self.tags[self.tag_dist.sample(rng)]);
                out.push('}');
            }
            "$purchase" => {
                counts.purchases += 1;
                self.purchase(counts.purchases, rng, out);
            }
            "$unsubscribe" => {
                counts.unsubscribes += 1;
                out.push_str("{}");
            }
            "$subscribe" => out.push_str("{}"),
            _ => {
                let platform = PLATFORMS[self.platforms.sample(rng)].0;
                let _ = write!(out, "{{\"platform\":\"{platform}\"}}");
            }
        }
    }

    fn push_url(&self, rng: &mut Rng, out: &mut String) {
        if rng.below(100) < 25 {
            let _ = write!(out, "/blog/post-{}", self.posts.sample(rng) + 1);
        } else {
            out.push_str(PAGES[self.pages.sample(rng)]);
        }
    }

    fn purchase(&self, number: u64, rng: &mut Rng, out: &mut String) {
        let (low, high, _) = AMOUNT_BUCKETS[self.amounts.sample(rng)];
        let amount = low + rng.below(high - low);
        let _ = write!(
            out,
            "{{\"unique\":{{\"key\":\"order-{number}\"}},\"value\":{{\"currency\":\"USD\",\"amount\":{amount}}},\"cart\":{{\"items\":["
        );
        // Split the amount over the items: each share ≥ amount/30 ≥ 16 cents.
        let items = self.cart_items.sample(rng) + 1;
        let mut shares = [0u64; 3];
        for share in &mut shares[..items] {
            *share = 1 + rng.below(10);
        }
        let total: u64 = shares.iter().sum();
        let mut left = amount;
        for (i, &share) in shares[..items].iter().enumerate() {
            let price = if i + 1 == items {
                left
            } else {
                amount * share / total
            };
            left -= price;
            let (sku, name) = PRODUCTS[self.products.sample(rng)];
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{{\"product_sku\":\"{sku}\",\"product_name\":");
            push_json_str(out, name);
            let _ = write!(out, ",\"quantity\":1,\"product_price\":{price}}}");
        }
        out.push_str("]}}");
    }
}

// ---------------------------------------------------------------------------
// Formatting.

/// A JSON string literal (quotes, backslashes and control characters escaped).
fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A CSV cell (RFC 4180): quoted when it holds a comma, a quote, CR or LF,
/// inner quotes doubled.
pub(crate) fn push_csv_cell(out: &mut String, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// (year, month, day) of a day number since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn push_digits(out: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        out.push(char::from(b'0' + (value / 10u32.pow(place) % 10) as u8));
    }
}

/// `YYYY-MM-DD` (years 1000–9999, which [`Plan::new`] guarantees).
fn push_date(out: &mut String, days: i64) {
    let (year, month, day) = civil(days);
    push_digits(out, year as u32, 4);
    out.push('-');
    push_digits(out, month, 2);
    out.push('-');
    push_digits(out, day, 2);
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn push_timestamp(out: &mut String, ms: i64) {
    push_date(out, ms.div_euclid(DAY_MS));
    let in_day = ms.rem_euclid(DAY_MS) as u32;
    out.push('T');
    push_digits(out, in_day / 3_600_000, 2);
    out.push(':');
    push_digits(out, in_day / 60_000 % 60, 2);
    out.push(':');
    push_digits(out, in_day / 1000 % 60, 2);
    out.push('.');
    push_digits(out, in_day % 1000, 3);
    out.push('Z');
}

pub(crate) fn rfc3339(ms: i64) -> String {
    let mut text = String::with_capacity(24);
    push_timestamp(&mut text, ms);
    text
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
