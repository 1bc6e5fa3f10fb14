//! The caps on how much audience data one subscriber and one site may hold,
//! and on the size of one value.
//!
//! Every write path (batches of events and subscribers, commands, the
//! single-record routes and `corral import`) goes through these rules, so a
//! client cannot grow a subscriber or a site without bound whichever endpoint
//! it uses. The numbers are far above what a real email-marketing account
//! needs (a few dozen fields and tags per subscriber, a few hundred field
//! keys and a few thousand tags per site) and low enough that a subscriber
//! stays a few dozen KiB on the wire and a site's tag and field lists stay
//! one bounded page.
//!
//! The stateful caps refuse a change that would take a count *over* its cap
//! or *further* over it: data stored before a cap existed stays readable and
//! can still be shrunk, but never grown.
//!
//! Sizes are bytes of compact JSON (as stored), counted without allocating.

use serde_json::{Map, Value};

/// Fields one subscriber may hold.
pub const MAX_FIELDS_PER_SUBSCRIBER: usize = 200;
/// Bytes one subscriber's fields may take together, as a compact JSON object.
pub const MAX_FIELD_BYTES_PER_SUBSCRIBER: usize = 64 * 1024;
/// Tags one subscriber may hold.
pub const MAX_TAGS_PER_SUBSCRIBER: usize = 500;
/// Field keys one site may register.
pub const MAX_FIELD_KEYS_PER_SITE: usize = 1_000;
/// Tags one site may hold.
pub const MAX_TAGS_PER_SITE: usize = 10_000;
/// Bytes one field value may take, as compact JSON.
pub const MAX_FIELD_VALUE_BYTES: usize = 8 * 1024;
/// Bytes one event's `details` may take, as compact JSON.
pub const MAX_DETAILS_BYTES: usize = 64 * 1024;

/// The stateful caps a backend enforces when it applies changes. Production
/// uses [`Limits::default`], the constants above; tests lower them to reach
/// the caps with a handful of items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub fields_per_subscriber: usize,
    pub field_bytes_per_subscriber: usize,
    pub tags_per_subscriber: usize,
    pub field_keys_per_site: usize,
    pub tags_per_site: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fields_per_subscriber: MAX_FIELDS_PER_SUBSCRIBER,
            field_bytes_per_subscriber: MAX_FIELD_BYTES_PER_SUBSCRIBER,
            tags_per_subscriber: MAX_TAGS_PER_SUBSCRIBER,
            field_keys_per_site: MAX_FIELD_KEYS_PER_SITE,
            tags_per_site: MAX_TAGS_PER_SITE,
        }
    }
}

/// A change's effect on the counts a cap watches, as a backend measures it.
#[derive(Debug, Clone, Copy)]
pub struct Growth {
    pub before: usize,
    pub after: usize,
}

impl Limits {
    /// Whether a subscriber's fields may go from `before` to `after`, where
    /// the change registers `new_keys` field keys the site did not have and
    /// the site has `site_keys` now. Checked in this order: the subscriber's
    /// field count, its fields' size, the site's field keys.
    pub fn check_fields(
        &self,
        before: &Map<String, Value>,
        after: &Map<String, Value>,
        site_keys: usize,
        new_keys: usize,
    ) -> Result<(), String> {
        let count = Growth {
            before: before.len(),
            after: after.len(),
        };
        over(count, self.fields_per_subscriber, "subscriber", "fields")?;
        let after_bytes = json_len(after);
        if after_bytes > self.field_bytes_per_subscriber {
            let before_bytes = json_len(before);
            if after_bytes > before_bytes {
                return Err(format!(
                    "subscriber's fields would take {after_bytes} bytes; at most {}",
                    self.field_bytes_per_subscriber
                ));
            }
        }
        let keys = Growth {
            before: site_keys,
            after: site_keys + new_keys,
        };
        over(keys, self.field_keys_per_site, "site", "field keys")
    }

    /// Whether a subscriber's tags may go from `tags.before` to `tags.after`,
    /// where the change creates `new_tags` tags the site did not have and the
    /// site has `site_tags` now. Checked in this order: the subscriber's tag
    /// count, the site's tags.
    pub fn check_tags(
        &self,
        tags: Growth,
        site_tags: usize,
        new_tags: usize,
    ) -> Result<(), String> {
        over(tags, self.tags_per_subscriber, "subscriber", "tags")?;
        let site = Growth {
            before: site_tags,
            after: site_tags + new_tags,
        };
        over(site, self.tags_per_site, "site", "tags")
    }

    /// Whether the site may register one more field key (`POST /fetch/fields`).
    pub fn check_new_field_key(&self, site_keys: usize) -> Result<(), String> {
        let keys = Growth {
            before: site_keys,
            after: site_keys + 1,
        };
        over(keys, self.field_keys_per_site, "site", "field keys")
    }

    /// Whether the site may create one more tag (`POST /fetch/tags`).
    pub fn check_new_tag(&self, site_tags: usize) -> Result<(), String> {
        let tags = Growth {
            before: site_tags,
            after: site_tags + 1,
        };
        over(tags, self.tags_per_site, "site", "tags")
    }
}

/// Refuses a count that ends over `max` and higher than it started.
fn over(growth: Growth, max: usize, whose: &str, what: &str) -> Result<(), String> {
    if growth.after > max && growth.after > growth.before {
        return Err(format!(
            "{whose} would have {} {what}; at most {max}",
            growth.after
        ));
    }
    Ok(())
}

