//! The fixed tables the generator draws from: email domains, first names,
//! plans and their prices, the tag names, the event types and their weights,
//! pages, products, purchase amounts and the hours of the day. They are part
//! of what the output is: a changed name or weight changes the bytes written
//! for every seed.

pub(crate) const DOMAINS: &[(&str, u64)] = &[
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

pub(crate) const FIRST_NAMES: &[&str] = &[
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

pub(crate) const PLANS: &[(&str, u64)] = &[
    ("free", 6000),
    ("pro", 3000),
    ("team", 800),
    ("enterprise", 200),
];

/// Monthly price of each plan, in cents (index as [`PLANS`]).
pub(crate) const PLAN_MONTHLY_CENTS: [u64; 4] = [0, 2_900, 9_900, 99_900];

/// The 24 most common tags, most common first; the rest are made up of the
/// families below, interleaved so every family has common and rare members.
pub(crate) const COMMON_TAGS: &[&str] = &[
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

pub(crate) const TAG_COUNT: usize = 200;

pub(crate) fn tag_names() -> Vec<String> {
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
pub(crate) const TAGS_PER_SUBSCRIBER: [u64; 7] = [15, 30, 25, 15, 8, 5, 2];

/// Event types and their weights per 10,000 (Zipf-like, exponent 1.25, for
/// the ordinary ones). `$unsubscribe` is not drawn: it is placed, once for
/// each unsubscribing subscriber, among the events.
pub(crate) const EVENT_TYPES: &[(&str, u64)] = &[
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
pub(crate) const UNSUBSCRIBE_PER_10000: u64 = 800;

pub(crate) const PAGES: &[&str] = &[
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

pub(crate) const BLOG_POSTS: usize = 500;

pub(crate) const CLICK_ELEMENTS: &[&str] = &[
    "cta-hero",
    "nav-pricing",
    "signup-button",
    "footer-link",
    "download-button",
    "video-play",
    "chat-widget",
    "upgrade-banner",
];

pub(crate) const LOGIN_METHODS: &[(&str, u64)] =
    &[("password", 60), ("google", 25), ("magic_link", 15)];

pub(crate) const SIGNUP_SOURCES: &[&str] = &[
    "organic",
    "google-ads",
    "referral",
    "newsletter",
    "linkedin",
    "twitter",
    "producthunt",
];

pub(crate) const SEARCH_TERMS: &[&str] = &[
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

pub(crate) const PLATFORMS: &[(&str, u64)] = &[("web", 70), ("ios", 18), ("android", 12)];

pub(crate) const PRODUCTS: &[(&str, &str)] = &[
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
pub(crate) const AMOUNT_BUCKETS: &[(u64, u64, u64)] = &[
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
pub(crate) const CART_ITEMS: [u64; 3] = [60, 30, 10];

/// Activity by UTC hour of day (relative weights).
pub(crate) const HOUR_WEIGHTS: [u64; 24] = [
    3, 2, 2, 2, 2, 3, 4, 6, 8, 9, 10, 10, 11, 12, 13, 14, 14, 13, 12, 10, 8, 7, 5, 4,
];

/// Share of weekend days kept (the rest are drawn again), per 100.
pub(crate) const WEEKEND_KEEP: u64 = 60;

/// Share of draws skewed towards the end of the span (max of two), per 100.
pub(crate) const GROWTH: u64 = 35;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

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
