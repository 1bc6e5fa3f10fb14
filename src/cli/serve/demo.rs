//! What `corral serve --demo` puts in its demo site: four sample segments and
//! an audience of forty subscribers (`{name}{i}@example.com`) whose data says
//! what the segments' names say. Each subscriber is someone (a VIP customer,
//! a customer, a lapsed customer, a trial user active or dormant, a free
//! user, a newsletter reader, a lead, an agency) with a history to match over
//! the last year and a half: signed up or subscribed, tagged, upgraded on
//! paying, cancelled, unsubscribed. The audience is written in time order,
//! each subscriber created at the instant of their first event, so that
//! creation comes before every event and every change of subscription. The
//! data is fixed (no randomness): only `now` moves it, so the segments and
//! the README's examples select the same people on every start.

use super::super::CliError;
use crate::clock::{Clock, SystemClock, format_ms};
use crate::segment::{Description, NewSegment, SegmentName};
use crate::storage::actor::Actor;
use crate::storage::{Site, Store};
use corral_core::audience::Outcome;
use corral_core::audience::event::parse_event;
use corral_core::query::RawQuery;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::sync::Arc;

/// Sample segments of the demo site: (name, description, query).
pub(super) const SEGMENTS: &[(&str, Option<&str>, &str)] = &[
    (
        "VIP customers",
        // Amounts are in cents.
        Some("Spent more than $250 in the last 90 days"),
        r#"{"groups":[{"filters":[{"event":{"type":"$purchase","when":{"within_last":{"days":90}},"sum":{"of":"value.amount","more_than":25000}}}]}]}"#,
    ),
    (
        "Newsletter subscribers",
        Some("Subscribed and tagged newsletter"),
        r#"{"groups":[{"filters":[{"subscribed":true},{"tag":{"has":"newsletter"}}]}]}"#,
    ),
    (
        "Dormant trial users",
        None,
        r#"{"groups":[{"filters":[{"tag":{"has":"trial"}},{"not":{"event":{"type":"$pageview","when":{"within_last":{"days":30}}}}}]}]}"#,
    ),
    (
        "agency leads",
        Some("Company size field over 50, or tagged agency"),
        r#"{"groups":[{"filters":[{"field":{"key":"company_size","more_than":50}}]},{"filters":[{"tag":{"has":"agency"}}]}]}"#,
    ),
];

/// Fills a new demo site: its audience, as it happened, then its sample
/// segments, saved now.
pub(super) async fn fill(store: &Arc<dyn Store>, site: &Site) -> Result<(), CliError> {
    let now = SystemClock.now_ms();
    let mut known = HashSet::new();
    let mut batch = Vec::new();
    let mut last = now;
    for (at, item) in audience(now) {
        let raw = serde_json::value::RawValue::from_string(item.to_string())
            .expect("serialized JSON is valid");
        let change = parse_event(&raw, at).map_err(CliError::Usage)?;
        let first = known.insert(change.email.key());
        batch.push(change);
        last = at;
        if first {
            // Written as received at its own instant: a subscriber is
            // created at their first event, and every event of the batch
            // happened by then.
            apply(store, site, std::mem::take(&mut batch), at).await?;
        }
    }
    apply(store, site, batch, last).await?;
    for (name, description, query) in SEGMENTS {
        let new = NewSegment {
            name: SegmentName::parse(name).map_err(CliError::Usage)?,
            description: description
                .map(Description::parse)
                .transpose()
                .map_err(CliError::Usage)?,
            query: RawQuery::parse(query).map_err(|e| CliError::Usage(e.to_string()))?,
        };
        store
            .create_segment(site.id, &new, SystemClock.now_ms(), &Actor::Cli)
            .await?;
    }
    Ok(())
}

/// Applies a batch of the demo's changes, received at `at`; one refused is
/// an error (the demo would not be what it says).
async fn apply(
    store: &Arc<dyn Store>,
    site: &Site,
    batch: Vec<corral_core::audience::SubscriberChange>,
    at: i64,
) -> Result<(), CliError> {
    if batch.is_empty() {
        return Ok(());
    }
    for outcome in store.apply_changes(site.id, batch, at).await? {
        if let Outcome::Failed(message) = outcome {
            return Err(CliError::Usage(format!("the demo audience: {message}")));
        }
    }
    Ok(())
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

const NAMES: [&str; 8] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken",
];

/// Who a demo subscriber is, which decides what they do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persona {
    /// A customer who spent more than $250 in the last 90 days, tagged `vip`.
    Vip,
    /// A paying customer who spends less.
    Customer,
    /// A customer whose first purchase was this month.
    NewCustomer,
    /// A former customer: paid, cancelled (back on the free plan), gone quiet.
    Lapsed,
    /// On a trial, and visiting the site.
    Trial,
    /// On a trial, with no visit for more than a month.
    Dormant,
    /// On the free plan.
    Free,
    /// Subscribed to the newsletter only.
    Reader,
    /// A newsletter reader who gave only their email.
    Anonymous,
    /// A prospect who asked about pricing.
    Lead,
    /// A lead from an agency.
    Agency,
}
use Persona::*;

