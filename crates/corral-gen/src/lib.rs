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
//! only tables are the fixed ones below.

use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

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

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

// ---------------------------------------------------------------------------
// Randomness: splitmix64, and per-record streams derived from the seed.

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and fixed forever.
struct Rng(u64);

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of (seed, stream, index): the root of every independent draw.
fn key(seed: u64, stream: u64, index: u64) -> u64 {
    mix(mix(seed ^ stream.wrapping_mul(GOLDEN)).wrapping_add(index.wrapping_mul(GOLDEN)) ^ stream)
}

impl Rng {
    fn new(seed: u64, stream: u64, index: u64) -> Self {
        Self(key(seed, stream, index))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `0..n` (multiply-shift; the bias, n / 2^64, is immaterial).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `per_10000` / 10,000.
    fn chance(&mut self, per_10000: u64) -> bool {
        self.below(10_000) < per_10000
    }

    /// Uniform in [0, 1), 53 bits.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const STREAM_SUBSCRIBER: u64 = 1;
const STREAM_DOMAIN: u64 = 2;
const STREAM_UNSUBSCRIBE: u64 = 3;
const STREAM_EVENTS: u64 = 4;
const STREAM_PERMUTATION: u64 = 5;

/// A discrete distribution over `0..n` from integer weights.
struct Weighted(Vec<u64>);

impl Weighted {
    fn new(weights: impl IntoIterator<Item = u64>) -> Self {
        let mut total = 0;
        Self(
            weights
                .into_iter()
                .map(|w| {
                    total += w;
                    total
                })
                .collect(),
        )
    }

    /// Zipf with exponent 1 over `n` ranks: weight ∝ 1/rank.
    fn zipf(n: usize) -> Self {
        Self::new((1..=n as u64).map(|rank| 1_000_000_000 / rank))
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.below(*self.0.last().expect("a distribution has weights"));
        self.0.partition_point(|&c| c <= u)
    }
}

/// The activity model: which subscriber performs an event. The activity rank
/// x ∈ [0, 1] has density ∝ (x + X0)^-1.5, sampled by inverting its CDF,
/// which needs only `sqrt` and arithmetic (exactly rounded, so the same on
/// every platform); ranks map to subscriber indexes by an affine permutation.
struct Activity {
    n: u64,
    multiplier: u64,
    offset: u64,
    head: f64,
    span: f64,
}

const X0: f64 = 0.02;

impl Activity {
    fn new(n: u64, seed: u64) -> Self {
        let head = 1.0 / X0.sqrt();
        let tail = 1.0 / (1.0 + X0).sqrt();
        let n = n.max(1);
        let mut multiplier = (GOLDEN % n) | 1;
        while gcd(multiplier, n) != 1 {
            multiplier += 1;
        }
        Self {
            n,
            multiplier,
            offset: key(seed, STREAM_PERMUTATION, 0) % n,
            head,
            span: head - tail,
        }
    }

    fn sample(&self, rng: &mut Rng) -> u64 {
        let t = self.head - rng.unit() * self.span;
        let x = 1.0 / (t * t) - X0;
        let rank = ((x.max(0.0) * self.n as f64) as u64).min(self.n - 1);
        ((u128::from(rank) * u128::from(self.multiplier) + u128::from(self.offset))
            % u128::from(self.n)) as u64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

// ---------------------------------------------------------------------------
// Fixed tables.

const DOMAINS: &[(&str, u64)] = &[
    ("gmail.com", 4000),
    ("outlook.com", 1200),
    ("yahoo.com", 1000),
    ("hotmail.com", 600),
    ("icloud.com", 600),
    ("proton.me", 300),
    ("aol.com", 100),
    ("acme.com", 500),
    ("globex.com", 400),
    ("initech.com", 300),
    ("hooli.xyz", 300),
    ("umbrella-corp.com", 200),
    ("stark-industries.com", 200),
    ("wayne-enterprises.com", 150),
    ("example.org", 150),
];

const FIRST_NAMES: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Katherine",
    "Donald",
    "Radia",
    "Tim",
    "Hedy",
    "John",
    "Annie",
    "Niklaus",
    "Sophie",
    "Bjarne",
    "Shafi",
    "Guido",
    "Lynn",
    "James",
    "Mary",
    "Leslie",
    "Joan",
    "Yukihiro",
    "Anita",
    "Rob",
    "Evelyn",
    "Larry",
    "Jean",
    "Brian",
    "Karen",
    "Steve",
    "Adele",
    "Vint",
    "Susan",
    "Bob",
    "Zoë",
    "José",
    "Chloé",
    "Søren",
    "Łukasz",
    "Aoife",
    "Mateo",
    "Amélie",
    "Jürgen",
    "Siobhán",
    "Priya",
    "Wei",
    "Yuki",
    "Olu",
    "Fatima",
    "Ingrid",
    "Nikolai",
    "Camila",
    "Kwame",
    "Mei",
];

const PLANS: &[(&str, u64)] = &[
    ("free", 6000),
    ("pro", 3000),
    ("team", 800),
    ("enterprise", 200),
];

/// Monthly price of each plan, in cents (index as [`PLANS`]).
const PLAN_MONTHLY_CENTS: [u64; 4] = [0, 2_900, 9_900, 99_900];

/// The 24 most common tags, most common first; the rest are made up of the
/// families below, interleaved so every family has common and rare members.
const COMMON_TAGS: &[&str] = &[
    "newsletter",
    "lead",
    "customer",
    "trial",
    "active",
    "product-updates",
    "vip",
    "mql",
    "onboarding",
    "churn-risk",
    "beta-tester",
    "webinar-attendee",
    "power-user",
    "inactive",
    "sql",
    "referral",
    "partner",
    "ebook-download",
    "enterprise-interest",
    "black-friday-2025",
    "nps-promoter",
    "nps-detractor",
    "event-attendee",
    "student",
];

const TAG_FAMILIES: &[(&str, &[&str])] = &[
    (
        "interest",
        &[
            "analytics",
            "automation",
            "email",
            "sms",
            "ecommerce",
            "saas",
            "design",
            "seo",
            "ai",
            "security",
            "devops",
            "mobile",
            "finance",
            "health",
            "education",
            "gaming",
            "travel",
            "food",
            "music",
            "sports",
            "fashion",
            "crypto",
            "privacy",
            "open-source",
            "hiring",
            "remote-work",
            "productivity",
            "marketing",
            "sales",
            "support",
        ],
    ),
    (
        "source",
        &[
            "google-ads",
            "facebook",
            "linkedin",
            "twitter",
            "reddit",
            "youtube",
            "podcast",
            "producthunt",
            "hacker-news",
            "partner-site",
            "conference",
            "cold-outreach",
            "organic",
            "affiliate",
            "tiktok",
            "instagram",
        ],
    ),
    (
        "campaign",
        &[
            "2025-11",
            "2025-12",
            "2026-01",
            "2026-02",
            "2026-03",
            "2026-04",
            "2026-05",
            "2026-06",
            "2026-07",
            "2026-08",
            "2026-09",
            "2026-10",
            "spring-sale",
            "summer-launch",
            "back-to-school",
            "cyber-monday",
            "year-in-review",
            "re-engage",
            "winback",
            "upsell",
        ],
    ),
    (
        "region",
        &[
            "us-east",
            "us-west",
            "canada",
            "uk",
            "germany",
            "france",
            "nordics",
            "benelux",
            "spain",
            "italy",
            "brazil",
            "mexico",
            "india",
            "japan",
            "australia",
            "singapore",
            "south-africa",
            "nigeria",
            "poland",
            "turkey",
        ],
    ),
    (
        "cohort",
        &[
            "2024-q1", "2024-q2", "2024-q3", "2024-q4", "2025-q1", "2025-q2", "2025-q3", "2025-q4",
            "2026-q1", "2026-q2", "2026-q3", "2026-q4",
        ],
    ),
    (
        "persona",
        &[
            "founder",
            "developer",
            "marketer",
            "designer",
            "agency",
            "freelancer",
            "analyst",
            "executive",
            "educator",
            "nonprofit",
            "creator",
            "ops",
        ],
    ),
    (
        "product",
        &[
            "starter-kit",
            "field-notes",
            "api-access",
            "templates",
            "integrations",
            "mobile-app",
            "desktop-app",
            "browser-extension",
            "workshops",
            "consulting",
            "hardware-bundle",
            "gift-card",
            "annual-plan",
            "add-on-seats",
            "priority-support",
            "white-label",
            "data-export",
            "audit-log",
            "sso",
            "custom-domain",
        ],
    ),
    (
        "stage",
        &[
            "awareness",
            "consideration",
            "decision",
            "retention",
            "advocacy",
            "dormant",
            "reactivated",
            "evaluating",
            "negotiating",
            "closed-won",
            "closed-lost",
            "renewal-due",
            "expansion",
            "at-risk",
            "champion",
            "detractor",
            "lapsed",
            "win-back",
            "pilot",
            "proof-of-concept",
            "procurement",
            "legal-review",
            "signed",
            "kickoff",
            "onboarded",
            "adopted",
            "scaled",
            "renewed",
            "churned",
            "paused",
        ],
    ),
    (
        "language",
        &[
            "en", "de", "fr", "es", "pt", "it", "nl", "ja", "zh", "ko", "pl", "sv", "tr", "ar",
            "hi", "uk",
        ],
    ),
];

const TAG_COUNT: usize = 200;

fn tag_names() -> Vec<String> {
    let mut names: Vec<String> = COMMON_TAGS.iter().map(|t| (*t).to_owned()).collect();
    let longest = TAG_FAMILIES.iter().map(|(_, w)| w.len()).max().unwrap_or(0);
    'fill: for i in 0..longest {
        for (family, words) in TAG_FAMILIES {
            if let Some(word) = words.get(i) {
                if names.len() == TAG_COUNT {
                    break 'fill;
                }
                names.push(format!("{family}-{word}"));
            }
        }
    }
    debug_assert_eq!(names.len(), TAG_COUNT);
    names
}

/// Tags per subscriber: 0–6, weights per 100.
const TAGS_PER_SUBSCRIBER: [u64; 7] = [15, 30, 25, 15, 8, 5, 2];

/// Event types and their weights per 10,000 (Zipf-like, exponent 1.25, for
/// the ordinary ones). `$unsubscribe` is not drawn: it is placed, once for
/// each unsubscribing subscriber, among the events.
const EVENT_TYPES: &[(&str, u64)] = &[
    ("$pageview", 3205),
    ("$click", 1348),
    ("$login", 812),
    ("$view_product", 567),
    ("$add_to_cart", 429),
    ("$checkout_started", 341),
    ("$purchase", 300),
    ("$search", 282),
    ("$open_email", 238),
    ("$click_email", 206),
    ("$logout", 180),
    ("$feature_used", 160),
    ("$form_submitted", 144),
    ("$signup", 130),
    ("$video_played", 118),
    ("$download", 109),
    ("$tag", 100),
    ("$profile_updated", 100),
    ("$remove_from_cart", 93),
    ("$share", 86),
    ("$app_opened", 81),
    ("$onboarding_step", 76),
    ("$invite_sent", 71),
    ("$comment", 67),
    ("$report_viewed", 64),
    ("$file_uploaded", 60),
    ("$trial_started", 57),
    ("$settings_changed", 55),
    ("$password_reset", 52),
    ("$subscribe", 50),
    ("$export", 50),
    ("$webinar_registered", 48),
    ("$coupon_applied", 46),
    ("$wishlist_add", 44),
    ("$upgrade", 42),
    ("$review_posted", 41),
    ("$support_ticket", 39),
    ("$webinar_attended", 38),
    ("$downgrade", 36),
    ("$refund", 35),
];

/// The share of subscribers who unsubscribe, per 10,000.
const UNSUBSCRIBE_PER_10000: u64 = 800;

const PAGES: &[&str] = &[
    "/",
    "/pricing",
    "/features",
    "/blog",
    "/docs",
    "/login",
    "/signup",
    "/dashboard",
    "/docs/getting-started",
    "/integrations",
    "/customers",
    "/about",
    "/changelog",
    "/docs/api",
    "/contact",
    "/security",
    "/careers",
    "/templates",
    "/docs/segments",
    "/compare",
    "/partners",
    "/status",
    "/legal/privacy",
    "/legal/terms",
    "/webinars",
    "/community",
    "/docs/webhooks",
    "/enterprise",
    "/startups",
    "/press",
];

const BLOG_POSTS: usize = 500;

const CLICK_ELEMENTS: &[&str] = &[
    "cta-hero",
    "nav-pricing",
    "signup-button",
    "footer-link",
    "download-button",
    "video-play",
    "chat-widget",
    "upgrade-banner",
];

const LOGIN_METHODS: &[(&str, u64)] = &[("password", 60), ("google", 25), ("magic_link", 15)];

const SIGNUP_SOURCES: &[&str] = &[
    "organic",
    "google-ads",
    "referral",
    "newsletter",
    "linkedin",
    "twitter",
    "producthunt",
];

const SEARCH_TERMS: &[&str] = &[
    "pricing",
    "api",
    "export",
    "segments",
    "webhooks",
    "sso",
    "invoice",
    "templates",
    "integrations",
    "delete account",
    "import csv",
    "tags",
    "automation",
    "refund",
];

const PLATFORMS: &[(&str, u64)] = &[("web", 70), ("ios", 18), ("android", 12)];

const PRODUCTS: &[(&str, &str)] = &[
    ("SKU-1001", "Starter Kit"),
    ("SKU-1002", "Field Notes (3-pack)"),
    ("SKU-1003", "Pro Plan, monthly"),
    ("SKU-1004", "Pro Plan, annual"),
    ("SKU-1005", "Template Bundle"),
    ("SKU-1006", "Extra Seats (5)"),
    ("SKU-1007", "Priority Support"),
    ("SKU-1008", "Team Plan, monthly"),
    ("SKU-1009", "Workshop Ticket"),
    ("SKU-1010", "Gift Card"),
    ("SKU-1011", "Sticker Pack"),
    ("SKU-1012", "Hoodie"),
    ("SKU-1013", "Mug"),
    ("SKU-1014", "Team Plan, annual"),
    ("SKU-1015", "Consulting Hour"),
    ("SKU-1016", "Hardware Bundle"),
    ("SKU-1017", "Enterprise Plan, annual"),
    ("SKU-1018", "Data Export Add-on"),
    ("SKU-1019", "Custom Domain Add-on"),
    ("SKU-1020", "Onboarding Package"),
];

/// Purchase amounts in cents: a bucket by weight (per 1,000), then uniform
/// within it. Most purchases are small; a few are large.
const AMOUNT_BUCKETS: &[(u64, u64, u64)] = &[
    (500, 1_000, 350),
    (1_000, 2_500, 250),
    (2_500, 5_000, 160),
    (5_000, 10_000, 110),
    (10_000, 25_000, 70),
    (25_000, 50_000, 35),
    (50_000, 100_000, 15),
    (100_000, 250_000, 8),
    (250_000, 500_001, 2),
];

/// Items in a cart: 1–3, weights per 100.
const CART_ITEMS: [u64; 3] = [60, 30, 10];

/// Activity by UTC hour of day (relative weights).
const HOUR_WEIGHTS: [u64; 24] = [
    3, 2, 2, 2, 2, 3, 4, 6, 8, 9, 10, 10, 11, 12, 13, 14, 14, 13, 12, 10, 8, 7, 5, 4,
];

/// Share of weekend days kept (the rest are drawn again), per 100.
const WEEKEND_KEEP: u64 = 60;

/// Share of draws skewed towards the end of the span (max of two), per 100.
const GROWTH: u64 = 35;

// ---------------------------------------------------------------------------
// The generator.

const DAY_MS: i64 = 86_400_000;
const EVENT_SPAN_DAYS: i64 = 365;
const SIGNUP_SPAN_DAYS: u64 = 3 * 365;

/// Everything derived from the arguments once.
struct Plan {
    subscribers: u64,
    events: u64,
    seed: u64,
    from_ms: i64,
    until_ms: i64,
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
struct EventCounts {
    purchases: u64,
    unsubscribes: u64,
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
    fn new(args: &GenArgs) -> io::Result<Self> {
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

    fn write_subscribers(
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
    fn write_events(&self, out: &mut impl Write) -> io::Result<EventCounts> {
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

/// Days back from the end of a span of `days`: uniform, or (GROWTH% of the
/// time) the nearer of two draws, so recent days are denser.
fn skewed_recent(rng: &mut Rng, days: u64) -> u64 {
    let back = rng.below(days);
    if rng.below(100) < GROWTH {
        back.min(rng.below(days))
    } else {
        back
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
fn push_csv_cell(out: &mut String, text: &str) {
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

fn rfc3339(ms: i64) -> String {
    let mut text = String::with_capacity(24);
    push_timestamp(&mut text, ms);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn the_tables_are_what_the_docs_say() {
        assert_eq!(tag_names().len(), TAG_COUNT);
        assert_eq!(tag_names().iter().collect::<HashSet<_>>().len(), TAG_COUNT);
        assert_eq!(EVENT_TYPES.iter().map(|t| t.1).sum::<u64>(), 10_000);
        assert_eq!(EVENT_TYPES.len(), 40, "drawn types, besides $unsubscribe");
        assert_eq!(DOMAINS.iter().map(|d| d.1).sum::<u64>(), 10_000);
        assert_eq!(PLANS.iter().map(|p| p.1).sum::<u64>(), 10_000);
        assert_eq!(AMOUNT_BUCKETS.iter().map(|b| b.2).sum::<u64>(), 1_000);
    }
}
