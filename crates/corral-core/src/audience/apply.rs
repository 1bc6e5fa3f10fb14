//! What one [`SubscriberChange`] does to one subscriber, decided once for
//! every storage backend: the fields it merges in and removes, the tags it
//! adds and removes (compared by [`TagName::key`], the last word on a tag
//! wins, a new tag keeps its first spelling), the subscription it moves and
//! the caps of [`Limits`] it must stay within. [`apply`] is a pure function
//! over the subscriber's state and the site's counts the caps watch: it
//! decides everything before it changes anything, so a refused change leaves
//! both untouched, and it returns the [`Effects`] a backend must write. The
//! rules that need the database (whether the subscriber exists, whether a
//! purchase's unique key is already stored, whether a new email is taken)
//! stay with the backend; the words they answer with are here.

use super::limits::Growth;
use super::{Create, Email, FieldKey, Limits, SubscriberChange, Subscription, TagName};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// A subscriber's fields, parsed only when a change sets or removes one:
/// most changes (an event tracked) never look at them.
#[derive(Debug, Clone, PartialEq)]
pub enum Fields {
    /// Not read: the backend keeps what it stores. A change that sets or
    /// removes fields must not be applied to such a state.
    Unread,
    /// As stored: a JSON object's text (anything else reads as no fields).
    Text(String),
    Parsed(Map<String, Value>),
}

impl Fields {
    /// The fields as a map, borrowed once parsed.
    fn map(&self) -> Cow<'_, Map<String, Value>> {
        match self {
            Self::Unread => panic!("fields are read for every change that sets or removes them"),
            Self::Text(text) => Cow::Owned(serde_json::from_str(text).unwrap_or_default()),
            Self::Parsed(map) => Cow::Borrowed(map),
        }
    }

    /// The text to store, compact JSON; `None` when not read (the stored
    /// text stays).
    pub fn to_text(&self) -> Option<String> {
        match self {
            Self::Unread => None,
            Self::Text(text) => Some(text.clone()),
            Self::Parsed(map) => {
                Some(serde_json::to_string(map).expect("a JSON map always serialises"))
            }
        }
    }
}

/// What [`apply`] reads and changes of one subscriber.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriberState {
    pub fields: Fields,
    /// The name keys ([`TagName::key`]) of the tags held; `None` when not
    /// read, which only a change that neither adds nor removes tags allows.
    pub tags: Option<HashSet<String>>,
    pub unsubscribed_at: Option<i64>,
}

impl SubscriberState {
    /// A subscriber about to be created: subscribed, no fields, no tags.
    pub fn new() -> Self {
        Self {
            fields: Fields::Text("{}".to_owned()),
            tags: Some(HashSet::new()),
            unsubscribed_at: None,
        }
    }
}

impl Default for SubscriberState {
    fn default() -> Self {
        Self::new()
    }
}

/// What the site holds that the caps count, kept up to date as changes
/// apply. The known sets need only hold, of the keys the changes applied to
/// these counts name, those the site has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteCounts {
    /// Field keys the site has registered.
    pub field_keys: usize,
    /// The field keys the changes set that the site has (or the changes
    /// registered).
    pub known_fields: HashSet<String>,
    /// Tags the site has.
    pub tags: usize,
    /// The tag keys the changes add that the site has (or the changes
    /// created).
    pub known_tags: HashSet<String>,
}

/// What a backend must write for one applied change. `state` and `site`
/// already hold the result.
#[derive(Debug, Default, PartialEq)]
pub struct Effects<'c> {
    /// Fields were set or removed: `state.fields` holds the map to store.
    pub fields: bool,
    /// The distinct field keys the change sets, ascending: each registered
    /// with the site (named as its key) if the site has not got it.
    pub field_keys: Vec<&'c FieldKey>,
    /// The tags the change adds (`true`) or removes (`false`), by name key:
    /// the last word on each.
    pub tags: BTreeMap<String, bool>,
    /// The tags the change adds, by name key, with the first spelling the
    /// change gives: each created if the site has not got it, even when the
    /// change removes it again.
    pub new_tags: Vec<(String, &'c TagName)>,
    /// `state.unsubscribed_at` moved.
    pub subscription: bool,
    /// The subscriber's fields, tags or subscription were touched: the row
    /// is written again.
    pub changed: bool,
}

/// Whether the change sets or removes fields.
pub fn touches_fields(change: &SubscriberChange) -> bool {
    !change.set_fields.is_empty() || !change.remove_fields.is_empty()
}