/// Subscriber `i` (email `{name}{i}@example.com`, `name` the `i % 8`th of
/// [`NAMES`]): who they are, how many days ago they joined, their
/// `company_size` where they said, and how many days ago they unsubscribed,
/// if they did.
const PEOPLE: [(Persona, i64, Option<i64>, Option<i64>); 40] = [
    (Customer, 160, Some(12), None),
    (Vip, 213, Some(25), None),
    (Lead, 35, Some(120), None),
    (Reader, 95, None, None),
    (Trial, 14, Some(5), None),
    (Free, 120, Some(1), None),
    (Agency, 28, Some(35), None),
    (Dormant, 60, Some(4), None),
    (Customer, 250, Some(6), None),
    (Vip, 317, Some(48), None),
    (Anonymous, 180, None, None),
    (Lapsed, 355, Some(7), None),
    (Trial, 22, Some(18), None),
    (Free, 200, Some(2), Some(25)),
    (Lead, 18, Some(10), None),
    (Dormant, 75, Some(16), None),
    (NewCustomer, 20, Some(9), None),
    (Vip, 421, Some(14), None),
    (Reader, 40, None, None),
    (Customer, 140, Some(40), None),
    (Trial, 3, Some(2), None),
    (Free, 45, Some(1), None),
    (Agency, 70, Some(8), None),
    (Dormant, 50, Some(8), Some(10)),
    (Customer, 75, Some(3), None),
    (Vip, 225, Some(32), None),
    (Reader, 5, None, None),
    (Lapsed, 435, Some(22), Some(100)),
    (Trial, 9, Some(30), None),
    (Free, 400, Some(3), None),
    (Lead, 55, Some(250), None),
    (Dormant, 85, Some(27), None),
    (Customer, 380, Some(45), None),
    (Vip, 329, Some(20), Some(15)),
    (Anonymous, 130, None, None),
    (Lapsed, 475, Some(15), None),
    (Trial, 26, Some(11), None),
    (Free, 15, Some(1), None),
    (Agency, 12, Some(60), None),
    (Reader, 65, None, Some(5)),
];

/// The subscribers who joined the beta.
const BETA: [usize; 3] = [1, 12, 19];

/// A purchase: how many days ago, its amount in cents, and whether it came
/// with an order key (one paid by invoice did not).
#[derive(Debug, Clone, Copy)]
struct Payment {
    days: i64,
    cents: i64,
    keyed: bool,
}

const fn paid(days: i64, cents: i64) -> Payment {
    Payment {
        days,
        cents,
        keyed: true,
    }
}

/// A purchase paid by invoice, without an order key.
const fn invoiced(days: i64, cents: i64) -> Payment {
    Payment {
        days,
        cents,
        keyed: false,
    }
}

/// The customers: subscriber, the plan they pay for, their purchases (oldest
/// first).
#[rustfmt::skip]
const PURCHASES: &[(usize, &str, &[Payment])] = &[
    (0, "pro", &[paid(130, 4_900), paid(40, 4_900)]),
    (1, "team", &[paid(150, 9_900), paid(60, 14_900), paid(12, 19_900)]),
    (8, "pro", &[paid(200, 4_900), paid(100, 4_900), paid(10, 900)]),
    (9, "enterprise", &[paid(300, 49_900), paid(180, 49_900), paid(45, 59_900)]),
    (11, "pro", &[paid(330, 4_900), paid(240, 4_900)]),
    (16, "pro", &[paid(6, 4_900)]),
    (17, "pro", &[paid(400, 4_900), paid(250, 4_900), paid(80, 12_900), paid(33, 18_900)]),
    (19, "team", &[paid(95, 9_900), paid(5, 9_900)]),
    (24, "pro", &[paid(50, 1_900)]),
    (25, "team", &[paid(120, 9_900), paid(20, 60_650)]),
    (27, "team", &[paid(400, 9_900), paid(300, 9_900)]),
    (32, "enterprise", &[paid(370, 49_900), paid(5, 19_900)]),
    (33, "team", &[paid(300, 9_900), paid(50, 29_900)]),
    (35, "pro", &[paid(450, 4_900), invoiced(200, 12_000)]),
];

/// Subscriber `i`'s plan once they paid, and their purchases.
fn purchases(i: usize) -> (&'static str, &'static [Payment]) {
    PURCHASES
        .iter()
        .find(|(n, ..)| *n == i)
        .map_or(("free", &[]), |(_, plan, paid)| (*plan, *paid))
}

