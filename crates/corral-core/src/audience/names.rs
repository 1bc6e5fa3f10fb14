//! Tag names and field keys, and the one normalisation each follows.

use super::text::{Joiners, hidden_character, hidden_character_message};

/// Longest tag name or field key, in characters.
const MAX_NAME_CHARS: usize = 255;

/// A tag name: trimmed, 1–255 characters, no control characters and none of
/// the invisible or direction-changing characters of [`super::text`]. Tags are
/// matched ignoring case ([`TagName::key`]); the first spelling is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TagName(String);

impl TagName {
    pub fn parse(input: &str) -> Result<Self, String> {
        let name = Self::referenced(input)?;
        refuse_hidden(&name.0)?;
        Ok(name)
    }

    /// A tag name as a query refers to it: held to the rules of a tag name
    /// but for the hidden characters, so that a query saved before they were
    /// refused still reads, and still finds a tag stored then.
    pub fn referenced(input: &str) -> Result<Self, String> {
        let name = input.trim();
        check_name(name)?;
        Ok(Self(name.to_owned()))
    }

    /// Tag names from Bento's comma-separated form (`"lead, mql"`); empty
    /// entries are skipped.
    pub fn parse_list(input: &str) -> Result<Vec<Self>, String> {
        input
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(Self::parse)
            .collect()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A field key, normalised: trimmed, lowercased, and every run of
/// whitespace, `-` or `.` turned into one `_` (`"First Name"` and
/// `"first-name"` are both `first_name`). 1–255 characters, held to the same
/// rules as a tag name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldKey(String);

impl FieldKey {
    pub fn parse(input: &str) -> Result<Self, String> {
        let key = Self::referenced(input)?;
        refuse_hidden(&key.0)?;
        Ok(key)
    }

    /// A field key as a query refers to it: normalised and held to the
    /// rules of [`FieldKey::parse`] but for the hidden characters, as
    /// [`TagName::referenced`].
    pub fn referenced(input: &str) -> Result<Self, String> {
        let mut key = String::with_capacity(input.len());
        let mut pending_separator = false;
        for c in input.trim().chars() {
            if c.is_whitespace() || c == '-' || c == '.' {
                pending_separator = true;
                continue;
            }
            if pending_separator && !key.is_empty() {
                key.push('_');
            }
            pending_separator = false;
            key.extend(c.to_lowercase());
        }
        check_name(&key)?;
        Ok(Self(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("can't be blank".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "is too long (maximum is {MAX_NAME_CHARS} characters)"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

fn refuse_hidden(name: &str) -> Result<(), String> {
    match hidden_character(name, Joiners::Allowed) {
        Some(c) => Err(hidden_character_message(c)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_keys_share_one_normal_form() {
        for input in [
            "First Name",
            " first-name ",
            "first.name",
            "FIRST   NAME",
            "first_name",
        ] {
            assert_eq!(
                FieldKey::parse(input).unwrap().as_str(),
                "first_name",
                "{input:?}"
            );
        }
        assert_eq!(FieldKey::parse("Straße").unwrap().as_str(), "straße");
        assert!(FieldKey::parse(" - ").is_err());
    }

    #[test]
    fn tag_lists_are_comma_separated() {
        let tags = TagName::parse_list("lead, MQL,,  vip ").unwrap();
        let names: Vec<&str> = tags.iter().map(TagName::as_str).collect();
        assert_eq!(names, ["lead", "MQL", "vip"]);
        assert_eq!(tags[1].key(), "mql");
        assert!(TagName::parse_list("").unwrap().is_empty());
    }

    #[test]
    fn invisible_and_direction_changing_characters_are_refused() {
        let refused = "must not contain invisible or direction-changing characters (U+200B)";
        assert_eq!(
            TagName::parse("VIP\u{200B} customers").unwrap_err(),
            refused
        );
        assert_eq!(FieldKey::parse("plan\u{200B}").unwrap_err(), refused);
        assert!(TagName::parse("\u{1F468}\u{200D}\u{1F469}").is_ok());
        // As a query names them, they are what was stored before.
        assert!(TagName::referenced("VIP\u{200B} customers").is_ok());
        assert!(FieldKey::referenced("plan\u{200B}").is_ok());
    }

    #[test]
    fn a_name_is_at_most_255_characters() {
        let longest = "é".repeat(MAX_NAME_CHARS);
        assert!(TagName::parse(&longest).is_ok());
        assert_eq!(
            TagName::parse(&format!("{longest}e")).unwrap_err(),
            "is too long (maximum is 255 characters)"
        );
    }
}