/// Whether the change adds or removes tags.
pub fn touches_tags(change: &SubscriberChange) -> bool {
    !change.add_tags.is_empty() || !change.remove_tags.is_empty()
}

/// Whether a change reads or writes the subscriber's row (fields, tags or
/// subscription), rather than only adding an event for them.
pub fn touches_row(change: &SubscriberChange) -> bool {
    touches_fields(change) || touches_tags(change) || change.subscription.is_some()
}

/// Whether a change may create the subscriber it names, who does not exist;
/// the refusal's words when not.
pub fn may_create(change: &SubscriberChange) -> Result<(), String> {
    match change.create {
        Create::IfMissing => Ok(()),
        Create::Never => Err(format!("no subscriber has the email {}", change.email)),
    }
}

/// The refusal of an email change to an address another subscriber has.
pub fn email_taken(new_email: &Email) -> String {
    format!("email {new_email} has already been taken")
}

/// The `(type, unique key)` that makes a change's event a purchase stored
/// once per site: sent again, the change is a duplicate and does nothing.
pub fn purchase_key(change: &SubscriberChange) -> Option<(&str, &str)> {
    let event = change.event.as_ref()?;
    Some((event.kind.as_str(), event.unique_key.as_deref()?))
}

/// Applies `change`'s fields, tags and subscription to `state`, held to
/// `limits` with the site's `site` counts, or refuses it with why (then
/// neither `state` nor `site` changed). The caps are checked in this order:
/// the subscriber's field count, its fields' size, the site's field keys,
/// the subscriber's tags, the site's tags.
pub fn apply<'c>(
    state: &mut SubscriberState,
    site: &mut SiteCounts,
    change: &'c SubscriberChange,
    limits: &Limits,
) -> Result<Effects<'c>, String> {
    // Decide everything before changing anything.
    let fields = if touches_fields(change) {
        let before = state.fields.map();
        let mut after = before.as_ref().clone();
        for (key, value) in &change.set_fields {
            after.insert(key.as_str().to_owned(), value.clone());
        }
        for key in &change.remove_fields {
            after.remove(key.as_str());
        }
        let named: BTreeSet<&'c FieldKey> = change.set_fields.iter().map(|(k, _)| k).collect();
        let new = named
            .iter()
            .filter(|key| !site.known_fields.contains(key.as_str()))
            .count();
        limits.check_fields(&before, &after, site.field_keys, new)?;
        Some((after, named))
    } else {
        None
    };
    let tags = if touches_tags(change) {
        let held = state
            .tags
            .as_ref()
            .expect("tags are read for every change that adds or removes them");
        let mut last_word: BTreeMap<String, bool> = BTreeMap::new();
        let mut new_tags: Vec<(String, &'c TagName)> = Vec::new();
        for tag in &change.add_tags {
            let key = tag.key();
            if last_word.insert(key.clone(), true).is_none() {
                new_tags.push((key, tag));
            }
        }
        for tag in &change.remove_tags {
            last_word.insert(tag.key(), false);
        }
        let gained = last_word
            .iter()
            .filter(|(key, add)| **add && !held.contains(*key))
            .count();
        let lost = last_word
            .iter()
            .filter(|(key, add)| !**add && held.contains(*key))
            .count();
        let growth = Growth {
            before: held.len(),
            after: held.len() + gained - lost,
        };
        let unknown = new_tags
            .iter()
            .filter(|(key, _)| !site.known_tags.contains(key))
            .count();
        limits.check_tags(growth, site.tags, unknown)?;
        Some((last_word, new_tags))
    } else {
        None
    };

    let mut effects = Effects::default();
    if let Some((after, named)) = fields {
        state.fields = Fields::Parsed(after);
        for key in &named {
            if !site.known_fields.contains(key.as_str()) {
                site.known_fields.insert(key.as_str().to_owned());
                site.field_keys += 1;
            }
        }
        effects.fields = true;
        effects.field_keys = named.into_iter().collect();
        effects.changed = true;
    }
    if let Some((last_word, new_tags)) = tags {
        let held = state.tags.as_mut().expect("checked above");
        for (key, add) in &last_word {
            if *add {
                held.insert(key.clone());
            } else {
                held.remove(key);
            }
        }
        for (key, _) in &new_tags {
            if !site.known_tags.contains(key) {
                site.known_tags.insert(key.clone());
                site.tags += 1;
            }
        }
        effects.tags = last_word;
        effects.new_tags = new_tags;
        effects.changed = true;
    }
    match change.subscription {
        Some(Subscription::Subscribe) if state.unsubscribed_at.is_some() => {
            state.unsubscribed_at = None;
            effects.subscription = true;
            effects.changed = true;
        }
        Some(Subscription::Unsubscribe(at)) if state.unsubscribed_at.is_none() => {
            state.unsubscribed_at = Some(at);
            effects.subscription = true;
            effects.changed = true;
        }
        _ => {}
    }
    Ok(effects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SMALL: Limits = Limits {
        fields_per_subscriber: 2,
        field_bytes_per_subscriber: 40,
        tags_per_subscriber: 2,
        field_keys_per_site: 3,
        tags_per_site: 3,
    };

    fn change(edit: impl FnOnce(&mut SubscriberChange)) -> SubscriberChange {
        let mut change = SubscriberChange::touch(Email::parse("a@x.com").unwrap());
        edit(&mut change);
        change
    }

    fn keys(names: &[&str]) -> Vec<FieldKey> {
        names.iter().map(|k| FieldKey::parse(k).unwrap()).collect()
    }

    fn set(pairs: &[(&str, Value)]) -> Vec<(FieldKey, Value)> {
        pairs
            .iter()
            .map(|(k, v)| (FieldKey::parse(k).unwrap(), v.clone()))
            .collect()
    }

    fn tags(names: &[&str]) -> Vec<TagName> {
        names.iter().map(|t| TagName::parse(t).unwrap()).collect()
    }

    fn held(keys: &[&str]) -> Option<HashSet<String>> {
        Some(keys.iter().map(|k| k.to_string()).collect())
    }

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn fields_of(state: &SubscriberState) -> Map<String, Value> {
        state.fields.map().into_owned()
    }

    #[test]
    fn what_a_change_touches_decides_what_a_backend_reads() {
        let event_only = change(|_| {});
        assert!(!touches_fields(&event_only) && !touches_tags(&event_only));
        assert!(!touches_row(&event_only));
        let each: [SubscriberChange; 5] = [
            change(|c| c.set_fields = set(&[("plan", json!("pro"))])),
            change(|c| c.remove_fields = keys(&["plan"])),
            change(|c| c.add_tags = tags(&["vip"])),
            change(|c| c.remove_tags = tags(&["vip"])),
            change(|c| c.subscription = Some(Subscription::Subscribe)),
        ];
        let seen: Vec<(bool, bool, bool)> = each
            .iter()
            .map(|c| (touches_fields(c), touches_tags(c), touches_row(c)))
            .collect();
        assert_eq!(
            seen,
            [
                (true, false, true),
                (true, false, true),
                (false, true, true),
                (false, true, true),
                (false, false, true)
            ]
        );
    }

    #[test]
    fn a_purchase_is_keyed_by_its_type_and_unique_key() {
        use super::super::NewEvent;
        let purchase = |key: Option<&str>| {
            change(|c| {
                c.event = Some(NewEvent {
                    kind: "$purchase".into(),
                    occurred_at: 0,
                    details: "{}".into(),
                    unique_key: key.map(str::to_owned),
                    amount: None,
                    currency: None,
                })
            })
        };
        assert_eq!(
            purchase_key(&purchase(Some("o-1"))),
            Some(("$purchase", "o-1"))
        );
        assert_eq!(purchase_key(&purchase(None)), None);
        assert_eq!(purchase_key(&change(|_| {})), None);
        assert_eq!(may_create(&purchase(None)), Ok(()));
        let never = change(|c| c.create = Create::Never);
        assert_eq!(
            may_create(&never),
            Err("no subscriber has the email a@x.com".to_owned())
        );
        assert_eq!(
            email_taken(&Email::parse("b@x.com").unwrap()),
            "email b@x.com has already been taken"
        );
    }

    #[test]
    fn fields_merge_into_the_stored_ones_and_removals_come_last() {
        let mut state = SubscriberState {
            fields: Fields::Text(r#"{"plan":"free","city":"Oslo"}"#.into()),
            ..SubscriberState::new()
        };
        let mut site = SiteCounts {
            field_keys: 2,
            known_fields: ["plan".to_owned()].into(),
            ..SiteCounts::default()
        };
        let change = change(|c| {
            c.set_fields = set(&[
                ("Plan", json!("pro")),
                ("seats", json!(3)),
                ("plan", json!("team")),
            ]);
            c.remove_fields = keys(&["city", "seats"]);
        });
        let effects = apply(&mut state, &mut site, &change, &Limits::default()).unwrap();
        assert_eq!(fields_of(&state), map(json!({"plan": "team"})));
        assert_eq!(state.fields.to_text().unwrap(), r#"{"plan":"team"}"#);
        assert!(effects.fields && effects.changed && !effects.subscription);
        let registered: Vec<&str> = effects.field_keys.iter().map(|k| k.as_str()).collect();
        assert_eq!(registered, ["plan", "seats"]);
        // "seats" is new to the site, even though the change removed it again.
        assert_eq!(site.field_keys, 3);
        assert!(site.known_fields.contains("seats"));
        assert!(effects.tags.is_empty() && effects.new_tags.is_empty());
    }

    #[test]
    fn text_that_is_no_object_reads_as_no_fields() {
        let mut state = SubscriberState {
            fields: Fields::Text("not json".into()),
            ..SubscriberState::new()
        };
        let change = change(|c| c.set_fields = set(&[("a", json!(1))]));
        apply(
            &mut state,
            &mut SiteCounts::default(),
            &change,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(state.fields, Fields::Parsed(map(json!({"a": 1}))));
    }

    #[test]
    fn a_change_that_touches_nothing_reads_nothing_and_changes_nothing() {
        // Neither the fields nor the tags were read: an event alone needs
        // neither.
        let mut state = SubscriberState {
            fields: Fields::Unread,
            tags: None,
            unsubscribed_at: Some(5),
        };
        let before = state.clone();
        let mut site = SiteCounts::default();
        let event_only = change(|_| {});
        let effects = apply(&mut state, &mut site, &event_only, &SMALL).unwrap();
        assert_eq!(effects, Effects::default());
        assert_eq!(state, before);
        assert_eq!(site, SiteCounts::default());
        assert_eq!(state.fields.to_text(), None);
    }

    #[test]
    fn the_last_word_on_a_tag_wins_and_tags_ignore_case() {
        let mut state = SubscriberState {
            tags: held(&["vip", "cold"]),
            ..SubscriberState::new()
        };
        let mut site = SiteCounts {
            tags: 2,
            known_tags: ["vip".to_owned()].into(),
            ..SiteCounts::default()
        };
        let change = change(|c| {
            c.add_tags = tags(&["Lead", "VIP", "lead", "Beta"]);
            c.remove_tags = tags(&["COLD", "beta"]);
        });
        let effects = apply(&mut state, &mut site, &change, &Limits::default()).unwrap();
        assert_eq!(state.tags, held(&["vip", "lead"]));
        let ops: Vec<(&str, bool)> = effects.tags.iter().map(|(k, a)| (k.as_str(), *a)).collect();
        assert_eq!(
            ops,
            [
                ("beta", false),
                ("cold", false),
                ("lead", true),
                ("vip", true)
            ]
        );
        // Each added tag once, with the first spelling the change gives; a
        // tag removed again is still created.
        let new: Vec<(&str, &str)> = effects
            .new_tags
            .iter()
            .map(|(k, t)| (k.as_str(), t.as_str()))
            .collect();
        assert_eq!(new, [("lead", "Lead"), ("vip", "VIP"), ("beta", "Beta")]);
        assert_eq!(site.tags, 4);
        assert!(effects.changed && !effects.fields);
    }

    #[test]
    fn a_tag_added_and_removed_by_later_changes_follows_the_last() {
        let mut state = SubscriberState::new();
        let mut site = SiteCounts::default();
        let add = change(|c| c.add_tags = tags(&["vip"]));
        let remove = change(|c| c.remove_tags = tags(&["Vip"]));
        apply(&mut state, &mut site, &add, &SMALL).unwrap();
        apply(&mut state, &mut site, &remove, &SMALL).unwrap();
        assert_eq!(state.tags, held(&[]));
        let effects = apply(&mut state, &mut site, &add, &SMALL).unwrap();
        assert_eq!(state.tags, held(&["vip"]));
        // The site has had the tag since the first change.
        assert_eq!(site.tags, 1);
        assert!(effects.tags["vip"]);
    }

    #[test]
    fn subscribing_and_unsubscribing_again_change_nothing() {
        let mut state = SubscriberState::new();
        let mut site = SiteCounts::default();
        let subscribe = change(|c| c.subscription = Some(Subscription::Subscribe));
        let unsubscribe_at = |at| change(|c| c.subscription = Some(Subscription::Unsubscribe(at)));
        let (unsubscribe, again) = (unsubscribe_at(7), unsubscribe_at(9));

        let effects = apply(&mut state, &mut site, &subscribe, &SMALL).unwrap();
        assert!(!effects.subscription && !effects.changed);
        let effects = apply(&mut state, &mut site, &unsubscribe, &SMALL).unwrap();
        assert!(effects.subscription && effects.changed);
        assert_eq!(state.unsubscribed_at, Some(7));
        // The first time stays.
        let effects = apply(&mut state, &mut site, &again, &SMALL).unwrap();
        assert!(!effects.subscription && !effects.changed);
        assert_eq!(state.unsubscribed_at, Some(7));
        let effects = apply(&mut state, &mut site, &subscribe, &SMALL).unwrap();
        assert!(effects.subscription);
        assert_eq!(state.unsubscribed_at, None);
    }

    /// A subscriber and a site near every cap of [`SMALL`].
    fn near_the_caps() -> (SubscriberState, SiteCounts) {
        let state = SubscriberState {
            fields: Fields::Parsed(map(json!({"plan": "pro"}))),
            tags: held(&["vip"]),
            unsubscribed_at: Some(3),
        };
        let site = SiteCounts {
            field_keys: 2,
            known_fields: ["plan".to_owned(), "city".to_owned()].into(),
            tags: 2,
            known_tags: ["vip".to_owned(), "lead".to_owned()].into(),
        };
        (state, site)
    }

    #[test]
    fn each_cap_refuses_the_whole_change_and_leaves_everything_untouched() {
        let cases = [
            (
                change(|c| c.set_fields = set(&[("city", json!(1)), ("role", json!(2))])),
                "subscriber would have 3 fields; at most 2",
            ),
            (
                change(|c| c.set_fields = set(&[("plan", json!("x".repeat(40)))])),
                "subscriber's fields would take 51 bytes; at most 40",
            ),
            (
                change(|c| {
                    c.remove_fields = keys(&["plan"]);
                    c.set_fields = set(&[("role", json!(1)), ("team", json!(2))]);
                }),
                "site would have 4 field keys; at most 3",
            ),
            (
                change(|c| c.add_tags = tags(&["Lead", "cold"])),
                "subscriber would have 3 tags; at most 2",
            ),
            (
                change(|c| {
                    c.remove_tags = tags(&["vip"]);
                    c.add_tags = tags(&["cold", "beta"]);
                }),
                "site would have 4 tags; at most 3",
            ),
        ];
        for (mut change, message) in cases {
            // Whatever else the change does is refused with it.
            change.subscription = Some(Subscription::Subscribe);
            change.add_tags.extend(tags(&["VIP"]));
            let (mut state, mut site) = near_the_caps();
            let (state_before, site_before) = (state.clone(), site.clone());
            assert_eq!(
                apply(&mut state, &mut site, &change, &SMALL).unwrap_err(),
                message
            );
            assert_eq!(state, state_before, "{message}");
            assert_eq!(site, site_before, "{message}");
        }
    }

    #[test]
    fn fields_are_checked_before_tags() {
        let (mut state, mut site) = near_the_caps();
        let change = change(|c| {
            c.set_fields = set(&[("city", json!(1)), ("role", json!(2))]);
            c.add_tags = tags(&["lead", "cold"]);
        });
        assert_eq!(
            apply(&mut state, &mut site, &change, &SMALL).unwrap_err(),
            "subscriber would have 3 fields; at most 2"
        );
    }

    #[test]
    fn a_refused_change_leaves_stored_text_unparsed() {
        let text = r#"{"a":1,"b":2}"#;
        let mut state = SubscriberState {
            fields: Fields::Text(text.into()),
            ..SubscriberState::new()
        };
        let change = change(|c| c.set_fields = set(&[("c", json!(3))]));
        assert!(apply(&mut state, &mut SiteCounts::default(), &change, &SMALL).is_err());
        assert_eq!(state.fields, Fields::Text(text.into()));
    }

    #[test]
    fn the_backends_rules_answer_in_the_same_words() {
        let mut never = change(|_| {});
        assert!(may_create(&never).is_ok());
        never.create = Create::Never;
        assert_eq!(
            may_create(&never).unwrap_err(),
            "no subscriber has the email a@x.com"
        );
        assert_eq!(
            email_taken(&Email::parse("B@x.com").unwrap()),
            "email B@x.com has already been taken"
        );
        assert_eq!(purchase_key(&never), None);
    }
}