/// The demo audience as `(instant, event item)`, in time order (events at
/// one instant in the order they were made): what each subscriber did over
/// the last year and a half before `now`.
pub(super) fn audience(now: i64) -> Vec<(i64, Value)> {
    let mut all: Vec<(i64, Value)> = PEOPLE
        .iter()
        .enumerate()
        .flat_map(|(i, person)| life(i, *person, now))
        .collect();
    all.sort_by_key(|(at, _)| *at);
    all
}

/// One subscriber's events, made in the order they happened.
struct Life {
    email: String,
    now: i64,
    /// How long before `now`'s time of day this subscriber does things (up
    /// to ten hours), so that the audience's instants are not all alike.
    time_of_day: i64,
    events: Vec<(i64, Value)>,
}

impl Life {
    /// `days` days ago, at this subscriber's time of day.
    fn day(&self, days: i64) -> i64 {
        self.now - days * DAY - self.time_of_day
    }

    fn push(&mut self, at: i64, kind: &str, details: Value, fields: Option<Value>) {
        let mut item = json!({"type": kind, "email": self.email, "date": format_ms(at)});
        if details.as_object().is_some_and(|d| !d.is_empty()) {
            item["details"] = details;
        }
        if let Some(fields) = fields {
            item["fields"] = fields;
        }
        self.events.push((at, item));
    }

    fn tag(&mut self, at: i64, tag: &str) {
        self.push(at, "$tag", json!({ "tag": tag }), None);
    }

    fn view(&mut self, at: i64, path: &str) {
        let url = format!("https://example.com{path}");
        self.push(at, "$pageview", json!({ "url": url }), None);
    }
}