/// Refuses a field value larger than [`MAX_FIELD_VALUE_BYTES`].
pub fn check_field_value(key: &str, value: &Value) -> Result<(), String> {
    let bytes = json_len(value);
    if bytes > MAX_FIELD_VALUE_BYTES {
        return Err(format!(
            "field {key:?} would take {bytes} bytes; at most {MAX_FIELD_VALUE_BYTES}"
        ));
    }
    Ok(())
}

/// Refuses event details (compact JSON text) larger than [`MAX_DETAILS_BYTES`].
pub fn check_details(compact: &str) -> Result<(), String> {
    if compact.len() > MAX_DETAILS_BYTES {
        return Err(format!(
            "details would take {} bytes; at most {MAX_DETAILS_BYTES}",
            compact.len()
        ));
    }
    Ok(())
}

/// Bytes of `value` as compact JSON.
pub fn json_len(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).expect("a JSON value always serialises");
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn small() -> Limits {
        Limits {
            fields_per_subscriber: 2,
            field_bytes_per_subscriber: 30,
            tags_per_subscriber: 2,
            field_keys_per_site: 3,
            tags_per_site: 3,
        }
    }

    #[test]
    fn production_caps_are_the_documented_constants() {
        let limits = Limits::default();
        assert_eq!(limits.fields_per_subscriber, 200);
        assert_eq!(limits.tags_per_subscriber, 500);
        assert_eq!(limits.field_keys_per_site, 1_000);
        assert_eq!(limits.tags_per_site, 10_000);
        assert_eq!(limits.field_bytes_per_subscriber, 65_536);
    }

    #[test]
    fn a_change_may_reach_a_cap_but_not_pass_it() {
        let limits = small();
        let empty = Map::new();
        assert!(
            limits
                .check_fields(&empty, &map(json!({"a": 1, "b": 2})), 0, 2)
                .is_ok()
        );
        assert_eq!(
            limits
                .check_fields(&empty, &map(json!({"a": 1, "b": 2, "c": 3})), 0, 3)
                .unwrap_err(),
            "subscriber would have 3 fields; at most 2"
        );
        assert_eq!(
            limits
                .check_fields(&empty, &map(json!({"a": "x".repeat(30)})), 0, 1)
                .unwrap_err(),
            "subscriber's fields would take 38 bytes; at most 30"
        );
        assert_eq!(
            limits
                .check_fields(&empty, &map(json!({"a": 1})), 3, 1)
                .unwrap_err(),
            "site would have 4 field keys; at most 3"
        );
        let tags = Growth {
            before: 2,
            after: 3,
        };
        assert_eq!(
            limits.check_tags(tags, 0, 0).unwrap_err(),
            "subscriber would have 3 tags; at most 2"
        );
        let one = Growth {
            before: 0,
            after: 1,
        };
        assert_eq!(
            limits.check_tags(one, 3, 1).unwrap_err(),
            "site would have 4 tags; at most 3"
        );
        assert!(limits.check_new_tag(2).is_ok());
        assert!(limits.check_new_tag(3).is_err());
        assert!(limits.check_new_field_key(3).is_err());
    }

    #[test]
    fn data_already_over_a_cap_may_shrink_or_stay_but_not_grow() {
        let limits = small();
        let over = map(json!({"a": 1, "b": 2, "c": 3, "d": 4}));
        let fewer = map(json!({"a": 1, "b": 2, "c": 3}));
        let changed = map(json!({"a": 9, "b": 2, "c": 3, "d": 4}));
        assert!(limits.check_fields(&over, &fewer, 9, 0).is_ok());
        assert!(limits.check_fields(&over, &changed, 9, 0).is_ok());
        let more = map(json!({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}));
        assert!(limits.check_fields(&over, &more, 9, 0).is_err());
        // The site is over its key cap: no new key, but existing ones go on.
        assert!(limits.check_fields(&fewer, &fewer, 9, 0).is_ok());
        let same = Growth {
            before: 7,
            after: 7,
        };
        assert!(limits.check_tags(same, 50, 0).is_ok());
    }

    #[test]
    fn field_bytes_may_reach_the_cap_and_data_over_it_may_keep_its_size() {
        let limits = small();
        let at_cap = map(json!({"a": "x".repeat(22)}));
        assert_eq!(json_len(&at_cap), 30);
        assert!(limits.check_fields(&Map::new(), &at_cap, 0, 1).is_ok());
        // Stored before the cap was lowered: a change of the same size goes on.
        let over = map(json!({"a": "x".repeat(30)}));
        let same_size = map(json!({"a": "y".repeat(30)}));
        assert!(limits.check_fields(&over, &same_size, 1, 0).is_ok());
    }

    #[test]
    fn values_and_details_have_a_size() {
        assert_eq!(json_len(&json!({"a": [1, "é"]})), r#"{"a":[1,"é"]}"#.len());
        assert!(check_field_value("bio", &json!("x".repeat(8 * 1024 - 2))).is_ok());
        assert_eq!(
            check_field_value("bio", &json!("x".repeat(8 * 1024))).unwrap_err(),
            "field \"bio\" would take 8194 bytes; at most 8192"
        );
        assert!(check_details(&"x".repeat(MAX_DETAILS_BYTES)).is_ok());
        assert_eq!(
            check_details(&"x".repeat(MAX_DETAILS_BYTES + 1)).unwrap_err(),
            "details would take 65537 bytes; at most 65536"
        );
    }
}
