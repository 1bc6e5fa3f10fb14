//! Email addresses: checked at the edge, unique per site ignoring case.

use super::text::{Joiners, hidden_character, hidden_character_message};
use std::fmt;

/// Longest address accepted, in characters (RFC 5321's path limit, counted
/// as the API's JSON Schema counts a string's length: by character).
const MAX_EMAIL_LEN: usize = 254;

/// A plausible email address, trimmed; kept as written, compared lowercase.
///
/// The check is deliberately practical rather than RFC 5322's full grammar:
/// one `@`, a non-empty local part of at most 64 characters, a domain with a dot
/// and no empty labels, no whitespace or control characters, and none of the
/// invisible or direction-changing characters of [`super::text`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, String> {
        let email = input.trim();
        if email.is_empty() {
            return Err("can't be blank".into());
        }
        // As given, spaces around it included: the API's schema bounds the
        // string sent, before any trimming.
        if input.chars().count() > MAX_EMAIL_LEN {
            return Err(format!(
                "is too long (maximum is {MAX_EMAIL_LEN} characters)"
            ));
        }
        if let Some(c) = hidden_character(email, Joiners::Refused) {
            return Err(hidden_character_message(c));
        }
        let invalid = || Err("is invalid".to_owned());
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return invalid();
        }
        let Some((local, domain)) = email.split_once('@') else {
            return invalid();
        };
        if local.is_empty() || local.chars().count() > 64 || domain.contains('@') {
            return invalid();
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels
                .iter()
                .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
        {
            return invalid();
        }
        Ok(Self(email.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The comparison key: lowercase.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_trimmed() {
        let email = Email::parse("  Ada.Lovelace+news@Example.co.uk ").unwrap();
        assert_eq!(email.as_str(), "Ada.Lovelace+news@Example.co.uk");
        assert_eq!(email.key(), "ada.lovelace+news@example.co.uk");
        assert!(Email::parse("名前@例え.jp").is_ok());
    }

    #[test]
    fn refuses_what_cannot_be_an_address() {
        for bad in [
            "",
            "   ",
            "plain",
            "a@b",
            "@x.com",
            "a@@x.com",
            "a b@x.com",
            "a@x..com",
            "a@-x.com",
            "a@x.com.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Email::parse(" ").unwrap_err(), "can't be blank");
        assert_eq!(
            Email::parse("u\u{202E}evil@example.com").unwrap_err(),
            "must not contain invisible or direction-changing characters (U+202E)"
        );
        assert!(Email::parse("ada\u{200D}@example.com").is_err());
        assert!(Email::parse(&format!("{}@x.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn limits_hold_at_their_edges() {
        // 254 characters in all are accepted, 255 are too long.
        let of_length = |len: usize| format!("{}@{}.com", "a".repeat(64), "b".repeat(len - 69));
        assert_eq!(of_length(254).len(), 254);
        assert!(Email::parse(&of_length(254)).is_ok());
        assert_eq!(
            Email::parse(&of_length(255)).unwrap_err(),
            "is too long (maximum is 254 characters)"
        );
        // A local part of 64 bytes is accepted, 65 are not.
        assert!(Email::parse(&format!("{}@x.com", "a".repeat(64))).is_ok());
        // Characters, not bytes, as the API's schema counts a string: 254
        // two-byte characters in all, and a local part of 64 of them.
        let wide = format!("{}@{}.com", "é".repeat(64), "ü".repeat(185));
        assert_eq!(wide.chars().count(), 254);
        assert!(Email::parse(&wide).is_ok());
        assert!(Email::parse(&format!("{}@x.com", "é".repeat(65))).is_err());
        assert!(Email::parse(&format!("{}@{}.com", "é".repeat(64), "ü".repeat(186))).is_err());
        // Counted as sent: 254 characters and a space are too many.
        assert!(Email::parse(&format!(" {wide}")).is_err());
    }

    #[test]
    fn shows_as_written() {
        let email = Email::parse(" Ada@Example.com ").unwrap();
        assert_eq!(email.to_string(), "Ada@Example.com");
    }
}