/// What subscriber `i` did, oldest first.
fn life(
    i: usize,
    (who, joined, company, left): (Persona, i64, Option<i64>, Option<i64>),
    now: i64,
) -> Vec<(i64, Value)> {
    let name = NAMES[i % NAMES.len()];
    let mut life = Life {
        email: format!("{}{i}@example.com", name.to_lowercase()),
        now,
        time_of_day: (i as i64 * 97 % 600) * MINUTE,
        events: Vec::new(),
    };
    let start = life.day(joined);
    // Days ago that fall after joining (and, for emails, before leaving).
    let after =
        |days: &[i64]| -> Vec<i64> { days.iter().copied().filter(|d| *d < joined).collect() };
    let subscribed = |d: &i64| left.is_none_or(|l| *d > l);

    let mut fields = Map::new();
    if who != Anonymous {
        fields.insert("first_name".into(), json!(name));
    }
    if let Some(size) = company {
        fields.insert("company_size".into(), json!(size));
    }
    let account = matches!(
        who,
        Vip | Customer | NewCustomer | Lapsed | Trial | Dormant | Free
    );
    if account {
        fields.insert(
            "plan".into(),
            json!(if who == Free { "free" } else { "trial" }),
        );
        fields.insert("signed_up_on".into(), json!(&format_ms(start)[..10]));
        life.push(start, "$signup", json!({}), Some(Value::Object(fields)));
        if who != Free {
            life.tag(start + MINUTE, "trial");
        }
        life.push(start + 2 * MINUTE, "$login", json!({}), None);
    } else {
        life.push(start, "$subscribe", json!({}), Some(Value::Object(fields)));
        match who {
            Reader | Anonymous => life.tag(start + MINUTE, "newsletter"),
            _ => {
                life.tag(start + MINUTE, "lead");
                if who == Agency {
                    life.tag(start + 2 * MINUTE, "agency");
                }
            }
        }
    }
    if i.is_multiple_of(3) && !matches!(who, Reader | Anonymous) {
        let at = life.day(joined - 1);
        life.tag(at, "newsletter");
    }
    if BETA.contains(&i) {
        let at = life.day(joined / 2);
        life.push(at, "$update_fields", json!({}), Some(json!({"beta": true})));
    }

    // Visits, logins and opened emails, by days ago.
    let (views, logins, opens): (Vec<(i64, &str)>, Vec<i64>, Vec<i64>) = match who {
        Vip => (
            vec![
                (40, "/docs/segments"),
                (15, "/docs/webhooks"),
                (3, "/docs/api"),
            ],
            after(&[70, 45, 26, 19, 13, 8, 4, 1]),
            vec![20, 6],
        ),
        Customer => (
            vec![
                (40, "/docs/segments"),
                (15, "/docs/api"),
                (3, "/docs/webhooks"),
            ],
            after(&[80, 50, 23, 11, 2, 0]),
            vec![20, 6],
        ),
        NewCustomer => (
            vec![(12, "/pricing"), (2, "/docs/segments")],
            vec![12, 6, 3, 1],
            vec![],
        ),
        Lapsed => (
            vec![(joined - 3, "/docs/getting-started")],
            after(&[150, 90]),
            vec![100, 70],
        ),
        Trial => (
            after(&[16, 9, 5, 2])
                .into_iter()
                .zip([
                    "/docs/getting-started",
                    "/docs/segments",
                    "/pricing",
                    "/docs/api",
                ])
                .collect(),
            after(&[joined / 2, 2]),
            vec![],
        ),
        Dormant => (
            vec![
                (joined - 2, "/docs/getting-started"),
                (joined - 6, "/pricing"),
            ],
            vec![],
            vec![],
        ),
        Free => (
            vec![(joined - 1, "/docs/getting-started")],
            after(&[joined / 2]),
            vec![],
        ),
        Reader => (
            after(&[33, 18, 4])
                .into_iter()
                .map(|d| (d, "/blog/segments-that-stay-live"))
                .collect(),
            vec![],
            after(&[24, 17, 10, 3]),
        ),
        Anonymous => (vec![], vec![], after(&[75, 40])),
        Lead | Agency => (
            vec![
                (joined / 2, "/pricing"),
                (joined / 3, "/docs/getting-started"),
            ],
            vec![],
            vec![],
        ),
    };
    for (days, path) in views {
        let at = life.day(days);
        life.view(at, path);
    }
    for days in logins {
        let at = life.day(days);
        life.push(at, "$login", json!({}), None);
    }
    for days in opens.into_iter().filter(subscribed) {
        let at = life.day(days);
        let campaign = format!("newsletter-{}", &format_ms(at)[..10]);
        life.push(at, "$open_email", json!({ "campaign": campaign }), None);
    }
    if i == 19 {
        // A power user: four pages a day all week.
        for days in 0..6 {
            for hour in 0..4 {
                let at = life.day(days) - hour * HOUR;
                life.view(at, &format!("/docs/api/{}", days * 4 + hour));
            }
        }
    }

    // Purchases, each after a visit to the checkout; the first turns a trial
    // into a customer, the plan paid for set with it.
    let (plan, payments) = purchases(i);
    let mut lifetime = 0;
    for (k, payment) in payments.iter().enumerate() {
        let at = life.day(payment.days);
        life.view(at - 10 * MINUTE, "/checkout");
        lifetime += payment.cents;
        let mut details = json!({"value": {"currency": "USD", "amount": payment.cents}});
        if payment.keyed {
            details["unique"] = json!({"key": format!("demo-order-{i}-{k}")});
        }
        let fields = json!({"plan": plan, "lifetime_value": lifetime});
        life.push(at, "$purchase", details, Some(fields));
        if k == 0 {
            life.push(at + MINUTE, "$remove_tag", json!({"tag": "trial"}), None);
            life.tag(at + MINUTE, "customer");
        }
    }
    if let Some(last) = payments.last() {
        if who == Vip {
            life.tag(life.day(last.days) + HOUR, "vip");
        }
        if who == Lapsed {
            let at = life.day(last.days - 30);
            life.push(
                at,
                "$update_fields",
                json!({}),
                Some(json!({"plan": "free"})),
            );
        }
    }
    if let Some(days) = left {
        let at = life.day(days);
        life.push(at, "$unsubscribe", json!({}), None);
    }
    let mut events = life.events;
    events.sort_by_key(|(at, _)| *at);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_audience_is_valid_and_varied() {
        let now = 1_795_683_600_000;
        let events = audience(now);
        assert!(events.len() > 300);
        for (at, item) in &events {
            let raw = serde_json::value::RawValue::from_string(item.to_string()).unwrap();
            let change = parse_event(&raw, now).unwrap();
            assert_eq!(change.event.unwrap().occurred_at, *at, "{item}");
            assert!(*at <= now, "{item}");
        }
        let kinds: std::collections::BTreeSet<&str> = events
            .iter()
            .map(|(_, e)| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.len(), 10, "{kinds:?}");
    }

    #[test]
    fn each_subscriber_joins_with_their_first_event() {
        let now = 1_795_683_600_000;
        let mut seen = HashSet::new();
        for (_, item) in audience(now) {
            if seen.insert(item["email"].as_str().unwrap().to_owned()) {
                let kind = item["type"].as_str().unwrap();
                assert!(["$signup", "$subscribe"].contains(&kind), "{item}");
            }
        }
        assert_eq!(seen.len(), PEOPLE.len());
    }

    #[test]
    fn demo_segments_are_valid() {
        for (name, description, query) in SEGMENTS {
            assert!(SegmentName::parse(name).is_ok());
            assert!(description.map(Description::parse).transpose().is_ok());
            assert!(RawQuery::parse(query).is_ok());
        }
    }
}
